"""`cmf dvc ingest`: merge dvc.lock into the store.

Thin: parse options, call :func:`cmfrun.ingest.dvc_ingest`, print the summary line
(and the plan with ``--dry-run``) or ``--json``. Heavy imports stay inside the callback.
"""
from __future__ import annotations

import json
from typing import Any, List, Optional

import click

from cmfrun.cli import handle_errors, mlmd_option, subgroup


def _plan_lines(summary: Any) -> List[str]:
    lines: List[str] = []
    for s in summary.plan:
        target = f"execution {s.execution_id}" if s.execution_id else f"new execution {s.execution_name}"
        how = f" (matched by {s.matched_by})" if s.matched_by else ""
        lines.append(
            f"  {s.action:9} {s.stage}: {target}{how}; +{len(s.artifacts_created)} artifact(s), "
            f"+{s.events_added if s.action != 'unchanged' else 0} event(s)"
            + (f"; {len(s.conflicts)} hash conflict(s)" if s.conflicts else "")
        )
    return lines


@click.command("ingest")
@click.option("--lock", "lock", default=None, metavar="PATH", help="Ingest this one dvc.lock.")
@click.option("--all", "all_locks", is_flag=True, help="Ingest every dvc.lock of the repository (sub-projects included).")
@mlmd_option
@click.option("-p", "--pipeline", default=None, help="Pipeline name (default: CMFRUN_PIPELINE, .cmfconfig, root folder name).")
@click.option("--dry-run", is_flag=True, help="Print the plan; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary (with the plan) as JSON.")
@handle_errors
def ingest(lock: Optional[str], all_locks: bool, mlmd: Optional[str], pipeline: Optional[str], dry_run: bool,
           as_json: bool) -> None:
    """Merge dvc.lock into the metadata store.

    Every lock stage becomes, or is merged into, an execution with the lock's deps,
    outs, hashes and params. A stage merges into the latest execution recorded for it
    (by `cmfrun --` under DVC, or the API), else one with the same command; otherwise a
    new execution is created. Running it twice changes nothing.

    Example: cmf dvc ingest --all --dry-run
    """
    from cmfrun.errors import UsageError
    from cmfrun.ingest import dvc_ingest

    if lock and all_locks:
        raise UsageError("--lock and --all are exclusive")
    summary = dvc_ingest(mlmd=mlmd, pipeline=pipeline, all_locks=all_locks, dry_run=dry_run, lock=lock)
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2, default=str))
        return
    for warning in summary.warnings:
        click.echo(f"cmfrun: warning: {warning}", err=True)
    if dry_run:
        for line in _plan_lines(summary):
            click.echo(line)
    click.echo(summary.line())


def register(group: click.Group) -> None:
    """Add `cmf dvc ingest` to the `cmf` group."""
    dvc = subgroup(group, "dvc", "DVC integration: ingest dvc.lock.")
    dvc.add_command(ingest)
