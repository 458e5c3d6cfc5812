"""`cmf graph sync` and `cmf graph export`: typed results, no printing.

Example::

    report = graph_sync(store_uri="mlmd", uri="falkor://127.0.0.1:6379/cmf")
    print(report.nodes_created)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from cmfrun import config, errors
from cmfrun.commands import open_store

if TYPE_CHECKING:  # the graph clients load only when a command runs
    from cmfrun.integrations.graph import SyncReport


@dataclass(frozen=True)
class ExportResult:
    """What :func:`graph_export` wrote; ``text`` holds the export when ``path`` is ``-``."""

    path: str
    format: str
    nodes: int
    relationships: int
    text: Optional[str] = None


def graph_sync(
    *,
    store_uri: Optional[str] = None,
    pipeline: Optional[str] = None,
    uri: Optional[str] = None,
    user: Optional[str] = None,
    full: bool = False,
    cwd: str = ".",
) -> "SyncReport":
    """Mirror the store (or one pipeline) into the configured graph database.

    Raises :class:`~cmfrun.errors.GraphNotConfiguredError` when no graph database is
    configured (option, ``NEO4J_URI``, ``.cmfconfig``), and the ``GraphError`` family when
    it cannot be used.
    """
    from cmfrun.integrations.graph import resolve_settings, sync
    from cmfrun.integrations.graph_targets import open_target

    settings = config.resolve(store=store_uri, cwd=cwd)
    graph = resolve_settings(uri, user, root=settings.root)
    if graph is None:
        raise errors.GraphNotConfiguredError(
            "no graph database configured: give --uri, set NEO4J_URI, or run `cmf init ... --neo4j-uri`"
        )
    store = open_store(settings.store)
    target = open_target(graph)
    try:
        return sync(store, target, pipeline=pipeline, full=full)
    finally:
        target.close()


def graph_export(
    fmt: str,
    output: str,
    *,
    store_uri: Optional[str] = None,
    pipeline: Optional[str] = None,
    cwd: str = ".",
) -> ExportResult:
    """Write the store's graph (or one pipeline's) to ``output`` in ``fmt`` (``cypher``,
    ``graphml`` or ``json``); with ``output="-"`` the text is returned in the result
    instead. Needs no graph database."""
    from cmfrun.integrations.graph_export import FORMATS, render
    from cmfrun.integrations.graph_model import read_store

    if fmt not in FORMATS:
        raise errors.UsageError(f"unknown graph export format {fmt!r}: use one of {', '.join(FORMATS)}")
    settings = config.resolve(store=store_uri, cwd=cwd)
    store = open_store(settings.store)
    model = read_store(store, pipeline=pipeline).model
    text = render(model, fmt)
    if output == "-":
        return ExportResult(output, fmt, len(model.nodes), len(model.rels), text)
    _write_atomic(Path(output), text)
    return ExportResult(output, fmt, len(model.nodes), len(model.rels))


def _write_atomic(path: Path, text: str) -> None:
    parent = path.absolute().parent
    if not parent.is_dir():
        raise errors.InputFileError(f"cannot write {path}: folder {parent} does not exist")
    tmp = parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise errors.InputFileError(f"cannot write {path}: {exc.strerror or exc}") from None


__all__ = ["ExportResult", "graph_sync", "graph_export"]
