"""Reads behind ``cmf server``'s JSON API (``/api/v1``): pages, sorting, one record, lineage.

Thin wrappers over :mod:`cmfrun.commands.inspect` and :mod:`cmfrun.lineage`
that add what an HTTP API needs: ``limit``/``offset`` paging with a total,
a sort key, lookups restricted to one kind of record, and lineage graphs as
plain nodes and edges. Typed results, no printing.

Example::

    page = page_executions(store, pipeline="demo", state="failed", sort="-create_ms", limit=20)
    print(page.total, [e.uuid for e in page.items])
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple, TypeVar

from cmfrun import errors
from cmfrun.commands import browse, inspect
from cmfrun.commands.inspect import ArtifactInfo, ExecutionInfo, PipelineInfo, ShowResult
from cmfrun.lineage import LineageGraph
from cmfrun.store import Store

T = TypeVar("T")

#: Sort keys of each list (prefix ``-`` for descending).
EXECUTION_SORTS = ("id", "create_ms", "pipeline", "stage", "state", "duration_s", "uuid")
ARTIFACT_SORTS = ("id", "create_ms", "name", "path", "type", "hash", "size")
MAX_LIMIT = 1000


@dataclass(frozen=True)
class ExecutionPage:
    """One page of executions: ``total`` matches, ``items`` from ``offset`` on."""

    items: Tuple[ExecutionInfo, ...]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class ArtifactPage:
    """One page of artifacts: ``total`` matches, ``items`` from ``offset`` on."""

    items: Tuple[ArtifactInfo, ...]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class GraphNode:
    """A record reached by a lineage walk and the generation at which it was reached."""

    kind: str
    id: int
    label: str
    type: str
    depth: int
    uuid: str = ""
    hash: str = ""


@dataclass(frozen=True)
class GraphEdge:
    """A data-flow event: artifact -INPUT-> execution, or execution -OUTPUT-> artifact."""

    execution_id: int
    artifact_id: int
    kind: str


@dataclass(frozen=True)
class GraphView:
    """A lineage graph as nodes and edges; ``truncated`` when ``depth`` stopped the walk early."""

    direction: str
    nodes: Tuple[GraphNode, ...]
    edges: Tuple[GraphEdge, ...]
    truncated: bool


@dataclass(frozen=True)
class LineageView:
    """Lineage of one record: its kind, id and label, and the ``up``/``down`` graphs asked for."""

    root_kind: str
    root_id: int
    root_label: str
    up: Optional[GraphView]
    down: Optional[GraphView]


def _check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise errors.UsageError(f"limit must be between 1 and {MAX_LIMIT}")
    if offset < 0:
        raise errors.UsageError("offset must be 0 or more")


def _sorted(items: Sequence[T], sort: str, allowed: Sequence[str]) -> List[T]:
    key = sort[1:] if sort.startswith("-") else sort
    if key not in allowed:
        raise errors.UsageError(f"cannot sort by {sort!r}: use one of {', '.join(allowed)} (prefix - for descending)")

    def value(item: T) -> Tuple[int, Any, int]:
        v = getattr(item, key)
        # None sorts first ascending; ties keep id order so paging is stable.
        return (0, 0, int(getattr(item, "id"))) if v is None else (1, v, int(getattr(item, "id")))

    return sorted(items, key=value, reverse=sort.startswith("-"))


def _page(items: List[T], limit: int, offset: int) -> Tuple[Tuple[T, ...], int]:
    return tuple(items[offset : offset + limit]), len(items)


def get_pipeline(store: Store, name: str) -> PipelineInfo:
    """One pipeline by name (:class:`NotFoundError` when missing)."""
    for info in inspect.list_pipelines(store):
        if info.name == name:
            return info
    raise errors.NotFoundError(f"no pipeline {name!r} in the store")


#: Sort keys answered from :class:`browse.BrowseCache` rows (``create_ms`` follows ids: MLMD
#: stamps it when a record is written, in id order).
_ROW_SORTS = {"id": "id", "create_ms": "id", "pipeline": "pipeline", "stage": "stage", "state": "state",
              "duration_s": "duration_s", "uuid": "uuid"}


def page_executions(
    store: Store,
    *,
    pipeline: Optional[str] = None,
    stage: Optional[str] = None,
    state: Optional[str] = None,
    uuid: Optional[str] = None,
    sort: str = "-create_ms",
    limit: int = 100,
    offset: int = 0,
    cache: Optional[browse.BrowseCache] = None,
) -> ExecutionPage:
    """A page of executions matching the filters (see :func:`inspect.list_executions`), sorted by ``sort``.

    With a ``cache`` (a server keeps one) the matches are found, sorted and counted over
    the cache's flattened rows, kept up to date with the store's writes, and only the
    page's executions are read: milliseconds instead of seconds for 10,000 executions.
    """
    _check_page(limit, offset)
    key = sort[1:] if sort.startswith("-") else sort
    if cache is not None and key in _ROW_SORTS:
        return _page_from_rows(store, cache, pipeline, stage, state, uuid, sort, limit, offset)
    found = inspect.list_executions(store, pipeline=pipeline, stage=stage, uuid=uuid, state=state)
    items, total = _page(_sorted(found, sort, EXECUTION_SORTS), limit, offset)
    return ExecutionPage(items, total, limit, offset)


def _page_from_rows(
    store: Store,
    cache: browse.BrowseCache,
    pipeline: Optional[str],
    stage: Optional[str],
    state: Optional[str],
    uuid: Optional[str],
    sort: str,
    limit: int,
    offset: int,
) -> ExecutionPage:
    if state and state.upper() not in browse.STATES:
        raise errors.UsageError(f"unknown execution state {state!r}")
    if pipeline:
        rows = list(cache.execution_rows(store, pipeline))
        if stage:
            short = stage[len(pipeline) + 1 :] if stage.startswith(pipeline + "/") else stage
            if short not in {r.stage for r in rows}:
                raise errors.NotFoundError(f"pipeline {pipeline!r} has no stage {stage!r}")
            rows = [r for r in rows if r.stage == short]
    else:
        rows = [r for name in cache.pipelines(store) for r in cache.execution_rows(store, name)]
        if stage:
            rows = [r for r in rows if stage in (r.stage, f"{r.pipeline}/{r.stage}")]
    if state:
        rows = [r for r in rows if r.state == state.upper()]
    if uuid:
        rows = [r for r in rows if any(u.startswith(uuid) for u in r.uuid.split(","))]
    field = _ROW_SORTS[sort.lstrip("-")]
    ordered = _sorted(rows, field, tuple(_ROW_SORTS.values()))
    if sort.startswith("-"):
        ordered.reverse()
    chosen = ordered[offset : offset + limit]
    by_id = {int(e.id or 0): e for e in store.executions_by_id([r.id for r in chosen])}
    items = tuple(inspect.execution_info(by_id[r.id]) for r in chosen if r.id in by_id)
    return ExecutionPage(items, len(ordered), limit, offset)


def page_artifacts(
    store: Store,
    *,
    pipeline: Optional[str] = None,
    name: Optional[str] = None,
    type: Optional[str] = None,
    sort: str = "-create_ms",
    limit: int = 100,
    offset: int = 0,
) -> ArtifactPage:
    """A page of artifacts matching the filters (see :func:`inspect.list_artifacts`), sorted by ``sort``."""
    _check_page(limit, offset)
    found = inspect.list_artifacts(store, pipeline=pipeline, name=name, type=type)
    items, total = _page(_sorted(found, sort, ARTIFACT_SORTS), limit, offset)
    return ArtifactPage(items, total, limit, offset)


def show_execution(store: Store, ref: str) -> ShowResult:
    """Everything about the execution ``ref`` names (id, uuid or uuid prefix, name)."""
    found = inspect.find_executions(store, ref) if ref.strip() else []
    if not found:
        raise errors.NotFoundError(f"no execution {ref!r} in the store")
    if len(found) > 1:
        raise errors.UsageError(f"{ref!r} names {len(found)} executions: give more of the uuid")
    return inspect.show(store, f"execution:{found[0].id}")


def show_artifact(store: Store, ref: str) -> ShowResult:
    """Everything about the artifact ``ref`` names (id, name, hash, path: its latest version)."""
    text = ref.strip()
    if not text:
        raise errors.NotFoundError("no artifact '' in the store")
    found = inspect.find_artifacts(store, f"artifact:{text}" if text.isascii() and text.isdigit() else text)
    if not found:
        raise errors.NotFoundError(f"no artifact {ref!r} in the store")
    return inspect.show(store, f"artifact:{found[0].id}")


def _graph(g: Optional[LineageGraph]) -> Optional[GraphView]:
    if g is None:
        return None
    nodes: List[GraphNode] = []
    for eid, ex in sorted(g.executions.items()):
        info = inspect.execution_info(ex)
        nodes.append(GraphNode("execution", eid, info.stage or ex.type, ex.type, g.execution_depth[eid], uuid=info.uuid))
    for aid, art in sorted(g.artifacts.items()):
        nodes.append(GraphNode("artifact", aid, art.name, art.type, g.artifact_depth[aid], hash=art.uri))
    edges = tuple(GraphEdge(e, a, k) for e, a, k in g.edges)
    return GraphView(g.direction, tuple(nodes), edges, g.truncated)


def lineage_view(store: Store, ref: str, *, direction: str = "both", depth: Optional[int] = None) -> LineageView:
    """Ancestors (``up``), descendants (``down``) or ``both`` of what ``ref`` names, as nodes and edges."""
    if direction not in ("up", "down", "both"):
        raise errors.UsageError(f"direction must be up, down or both, not {direction!r}")
    res = inspect.lineage_of(store, ref, up=direction in ("up", "both"), down=direction in ("down", "both"), depth=depth)
    return LineageView(res.root_kind, res.root_id, res.root_label, _graph(res.up), _graph(res.down))


__all__ = [
    "EXECUTION_SORTS",
    "ARTIFACT_SORTS",
    "MAX_LIMIT",
    "ExecutionPage",
    "ArtifactPage",
    "GraphNode",
    "GraphEdge",
    "GraphView",
    "LineageView",
    "get_pipeline",
    "page_executions",
    "page_artifacts",
    "show_execution",
    "show_artifact",
    "lineage_view",
]
