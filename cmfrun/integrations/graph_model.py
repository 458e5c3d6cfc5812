"""The graph a store maps to: nodes and relationships, built from the store's records.

The shape follows what HPE CMF's ``graph_wrapper`` writes to Neo4j, so CMF users' Cypher
keeps working:

- ``(:Pipeline)-[:contains]->(:Stage)-[:runs]->(:Execution)``;
- ``(artifact)-[:input]->(:Execution)`` and ``(:Execution)-[:output]->(artifact)``, the
  artifact labelled by its type (``Dataset``, ``Model``, ``Metrics``, ``Step_Metrics``,
  ``Dataslice``, ``Label``, ``Environment``, ``Validation_output``, ``Deployment``; any other type is an
  ``Artifact`` node with a ``type`` property);
- ``(:Execution)-[:linked {uri}]->(:Execution)`` from the execution that produced an
  artifact to each one that consumed it;
- ``(:Dataset)-[:has_label]->(:Label)`` and ``(source)-[:derived]->(target)``
  (:func:`cmfrun.integrations.graph.link_artifacts`).

Node keys (what MERGE matches on): a pipeline's and a stage's ``Name``, an execution's
``uuid`` (the first of its ``Execution_uuid``), an artifact's ``uri`` (its content hash).
Properties are the record's properties and custom properties, plus CMF's ``Name``,
``uri``, ``pipeline_id``, ``pipeline_name`` (and ``Command``, ``Path``). Labels and
relationship types come only from the fixed names in this module, never from values.

Example::

    model = read_store(store, pipeline="demo")
    print(len(model.nodes), len(model.rels))
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from cmfrun import errors, schema
from cmfrun.records import INPUT, Artifact, Context, Event, Execution, Value
from cmfrun.store import Store

PIPELINE = "Pipeline"
STAGE = "Stage"
EXECUTION = "Execution"
#: Label of artifacts whose type is not one of CMF's (they carry a ``type`` property).
GENERIC_ARTIFACT = "Artifact"
#: Artifact type -> node label: the allow-list. Labels cannot be Cypher parameters, so a
#: label is only ever one of these fixed strings.
ARTIFACT_LABELS: Mapping[str, str] = {
    t: t
    for t in (
        schema.DATASET,
        schema.MODEL,
        schema.METRICS,
        schema.STEP_METRICS,
        schema.DATASLICE,
        schema.LABEL,
        schema.ENVIRONMENT,
        schema.VALIDATION_OUTPUT,
        "Deployment",  # ArangoML's deployments (cmfrun.integrations.arango.DEPLOYMENT)
    )
}
#: Every node label, with the properties MERGE matches on.
NODE_KEYS: Mapping[str, Tuple[str, ...]] = {
    PIPELINE: ("Name",),
    STAGE: ("Name",),
    EXECUTION: ("uuid",),
    GENERIC_ARTIFACT: ("uri", "type"),
    **{label: ("uri",) for label in ARTIFACT_LABELS.values()},
}
CONTAINS = "contains"
RUNS = "runs"
REL_INPUT = "input"
REL_OUTPUT = "output"
LINKED = "linked"
HAS_LABEL = "has_label"
DERIVED = "derived"
#: Every relationship type, with the properties MERGE matches on.
REL_KEYS: Mapping[str, Tuple[str, ...]] = {
    CONTAINS: (),
    RUNS: (),
    REL_INPUT: (),
    REL_OUTPUT: (),
    LINKED: ("uri",),
    HAS_LABEL: (),
    DERIVED: (),
}
#: Custom property on a target artifact listing ``<type>:<uri>`` of artifacts it derives from.
DERIVED_FROM = "derived_from"

NodeRef = Tuple[str, Tuple[Value, ...]]


@dataclass(frozen=True)
class Node:
    """A node: ``label`` (from :data:`NODE_KEYS`), key values in ``NODE_KEYS`` order, properties."""

    label: str
    key: Tuple[Value, ...]
    props: Mapping[str, Value]

    @property
    def ref(self) -> NodeRef:
        """(label, key): how relationships name their ends."""
        return (self.label, self.key)


@dataclass(frozen=True)
class Rel:
    """A relationship ``start -[type]-> end`` with properties (keys from :data:`REL_KEYS`)."""

    type: str
    start: NodeRef
    end: NodeRef
    props: Mapping[str, Value] = field(default_factory=dict)

    @property
    def ident(self) -> Tuple[str, NodeRef, NodeRef, Tuple[Value, ...]]:
        """What makes two relationships the same one."""
        return (self.type, self.start, self.end, tuple(self.props.get(k, "") for k in REL_KEYS[self.type]))


@dataclass
class GraphModel:
    """Nodes and relationships, each once (later additions of the same key win)."""

    nodes: Dict[NodeRef, Node] = field(default_factory=dict)
    rels: Dict[Tuple[str, NodeRef, NodeRef, Tuple[Value, ...]], Rel] = field(default_factory=dict)

    def add_node(self, node: Node) -> NodeRef:
        """Add (or replace) a node; returns its reference."""
        self.nodes[node.ref] = node
        return node.ref

    def add_rel(self, rel: Rel) -> None:
        """Add a relationship (once)."""
        self.rels.setdefault(rel.ident, rel)

    def nodes_by_label(self) -> Dict[str, List[Node]]:
        """Nodes grouped by label, in a stable order."""
        out: Dict[str, List[Node]] = {}
        for node in self.nodes.values():
            out.setdefault(node.label, []).append(node)
        return out

    def rels_by_shape(self) -> Dict[Tuple[str, str, str], List[Rel]]:
        """Relationships grouped by (type, start label, end label)."""
        out: Dict[Tuple[str, str, str], List[Rel]] = {}
        for rel in self.rels.values():
            out.setdefault((rel.type, rel.start[0], rel.end[0]), []).append(rel)
        return out


def clean(value: Value) -> Value:
    """A property value every target accepts: NaN and infinities become strings, and a NUL
    character (FalkorDB cannot parse it in a parameter) becomes U+FFFD."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


