"""`cmf deployment register|list|show` and `cmf serving-perf log` (ArangoML-style entities).

Thin: parse options, open the store, call :mod:`cmfrun.commands.deployment`, render.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Tuple

import click

from cmfrun.cli import handle_errors, mlmd_option, subgroup

PROJECT_HELP = "Project (a pipeline; default: CMFRUN_PIPELINE, .cmfconfig, root folder name)."


def _open(mlmd: Optional[str], *, create: bool) -> Tuple[Any, Path, str]:
    from cmfrun import config
    from cmfrun.commands import open_store

    settings = config.resolve(store=mlmd)
    return open_store(settings.store, create=create), settings.root, settings.pipeline


def _json(value: Any) -> str:
    from cmfrun.cli import render

    return render.to_json(value)


def _metrics_text(values: Any) -> str:
    from cmfrun.cli import render

    return ", ".join(f"{k}={render.text(v)}" for k, v in sorted(dict(values).items()))


@click.command("register")
@click.argument("tag")
@mlmd_option
@click.option("-p", "--project", default=None, help=PROJECT_HELP)
@click.option("--model", default=None, metavar="REF", help="The model: a registered name, or a model's path, name or hash.")
@click.option("-a", "--attr", "attrs", multiple=True, metavar="KEY=VALUE", help="An attribute (status, date...); repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def deployment_register(tag: str, mlmd: Optional[str], project: Optional[str], model: Optional[str], attrs: Tuple[str, ...], as_json: bool) -> None:
    """Register deployment TAG of a model (by path or hash, or the run logged with this tag).

    Example: cmf deployment register prod --model model.pkl -a status=active
    """
    from cmfrun.commands import deployment

    attributes = deployment.parse_pairs(attrs, "attribute")
    store, root, default_project = _open(mlmd, create=True)
    info = deployment.register_deployment(store, project or default_project, tag, model=model, attributes=attributes, root=root)
    if as_json:
        click.echo(_json(info))
        return
    click.echo(f"deployment {info.tag!r} of model {info.model} registered in project {info.project!r}")


@click.command("list")
@mlmd_option
@click.option("-p", "--project", default=None, help="Only this project.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@handle_errors
def deployment_list(mlmd: Optional[str], project: Optional[str], as_json: bool) -> None:
    """List deployments with their models and serving records.

    Example: cmf deployment list -p churn
    """
    from cmfrun.cli import render
    from cmfrun.commands import deployment

    store, _, _ = _open(mlmd, create=False)
    items = deployment.list_deployments(store, project)
    if as_json:
        click.echo(_json(items))
        return
    rows = [(d.project, d.tag, d.model, d.serving_records, render.when(d.create_ms)) for d in items]
    click.echo(render.table(["project", "deployment", "model", "serving records", "registered"], rows, limit=80))


@click.command("show")
@click.argument("tag")
@mlmd_option
@click.option("-p", "--project", default=None, help="The deployment's project (needed when two share the tag).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def deployment_show(tag: str, mlmd: Optional[str], project: Optional[str], as_json: bool) -> None:
    """Show a deployment: its model, upstream datasets, development vs serving performance.

    Example: cmf deployment show prod
    """
    from cmfrun.cli import render
    from cmfrun.commands import deployment

    store, _, _ = _open(mlmd, create=False)
    rep = deployment.show_deployment(store, tag, project)
    if as_json:
        click.echo(_json(rep))
        return
    d = rep.deployment
    pairs: List[Tuple[str, Any]] = [
        ("project", d.project),
        ("deployment", d.tag),
        ("model", d.model),
        ("model hash", d.model_hash),
        ("registered", render.when(d.create_ms)),
        ("datasets", ", ".join(rep.datasets)),
    ]
    pairs += [(k, v) for k, v in sorted(d.attributes.items())]
    click.echo(render.key_values(pairs, indent=""))
    click.echo("development performance:")
    for stage, values in rep.development:
        click.echo(f"  {stage}: {_metrics_text(values)}")
    if not rep.development:
        click.echo("  (none recorded)")
    click.echo("serving performance:")
    for values in rep.serving:
        click.echo(f"  {_metrics_text(values)}")
    if not rep.serving:
        click.echo("  (none recorded)")


@click.command("log")
@click.argument("deployment_tag", metavar="DEPLOYMENT")
@click.argument("metrics", nargs=-1, required=True, metavar="METRIC=VALUE...")
@mlmd_option
@click.option("-p", "--project", default=None, help="The deployment's project (needed when two share the tag).")
@click.option("-a", "--attr", "attrs", multiple=True, metavar="KEY=VALUE", help="An attribute of this record (period, source...).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def serving_perf_log(deployment_tag: str, metrics: Tuple[str, ...], mlmd: Optional[str], project: Optional[str], attrs: Tuple[str, ...], as_json: bool) -> None:
    """Record serving performance of a deployment.

    Example: cmf serving-perf log prod accuracy=0.93 latency_ms=12.5 -a period=2026-W49
    """
    from cmfrun.commands import deployment

    values = deployment.parse_pairs(metrics, "metric")
    attributes = deployment.parse_pairs(attrs, "attribute")
    store, _, _ = _open(mlmd, create=False)
    res = deployment.log_serving_perf(store, deployment_tag, values, project=project, attributes=attributes)
    if as_json:
        click.echo(_json(res))
        return
    click.echo(f"serving performance of {res.deployment!r} ({res.project}) recorded: {_metrics_text(res.metrics)}")


def register(group: click.Group) -> None:
    """Add `cmf deployment ...` and `cmf serving-perf log` to the `cmf` group."""
    dep = subgroup(group, "deployment", "Deployments of models (ArangoML-style entities).")
    for cmd in (deployment_register, deployment_list, deployment_show):
        dep.add_command(cmd)
    subgroup(group, "serving-perf", "Serving performance of deployments.").add_command(serving_perf_log)
