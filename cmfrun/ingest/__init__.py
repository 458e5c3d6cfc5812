"""``cmf dvc ingest``: merge ``dvc.lock`` files into the metadata store.

* :mod:`.lockfile` reads every lock layout into frozen records,
* :mod:`.match` finds the execution a lock stage belongs to,
* :mod:`.plan` computes what to add (``--dry-run`` shows it),
* :mod:`.merge` writes it and returns an :class:`IngestSummary`.

Names are imported lazily: importing :mod:`cmfrun.ingest.lockfile` must not load
ml_metadata.

Example::

    from cmfrun.ingest import dvc_ingest
    summary = dvc_ingest()          # the dvc.lock of the current directory
    print(summary.line())
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional

if TYPE_CHECKING:  # pragma: no cover
    from cmfrun.ingest.merge import IngestSummary, ingest_locks  # noqa: F401

_LAZY = {"ingest_locks": "cmfrun.ingest.merge", "IngestSummary": "cmfrun.ingest.merge", "StagePlan": "cmfrun.ingest.plan"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cmfrun.ingest' has no attribute {name!r}")


def dvc_ingest(
    file_name: Optional[str] = None,
    *,
    mlmd: Optional[str] = None,
    pipeline: Optional[str] = None,
    all_locks: bool = False,
    dry_run: bool = False,
    lock: Optional[str] = None,
    cwd: Optional[str] = None,
) -> "IngestSummary":
    """Ingest ``dvc.lock`` into the metadata store (CMF's ``dvc_ingest``).

    ``file_name`` is, as in CMF, the metadata store file (``mlmd`` is the same thing,
    cmfrun's spelling); unset, the store, pipeline and project root come from
    ``cmfrun.config.resolve`` (option > environment > ``.cmfconfig`` > defaults).
    Which locks: ``lock`` (one file), ``all_locks`` (every ``dvc.lock`` of the project,
    sub-projects included), else the ``dvc.lock`` of ``cwd`` (default: the current
    directory). ``dry_run`` plans without writing.

    Example::

        >>> summary = dvc_ingest("./mlmd")          # doctest: +SKIP
        >>> summary.executions_created, summary.warnings  # doctest: +SKIP
        (3, ())
    """
    from cmfrun import config
    from cmfrun.errors import LockFileError, UsageError
    from cmfrun.ingest.merge import find_locks, ingest_locks, read_locks

    if file_name and mlmd and file_name != mlmd:
        raise UsageError(f"dvc_ingest: file_name={file_name!r} and mlmd={mlmd!r} name two different stores")
    if lock and all_locks:
        raise UsageError("choose one of a lock file and all locks")
    here = Path(cwd or ".").absolute()
    settings = config.resolve(store=file_name or mlmd, pipeline=pipeline, cwd=here)
    root = settings.root
    locks: List[Path]
    if lock:
        path = Path(lock) if Path(lock).is_absolute() else here / lock
        if not path.is_file():
            raise LockFileError(f"{lock}: no such file")
        locks = [path]
    elif all_locks:
        locks = find_locks(root)
        if not locks:
            raise LockFileError(f"no dvc.lock under {root}")
    else:
        path = here / "dvc.lock"
        if not path.is_file():
            raise LockFileError(f"no dvc.lock in {here} (run `dvc repro` first, or use --lock PATH / --all)")
        locks = [path]
    # A lock DVC would refuse must leave everything untouched: no new, empty store either.
    parsed = read_locks(locks, root.absolute())
    store = _open(settings.store, dry_run)
    try:
        return ingest_locks(store, locks, pipeline=settings.pipeline, root=root, dry_run=dry_run, parsed=parsed)
    finally:
        store.close()
        scratch = getattr(store, "_dry_run_dir", None)
        if scratch:
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)


def _open(uri: str, dry_run: bool) -> Any:
    """The store to ingest into; a dry run against a store that does not exist yet plans
    against an empty temporary one (nothing is created where the user pointed)."""
    from cmfrun import journal
    from cmfrun.store import connect, parse_location

    if dry_run:
        loc = parse_location(uri)
        if loc.backend == "sqlite" and loc.path is not None and not loc.path.exists():
            import tempfile

            tmp = tempfile.mkdtemp(prefix="cmfrun-dry-run-")
            scratch = connect(str(Path(tmp) / "mlmd"), create=True)
            scratch._dry_run_dir = tmp  # type: ignore[attr-defined]
            return scratch
        return connect(uri, create=False)
    store = connect(uri, create=True)
    # Finished `cmfrun --` runs still in journals must be in the store before matching.
    journal.merge_pending(store)
    return store


__all__ = ["dvc_ingest", "ingest_locks", "IngestSummary", "StagePlan"]