def _props(*maps: Mapping[str, Value], **fixed: Value) -> Dict[str, Value]:
    out: Dict[str, Value] = {}
    for m in maps:
        out.update(m)
    out.update(fixed)  # CMF's own keys win over same-named store properties
    return {str(clean(k)): clean(v) for k, v in out.items()}


#: Key values longer than this are matched without the index (FalkorDB's finds none past 4 KiB).
INDEX_SAFE_CHARS = 1000


def index_unsafe(key: Tuple[Value, ...]) -> bool:
    """Whether a node key cannot be looked up through an index on every target: FalkorDB's
    index finds no empty string, no value with leading or trailing whitespace and no value
    over 4 KiB. Such nodes are matched by a scan instead (rare, and correct on every target)."""
    return any(
        isinstance(v, str) and (not v or v != v.strip() or len(v) > INDEX_SAFE_CHARS) for v in key
    )


def artifact_label(type_name: str) -> str:
    """The node label of an artifact type (the allow-list, else ``Artifact``)."""
    return ARTIFACT_LABELS.get(type_name, GENERIC_ARTIFACT)


def artifact_ref(type_name: str, uri: str) -> NodeRef:
    """The node reference of the artifact with this type and uri."""
    label = artifact_label(type_name)
    return (label, (uri, type_name) if label == GENERIC_ARTIFACT else (uri,))


def execution_key(execution: Execution) -> str:
    """An execution's node key: the first uuid of ``Execution_uuid`` (stable when a reused
    execution gets more uuids appended), else ``mlmd-<id>``."""
    uuids = str(execution.properties.get("Execution_uuid", "") or "")
    first = uuids.split(",")[0]
    return first or f"mlmd-{execution.id}"


def pipeline_node(ctx: Context) -> Node:
    """The node of a pipeline context."""
    return Node(
        PIPELINE,
        (ctx.name,),
        _props(ctx.properties, ctx.custom, Name=ctx.name, uri=str(ctx.id), pipeline_id=str(ctx.id), pipeline_name=ctx.name),
    )


def stage_node(ctx: Context, pipe: Optional[Context]) -> Node:
    """The node of a stage context (under ``pipe``)."""
    extra: Dict[str, Value] = {"Name": ctx.name, "uri": str(ctx.id)}
    if pipe is not None:
        extra.update(pipeline_id=str(pipe.id), pipeline_name=pipe.name)
    return Node(STAGE, (ctx.name,), _props(ctx.properties, ctx.custom, **extra))


