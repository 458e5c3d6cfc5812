"""Read locks, plan, and write the plan: the engine behind ``cmf dvc ingest``.

Every lock is parsed before anything is written, so a lock DVC would refuse leaves
the store untouched. The writes of one ingest go under the store's write lock: the missing
stage contexts (one call), then every execution, artifact, event, association and
attribution with ``Store.put_lineage_linked`` (ONE transaction on the SQL engine; through
ml-metadata's API the links are a second call). An interrupted ingest is repaired by running
it again: executions are found again by their lock fingerprint, those left without their
stage link (and their artifacts without attribution) are linked, and only what is missing is
added. ``tests/test_crash.py`` kills ingests mid-write and checks both.
"""
from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from cmfrun import schema
from cmfrun.errors import InputFileError
from cmfrun.ingest.lockfile import LockFile, read_lock
from cmfrun.ingest.plan import CREATE, MERGE, UNCHANGED, Plan, StagePlan, make_plan
from cmfrun.recorder import execution_properties
from cmfrun.records import COMPLETE, Context, Execution
from cmfrun.store import Store, is_already_exists

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestSummary:
    """What an ingest did (or, with ``dry_run``, would do)."""

    locks: Tuple[str, ...]
    stages_read: int
    executions_merged: int
    executions_created: int
    executions_unchanged: int
    artifacts_created: int
    artifacts_reused: int
    events_added: int
    warnings: Tuple[str, ...]
    plan: Tuple[StagePlan, ...]
    dry_run: bool = False

    def line(self) -> str:
        """The one-line summary the CLI prints."""
        prefix = "dry run: would ingest" if self.dry_run else "ingested"
        return (
            f"{prefix} {self.stages_read} stage(s) from {len(self.locks)} lock file(s): "
            f"executions {self.executions_merged} merged, {self.executions_created} created, "
            f"{self.executions_unchanged} unchanged; artifacts {self.artifacts_created} created, "
            f"{self.artifacts_reused} reused; {len(self.warnings)} warning(s)"
        )

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict (``--json``)."""
        return asdict(self)


def read_locks(lock_paths: Sequence[Path], root: Path) -> Tuple[List[LockFile], Dict[str, Dict[str, str]]]:
    """Parse every lock (with the ``dvc.yaml`` beside it for ``wdir`` and out kinds).

    Returns the locks and, per lock path, ``{root-relative out path: artifact type}``.
    """
    from cmfrun import dvcyaml

    locks: List[LockFile] = []
    kinds: Dict[str, Dict[str, str]] = {}
    for path in lock_paths:
        path = Path(path)
        if not path.is_absolute():
            path = Path.cwd() / path
        dvc_yaml = path.with_name("dvc.yaml")
        wdirs: Optional[Dict[str, str]] = None
        lock_kinds: Dict[str, str] = {}
        extra: List[str] = []
        if dvc_yaml.is_file() and path.is_file():
            try:
                stages = dvcyaml.load_stages(dvc_yaml, root)
            except InputFileError as exc:
                extra.append(f"{exc}: paths read relative to the lock's folder")
            else:
                wdirs = {name: s.wdir for name, s in stages.items()}
                for s in stages.values():
                    for out in s.outs:
                        lock_kinds[out.path] = (
                            schema.METRICS if out.kind == "metrics" else schema.MODEL if out.is_model else schema.DATASET
                        )
        lock = read_lock(path, root, stage_wdirs=wdirs)
        if extra:
            lock = replace(lock, warnings=tuple(extra) + lock.warnings)
        locks.append(lock)
        kinds[lock.path] = lock_kinds
    return locks, kinds


def _remote_root(root: Path) -> str:
    if not (root / ".dvc").is_dir():
        return ""
    from cmfrun.hashing import Hasher

    hasher = Hasher.for_path(root)
    try:
        return hasher.remote_root()
    finally:
        hasher.close()


def apply_plan(store: Store, plan: Plan, pipeline: str) -> None:
    """Write ``plan`` (see the module docstring for the transactions)."""
    w = plan.writes
    if w.empty:
        return
    with store.write_lock():
        pipe = store.get_or_create_context(schema.PIPELINE_CONTEXT, pipeline, {"Pipeline": pipeline}, {})
        pipe_id = int(pipe.id or 0)
        by_name: Dict[str, Context] = {c.name: c for c in store.child_contexts(pipe_id)}
        wanted = {s: schema.stage_context_name(pipeline, s) for s in w.stages}
        missing = sorted(n for n in wanted.values() if n not in by_name)
        if missing:
            anywhere = {c.name: c for c in store.contexts_by_type(schema.STAGE_CONTEXT)}
            new = [n for n in missing if n not in anywhere]
            for n in missing:
                if n in anywhere:  # exists but not under this pipeline yet: link it
                    by_name[n] = store.get_or_create_context(schema.STAGE_CONTEXT, n, {"Pipeline_Stage": n}, {},
                                                             parent_id=pipe_id)
            ids = store.put_contexts([Context(schema.STAGE_CONTEXT, n, {"Pipeline_Stage": n}) for n in new], pipe_id)
            for n, cid in zip(new, ids):
                by_name[n] = Context(schema.STAGE_CONTEXT, n, {"Pipeline_Stage": n}, id=cid)
        store.ensure_execution_types(ew.run.execution_type for ew in w.executions if ew.run is not None)
        executions: List[Execution] = []
        for ew in w.executions:
            if ew.existing is not None:
                executions.append(replace(ew.existing, custom={**ew.existing.custom, **ew.custom_update},
                                          properties={**ew.existing.properties, **ew.property_update}))
            else:
                assert ew.run is not None
                stage_ctx = by_name[wanted[ew.stage]]
                executions.append(
                    Execution(
                        type=ew.run.execution_type,
                        name=ew.run.execution_name,
                        properties=execution_properties(ew.run, pipe, stage_ctx),  # type: ignore[arg-type]
                        custom=ew.run.custom,
                        state=COMPLETE,
                    )
                )
        # Links an interrupted ingest left out first: a crash before the write below then
        # leaves whole records only.
        if w.relinks or w.reattributions:
            store.put_links([(int(by_name[wanted[stage]].id or 0), eid) for stage, eid in w.relinks],
                            [(int(by_name[wanted[stage]].id or 0), aid) for stage, aid in w.reattributions])
        if executions:
            store.put_lineage_linked(
                executions, w.artifacts, w.edges,
                [(int(by_name[wanted[ew.stage]].id or 0), i) for i, ew in enumerate(w.executions) if ew.existing is None],
                [(int(by_name[wanted[stage]].id or 0), pos) for pos, stage in w.attribution.items()],
            )


def ingest_locks(
    store: Store,
    lock_paths: Sequence[Path],
    *,
    pipeline: str,
    root: Path,
    dry_run: bool = False,
    parsed: Optional[Tuple[List[LockFile], Dict[str, Dict[str, str]]]] = None,
) -> IngestSummary:
    """Merge ``lock_paths`` into ``store`` under ``pipeline`` (paths relative to ``root``).

    Raises :class:`~cmfrun.errors.LockFileError` (store untouched) for a lock DVC would
    refuse. Ingesting the same locks again changes nothing.

    Example::

        summary = ingest_locks(store, [Path("dvc.lock")], pipeline="demo", root=Path("."))
        print(summary.line())
    """
    from cmfrun import gitinfo

    root = Path(root).absolute()
    # ``parsed``: the result of :func:`read_locks` when the caller validated the locks
    # before opening (or creating) the store.
    locks, kinds = parsed if parsed is not None else read_locks(lock_paths, root)
    cache: Dict[str, Any] = {}

    def remote() -> str:
        if "remote" not in cache:
            cache["remote"] = _remote_root(root)
        return str(cache["remote"])

    def git_info() -> Tuple[str, str]:
        if "git" not in cache:
            state = gitinfo.state(root)
            cache["git"] = (state.remote_url, state.commit)
        return cache["git"]  # type: ignore[no-any-return]

    attempts = 3
    for attempt in range(attempts):
        with (store.write_lock() if not dry_run else contextlib.nullcontext()):
            plan = make_plan(store, locks, pipeline=pipeline, out_kinds=kinds, git_info=git_info,
                             remote_root=remote)
            if dry_run:
                break
            try:
                apply_plan(store, plan, pipeline)
                break
            except Exception as exc:  # a concurrent writer (server stores) created a record first
                if is_already_exists(exc) and attempt < attempts - 1:
                    log.info("ingest: concurrent write detected, re-planning")
                    continue
                raise
    actions = [s.action for s in plan.stages]
    return IngestSummary(
        locks=tuple(lock.path for lock in locks),
        stages_read=len(plan.stages),
        executions_merged=actions.count(MERGE),
        executions_created=actions.count(CREATE),
        executions_unchanged=actions.count(UNCHANGED),
        artifacts_created=plan.artifacts_created,
        artifacts_reused=plan.artifacts_reused,
        events_added=sum(s.events_added for s in plan.stages if s.action != UNCHANGED),
        warnings=plan.warnings,
        plan=plan.stages,
        dry_run=dry_run,
    )


def find_locks(root: Path) -> List[Path]:
    """Every ``dvc.lock`` under ``root`` (sub-projects included; ``.git``, ``.dvc`` and
    hidden folders skipped), sorted."""
    found: List[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in ("node_modules", "__pycache__"))
        if "dvc.lock" in filenames:
            found.append(Path(dirpath) / "dvc.lock")
    return found


__all__ = ["IngestSummary", "ingest_locks", "read_locks", "apply_plan", "find_locks"]
