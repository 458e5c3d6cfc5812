"""`cmf openlineage export`: a pipeline's runs as OpenLineage events (file or HTTP).

Thin: parse options, open the store, call :mod:`cmfrun.commands.openlineage`, print one line.
"""
from __future__ import annotations

from typing import Optional

import click

from cmfrun.cli import handle_errors, mlmd_option, subgroup


@click.command("export")
@click.option("-p", "--pipeline", required=True, help="The pipeline whose executions to export.")
@mlmd_option
@click.option("-o", "--output", "output", default=None, metavar="FILE", help="Write the events to FILE (one JSON event per line).")
@click.option("--url", default=None, metavar="URL", help="POST the events to an OpenLineage endpoint (e.g. Marquez: http://host:5000).")
@click.option(
    "--api-key",
    default=None,
    envvar="OPENLINEAGE_API_KEY",
    show_envvar=True,
    metavar="KEY",
    help="API key sent as 'Authorization: Bearer' (prefer the environment variable).",
)
@click.option("--since", default=None, metavar="TIME", help="Only executions written at or after TIME (ISO 8601, or epoch s/ms).")
@click.option("--namespace", default=None, help="Job namespace (default: the pipeline name).")
@handle_errors
def export(pipeline: str, mlmd: Optional[str], output: Optional[str], url: Optional[str], api_key: Optional[str],
           since: Optional[str], namespace: Optional[str]) -> None:
    """Export a pipeline's executions as OpenLineage RunEvents (START + COMPLETE/FAIL).

    Example: cmf openlineage export -p demo --url http://127.0.0.1:5000 --since 2026-12-01
    """
    from cmfrun import config
    from cmfrun.commands import open_store
    from cmfrun.commands.openlineage import export_openlineage, parse_since

    since_ms = parse_since(since) if since else None
    store = open_store(config.resolve(store=mlmd).store, create=False)
    res = export_openlineage(store, pipeline, file=output, url=url, api_key=api_key, since_ms=since_ms, namespace=namespace)
    click.echo(f"sent {res.events} OpenLineage events for {res.executions} executions of {pipeline!r} to {res.target}")


def register(group: click.Group) -> None:
    """Add `cmf openlineage export` to the `cmf` group."""
    subgroup(group, "openlineage", "OpenLineage events for lineage catalogues (Marquez, DataHub...).").add_command(export)