def execution_node(ex: Execution, pipe: Optional[Context]) -> Node:
    """The node of an execution."""
    key = execution_key(ex)
    extra: Dict[str, Value] = {
        "Name": ex.name or ex.type,
        "Command": ex.properties.get("Execution", ""),
        "uri": str(ex.id),
        "uuid": key,
        "type": ex.type,
        "state": ex.state,
        "create_time_since_epoch": ex.create_ms,
        "last_update_time_since_epoch": ex.update_ms,
    }
    if pipe is not None:
        extra.update(pipeline_id=str(pipe.id), pipeline_name=pipe.name)
    return Node(EXECUTION, (key,), _props(ex.properties, ex.custom, **extra))


def artifact_node(art: Artifact) -> Node:
    """The node of an artifact."""
    label, key = artifact_ref(art.type, art.uri)
    props = _props(
        art.properties,
        art.custom,
        Name=art.name,
        Path=art.path,
        uri=art.uri,
        type=art.type,
        create_time_since_epoch=art.create_ms,
        last_update_time_since_epoch=art.update_ms,
    )
    return Node(label, key, props)


def derived_sources(art: Artifact) -> List[NodeRef]:
    """Artifacts ``art`` was linked to as derived from (its ``derived_from`` custom property)."""
    out = []
    for entry in str(art.custom.get(DERIVED_FROM, "") or "").split(","):
        type_name, sep, uri = entry.strip().partition(":")
        if sep and uri:
            out.append(artifact_ref(type_name, uri))
    return out


@dataclass
class _Scope:
    """The contexts of the store, indexed for building nodes."""

    pipes: Dict[int, Context]
    stages: Dict[int, Context]
    stage_pipe: Dict[int, int]
    all_stage_ids: Set[int]


def _scope(store: Store, pipeline: Optional[str]) -> _Scope:
    pipes = store.contexts_by_type(schema.PIPELINE_CONTEXT)
    if pipeline is not None:
        pipes = [p for p in pipes if p.name == pipeline]
        if not pipes:
            raise errors.NotFoundError(f"no pipeline {pipeline!r} in store {store.location}")
    all_stages = {int(c.id or 0) for c in store.contexts_by_type(schema.STAGE_CONTEXT)}
    scope = _Scope({int(p.id or 0): p for p in pipes}, {}, {}, all_stages)
    for pid in scope.pipes:
        for st in store.child_contexts(pid):
            scope.stages[int(st.id or 0)] = st
            scope.stage_pipe.setdefault(int(st.id or 0), pid)
    return scope


def _stage_of(store: Store, ex: Execution, scope: _Scope) -> Optional[int]:
    cid = ex.properties.get("Context_ID")
    if isinstance(cid, (int, float)) and int(cid) in scope.all_stage_ids:
        return int(cid) if int(cid) in scope.stages else None
    # Not a CMF-shaped execution (or its stage is elsewhere): ask the associations.
    for ctx in store.contexts_by_execution(int(ex.id or 0)):
        if int(ctx.id or 0) in scope.stages:
            return int(ctx.id or 0)
    return None


@dataclass(frozen=True)
class StoreRead:
    """What :func:`read_store` found: the graph and how many executions and artifacts it covers."""

    model: GraphModel
    executions: int
    artifacts: int


