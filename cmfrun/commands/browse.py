"""Browse a store page by page: the typed queries behind the web UI (``cmf ui``, ``cmf server``).

Listing pages must not read everything on every request: a pipeline of 10,000
executions takes MLMD ~1.5 s to read. :class:`BrowseCache` keeps one flattened
row per execution (stage, state, times, params, metrics) per pipeline, and one
row per artifact, and rebuilds them only when the store changed. Whether it
changed is one ``stat`` of a SQLite file (its size and mtime, and its ``-wal``
file's) or, for PostgreSQL/MySQL, two MLMD filter queries for records updated
since the snapshot was taken. Paging, sorting and filtering then run over the
cached rows in memory (milliseconds for 10,000 rows).

Detail pages (one execution, one artifact) read the store directly: a few
indexed calls, no cache needed.

Example::

    cache = BrowseCache()
    page = executions_page(store, cache, ExecutionQuery(pipeline="demo", sort="metric:accuracy", desc=True))
    for row in page.rows:
        print(row.id, row.metrics.get("accuracy"))
"""
from __future__ import annotations

import datetime
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from cmfrun import errors, lineage, schema
from cmfrun.commands import inspect
from cmfrun.records import INPUT, OUTPUT, Artifact, Execution
from cmfrun.store import Store
from cmfrun.store.literals import filter_literal, like_prefix, safe_literal

#: Execution states MLMD knows (the filter accepts these, any case).
STATES = ("COMPLETE", "FAILED", "RUNNING", "CANCELED", "UNKNOWN", "NEW", "CACHED")
#: Custom properties a file artifact carries that are not metric values.
_NOT_METRICS = frozenset({"size", "nfiles"})
#: Custom properties of an execution that are not params.
_NOT_PARAMS = frozenset({"Python_Env"})
#: Fixed columns an executions table can sort by (besides ``param:K`` and ``metric:K``).
SORT_FIELDS = ("id", "stage", "state", "start", "duration", "exit_code")
MAX_PER_PAGE = 500
#: A lineage graph keeps at most this many nodes (the nearest to its root).
MAX_NODES = 300
MAX_DEPTH = 200
#: After this many records changed since a snapshot began, start a new one (keeps the change queries small).
REBUILD_AFTER = 2000
#: Servers stamp update times with the writer's clock: look this far back for changes.
_CLOCK_SLACK_MS = 5000


# -- results ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExecutionRow:
    """One execution flattened for a table: params are its custom properties, metrics the
    values of the Metrics artifacts it produced."""

    id: int
    uuid: str
    pipeline: str
    stage: str
    state: str
    command: str
    start_ms: int
    duration_s: Optional[float]
    exit_code: Optional[int]
    params: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageSummary:
    """A stage of a pipeline: execution count, count per state, newest start."""

    name: str
    executions: int
    states: Mapping[str, int]
    last_run_ms: int


@dataclass(frozen=True)
class PipelineSummary:
    """A pipeline for the overview page."""

    name: str
    executions: int
    states: Mapping[str, int]
    last_run_ms: int
    stages: Tuple[StageSummary, ...]


@dataclass(frozen=True)
class ExecutionQuery:
    """What the executions table shows. ``sort`` is a field of :data:`SORT_FIELDS`,
    ``param:KEY`` or ``metric:KEY``; ``params`` filters keep rows whose param equals the
    value (compared as text); times are epoch ms, ``until_ms`` exclusive."""

    pipeline: str
    stage: Optional[str] = None
    state: Optional[str] = None
    params: Tuple[Tuple[str, str], ...] = ()
    since_ms: Optional[int] = None
    until_ms: Optional[int] = None
    sort: str = "id"
    desc: bool = True
    page: int = 1
    per_page: int = 50
    columns: Tuple[str, ...] = ()


@dataclass(frozen=True)
class ExecutionPage:
    """One page of the executions table, with what the column chooser offers."""

    query: ExecutionQuery
    total: int
    pages: int
    rows: Tuple[ExecutionRow, ...]
    columns: Tuple[str, ...]
    param_keys: Tuple[str, ...]
    metric_keys: Tuple[str, ...]
    stages: Tuple[str, ...]


@dataclass(frozen=True)
class ArtifactRow:
    """One artifact for the artifacts table."""

    id: int
    name: str
    path: str
    type: str
    hash: str
    create_ms: int


@dataclass(frozen=True)
class ArtifactPage:
    """One page of artifacts of a type matching a search."""

    type: Optional[str]
    search: str
    page: int
    per_page: int
    total: int
    pages: int
    rows: Tuple[ArtifactRow, ...]
    types: Mapping[str, int]


@dataclass(frozen=True)
class ArtifactRef:
    """An artifact linked to an execution, with the event kind."""

    kind: str
    id: int
    name: str
    path: str
    type: str
    hash: str
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecutionDetail:
    """Everything the page of one execution shows."""

    id: int
    uuid: str
    name: str
    type: str
    pipeline: str
    stage: str
    state: str
    command: str
    exit_code: Optional[int]
    start_ms: int
    end_ms: int
    duration_s: Optional[float]
    cpu_time_s: Optional[float]
    peak_rss_kib: Optional[int]
    git_repo: str
    git_start_commit: str
    git_end_commit: str
    git_dirty: Optional[bool]
    host: str
    user: str
    working_dir: str
    params: Mapping[str, Any]
    metrics: Mapping[str, Any]
    environment: Tuple[ArtifactRef, ...]
    inputs: Tuple[ArtifactRef, ...]
    outputs: Tuple[ArtifactRef, ...]
    properties: Mapping[str, Any]
    create_ms: int
    update_ms: int
    previous_id: Optional[int] = None


