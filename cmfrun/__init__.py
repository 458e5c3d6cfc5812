"""cmfrun: metadata and lineage tracking for ML pipelines with no code changes.

Prefix any command with ``cmfrun --`` to record it; use :class:`Cmf` for the
CMF-compatible Python API and :class:`CmfQuery` to read a store back.

Names are imported lazily so ``cmfrun --`` does not pay for ml_metadata on
its hot path.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "Cmf": "cmfrun.api",
    "cmf_init": "cmfrun.api",
    "cmf_init_show": "cmfrun.api",
    "artifact_push": "cmfrun.commands.artifacts",
    "artifact_pull": "cmfrun.commands.artifacts",
    "artifact_pull_single": "cmfrun.commands.artifacts",
    "dvc_ingest": "cmfrun.ingest",
    "CmfQuery": "cmfrun.query",
    "connect": "cmfrun.store",
    "CmfrunError": "cmfrun.errors",
    "metadata_push": "cmfrun.commands.metadata",
    "metadata_pull": "cmfrun.commands.metadata",
    "metadata_export": "cmfrun.commands.metadata",
    "repo_push": "cmfrun.commands.repo",
    "repo_pull": "cmfrun.commands.repo",
    "ArangoPipe": "cmfrun.integrations.arango",
}

__all__ = ["__version__", *sorted(_LAZY)]

if TYPE_CHECKING:  # pragma: no cover
    from cmfrun.api import Cmf, cmf_init, cmf_init_show
    from cmfrun.commands.artifacts import artifact_pull, artifact_pull_single, artifact_push
    from cmfrun.commands.metadata import metadata_export, metadata_pull, metadata_push
    from cmfrun.commands.repo import repo_pull, repo_push
    from cmfrun.errors import CmfrunError
    from cmfrun.integrations.arango import ArangoPipe
    from cmfrun.ingest import dvc_ingest
    from cmfrun.query import CmfQuery
    from cmfrun.store import connect


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cmfrun' has no attribute {name!r}")
