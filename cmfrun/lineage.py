"""Typed lineage: ancestors and descendants of artifacts and executions.

Data flows artifact -INPUT-> execution -OUTPUT-> artifact. The parents of an
artifact X are the INPUT artifacts of every execution with an OUTPUT event on
X (the contract's rule, which CMF's readers follow too); children are the
OUTPUT artifacts of every execution with an INPUT event on X. Lineage crosses
pipelines freely: events do not belong to a pipeline.

The walk is :meth:`Store.walk_lineage`: level by level on ml-metadata (two
batched store calls per level, every record expanded once), one recursive
query on the SQL engine. Records are fetched in one batched call per kind at
the end.

Depth counts execution generations: ``depth=1`` from an artifact gives its
producing executions and their inputs (``up``); from an execution, ``depth=1``
gives only its own inputs (``up``) or outputs (``down``). ``depth=None`` walks
to the end.

Example::

    graph = ancestors(store, artifact_ids=[model.id])
    for art in graph.artifacts.values():
        print(graph.depth_of("artifact", art.id), art.name)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from cmfrun.records import INPUT, OUTPUT, Artifact, Event, Execution
from cmfrun.store import Store

UP = "up"
DOWN = "down"

#: An edge of the graph: (execution id, artifact id, "INPUT" | "OUTPUT").
Edge = Tuple[int, int, str]


@dataclass(frozen=True)
class LineageGraph:
    """The result of a walk: the records reached, the edges between them, and depths.

    ``artifacts``/``executions`` include the roots. ``artifact_depth`` and
    ``execution_depth`` give the execution generation at which each record was
    first reached (roots: 0). ``edges`` are data-flow events among reached records.
    """

    direction: str
    root_artifacts: Tuple[int, ...]
    root_executions: Tuple[int, ...]
    artifacts: Mapping[int, Artifact] = field(default_factory=dict)
    executions: Mapping[int, Execution] = field(default_factory=dict)
    artifact_depth: Mapping[int, int] = field(default_factory=dict)
    execution_depth: Mapping[int, int] = field(default_factory=dict)
    edges: Tuple[Edge, ...] = ()
    truncated: bool = False

    def depth_of(self, kind: str, record_id: int) -> int:
        """The generation at which ``kind`` (``artifact``/``execution``) ``record_id`` was reached."""
        table = self.artifact_depth if kind == "artifact" else self.execution_depth
        return table[record_id]

    def related_artifacts(self) -> List[Artifact]:
        """Reached artifacts except the roots, nearest first (then by id)."""
        roots = set(self.root_artifacts)
        ids = [a for a in self.artifacts if a not in roots]
        return [self.artifacts[a] for a in sorted(ids, key=lambda a: (self.artifact_depth[a], a))]

    def related_executions(self) -> List[Execution]:
        """Reached executions except the roots, nearest first (then by id)."""
        roots = set(self.root_executions)
        ids = [e for e in self.executions if e not in roots]
        return [self.executions[e] for e in sorted(ids, key=lambda e: (self.execution_depth[e], e))]


def _walk(
    store: Store,
    direction: str,
    artifact_ids: Iterable[int],
    execution_ids: Iterable[int],
    depth: Optional[int],
    fetch: bool,
) -> LineageGraph:
    if direction not in (UP, DOWN):
        raise ValueError(f"direction must be {UP!r} or {DOWN!r}, not {direction!r}")
    if depth is not None and depth < 0:
        raise ValueError("depth must be >= 0")
    root_arts = tuple(dict.fromkeys(int(a) for a in artifact_ids))
    root_execs = tuple(dict.fromkeys(int(e) for e in execution_ids))
    # The store walks (level by level, or one recursive query on the SQL engine).
    walk = store.walk_lineage(direction, root_arts, root_execs, depth)
    art_depth, exec_depth, edges, truncated = walk.artifact_depth, walk.execution_depth, walk.edges, walk.truncated
    artifacts: Dict[int, Artifact] = {}
    executions: Dict[int, Execution] = {}
    if fetch:
        artifacts = {int(a.id or 0): a for a in store.artifacts_by_id(list(art_depth))}
        executions = {int(e.id or 0): e for e in store.executions_by_id(list(exec_depth))}
    return LineageGraph(
        direction=direction,
        root_artifacts=root_arts,
        root_executions=root_execs,
        artifacts=artifacts,
        executions=executions,
        artifact_depth=art_depth,
        execution_depth=exec_depth,
        edges=tuple(sorted(edges)),
        truncated=truncated,
    )


def ancestors(
    store: Store,
    *,
    artifact_ids: Iterable[int] = (),
    execution_ids: Iterable[int] = (),
    depth: Optional[int] = None,
    fetch: bool = True,
) -> LineageGraph:
    """Everything upstream of the given artifacts and executions.

    ``fetch=False`` skips loading the records (ids, depths and edges only).

    Example::

        g = ancestors(store, artifact_ids=[42], depth=3)
        inputs = [a.name for a in g.related_artifacts()]
    """
    return _walk(store, UP, artifact_ids, execution_ids, depth, fetch)


def descendants(
    store: Store,
    *,
    artifact_ids: Iterable[int] = (),
    execution_ids: Iterable[int] = (),
    depth: Optional[int] = None,
    fetch: bool = True,
) -> LineageGraph:
    """Everything downstream of the given artifacts and executions (see :func:`ancestors`)."""
    return _walk(store, DOWN, artifact_ids, execution_ids, depth, fetch)


def one_hop_parents(store: Store, artifact_ids: Sequence[int]) -> List[int]:
    """Ids of the INPUT artifacts of the executions that produced ``artifact_ids``."""
    g = ancestors(store, artifact_ids=artifact_ids, depth=1, fetch=False)
    return sorted(a for a, d in g.artifact_depth.items() if d == 1)


def one_hop_children(store: Store, artifact_ids: Sequence[int]) -> List[int]:
    """Ids of the OUTPUT artifacts of the executions that consumed ``artifact_ids``."""
    g = descendants(store, artifact_ids=artifact_ids, depth=1, fetch=False)
    return sorted(a for a, d in g.artifact_depth.items() if d == 1)


def producers(store: Store, artifact_ids: Sequence[int]) -> List[int]:
    """Ids of executions with an OUTPUT event on any of ``artifact_ids`` (one batched call)."""
    return sorted({ev.execution_id for ev in store.events_by_artifact(artifact_ids) if ev.kind == OUTPUT})


def consumers(store: Store, artifact_ids: Sequence[int]) -> List[int]:
    """Ids of executions with an INPUT event on any of ``artifact_ids`` (one batched call)."""
    return sorted({ev.execution_id for ev in store.events_by_artifact(artifact_ids) if ev.kind == INPUT})


def io_events(store: Store, execution_ids: Sequence[int]) -> List[Event]:
    """INPUT/OUTPUT events of ``execution_ids`` (one batched call), in store order."""
    return [ev for ev in store.events_by_execution(execution_ids) if ev.kind in (INPUT, OUTPUT)]


__all__ = [
    "UP",
    "DOWN",
    "Edge",
    "LineageGraph",
    "ancestors",
    "descendants",
    "one_hop_parents",
    "one_hop_children",
    "producers",
    "consumers",
    "io_events",
]