@dataclass(frozen=True)
class ExecutionBrief:
    """An execution as seen from an artifact page."""

    kind: str
    id: int
    pipeline: str
    stage: str
    state: str
    start_ms: int
    command: str


@dataclass(frozen=True)
class ModelCard:
    """What a model is: framework and type, the run that made it, its metrics and training data."""

    framework: str
    model_type: str
    model_name: str
    producer: Optional[ExecutionBrief]
    params: Mapping[str, Any]
    metrics: Mapping[str, Any]
    metrics_source: str
    training_data: Tuple[ArtifactRef, ...]


@dataclass(frozen=True)
class ArtifactDetail:
    """Everything the page of one artifact shows."""

    id: int
    name: str
    path: str
    type: str
    hash: str
    properties: Mapping[str, Any]
    custom: Mapping[str, Any]
    create_ms: int
    update_ms: int
    pipelines: Tuple[str, ...]
    producers: Tuple[ExecutionBrief, ...]
    consumers: Tuple[ExecutionBrief, ...]
    versions: Tuple[ArtifactRow, ...]
    model_card: Optional[ModelCard]


@dataclass(frozen=True)
class CompareRow:
    """One compared field: a value per execution; ``differs`` when they are not all equal."""

    field: str
    values: Tuple[str, ...]

    @property
    def differs(self) -> bool:
        return len(set(self.values)) > 1


@dataclass(frozen=True)
class Comparison:
    """Two or more executions side by side (the ``cmf diff`` fields plus metrics)."""

    ids: Tuple[int, ...]
    labels: Tuple[str, ...]
    rows: Tuple[CompareRow, ...]


@dataclass(frozen=True)
class GraphNode:
    """A node of a lineage graph: ``key`` is ``artifact:<id>`` or ``execution:<id>``."""

    key: str
    kind: str
    id: int
    label: str
    detail: str
    type: str


@dataclass(frozen=True)
class LineageView:
    """The records around a node, up to ``depth`` generations up and/or down."""

    root: str
    direction: str
    depth: int
    nodes: Tuple[GraphNode, ...]
    edges: Tuple[Tuple[str, str], ...]
    truncated: bool
    path: Tuple[str, ...] = ()
    hidden: int = 0


# -- the cache -------------------------------------------------------------------------------
class _Snapshot:
    """Rows of the store as of the last check, built lazily per pipeline and patched
    with the records written since (``since_ms``: when it began, minus clock slack)."""

    def __init__(self, since_ms: int) -> None:
        self.since_ms = since_ms
        self.seen: FrozenSet[Tuple[str, int, int]] = frozenset()
        self.pipelines: Optional[List[str]] = None
        self.rows: Dict[str, List[ExecutionRow]] = {}
        self.metrics: Optional[Dict[int, Dict[str, Any]]] = None
        self.keys: Dict[Tuple[str, str], Tuple[Tuple[str, ...], Tuple[str, ...], Tuple[str, ...]]] = {}
        self.orders: Dict[Tuple[str, str, bool], List[ExecutionRow]] = {}
        self.artifacts: Optional[List[ArtifactRow]] = None


