"""``cmf metadata push/pull/export/import`` and ``cmf repo push/pull``: thin, over
:mod:`cmfrun.commands.metadata` and :mod:`cmfrun.commands.repo`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Tuple

import click

from cmfrun.cli import handle_errors, mlmd_option, subgroup

SERVER_HELP = "cmf server URL (default: CMFRUN_SERVER, .cmfconfig cmf_server_url)."
TOKEN_HELP = "Bearer token for the server (default: CMFRUN_SERVER_TOKEN). Never printed."


def _open(mlmd: Optional[str], *, create: bool = False) -> Tuple[Any, Path]:
    from cmfrun import config
    from cmfrun.commands import open_store

    settings = config.resolve(store=mlmd)
    return open_store(settings.store, create=create), settings.root


def _report_lines(res: Any) -> None:
    r = res.report
    verb = "pushed to" if res.direction == "push" else "pulled from"
    click.echo(
        f"{verb} {res.peer}: pipeline {res.pipeline!r}, {res.executions_sent} execution(s) transferred"
        f" ({res.bytes_sent} bytes sent, {res.bytes_received} received); added {r.executions_added},"
        f" updated {r.executions_updated}, unchanged {r.executions_unchanged}, artifacts added {r.artifacts_added},"
        f" events added {r.events_added}, conflicts {len(r.conflicts)}"
    )
    for c in r.conflicts:
        click.echo(
            f"cmfrun: warning: conflict on {c.record} {c.uuid} field {c.field}: kept {c.ours!r}, refused {c.theirs!r}",
            err=True,
        )


def _as_json(res: Any) -> str:
    from dataclasses import asdict

    d = asdict(res)
    d["report"] = res.report.to_json()
    return json.dumps(d, default=str)


@click.command("push")
@click.option("-p", "--pipeline", required=True, help="Pipeline to push.")
@click.option("-e", "--execution-uuid", "execution_uuid", default=None, metavar="UUID", help="Only this execution.")
@click.option("--server", default=None, metavar="URL", help=SERVER_HELP)
@click.option("--token", default=None, metavar="TOKEN", help=TOKEN_HELP)
@click.option("--to", "to", default=None, metavar="STORE", help="Push into this store (path or URI) instead of a server.")
@click.option("--site", default=None, help="Site name for executions with no Host (default: this host's name).")
@click.option("--full", is_flag=True, help="Compare every execution, not only those updated since the last push.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@mlmd_option
@handle_errors
def metadata_push(pipeline: str, execution_uuid: Optional[str], server: Optional[str], token: Optional[str],
                  to: Optional[str], site: Optional[str], full: bool, as_json: bool, mlmd: Optional[str]) -> None:
    """Push a pipeline's metadata to a cmf server (or with --to into another store).

    Incremental: only executions updated since the last push are considered, and of those only
    the ones the other side lacks or holds with other content travel (--full: consider all).

    Example: cmf metadata push -p demo --server http://127.0.0.1:8080
    """
    from cmfrun.commands import metadata

    store, root = _open(mlmd)
    res = metadata.push(store, pipeline, server=server, token=token, to=to, execution_uuid=execution_uuid, site=site,
                        root=root, full=full)
    click.echo(_as_json(res)) if as_json else _report_lines(res)


@click.command("pull")
@click.option("-p", "--pipeline", required=True, help="Pipeline to pull.")
@click.option("-e", "--execution-uuid", "execution_uuid", default=None, metavar="UUID", help="Only this execution.")
@click.option("--server", default=None, metavar="URL", help=SERVER_HELP)
@click.option("--token", default=None, metavar="TOKEN", help=TOKEN_HELP)
@click.option("--from", "from_store", default=None, metavar="STORE", help="Pull from this store (path or URI) instead of a server.")
@click.option("--full", is_flag=True, help="Compare every execution, not only those updated since the last pull.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@mlmd_option
@handle_errors
def metadata_pull(pipeline: str, execution_uuid: Optional[str], server: Optional[str], token: Optional[str],
                  from_store: Optional[str], full: bool, as_json: bool, mlmd: Optional[str]) -> None:
    """Pull a pipeline's metadata from a cmf server (or with --from from another store).

    Incremental: the first pull sends this store's digests and receives what it lacks; later
    pulls ask for what changed on the server since (--full: compare everything again).

    Example: cmf metadata pull -p demo --server http://127.0.0.1:8080
    """
    from cmfrun.commands import metadata

    store, root = _open(mlmd, create=True)
    res = metadata.pull(store, pipeline, server=server, token=token, from_store=from_store,
                        execution_uuid=execution_uuid, root=root, full=full)
    click.echo(_as_json(res)) if as_json else _report_lines(res)


@click.command("export")
@click.option("-p", "--pipeline", required=True, help="Pipeline to export.")
@click.option("-j", "--json-file", "json_file", default=None, metavar="FILE", help="Output file (default ./<pipeline>.json; - for stdout).")
@click.option("-e", "--execution", "execution", default=None, metavar="ID|UUID", help="Only this execution (id or uuid).")
@mlmd_option
@handle_errors
def metadata_export(pipeline: str, json_file: Optional[str], execution: Optional[str], mlmd: Optional[str]) -> None:
    """Export a pipeline's metadata as CMF's JSON (what `cmf metadata push` sends; `cmf metadata import` reads it).

    Example: cmf metadata export -p demo -j demo.json
    """
    from cmfrun.commands import metadata

    store, _ = _open(mlmd)
    res = metadata.export(store, pipeline, execution)
    if json_file == "-":
        click.echo(json.dumps(res.data))
        return
    res = metadata.write_export(res, json_file or f"{pipeline}.json")
    click.echo(
        f"exported pipeline {pipeline!r} ({res.stages} stages, {res.executions} executions, {res.events} events) to {res.path}",
        err=True,
    )


@click.command("import")
@click.argument("json_file", metavar="FILE")
@click.option("--site", default=None, help="Site name for executions with no Host.")
@click.option("--json", "as_json", is_flag=True, help="Print the merge report as JSON.")
@mlmd_option
@handle_errors
def metadata_import(json_file: str, site: Optional[str], as_json: bool, mlmd: Optional[str]) -> None:
    """Merge a bundle written by `cmf metadata export` (or CMF's JSON) into the store.

    Running it twice changes nothing; records that disagree with the store are reported, not taken.

    Example: cmf metadata import demo.json
    """
    from cmfrun.commands import metadata

    store, _ = _open(mlmd, create=True)
    res = metadata.import_file(store, json_file, site=site)
    r = res.report
    if as_json:
        click.echo(json.dumps(r.to_json()))
        return
    click.echo(
        f"imported {res.path}: added {r.executions_added}, updated {r.executions_updated}, unchanged"
        f" {r.executions_unchanged}, artifacts added {r.artifacts_added}, events added {r.events_added},"
        f" conflicts {len(r.conflicts)}"
    )
    for c in r.conflicts:
        click.echo(f"cmfrun: warning: conflict on {c.record} {c.uuid} field {c.field}: kept {c.ours!r}, refused {c.theirs!r}", err=True)


def _repo_lines(res: Any) -> None:
    for number, step in enumerate(res.steps, start=1):
        click.echo(f"step {number} ({step.name}): {step.summary}")
    if res.metadata is not None:
        for c in res.metadata.report.conflicts:
            click.echo(f"cmfrun: warning: conflict on {c.record} {c.uuid} field {c.field}: kept {c.ours!r}, refused {c.theirs!r}", err=True)


@click.command("push")
@click.option("-p", "--pipeline", required=True, help="Pipeline to push.")
@click.option("-e", "--execution-uuid", "execution_uuid", default="", metavar="UUID", help="Only this execution's metadata.")
@click.option("-j", "--jobs", default=32, show_default=True, help="Parallel artifact uploads.")
@click.option("--server", default=None, metavar="URL", help=SERVER_HELP)
@click.option("--token", default=None, metavar="TOKEN", help=TOKEN_HELP)
@mlmd_option
@handle_errors
def repo_push(pipeline: str, execution_uuid: str, jobs: int, server: Optional[str], token: Optional[str], mlmd: Optional[str]) -> None:
    """Push code (git push), artifacts (DVC remote) and metadata (cmf server), in that order.

    Stops at the first step that fails and names it.

    Example: cmf repo push -p demo
    """
    from cmfrun import config
    from cmfrun.commands import repo

    settings = config.resolve(store=mlmd)
    _repo_lines(repo.repo_push(pipeline, settings.store, "", execution_uuid, jobs, server=server, token=token, root=settings.root))


@click.command("pull")
@click.option("-p", "--pipeline", required=True, help="Pipeline to pull.")
@click.option("-e", "--execution-uuid", "execution_uuid", default="", metavar="UUID", help="Only this execution's metadata.")
@click.option("--server", default=None, metavar="URL", help=SERVER_HELP)
@click.option("--token", default=None, metavar="TOKEN", help=TOKEN_HELP)
@mlmd_option
@handle_errors
def repo_pull(pipeline: str, execution_uuid: str, server: Optional[str], token: Optional[str], mlmd: Optional[str]) -> None:
    """Pull code (git pull --ff-only), metadata (cmf server), then the artifacts it names.

    Stops at the first step that fails and names it.

    Example: cmf repo pull -p demo
    """
    from cmfrun import config
    from cmfrun.commands import repo

    settings = config.resolve(store=mlmd)
    _repo_lines(repo.repo_pull(pipeline, settings.store, execution_uuid, server=server, token=token, root=settings.root))


def register(group: click.Group) -> None:
    """Add this module's commands to the `cmf` group."""
    meta = subgroup(group, "metadata", "Move metadata in and out of the store.")
    for cmd in (metadata_push, metadata_pull, metadata_export, metadata_import):
        meta.add_command(cmd)
    repo = subgroup(group, "repo", "Push or pull code, artifacts and metadata together.")
    repo.add_command(repo_push)
    repo.add_command(repo_pull)