def read_store(store: Store, *, pipeline: Optional[str] = None, since_ms: Optional[int] = None) -> StoreRead:
    """The graph of ``store`` (one pipeline's part with ``pipeline``).

    With ``since_ms`` only what changed at or after that time: executions updated since
    (with all their events and artifacts) and artifacts updated since. MERGE makes sending
    more than changed harmless; this only keeps a re-sync cheap.
    """
    scope = _scope(store, pipeline)
    model = GraphModel()
    for pid, pipe in scope.pipes.items():
        model.add_node(pipeline_node(pipe))
    for sid, st in scope.stages.items():
        pipe = scope.pipes[scope.stage_pipe[sid]]
        model.add_node(stage_node(st, pipe))
        model.add_rel(Rel(CONTAINS, (PIPELINE, (pipe.name,)), (STAGE, (st.name,))))

    # Incremental: MLMD stamps an execution's last update whenever it is written, and every
    # writer adds events together with their execution (put_execution, put_lineage), so the
    # executions updated since hold every new event. Events added alone (MLMD's put_events,
    # which cmfrun never calls) show only with a full sync.
    since_filter = f"last_update_time_since_epoch >= {int(since_ms)}" if since_ms is not None else ""
    all_execs = store.executions(since_filter)
    stage_of: Dict[int, int] = {}
    for ex in all_execs:
        found = _stage_of(store, ex, scope) if scope.stages else None
        if found is not None:
            stage_of[int(ex.id or 0)] = found
    execs = {int(e.id or 0): e for e in all_execs if int(e.id or 0) in stage_of}
    wanted_execs: Set[int] = set(execs)
    events = store.events_by_execution(sorted(execs))
    wanted_events = events

    art_ids = {ev.artifact_id for ev in events}
    if since_ms is None and pipeline is None:
        arts = {int(a.id or 0): a for a in store.artifacts()}  # orphans too: the whole store
    else:
        arts = {int(a.id or 0): a for a in store.artifacts_by_id(sorted(art_ids))}
        if since_ms is not None:
            changed = {int(a.id or 0): a for a in store.artifacts(since_filter) if int(a.id or 0) not in arts}
            if pipeline is not None and changed:
                changed = _in_scope(store, changed, scope)
            arts.update(changed)

    exec_refs: Dict[int, NodeRef] = {}
    for eid in sorted(wanted_execs):
        ex = execs[eid]
        sid = stage_of[eid]
        pipe = scope.pipes[scope.stage_pipe[sid]]
        exec_refs[eid] = model.add_node(execution_node(ex, pipe))
        model.add_rel(Rel(RUNS, (STAGE, (scope.stages[sid].name,)), exec_refs[eid]))
    art_refs: Dict[int, NodeRef] = {aid: model.add_node(artifact_node(a)) for aid, a in sorted(arts.items())}
    for ev in wanted_events:
        a_ref, e_ref = art_refs.get(ev.artifact_id), exec_refs.get(ev.execution_id)
        if a_ref is None or e_ref is None:
            continue
        if ev.kind == INPUT or ev.kind.endswith("_INPUT"):
            model.add_rel(Rel(REL_INPUT, a_ref, e_ref))
        else:
            model.add_rel(Rel(REL_OUTPUT, e_ref, a_ref))
    _add_links(store, model, wanted_events, execs, arts, full=since_ms is None and pipeline is None, all_events=events)
    for art in arts.values():
        _add_artifact_rels(model, art)
    return StoreRead(model, len(wanted_execs), len(arts))


def _in_scope(store: Store, arts: Mapping[int, Artifact], scope: _Scope) -> Dict[int, Artifact]:
    """The artifacts of ``arts`` that an execution of the scope's pipelines used or made."""
    events = store.events_by_artifact(sorted(arts))
    execs = store.executions_by_id(sorted({ev.execution_id for ev in events}))
    inside = {int(e.id or 0) for e in execs if _stage_of(store, e, scope) is not None}
    keep = {ev.artifact_id for ev in events if ev.execution_id in inside}
    return {aid: a for aid, a in arts.items() if aid in keep}