class BrowseCache:
    """Flattened execution and artifact rows of one store, kept up to date with its writes.

    Before each use it checks whether the store changed: for a SQLite file one ``stat``
    (size and mtime of the file and its ``-wal``); for a server, or after the file
    changed, two MLMD filter queries for executions and artifacts updated since the
    snapshot began. Those records are patched into the rows (new executions, metrics
    logged later, artifacts); after :data:`REBUILD_AFTER` changed records it starts
    afresh so the queries stay small. Thread-safe; one instance serves every request of
    a UI (a different store location starts afresh).
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._location = ""
        self._snap: Optional[_Snapshot] = None
        self._stat: Any = None
        #: How many times the rows were patched and rebuilt (tests and benchmarks read them).
        self.patches = 0
        self.rebuilds = 0

    def snapshot(self, store: Store) -> _Snapshot:
        """The current snapshot, patched with (or rebuilt after) what changed in the store."""
        with self._lock:
            location = str(store.location)
            if location != self._location or self._snap is None:
                self._location = location
                self._stat = self._file_stat(store)
                self._snap = self._fresh(store)
                return self._snap
            stat = self._file_stat(store)
            if stat is not None and stat == self._stat:
                return self._snap
            self._stat = stat
            self._refresh(store, self._snap)
            return self._snap

    @staticmethod
    def _file_stat(store: Store) -> Any:
        """Size and mtime of a SQLite store and its write-ahead log (``None`` for servers):
        every committed write changes one of them."""
        path = store.location.path
        if store.location.backend != "sqlite" or path is None:
            return None
        parts = []
        for p in (str(path), f"{path}-wal"):
            try:
                st = os.stat(p)
                parts.append((st.st_mtime_ns, st.st_size))
            except OSError:
                parts.append((0, 0))
        return tuple(parts)

    def _fresh(self, store: Store) -> _Snapshot:
        # MLMD stamps update times with the writer's clock: look back a little further.
        snap = _Snapshot(int(datetime.datetime.now().timestamp() * 1000) - _CLOCK_SLACK_MS)
        execs, arts = self._changed(store, snap.since_ms)
        snap.seen = _signature(execs, arts)
        self.rebuilds += 1
        return snap

    @staticmethod
    def _changed(store: Store, since_ms: int) -> Tuple[List[Execution], List[Artifact]]:
        where = f"last_update_time_since_epoch >= {int(since_ms)}"
        return store.executions(where), store.artifacts(where)

    def _refresh(self, store: Store, snap: _Snapshot) -> None:
        execs, arts = self._changed(store, snap.since_ms)
        signature = _signature(execs, arts)
        snap.pipelines = None  # a new pipeline context changes no execution or artifact
        if signature == snap.seen:
            return
        if len(execs) + len(arts) > REBUILD_AFTER:
            self._snap = self._fresh(store)
            return
        new_execs = [e for e in execs if ("e", int(e.id or 0), e.update_ms) not in snap.seen]
        new_arts = [a for a in arts if ("a", int(a.id or 0), a.update_ms) not in snap.seen]
        snap.seen = signature
        self.patches += 1
        snap.keys.clear()
        snap.orders.clear()
        if snap.artifacts is not None and new_arts:
            by_id = {r.id: r for r in snap.artifacts}
            by_id.update((int(a.id or 0), _artifact_row(a)) for a in new_arts if _listed(a))
            snap.artifacts = [by_id[k] for k in sorted(by_id)]
        if snap.metrics is None:
            return  # no rows built yet: they will be read whole, as they are now
        touched: Dict[int, Optional[Execution]] = {int(e.id or 0): e for e in new_execs}
        if touched:
            # Metrics of new or updated executions: their Metrics outputs, read whole.
            events = [ev for ev in store.events_by_execution(sorted(touched)) if ev.kind == OUTPUT]
            outs = {int(a.id or 0): a for a in store.artifacts_by_id(sorted({ev.artifact_id for ev in events}))}
            for eid in touched:
                snap.metrics.pop(eid, None)
            for ev in events:
                a = outs.get(ev.artifact_id)
                if a is not None and a.type == schema.METRICS:
                    snap.metrics.setdefault(ev.execution_id, {}).update(_metric_values(a))
        new_metrics = {int(a.id or 0): a for a in new_arts if a.type == schema.METRICS}
        if new_metrics:
            # Metrics logged for an execution written earlier.
            for ev in store.events_by_artifact(sorted(new_metrics)):
                if ev.kind == OUTPUT:
                    snap.metrics.setdefault(ev.execution_id, {}).update(_metric_values(new_metrics[ev.artifact_id]))
                    touched.setdefault(ev.execution_id, None)
            missing = [eid for eid, known in touched.items() if known is None]
            for ex in store.executions_by_id(missing):
                touched[int(ex.id or 0)] = ex
        by_pipeline: Dict[str, List[ExecutionRow]] = {}
        for eid, maybe in touched.items():
            if maybe is not None:
                row = _row(maybe, snap.metrics.get(eid, {}))
                by_pipeline.setdefault(row.pipeline, []).append(row)
        for pipeline, rows in by_pipeline.items():
            if pipeline in snap.rows:
                merged = {r.id: r for r in snap.rows[pipeline]}
                merged.update((r.id, r) for r in rows)
                snap.rows[pipeline] = [merged[k] for k in sorted(merged)]

    # -- rows ------------------------------------------------------------------------------
    def pipelines(self, store: Store) -> List[str]:
        """Pipeline names, sorted."""
        snap = self.snapshot(store)
        with self._lock:
            if snap.pipelines is None:
                snap.pipelines = sorted(c.name for c in store.contexts_by_type(schema.PIPELINE_CONTEXT))
            return snap.pipelines

    def execution_rows(self, store: Store, pipeline: str) -> List[ExecutionRow]:
        """Every execution of ``pipeline`` as a row, oldest first."""
        snap = self.snapshot(store)
        with self._lock:
            if pipeline not in snap.rows:
                if pipeline not in self.pipelines(store):
                    known = ", ".join(self.pipelines(store)) or "none"
                    raise errors.NotFoundError(f"no pipeline {pipeline!r} in the store (pipelines: {known})")
                metrics = self._metrics(store, snap)
                query = inspect.stage_filter(store, pipeline, None)
                execs = store.executions(query) if query is not None else []
                rows = [_row(e, metrics.get(int(e.id or 0), {})) for e in execs]
                snap.rows[pipeline] = sorted((r for r in rows if r.pipeline == pipeline), key=lambda r: r.id)
            return snap.rows[pipeline]

    def keys(
        self, store: Store, pipeline: str, stage: Optional[str] = None
    ) -> Tuple[Tuple[str, ...], Tuple[str, ...], Tuple[str, ...]]:
        """Param names, metric names (of one stage, or all) and stage names of a pipeline."""
        rows = self.execution_rows(store, pipeline)
        snap = self.snapshot(store)
        with self._lock:
            k = (pipeline, stage or "")
            if k not in snap.keys:
                some = [r for r in rows if r.stage == stage] if stage else rows
                snap.keys[k] = (
                    tuple(sorted({p for r in some for p in r.params})),
                    tuple(sorted({m for r in some for m in r.metrics})),
                    tuple(dict.fromkeys(r.stage for r in rows)),
                )
            return snap.keys[k]

    def ordered(self, store: Store, pipeline: str, sort: str, desc: bool) -> List[ExecutionRow]:
        """A pipeline's rows sorted by ``sort`` (rows without a value last either way), kept
        for the snapshot: paging and filtering a sorted table then costs no sort."""
        rows = self.execution_rows(store, pipeline)
        snap = self.snapshot(store)
        with self._lock:
            k = (pipeline, sort, desc)
            if k not in snap.orders:
                if len(snap.orders) > 64:
                    snap.orders.clear()
                key = _sort_key(sort)
                keyed = [(key(r), r.id, r) for r in rows]
                present = [x for x in keyed if x[0][0] != 2]
                missing = [x for x in keyed if x[0][0] == 2]
                present.sort(key=lambda x: (x[0], x[1]), reverse=desc)
                missing.sort(key=lambda x: x[1], reverse=desc)
                snap.orders[k] = [x[2] for x in present] + [x[2] for x in missing]
            return snap.orders[k]

    def _metrics(self, store: Store, snap: _Snapshot) -> Dict[int, Dict[str, Any]]:
        """Metric values by producing execution id (all Metrics artifacts, one pass)."""
        if snap.metrics is None:
            arts = {int(a.id or 0): a for a in store.artifacts_by_type(schema.METRICS)}
            out: Dict[int, Dict[str, Any]] = {}
            for ev in store.events_by_artifact(sorted(arts)):
                if ev.kind == OUTPUT and ev.artifact_id in arts:
                    out.setdefault(ev.execution_id, {}).update(_metric_values(arts[ev.artifact_id]))
            snap.metrics = out
        return snap.metrics

    def artifact_rows(self, store: Store) -> List[ArtifactRow]:
        """Every artifact as a row, oldest first."""
        snap = self.snapshot(store)
        with self._lock:
            if snap.artifacts is None:
                snap.artifacts = sorted(
                    (_artifact_row(a) for a in store.artifacts() if _listed(a)),
                    key=lambda r: r.id,
                )
            return snap.artifacts


# -- conversions -----------------------------------------------------------------------------
def _signature(execs: Sequence[Execution], arts: Sequence[Artifact]) -> FrozenSet[Tuple[str, int, int]]:
    return frozenset([("e", int(e.id or 0), e.update_ms) for e in execs] + [("a", int(a.id or 0), a.update_ms) for a in arts])


def _listed(art: Artifact) -> bool:
    return art.type != schema.LABEL or bool(art.name)


def _num(value: Any) -> Optional[float]:
    try:
        return float(value) if value not in ("", None) else None
    except (TypeError, ValueError):
        return None


def _metric_values(art: Artifact) -> Dict[str, Any]:
    return {k: v for k, v in art.custom.items() if k not in _NOT_METRICS}


def _start_ms(ex: Execution) -> int:
    start = _num(ex.properties.get("Start_Time_ms"))
    return int(start) if start else ex.create_ms


def _row(ex: Execution, metrics: Mapping[str, Any]) -> ExecutionRow:
    pipeline, stage = inspect.execution_stage(ex)
    p = ex.properties
    code = _num(p.get("Exit_Code"))
    return ExecutionRow(
        id=int(ex.id or 0),
        uuid=str(p.get("Execution_uuid", "")),
        pipeline=pipeline,
        stage=stage,
        state=ex.state,
        command=str(p.get("Execution", "")),
        start_ms=_start_ms(ex),
        duration_s=_num(p.get("Duration_s")),
        exit_code=int(code) if code is not None else None,
        params={k: v for k, v in ex.custom.items() if k not in _NOT_PARAMS},
        metrics=dict(metrics),
    )


def _artifact_row(art: Artifact) -> ArtifactRow:
    return ArtifactRow(int(art.id or 0), art.name, art.path, art.type, art.uri, art.create_ms)


def value_text(value: Any) -> str:
    """A property value as text: whole doubles without ``.0``."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(value)


