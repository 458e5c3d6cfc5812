"""`cmf` commands that read the store: pipeline/execution/artifact list, show, lineage, diff
(``cmf metadata export`` lives in :mod:`cmfrun.cli.metadata`).

Thin: parse options, open the store (merging pending journals), call one
function of :mod:`cmfrun.commands.inspect`, render a table or ``--json``.
Heavy imports (ml_metadata via the store) happen inside the callbacks.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Tuple

import click

from cmfrun.cli import handle_errors, mlmd_option, subgroup



def json_option(func: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(func)


def _open(mlmd: Optional[str]) -> Tuple[Any, Path]:
    from cmfrun import config
    from cmfrun.commands import open_store

    settings = config.resolve(store=mlmd)
    return open_store(settings.store, create=False), settings.root


# -- pipeline list ----------------------------------------------------------------------------
@click.command("list")
@mlmd_option
@json_option
@handle_errors
def pipeline_list(mlmd: Optional[str], as_json: bool) -> None:
    """List pipelines with their stages and execution counts.

    Example: cmf pipeline list --json
    """
    from cmfrun.cli import render
    from cmfrun.commands import inspect

    store, _ = _open(mlmd)
    items = inspect.list_pipelines(store)
    if as_json:
        click.echo(render.to_json(items))
        return
    rows = [(p.name, p.executions, p.failed, render.when(p.last_run_ms), ", ".join(p.stages)) for p in items]
    click.echo(render.table(["pipeline", "executions", "failed", "last run", "stages"], rows, limit=80))


# -- execution list ---------------------------------------------------------------------------
@click.command("list")
@mlmd_option
@click.option("-p", "--pipeline", default=None, help="Only this pipeline.")
@click.option("-s", "--stage", default=None, help="Only this stage (short or <pipeline>/<stage> name).")
@click.option("-e", "--execution", "uuid", default=None, metavar="UUID", help="Only this execution uuid (a prefix is enough).")
@click.option(
    "--state",
    type=click.Choice(["running", "complete", "failed", "canceled", "unknown"], case_sensitive=False),
    default=None,
    help="Only executions in this state.",
)
@click.option("-n", "--last", "last", type=click.IntRange(min=1), default=100, show_default=True, help="Show only the newest N matches.")
@click.option("--all", "show_all", is_flag=True, help="Show every match (slow on very big stores).")
@json_option
@handle_errors
def execution_list(
    mlmd: Optional[str],
    pipeline: Optional[str],
    stage: Optional[str],
    uuid: Optional[str],
    state: Optional[str],
    last: int,
    show_all: bool,
    as_json: bool,
) -> None:
    """List executions, oldest first (the newest 100 unless -n N or --all).

    Example: cmf execution list -p demo --state failed
    """
    from cmfrun.cli import render
    from cmfrun.commands import inspect

    store, _ = _open(mlmd)
    limit = None if show_all else last
    items = inspect.list_executions(store, pipeline=pipeline, stage=stage, uuid=uuid, state=state, limit=limit)
    if as_json:
        click.echo(render.to_json(items))
        return
    rows = [
        (
            e.id,
            e.pipeline,
            e.stage,
            e.state,
            "" if e.exit_code is None else e.exit_code,
            e.uuid.split(",")[-1][:8],
            render.when(e.create_ms),
            "" if e.duration_s is None else f"{e.duration_s:.1f}s",
            e.command,
        )
        for e in items
    ]
    click.echo(render.table(["id", "pipeline", "stage", "state", "exit", "uuid", "created", "took", "command"], rows))
    if limit is not None and len(items) == limit:
        click.echo(f"(the newest {limit} shown: -n N or --all for more)", err=True)


# -- artifact list ----------------------------------------------------------------------------
@click.command("list")
@mlmd_option
@click.option("-p", "--pipeline", default=None, help="Only artifacts this pipeline used or produced.")
@click.option("-a", "--artifact", "name", default=None, help="Only this artifact: full name, path (all versions) or hash.")
@click.option("--type", "type_", default=None, help="Only this type (Dataset, Model, Metrics, ...).")
@click.option("--where", is_flag=True, help="Also show whether the bytes are in the local DVC cache and on the DVC remote.")
@json_option
@handle_errors
def artifact_list(mlmd: Optional[str], pipeline: Optional[str], name: Optional[str], type_: Optional[str], where: bool, as_json: bool) -> None:
    """List artifacts, oldest first (--where: in the local cache? on the remote?).

    Example: cmf artifact list -p demo --type Model --where
    """
    from cmfrun.cli import render
    from cmfrun.commands import inspect

    store, root = _open(mlmd)
    items = inspect.list_artifacts(store, pipeline=pipeline, name=name, type=type_)
    if name and not items:
        from cmfrun.errors import NotFoundError

        raise NotFoundError(f"no artifact {name!r} in the store")
    if where:
        _list_where(items, root, as_json)
        return
    if as_json:
        click.echo(render.to_json(items))
        return
    rows = [
        (a.id, a.type, a.path, a.hash[:12], "" if a.size is None else a.size, ",".join(a.pipelines), render.when(a.create_ms))
        for a in items
    ]
    click.echo(render.table(["id", "type", "path", "hash", "size", "pipelines", "created"], rows))


def _list_where(items: Any, root: Path, as_json: bool) -> None:
    import dataclasses

    from cmfrun.cli import render
    from cmfrun.commands.artifacts import artifact_locations

    found = artifact_locations(root, [a.hash for a in items])
    rows = []
    for a in items:
        loc = found.get(a.hash)
        rows.append({**dataclasses.asdict(a), "in_cache": loc.in_cache if loc else None, "on_remote": loc.on_remote if loc else None})
    if as_json:
        click.echo(render.to_json(rows))
        return

    def yes(v: Optional[bool]) -> str:
        return "-" if v is None else ("yes" if v else "no")

    table = [(r["id"], r["type"], r["path"], r["hash"][:12], yes(r["in_cache"]), yes(r["on_remote"])) for r in rows]
    click.echo(render.table(["id", "type", "path", "hash", "cache", "remote"], table))


# -- show -------------------------------------------------------------------------------------
@click.command("show")
@click.argument("ref", metavar="EXECUTION_OR_ARTIFACT")
@mlmd_option
@json_option
@handle_errors
def show(ref: str, mlmd: Optional[str], as_json: bool) -> None:
    """Show everything recorded about one execution or artifact.

    EXECUTION_OR_ARTIFACT is an execution id, uuid (or prefix) or name, or an
    artifact name, file path (latest version), hash (or prefix), or
    execution:<id> / artifact:<id>.

    Example: cmf show model.pkl
    """
    from cmfrun.cli import render
    from cmfrun.commands import inspect

    store, root = _open(mlmd)
    res = inspect.show(store, ref, root)
    if as_json:
        click.echo(render.to_json(res))
        return
    rec = res.record
    out = [f"{res.kind} {res.id}: {rec.get('name') or rec['type']}"]
    fields = [("type", rec["type"])]
    if "uri" in rec:
        fields.append(("hash", rec["uri"]))
    if "state" in rec:
        fields.append(("state", rec["state"]))
    fields += [("created", render.when(rec["create_time_since_epoch"])), ("updated", render.when(rec["last_update_time_since_epoch"]))]
    fields.append(("contexts", ", ".join(res.contexts)))
    out.append(render.key_values(fields))
    if rec["properties"]:
        out += ["properties:", render.key_values(sorted(rec["properties"].items()), "  ")]
    if rec["custom_properties"]:
        out += ["custom properties:", render.key_values(sorted(rec["custom_properties"].items()), "  ")]
    for title, links in (("inputs", res.inputs), ("outputs", res.outputs)):
        if links:
            out.append(f"{title}:")
            out.append(render.table(["id", "type", "path", "hash"], [(l.artifact.id, l.artifact.type, l.artifact.path, l.artifact.hash) for l in links], limit=100))
    if res.executions:
        out.append("executions:")
        out.append(
            render.table(
                ["event", "id", "pipeline", "stage", "state", "command"],
                [(l.kind, l.execution.id, l.execution.pipeline, l.execution.stage, l.execution.state, l.execution.command) for l in res.executions],
            )
        )
    if res.versions:
        out.append("other versions of this path (newest first):")
        out.append(render.table(["id", "hash", "created"], [(v.id, v.hash, render.when(v.create_ms)) for v in res.versions]))
    click.echo("\n".join(out))


# -- lineage ----------------------------------------------------------------------------------
@click.command("lineage")
@click.argument("ref", metavar="PATH_OR_NAME_OR_HASH")
@mlmd_option
@click.option("--up", "direction", flag_value="up", help="Only ancestors (what it was made from).")
@click.option("--down", "direction", flag_value="down", help="Only descendants (what was made from it).")
@click.option("--depth", type=click.IntRange(min=0), default=None, help="Stop after N executions (default: all).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["tree", "json", "dot", "mermaid"]),
    default="tree",
    show_default=True,
    help="tree (text), json, dot (Graphviz) or mermaid (Markdown).",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@handle_errors
def lineage_cmd(ref: str, mlmd: Optional[str], direction: Optional[str], depth: Optional[int], fmt: str, as_json: bool) -> None:
    """Show where an artifact (or execution) came from and what it fed.

    A file path means its latest version. Without --up/--down both directions are shown.

    Example: cmf lineage model.pkl --up --format dot | dot -Tsvg > lineage.svg
    """
    from cmfrun.cli import render
    from cmfrun.commands import inspect

    store, root = _open(mlmd)
    res = inspect.lineage_of(store, ref, up=direction in (None, "up"), down=direction in (None, "down"), depth=depth, root=root)
    fmt = "json" if as_json else fmt
    if fmt == "json":
        click.echo(render.to_json(render.lineage_dict(res)))
    elif fmt == "dot":
        click.echo(render.dot(res))
    elif fmt == "mermaid":
        click.echo(render.mermaid(res))
    else:
        click.echo(render.tree(res))


# -- diff -------------------------------------------------------------------------------------
@click.command("diff")
@click.argument("a")
@click.argument("b")
@mlmd_option
@click.option("--all", "show_all", is_flag=True, help="Show every field, not only the ones that differ.")
@json_option
@handle_errors
def diff_cmd(a: str, b: str, mlmd: Optional[str], show_all: bool, as_json: bool) -> None:
    """Compare two executions, or two versions of an artifact, side by side.

    Compares command, params, input hashes, git commit, environment, exit status
    and outputs (for artifacts: their fields and their producing executions).

    Example: cmf diff 12 15
    """
    from cmfrun.cli import render
    from cmfrun.commands import inspect

    store, root = _open(mlmd)
    res = inspect.diff(store, a, b, root)
    rows = res.rows if show_all else res.differences
    if as_json:
        click.echo(
            render.to_json(
                {"kind": res.kind, "a": res.a, "b": res.b, "rows": [{"field": r.field, "a": r.a, "b": r.b, "same": r.same} for r in rows]}
            )
        )
        return
    if not rows:
        click.echo(f"no differences between {res.a} and {res.b}")
        return
    click.echo(render.table(["field", res.a, res.b], [(r.field, r.a, r.b) for r in rows], limit=70))


def register(group: click.Group) -> None:
    """Add this module's commands to the `cmf` group."""
    subgroup(group, "pipeline", "Pipelines in the store.").add_command(pipeline_list)
    subgroup(group, "execution", "Executions (runs of stages).").add_command(execution_list)
    subgroup(group, "artifact", "Artifacts (datasets, models, metrics...).").add_command(artifact_list)
    group.add_command(show)
    group.add_command(lineage_cmd)
    group.add_command(diff_cmd)