def _add_links(
    store: Store,
    model: GraphModel,
    events: Sequence[Event],
    execs: Mapping[int, Execution],
    arts: Mapping[int, Artifact],
    *,
    full: bool,
    all_events: Sequence[Event],
) -> None:
    """``linked`` relationships, producer execution -> consumer execution per artifact, for
    the pairs with at least one side in ``execs`` (the others are in the graph already)."""
    touched = sorted({ev.artifact_id for ev in events})
    # Producers or consumers may sit outside the synced part: ask the store about these artifacts.
    by_art: Iterable[Event] = all_events if full else store.events_by_artifact(touched)
    producers: Dict[int, Set[int]] = {}
    consumers: Dict[int, Set[int]] = {}
    for ev in by_art:
        side = consumers if (ev.kind == INPUT or ev.kind.endswith("_INPUT")) else producers
        side.setdefault(ev.artifact_id, set()).add(ev.execution_id)
    pairs = [
        (aid, p, c)
        for aid in touched
        for p in sorted(producers.get(aid, ()))
        for c in sorted(consumers.get(aid, ()))
        if p != c and (p in execs or c in execs)
    ]
    if not pairs:
        return
    # Only executions that are one end of a pair are fetched: an artifact every run reads
    # (the Python environment) and none produced costs nothing here.
    missing = {e for _, p, c in pairs for e in (p, c)} - set(execs)
    others = {int(e.id or 0): e for e in store.executions_by_id(sorted(missing))} if missing else {}
    art_by_id = dict(arts)
    lacking = sorted({aid for aid, _, _ in pairs} - set(art_by_id))
    if lacking:
        art_by_id.update({int(a.id or 0): a for a in store.artifacts_by_id(lacking)})
    for aid, p, c in pairs:
        art = art_by_id.get(aid)
        pe, ce = execs.get(p) or others.get(p), execs.get(c) or others.get(c)
        if art is not None and pe is not None and ce is not None:
            ref_p, ref_c = (EXECUTION, (execution_key(pe),)), (EXECUTION, (execution_key(ce),))
            model.add_rel(Rel(LINKED, ref_p, ref_c, {"uri": art.uri, "Artifact_Name": art.name}))


def _add_artifact_rels(model: GraphModel, art: Artifact) -> None:
    ref = artifact_ref(art.type, art.uri)
    if art.type == schema.LABEL and art.custom.get("dataset_uri"):
        model.add_rel(Rel(HAS_LABEL, artifact_ref(schema.DATASET, str(art.custom["dataset_uri"])), ref))
    for source in derived_sources(art):
        model.add_rel(Rel(DERIVED, source, ref))


def read_execution(store: Store, execution_id: int) -> GraphModel:
    """The part of the graph around one execution: its pipeline, stage, artifacts and links
    (what the API mirrors after each call)."""
    found = store.executions_by_id([execution_id])
    if not found:
        raise errors.NotFoundError(f"no execution with id {execution_id}")
    ex = found[0]
    model = GraphModel()
    stage: Optional[Context] = None
    pipe: Optional[Context] = None
    for ctx in store.contexts_by_execution(execution_id):
        if ctx.type == schema.STAGE_CONTEXT:
            stage = ctx
    if stage is not None:
        parents = store.parent_contexts(int(stage.id or 0))
        pipe = parents[0] if parents else None
        model.add_node(stage_node(stage, pipe))
        if pipe is not None:
            model.add_node(pipeline_node(pipe))
            model.add_rel(Rel(CONTAINS, (PIPELINE, (pipe.name,)), (STAGE, (stage.name,))))
    e_ref = model.add_node(execution_node(ex, pipe))
    if stage is not None:
        model.add_rel(Rel(RUNS, (STAGE, (stage.name,)), e_ref))
    events = store.events_by_execution([execution_id])
    arts = {int(a.id or 0): a for a in store.artifacts_by_id(sorted({ev.artifact_id for ev in events}))}
    for aid, art in arts.items():
        a_ref = model.add_node(artifact_node(art))
        _add_artifact_rels(model, art)
        for ev in events:
            if ev.artifact_id != aid:
                continue
            if ev.kind == INPUT or ev.kind.endswith("_INPUT"):
                model.add_rel(Rel(REL_INPUT, a_ref, e_ref))
            else:
                model.add_rel(Rel(REL_OUTPUT, e_ref, a_ref))
    _add_links(store, model, events, {execution_id: ex}, arts, full=False, all_events=())
    return model


__all__ = [
    "PIPELINE",
    "STAGE",
    "EXECUTION",
    "GENERIC_ARTIFACT",
    "ARTIFACT_LABELS",
    "NODE_KEYS",
    "REL_KEYS",
    "CONTAINS",
    "RUNS",
    "REL_INPUT",
    "REL_OUTPUT",
    "LINKED",
    "HAS_LABEL",
    "DERIVED",
    "DERIVED_FROM",
    "NodeRef",
    "Node",
    "Rel",
    "GraphModel",
    "StoreRead",
    "clean",
    "index_unsafe",
    "INDEX_SAFE_CHARS",
    "artifact_label",
    "artifact_ref",
    "execution_key",
    "pipeline_node",
    "stage_node",
    "execution_node",
    "artifact_node",
    "derived_sources",
    "read_store",
    "read_execution",
]