# -- pipelines -------------------------------------------------------------------------------
def pipelines(store: Store, cache: BrowseCache) -> List[PipelineSummary]:
    """Every pipeline with its stages, execution counts per state and last run."""
    out = []
    for name in cache.pipelines(store):
        rows = cache.execution_rows(store, name)
        by_stage: Dict[str, List[ExecutionRow]] = {}
        pipe = store.context(schema.PIPELINE_CONTEXT, name)
        for stage_ctx in sorted(store.child_contexts(int(pipe.id or 0)), key=lambda c: c.id or 0) if pipe else []:
            short = stage_ctx.name[len(name) + 1 :] if stage_ctx.name.startswith(name + "/") else stage_ctx.name
            by_stage[short] = []
        for r in rows:
            by_stage.setdefault(r.stage, []).append(r)
        stages = tuple(
            StageSummary(s, len(rs), _count_states(rs), max((r.start_ms for r in rs), default=0)) for s, rs in by_stage.items()
        )
        out.append(PipelineSummary(name, len(rows), _count_states(rows), max((r.start_ms for r in rows), default=0), stages))
    return out


def _count_states(rows: Sequence[ExecutionRow]) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for r in rows:
        counts[r.state] = counts.get(r.state, 0) + 1
    return dict(sorted(counts.items()))


# -- executions ------------------------------------------------------------------------------
def _sort_key(sort: str) -> Any:
    if sort.startswith("param:"):
        key = sort[6:]
        return lambda r: _ordered(r.params.get(key))
    if sort.startswith("metric:"):
        key = sort[7:]
        return lambda r: _ordered(r.metrics.get(key))
    attr = {"start": "start_ms", "duration": "duration_s"}.get(sort, sort)
    return lambda r: _ordered(getattr(r, attr))


def _ordered(value: Any) -> Tuple[int, float, str]:
    """Numbers before text, in order; missing values sort as the largest (last when ascending)."""
    if value is None or value == "":
        return (2, 0.0, "")
    number = _num(value)
    if number is not None:
        return (0, number, "")
    return (1, 0.0, str(value))


def check_sort(sort: str) -> str:
    """``sort`` if it names a sortable column, else :class:`~cmfrun.errors.UsageError`."""
    if sort in SORT_FIELDS or (sort.startswith(("param:", "metric:")) and len(sort.split(":", 1)[1]) > 0):
        return sort
    raise errors.UsageError(f"cannot sort by {sort!r}: use {', '.join(SORT_FIELDS)}, param:NAME or metric:NAME")


def executions_page(store: Store, cache: BrowseCache, query: ExecutionQuery) -> ExecutionPage:
    """One page of a pipeline's executions, filtered and sorted as ``query`` says.

    Raises :class:`~cmfrun.errors.NotFoundError` for an unknown pipeline or stage and
    :class:`~cmfrun.errors.UsageError` for a bad state, sort or paging value.
    """
    check_sort(query.sort)
    if query.page < 1 or not 1 <= query.per_page <= MAX_PER_PAGE:
        raise errors.UsageError(f"page must be >= 1 and per_page 1..{MAX_PER_PAGE}")
    if query.state and query.state.upper() not in STATES:
        raise errors.UsageError(f"unknown execution state {query.state!r} (one of {', '.join(STATES)})")
    param_keys, metric_keys, stages = cache.keys(store, query.pipeline)
    if query.stage and query.stage not in stages:
        raise errors.NotFoundError(f"pipeline {query.pipeline!r} has no executions in stage {query.stage!r}")
    ordered = cache.ordered(store, query.pipeline, query.sort, query.desc)
    state = query.state.upper() if query.state else None
    if query.stage or state or query.params or query.since_ms is not None or query.until_ms is not None:
        ordered = [r for r in ordered if _matches(r, query, state)]
    total = len(ordered)
    pages = max(1, -(-total // query.per_page))
    if query.page > pages:
        raise errors.UsageError(f"page {query.page} is past the last page ({pages})")
    start = (query.page - 1) * query.per_page
    columns = query.columns or default_columns(*cache.keys(store, query.pipeline, query.stage)[:2])
    return ExecutionPage(
        query=query,
        total=total,
        pages=pages,
        rows=tuple(ordered[start : start + query.per_page]),
        columns=tuple(columns),
        param_keys=tuple(param_keys),
        metric_keys=tuple(metric_keys),
        stages=stages,
    )


def _matches(r: ExecutionRow, query: ExecutionQuery, state: Optional[str]) -> bool:
    if query.stage and r.stage != query.stage:
        return False
    if state and r.state != state:
        return False
    if query.since_ms is not None and r.start_ms < query.since_ms:
        return False
    if query.until_ms is not None and r.start_ms >= query.until_ms:
        return False
    return not any(value_text(r.params.get(k)) != v for k, v in query.params)


def default_columns(param_keys: Sequence[str], metric_keys: Sequence[str]) -> List[str]:
    """Up to four params and three metrics."""
    return [f"param:{k}" for k in param_keys[:4]] + [f"metric:{k}" for k in metric_keys[:3]]


# -- one execution ---------------------------------------------------------------------------
def _execution(store: Store, execution_id: int) -> Execution:
    found = store.executions_by_id([execution_id])
    if not found:
        raise errors.NotFoundError(f"no execution {execution_id} in the store")
    return found[0]


def _ref(kind: str, art: Artifact) -> ArtifactRef:
    values = _metric_values(art) if art.type == schema.METRICS else {}
    return ArtifactRef(kind, int(art.id or 0), art.name, art.path, art.type, art.uri, values)


def execution_detail(store: Store, execution_id: int) -> ExecutionDetail:
    """Everything recorded about one execution (a few indexed store calls)."""
    ex = _execution(store, execution_id)
    events = lineage.io_events(store, [execution_id])
    arts = {int(a.id or 0): a for a in store.artifacts_by_id(sorted({ev.artifact_id for ev in events}))}
    refs = [_ref(ev.kind, arts[ev.artifact_id]) for ev in events if ev.artifact_id in arts]
    env = tuple(r for r in refs if r.type == schema.ENVIRONMENT)
    metrics: Dict[str, Any] = {}
    for r in refs:
        if r.kind == OUTPUT and r.type == schema.METRICS:
            metrics.update(r.values)
    p = ex.properties
    pipeline, stage = inspect.execution_stage(ex)
    code = _num(p.get("Exit_Code"))
    dirty = _num(p.get("Git_Dirty"))
    rss = _num(p.get("Peak_RSS_KiB"))
    end = _num(p.get("End_Time_ms"))
    return ExecutionDetail(
        id=execution_id,
        uuid=str(p.get("Execution_uuid", "")),
        name=ex.name,
        type=ex.type,
        pipeline=pipeline,
        stage=stage,
        state=ex.state,
        command=str(p.get("Execution", "")),
        exit_code=int(code) if code is not None else None,
        start_ms=_start_ms(ex),
        end_ms=int(end) if end else 0,
        duration_s=_num(p.get("Duration_s")),
        cpu_time_s=_num(p.get("CPU_Time_s")),
        peak_rss_kib=int(rss) if rss is not None else None,
        git_repo=str(p.get("Git_Repo", "")),
        git_start_commit=str(p.get("Git_Start_Commit", "")),
        git_end_commit=str(p.get("Git_End_Commit", "")),
        git_dirty=bool(dirty) if dirty is not None else None,
        host=str(p.get("Host", "")),
        user=str(p.get("User", "")),
        working_dir=str(p.get("Working_Dir", "")),
        params={k: v for k, v in sorted(ex.custom.items()) if k not in _NOT_PARAMS},
        metrics=metrics,
        environment=env,
        inputs=tuple(r for r in refs if r.kind == INPUT and r.type != schema.ENVIRONMENT),
        outputs=tuple(r for r in refs if r.kind == OUTPUT),
        properties=dict(sorted(p.items())),
        create_ms=ex.create_ms,
        update_ms=ex.update_ms,
        previous_id=_previous_in_stage(store, ex, pipeline, stage),
    )


def _previous_in_stage(store: Store, ex: Execution, pipeline: str, stage: str) -> Optional[int]:
    """The id of the run of the same stage just before this one (one indexed query)."""
    if not pipeline or not stage:
        return None
    name = schema.stage_context_name(pipeline, stage)
    literal = filter_literal(name)
    if literal is None:  # a name no filter query may hold: name the context by its id
        ctx = store.context(schema.STAGE_CONTEXT, name)
        if ctx is None:
            return None
        where = f"contexts_a.id = {int(ctx.id or 0)}"
    else:
        where = f"contexts_a.name = {literal}"
    query = f"contexts_a.type = {safe_literal(schema.STAGE_CONTEXT)} AND {where} AND id < {int(ex.id or 0)}"
    found = store.newest_executions(query, 1)
    return int(found[0].id or 0) if found else None


# -- artifacts -------------------------------------------------------------------------------
def artifacts_page(
    store: Store, cache: BrowseCache, *, type: Optional[str] = None, search: str = "", page: int = 1, per_page: int = 50
) -> ArtifactPage:
    """Artifacts of a type (any case) whose name, path or hash starts with ``search``
    (or whose name contains it), newest first, one page."""
    if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
        raise errors.UsageError(f"page must be >= 1 and per_page 1..{MAX_PER_PAGE}")
    rows = cache.artifact_rows(store)
    types: Dict[str, int] = {}
    for r in rows:
        types[r.type] = types.get(r.type, 0) + 1
    wanted = None
    if type:
        matches = [t for t in types if t.lower() == type.lower()]
        if not matches:
            raise errors.NotFoundError(f"no artifacts of type {type!r} (types: {', '.join(sorted(types)) or 'none'})")
        wanted = matches[0]
    needle = search.strip()
    low = needle.lower()
    selected = [
        r
        for r in reversed(rows)
        if (wanted is None or r.type == wanted)
        and (not needle or r.hash.startswith(low) or r.path.startswith(needle) or needle.lower() in r.name.lower())
    ]
    total = len(selected)
    pages = max(1, -(-total // per_page))
    if page > pages:
        raise errors.UsageError(f"page {page} is past the last page ({pages})")
    start = (page - 1) * per_page
    return ArtifactPage(wanted, needle, page, per_page, total, pages, tuple(selected[start : start + per_page]), dict(sorted(types.items())))


def _artifact(store: Store, artifact_id: int) -> Artifact:
    found = store.artifacts_by_id([artifact_id])
    if not found:
        raise errors.NotFoundError(f"no artifact {artifact_id} in the store")
    return found[0]


def _brief(kind: str, ex: Execution) -> ExecutionBrief:
    pipeline, stage = inspect.execution_stage(ex)
    return ExecutionBrief(kind, int(ex.id or 0), pipeline, stage, ex.state, _start_ms(ex), str(ex.properties.get("Execution", "")))


def artifact_detail(store: Store, artifact_id: int) -> ArtifactDetail:
    """One artifact: its producers and consumers, every version of its path, a model card for models."""
    art = _artifact(store, artifact_id)
    events = [ev for ev in store.events_by_artifact([artifact_id]) if ev.kind in (INPUT, OUTPUT)]
    execs = {int(e.id or 0): e for e in store.executions_by_id(sorted({ev.execution_id for ev in events}))}
    producers = tuple(_brief(OUTPUT, execs[ev.execution_id]) for ev in events if ev.kind == OUTPUT and ev.execution_id in execs)
    consumers = tuple(_brief(INPUT, execs[ev.execution_id]) for ev in events if ev.kind == INPUT and ev.execution_id in execs)
    versions: Tuple[ArtifactRow, ...] = ()
    if art.path:
        # LIKE wildcards in a path only widen the match; the exact path is checked below.
        same = [a for a in store.artifacts(f"name LIKE {like_prefix(art.path + ':')}") if a.path == art.path]
        versions = tuple(_artifact_row(a) for a in sorted(same, key=lambda a: (a.create_ms, a.id or 0), reverse=True))
    card = _model_card(store, art, [execs[ev.execution_id] for ev in events if ev.kind == OUTPUT and ev.execution_id in execs], consumers) if art.type == schema.MODEL else None
    return ArtifactDetail(
        id=artifact_id,
        name=art.name,
        path=art.path,
        type=art.type,
        hash=art.uri,
        properties=dict(sorted(art.properties.items())),
        custom=dict(sorted(art.custom.items())),
        create_ms=art.create_ms,
        update_ms=art.update_ms,
        pipelines=inspect.artifact_pipelines(art),
        producers=producers,
        consumers=consumers,
        versions=versions,
        model_card=card,
    )


def _model_card(store: Store, art: Artifact, made_by: Sequence[Execution], consumers: Sequence[ExecutionBrief]) -> ModelCard:
    producer = max(made_by, key=lambda e: e.id or 0) if made_by else None
    metrics: Dict[str, Any] = {}
    source = ""
    data: Tuple[ArtifactRef, ...] = ()
    if producer is not None:
        pid = int(producer.id or 0)
        events = lineage.io_events(store, [pid])
        arts = {int(a.id or 0): a for a in store.artifacts_by_id(sorted({ev.artifact_id for ev in events}))}
        for ev in events:
            a = arts.get(ev.artifact_id)
            if a is not None and ev.kind == OUTPUT and a.type == schema.METRICS:
                metrics.update(_metric_values(a))
        data = tuple(
            _ref(INPUT, arts[ev.artifact_id])
            for ev in events
            if ev.kind == INPUT and ev.artifact_id in arts and arts[ev.artifact_id].type in (schema.DATASET, schema.DATASLICE, schema.LABEL)
        )
        if metrics:
            source = f"execution {pid} (made the model)"
    if not metrics and consumers:
        # A DVC pipeline evaluates in a later stage: take the newest run that read this model.
        newest = max(consumers, key=lambda c: c.id)
        events = [ev for ev in lineage.io_events(store, [newest.id]) if ev.kind == OUTPUT]
        for a in store.artifacts_by_id(sorted({ev.artifact_id for ev in events})):
            if a.type == schema.METRICS:
                metrics.update(_metric_values(a))
        if metrics:
            source = f"execution {newest.id} ({newest.stage}, read the model)"
    p = art.properties
    return ModelCard(
        framework=str(p.get("model_framework", "")),
        model_type=str(p.get("model_type", "")),
        model_name=str(p.get("model_name", "")),
        producer=_brief(OUTPUT, producer) if producer is not None else None,
        params={k: v for k, v in sorted(producer.custom.items()) if k not in _NOT_PARAMS} if producer else {},
        metrics=metrics,
        metrics_source=source,
        training_data=data,
    )


# -- compare ---------------------------------------------------------------------------------
def compare(store: Store, execution_ids: Sequence[int]) -> Comparison:
    """Two or more executions side by side: the fields ``cmf diff`` compares (command, state,
    git, params, input and output hashes) plus metric values."""
    ids = list(dict.fromkeys(execution_ids))
    if len(ids) < 2:
        raise errors.UsageError("compare needs two or more different execution ids")
    for i in ids:
        _execution(store, i)
    first = f"execution:{ids[0]}"
    columns: List[Dict[str, str]] = [{} for _ in ids]
    order: List[str] = []
    for n, other in enumerate(ids[1:], start=1):
        result = inspect.diff(store, first, f"execution:{other}")
        for row in result.rows:
            if row.field not in order:
                order.append(row.field)
            columns[0][row.field] = row.a
            columns[n][row.field] = row.b
    for n, i in enumerate(ids):
        for k, v in execution_detail(store, i).metrics.items():
            key = f"metric {k}"
            if key not in order:
                order.append(key)
            columns[n][key] = value_text(v)
    rows = tuple(CompareRow(f, tuple(c.get(f, "") for c in columns)) for f in order)
    labels = tuple(f"#{i}" for i in ids)
    return Comparison(tuple(ids), labels, rows)


# -- lineage ---------------------------------------------------------------------------------
def parse_node(text: str) -> Tuple[str, int]:
    """``artifact:<id>`` or ``execution:<id>`` -> (kind, id); :class:`UsageError` otherwise."""
    kind, _, rid = text.partition(":")
    if kind not in ("artifact", "execution") or not rid.isdigit() or len(rid) > 15:
        raise errors.UsageError(f"bad node {text!r}: use artifact:<id> or execution:<id>")
    return kind, int(rid)


def lineage_view(
    store: Store, node: str, *, direction: str = "both", depth: int = 3, path_to: Optional[str] = None
) -> LineageView:
    """The lineage around ``node`` (``up``, ``down`` or ``both``), ``depth`` generations
    each way; ``path_to`` names a second node whose connecting path is returned in ``path``."""
    kind, rid = parse_node(node)
    if direction not in ("up", "down", "both"):
        raise errors.UsageError(f"bad direction {direction!r}: use up, down or both")
    if not 0 <= depth <= MAX_DEPTH:
        raise errors.UsageError(f"depth must be 0..{MAX_DEPTH}")
    if kind == "artifact":
        _artifact(store, rid)
    else:
        _execution(store, rid)
    kw: Dict[str, Any] = {"artifact_ids": [rid]} if kind == "artifact" else {"execution_ids": [rid]}
    graphs = []
    if direction in ("up", "both"):
        graphs.append(lineage.ancestors(store, depth=depth, **kw))
    if direction in ("down", "both"):
        graphs.append(lineage.descendants(store, depth=depth, **kw))
    arts: Dict[int, Artifact] = {}
    execs: Dict[int, Execution] = {}
    edges: Set[Tuple[str, str]] = set()
    depth_of: Dict[str, int] = {}
    for g in graphs:
        arts.update(g.artifacts)
        execs.update(g.executions)
        for aid, d in g.artifact_depth.items():
            depth_of[f"artifact:{aid}"] = min(d, depth_of.get(f"artifact:{aid}", d))
        for eid, d in g.execution_depth.items():
            depth_of[f"execution:{eid}"] = min(d, depth_of.get(f"execution:{eid}", d))
        for eid, aid, ev_kind in g.edges:
            # Edges point the way data flows: artifact -> execution -> artifact.
            edges.add((f"artifact:{aid}", f"execution:{eid}") if ev_kind == INPUT else (f"execution:{eid}", f"artifact:{aid}"))
    nodes = [
        GraphNode(f"artifact:{a.id}", "artifact", int(a.id or 0), a.path or a.name, f"{a.type} {a.uri[:8]}", a.type)
        for a in arts.values()
    ] + [
        GraphNode(f"execution:{e.id}", "execution", int(e.id or 0), f"{inspect.execution_stage(e)[1] or e.type} #{e.id}", e.state, e.type)
        for e in execs.values()
    ]
    hidden = 0
    if len(nodes) > MAX_NODES:
        # A dataset read by thousands of runs: keep the nearest nodes, say how many are left out.
        nodes.sort(key=lambda n: (depth_of.get(n.key, 0), n.kind != "execution", n.id))
        hidden = len(nodes) - MAX_NODES
        nodes = nodes[:MAX_NODES]
        keep = {n.key for n in nodes}
        edges = {(s, t) for s, t in edges if s in keep and t in keep}
    path: Tuple[str, ...] = ()
    if path_to:
        parse_node(path_to)
        keys = {n.key for n in nodes}
        if path_to not in keys:
            raise errors.UsageError(f"{path_to} is not in this graph: widen the depth or direction")
        path = shortest_path(edges, node, path_to)
    return LineageView(
        root=node,
        direction=direction,
        depth=depth,
        nodes=tuple(sorted(nodes, key=lambda n: (n.kind, n.id))),
        edges=tuple(sorted(edges)),
        truncated=any(g.truncated for g in graphs),
        path=path,
        hidden=hidden,
    )


def shortest_path(edges: Iterable[Tuple[str, str]], a: str, b: str) -> Tuple[str, ...]:
    """Node keys on a shortest path between ``a`` and ``b`` in the direction data flows
    (``a`` to ``b`` or ``b`` to ``a``, as ``a`` was listed); failing that, following edges
    either way. Empty when they are not connected."""
    edges = list(edges)
    forward: Dict[str, List[str]] = {}
    backward: Dict[str, List[str]] = {}
    for s, t in edges:
        forward.setdefault(s, []).append(t)
        backward.setdefault(t, []).append(s)
    either = {k: forward.get(k, []) + backward.get(k, []) for k in set(forward) | set(backward)}
    found = _bfs(forward, a, b)
    if found:
        return found
    found = _bfs(forward, b, a)
    if found:
        return tuple(reversed(found))
    return _bfs(either, a, b)


def _bfs(nbrs: Mapping[str, List[str]], a: str, b: str) -> Tuple[str, ...]:
    prev: Dict[str, Optional[str]] = {a: None}
    frontier = [a]
    while frontier and b not in prev:
        nxt = []
        for n in frontier:
            for m in sorted(nbrs.get(n, [])):
                if m not in prev:
                    prev[m] = n
                    nxt.append(m)
        frontier = nxt
    if b not in prev:
        return ()
    out: List[str] = []
    cur: Optional[str] = b
    while cur is not None:
        out.append(cur)
        cur = prev[cur]
    return tuple(reversed(out))


def parse_time(text: str) -> int:
    """``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM[:SS]`` (local time) -> epoch ms."""
    try:
        return int(datetime.datetime.fromisoformat(text.strip()).timestamp() * 1000)
    except ValueError:
        raise errors.UsageError(f"bad time {text!r}: use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None


__all__ = [
    "STATES",
    "SORT_FIELDS",
    "MAX_PER_PAGE",
    "MAX_NODES",
    "MAX_DEPTH",
    "ExecutionRow",
    "StageSummary",
    "PipelineSummary",
    "ExecutionQuery",
    "ExecutionPage",
    "ArtifactRow",
    "ArtifactPage",
    "ArtifactRef",
    "ExecutionDetail",
    "ExecutionBrief",
    "ModelCard",
    "ArtifactDetail",
    "CompareRow",
    "Comparison",
    "GraphNode",
    "LineageView",
    "BrowseCache",
    "value_text",
    "pipelines",
    "check_sort",
    "executions_page",
    "default_columns",
    "execution_detail",
    "artifacts_page",
    "artifact_detail",
    "compare",
    "parse_node",
    "lineage_view",
    "shortest_path",
    "parse_time",
]
