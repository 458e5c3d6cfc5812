"""Bundles: a pipeline's metadata in CMF's ``dumptojson`` shape, validated.

A bundle is what cmflib's ``cmf metadata push`` sends as ``json_payload``::

    {"Pipeline": [{"name": P, "properties": {...}, "custom_properties": {...},
                   "stages": [{"name": "P/train", ...,
                               "executions": [{"type": "train", "name": "...",
                                               "properties": {"Execution_uuid": "...", ...},
                                               "custom_properties": {...},
                                               "events": [{"type": 3, "artifact": {
                                                   "type": "Dataset", "name": "data.csv:md5",
                                                   "uri": "md5", "properties": {...},
                                                   "custom_properties": {...}}}]}]}]}]}

cmfrun adds one key CMF's reader ignores: ``last_known_state`` on executions (MLMD's
state name), so a state can move forward across sites. :func:`parse_bundle` checks a
whole bundle before anything is written and raises :class:`BundleError` (one line
naming the place) for anything malformed. :func:`export_bundle` writes one, and
:func:`execution_digests` fingerprints each execution for incremental transfer.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from collections.abc import Mapping as _AbcMapping
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from cmfrun import errors, schema
from cmfrun.records import Artifact, Context, Event, Execution, Value
from cmfrun.store import Store
from cmfrun.store.literals import executions_named

#: MLMD's numeric event types, as CMF's JSON export writes them.
EVENT_NUMBER: Mapping[str, int] = {
    "DECLARED_OUTPUT": 1,
    "DECLARED_INPUT": 2,
    "INPUT": 3,
    "OUTPUT": 4,
    "INTERNAL_INPUT": 5,
    "INTERNAL_OUTPUT": 6,
    "PENDING_OUTPUT": 7,
}
EVENT_NAME: Mapping[int, str] = {v: k for k, v in EVENT_NUMBER.items()}
#: MLMD's execution states (``last_known_state`` may be given by name or number).
STATES: Tuple[str, ...] = ("UNKNOWN", "NEW", "RUNNING", "COMPLETE", "FAILED", "CACHED", "CANCELED")
#: Properties holding a site's own record ids: rewritten on merge, left out of digests.
LOCAL_ID_PROPERTIES = ("Context_ID", "Pipeline_id")
#: MLMD's name columns are VARCHAR(255) on PostgreSQL/MySQL: longer names are refused up front.
MAX_NAME = 255


class BundleError(errors.InputFileError):
    """A bundle that is not CMF's ``dumptojson`` shape (the message names the place)."""


@dataclass(frozen=True)
class BundleArtifact:
    """An artifact as a bundle carries it (no ids)."""

    type: str
    name: str
    uri: str
    properties: Mapping[str, Value]
    custom: Mapping[str, Value]

    @property
    def key(self) -> Tuple[str, str, str]:
        """Identity across sites: named artifacts by (type, name), unnamed ones by (type, uri)."""
        return (self.type, "name", self.name) if self.name else (self.type, "uri", self.uri)

    @property
    def path(self) -> str:
        """The file path part of the name (CMF: before the first ``:``), else the uri."""
        return self.name.split(":", 1)[0] if self.name else self.uri


@dataclass(frozen=True)
class BundleEvent:
    """One edge: ``kind`` is MLMD's event type name (``INPUT``, ``OUTPUT``...)."""

    kind: str
    artifact: BundleArtifact


@dataclass(frozen=True)
class BundleExecution:
    """An execution as a bundle carries it; ``uuids`` splits CMF's comma-separated ``Execution_uuid``."""

    stage: str
    type: str
    name: str
    uuids: Tuple[str, ...]
    properties: Mapping[str, Value]
    custom: Mapping[str, Value]
    state: str
    events: Tuple[BundleEvent, ...]

    @property
    def uuid(self) -> str:
        """The execution's uuid as stored (``Execution_uuid``)."""
        return ",".join(self.uuids)


@dataclass(frozen=True)
class BundleStage:
    """A stage context (``<pipeline>/<stage>``)."""

    name: str
    properties: Mapping[str, Value]
    custom: Mapping[str, Value]


@dataclass(frozen=True)
class BundlePipeline:
    """One pipeline of a bundle."""

    name: str
    properties: Mapping[str, Value]
    custom: Mapping[str, Value]
    stages: Tuple[BundleStage, ...]
    executions: Tuple[BundleExecution, ...]


@dataclass(frozen=True)
class Bundle:
    """A whole, validated bundle."""

    pipelines: Tuple[BundlePipeline, ...]

    @property
    def execution_count(self) -> int:
        """How many executions the bundle carries."""
        return sum(len(p.executions) for p in self.pipelines)


# -- parsing ----------------------------------------------------------------------------------
def _fail(where: str, what: str) -> BundleError:
    return BundleError(f"malformed bundle at {where}: {what}")


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, _AbcMapping):  # the abc: typing.Mapping's isinstance is slow
        raise _fail(where, f"expected an object, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> Sequence[Any]:
    if not isinstance(value, list):
        raise _fail(where, f"expected a list, got {type(value).__name__}")
    return value


def _text(value: Any, where: str, *, required: bool = True, limit: int = 0) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise _fail(where, f"expected a string, got {type(value).__name__}")
    if required and not value.strip():
        raise _fail(where, "must not be empty")
    if limit and len(value) > limit:
        raise _fail(where, f"longer than {limit} characters")
    return value


def _value(value: Any, where: str) -> Optional[Value]:
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _fail(where, "not a finite number")
        return value
    if isinstance(value, str):
        return value
    raise _fail(where, f"a property value must be a string or a number, got {type(value).__name__}")


def _props(value: Any, where: str, *, custom: bool = False) -> Dict[str, Value]:
    if value is None:
        return {}
    out: Dict[str, Value] = {}
    for key, raw in _mapping(value, where).items():
        if not isinstance(key, str) or not key:
            raise _fail(where, "property names must be non-empty strings")
        v = _value(raw, f"{where}.{key}")
        if v is None:
            continue
        # CMF's dumptojson renames the custom property "type" to "user_type" (it would clash
        # with the record's own "type" key); undo that so a record survives a round trip.
        out["type" if custom and key == "user_type" and "type" not in value else key] = v
    return out


def _state(value: Any, where: str) -> str:
    if value is None:
        return "UNKNOWN"
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(STATES):
        return STATES[value]
    if isinstance(value, str) and value.upper() in STATES:
        return value.upper()
    raise _fail(where, f"unknown execution state {value!r}")


def _event_kind(value: Any, where: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value in EVENT_NAME:
        return EVENT_NAME[value]
    if isinstance(value, str) and value.upper() in EVENT_NUMBER:
        return value.upper()
    raise _fail(where, f"unknown event type {value!r} (3 = INPUT, 4 = OUTPUT)")


def _artifact(raw: Any, where: str) -> BundleArtifact:
    a = _mapping(raw, where)
    art = BundleArtifact(
        type=_text(a.get("type"), f"{where}.type", limit=MAX_NAME),
        name=_text(a.get("name"), f"{where}.name", required=False, limit=MAX_NAME),
        uri=_text(a.get("uri"), f"{where}.uri", required=False),
        properties=_props(a.get("properties"), f"{where}.properties"),
        custom=_props(a.get("custom_properties"), f"{where}.custom_properties", custom=True),
    )
    if not art.name and not art.uri:
        raise _fail(where, "an artifact needs a name or a uri")
    return art


def _execution(raw: Any, stage: str, where: str) -> BundleExecution:
    e = _mapping(raw, where)
    props = _props(e.get("properties"), f"{where}.properties")
    uuid_text = props.get("Execution_uuid")
    if not isinstance(uuid_text, str) or not uuid_text.strip():
        raise _fail(f"{where}.properties", "no Execution_uuid (executions are identified by it)")
    uuids = tuple(dict.fromkeys(u.strip() for u in uuid_text.split(",") if u.strip()))
    events = tuple(
        BundleEvent(
            kind=_event_kind(_mapping(ev, f"{where}.events[{i}]").get("type"), f"{where}.events[{i}].type"),
            artifact=_artifact(ev.get("artifact"), f"{where}.events[{i}].artifact"),
        )
        for i, ev in enumerate(_list(e.get("events", []), f"{where}.events"))
    )
    return BundleExecution(
        stage=stage,
        type=_text(e.get("type"), f"{where}.type", limit=MAX_NAME),
        name=_text(e.get("name"), f"{where}.name", required=False, limit=MAX_NAME),
        uuids=uuids,
        properties=props,
        custom=_props(e.get("custom_properties"), f"{where}.custom_properties", custom=True),
        state=_state(e.get("last_known_state"), f"{where}.last_known_state"),
        events=events,
    )


def _pipeline(raw: Any, where: str) -> BundlePipeline:
    p = _mapping(raw, where)
    name = _text(p.get("name"), f"{where}.name", limit=MAX_NAME)
    stages: List[BundleStage] = []
    executions: Dict[str, BundleExecution] = {}
    for i, s_raw in enumerate(_list(p.get("stages", []), f"{where}.stages")):
        s_where = f"{where}.stages[{i}]"
        s = _mapping(s_raw, s_where)
        stage = BundleStage(
            name=_text(s.get("name"), f"{s_where}.name", limit=MAX_NAME),
            properties=_props(s.get("properties"), f"{s_where}.properties"),
            custom=_props(s.get("custom_properties"), f"{s_where}.custom_properties", custom=True),
        )
        stages.append(stage)
        for j, e_raw in enumerate(_list(s.get("executions", []), f"{s_where}.executions")):
            ex = _execution(e_raw, stage.name, f"{s_where}.executions[{j}]")
            seen = executions.get(ex.uuid)
            if seen is not None and seen != ex:
                raise _fail(f"{s_where}.executions[{j}]", f"execution {ex.uuid} appears twice with different content")
            executions.setdefault(ex.uuid, ex)
    return BundlePipeline(
        name=name,
        properties=_props(p.get("properties"), f"{where}.properties"),
        custom=_props(p.get("custom_properties"), f"{where}.custom_properties", custom=True),
        stages=tuple(stages),
        executions=tuple(executions.values()),
    )


def parse_bundle(data: Any) -> Bundle:
    """Validate a whole bundle (a dict, or its JSON text as cmflib sends it).

    Accepts ``{"Pipeline": [...]}`` (``dumptojson``) or one pipeline object (what
    cmflib's merger takes). Raises :class:`BundleError` naming the first problem.
    """
    if isinstance(data, (bytes, bytearray)):
        data = data.decode("utf-8", errors="replace")
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise BundleError(f"malformed bundle: not JSON ({exc})") from None
    top = _mapping(data, "top level")
    if "Pipeline" in top:
        raws = _list(top["Pipeline"], "Pipeline")
        pipes = tuple(_pipeline(p, f"Pipeline[{i}]") for i, p in enumerate(raws))
    elif "stages" in top and "name" in top:
        pipes = (_pipeline(top, "pipeline"),)
    else:
        raise _fail("top level", 'expected {"Pipeline": [...]} (CMF dumptojson)')
    names = [p.name for p in pipes]
    if len(set(names)) != len(names):
        raise _fail("Pipeline", "a pipeline appears twice")
    uuids = [u for p in pipes for e in p.executions for u in e.uuids]
    if len(set(uuids)) != len(uuids):
        raise _fail("Pipeline", "an Execution_uuid appears in two executions")
    return Bundle(pipelines=pipes)


# -- reading a pipeline from a store -------------------------------------------------------------
@dataclass(frozen=True)
class PipelineRecords:
    """A pipeline as stored: its context, stages, executions (with stage), events, artifacts."""

    pipeline: Context
    stages: Tuple[Context, ...]
    executions: Tuple[Tuple[Context, Execution], ...]
    events: Mapping[int, Tuple[Event, ...]]
    artifacts: Mapping[int, Artifact]


def find_pipeline(store: Store, name: str) -> Optional[Context]:
    """The pipeline context ``name``, or ``None``."""
    return store.context(schema.PIPELINE_CONTEXT, name)


def require_pipeline(store: Store, name: str) -> Context:
    """The pipeline context ``name``, or :class:`~cmfrun.errors.NotFoundError`."""
    ctx = find_pipeline(store, name)
    if ctx is None:
        known = ", ".join(sorted(c.name for c in store.contexts_by_type(schema.PIPELINE_CONTEXT))) or "none"
        raise errors.NotFoundError(f"no pipeline {name!r} in the store (pipelines: {known})")
    return ctx


def execution_uuids(ex: Execution) -> Tuple[str, ...]:
    """The uuids of a stored execution (CMF joins several with commas)."""
    return tuple(u.strip() for u in str(ex.properties.get("Execution_uuid", "")).split(",") if u.strip())


_CHUNK = 400


def _with_stages(store: Store, stages: Sequence[Context], execs: Iterable[Execution]) -> List[Tuple[Context, Execution]]:
    """Pair executions with their stage among ``stages`` (by ``Context_Type``, else by link)."""
    by_name = {s.name: s for s in stages}
    by_id = {s.id: s for s in stages}
    out: List[Tuple[Context, Execution]] = []
    seen: Set[Optional[int]] = set()
    for ex in sorted(execs, key=lambda e: e.id or 0):
        if ex.id in seen:
            continue
        stage = by_name.get(str(ex.properties.get("Context_Type", "")))
        if stage is None:  # no usable Context_Type: ask the store (rare)
            stage = next((by_id[c.id] for c in store.contexts_by_execution(int(ex.id or 0)) if c.id in by_id), None)
        if stage is not None:
            seen.add(ex.id)
            out.append((stage, ex))
    return out


def _records(store: Store, pipeline: Context, stages: Tuple[Context, ...], pairs: Sequence[Tuple[Context, Execution]]) -> PipelineRecords:
    events: Dict[int, List[Event]] = {}
    for ev in store.events_by_execution([int(ex.id or 0) for _, ex in pairs]):
        events.setdefault(ev.execution_id, []).append(ev)
    arts = {int(a.id or 0): a for a in store.artifacts_by_id(sorted({ev.artifact_id for evs in events.values() for ev in evs}))}
    return PipelineRecords(
        pipeline=pipeline,
        stages=stages,
        executions=tuple(pairs),
        events={k: tuple(v) for k, v in events.items()},
        artifacts=arts,
    )


def read_pipeline(
    store: Store,
    pipeline: Context,
    *,
    execution_uuids_wanted: Optional[Iterable[str]] = None,
    since_ms: Optional[int] = None,
    scan_unnamed: bool = True,
) -> PipelineRecords:
    """Read a pipeline's records in batched calls, optionally only some executions.

    With ``execution_uuids_wanted`` or ``since_ms`` only those executions are read, by
    indexed lookups (by name: cmfrun's wrapper and ingest name each run by its uuid; by
    update time), so an incremental push or pull does not read a pipeline of 10,000 runs.
    Uuids not found by name may belong to unnamed executions (CMF's API and cmfrun's
    ``Cmf`` write those): ``scan_unnamed`` then reads the whole pipeline to find them.
    """
    stages = tuple(store.child_contexts(int(pipeline.id or 0)))
    if execution_uuids_wanted is None and since_ms is None:
        pairs: List[Tuple[Context, Execution]] = []
        seen: Set[Optional[int]] = set()
        for stage in stages:
            for ex in sorted(store.executions_by_context(int(stage.id or 0)), key=lambda e: e.id or 0):
                if ex.id not in seen:
                    seen.add(ex.id)
                    pairs.append((stage, ex))
        return _records(store, pipeline, stages, pairs)
    found: List[Execution] = []
    if since_ms is not None:
        found = store.executions(f"last_update_time_since_epoch >= {int(since_ms)}")
    if execution_uuids_wanted is not None:
        wanted = set(execution_uuids_wanted)
        if since_ms is None:
            found += executions_named(store, sorted(wanted), _CHUNK)
        found = [e for e in found if wanted.intersection(execution_uuids(e))]
        missing = wanted - {u for e in found for u in execution_uuids(e)}
        if missing and since_ms is None and scan_unnamed:  # unnamed executions: read the pipeline
            full = read_pipeline(store, pipeline)
            found += [e for _, e in full.executions if missing.intersection(execution_uuids(e))]
    return _records(store, pipeline, stages, _with_stages(store, stages, found))


# -- export ---------------------------------------------------------------------------------------
def dumptojson_node(record: Any, type_id: Optional[int] = None) -> Dict[str, Any]:
    """A record (context, execution or artifact) in CMF's ``dumptojson`` node shape."""
    d: Dict[str, Any] = {
        "create_time_since_epoch": record.create_ms,
        "custom_properties": {("user_type" if k == "type" else k): v for k, v in record.custom.items()},
        "id": record.id,
        "last_update_time_since_epoch": record.update_ms,
        "properties": dict(record.properties),
    }
    if record.name:
        d["name"] = record.name
    if isinstance(record, Artifact):
        d["uri"] = record.uri
    if type_id is not None:
        d["type_id"] = type_id
    return d


def records_to_bundle(store: Store, recs: PipelineRecords, *, keep_empty_stages: bool = True) -> Dict[str, Any]:
    """Turn :class:`PipelineRecords` into the ``dumptojson`` dict (plus ``last_known_state``)."""
    type_ids: Dict[Tuple[str, str], int] = {}

    def tid(kind: str, name: str) -> int:
        # Every stored record's type exists, so ensure_type only reads (and caches) it.
        if (kind, name) not in type_ids:
            type_ids[(kind, name)] = store.ensure_type(kind, name, {})
        return type_ids[(kind, name)]

    by_stage: Dict[int, List[Dict[str, Any]]] = {}
    for stage, ex in recs.executions:
        e = dumptojson_node(ex, tid("execution", ex.type))
        e["type"] = ex.type
        e["name"] = ex.name
        e["last_known_state"] = ex.state
        e["events"] = []
        for ev in recs.events.get(int(ex.id or 0), ()):
            art = recs.artifacts.get(ev.artifact_id)
            if art is None or ev.kind not in EVENT_NUMBER:
                continue
            a = dumptojson_node(art, tid("artifact", art.type))
            a["type"] = art.type
            e["events"].append({"type": EVENT_NUMBER[ev.kind], "artifact": a})
        by_stage.setdefault(int(stage.id or 0), []).append(e)
    p = dumptojson_node(recs.pipeline, tid("context", recs.pipeline.type))
    p["type"] = recs.pipeline.type
    p["stages"] = []
    for stage in recs.stages:
        execs = by_stage.get(int(stage.id or 0), [])
        if not execs and not keep_empty_stages:
            continue
        s = dumptojson_node(stage, tid("context", stage.type))
        s["type"] = stage.type
        s["executions"] = execs
        p["stages"].append(s)
    return {"Pipeline": [p]}


def export_bundle(
    store: Store,
    pipeline: str,
    *,
    execution_uuids: Optional[Sequence[str]] = None,
    since_ms: Optional[int] = None,
) -> Dict[str, Any]:
    """A pipeline's metadata as a bundle (CMF's ``dumptojson`` dict, plus execution states).

    ``execution_uuids`` keeps only those executions, ``since_ms`` only executions updated
    at or after that epoch-millisecond time; stages left empty by a filter are dropped.
    Raises :class:`~cmfrun.errors.NotFoundError` for an unknown pipeline.
    """
    ctx = require_pipeline(store, pipeline)
    recs = read_pipeline(store, ctx, execution_uuids_wanted=execution_uuids, since_ms=since_ms)
    return records_to_bundle(store, recs, keep_empty_stages=execution_uuids is None and since_ms is None)


# -- digests --------------------------------------------------------------------------------------
def _plain(value: Value) -> Value:
    # A whole double and an int are the same value to every backend (and to JSON).
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def digest_of(
    ex_type: str,
    name: str,
    uuids: Iterable[str],
    properties: Mapping[str, Value],
    custom: Mapping[str, Value],
    state: str,
    links: Iterable[Tuple[str, str, str, str]],
) -> str:
    """The fingerprint of everything a merge compares for one execution.

    Left out: ids and times local to a store, the properties holding other records' ids,
    and ``Host`` (filled in from the pushing site when missing, so it may differ while
    nothing else does). ``links`` are ``(event kind, artifact type, name, uri)``.
    """
    skip = set(LOCAL_ID_PROPERTIES) | {"Execution_uuid", "Host"}
    canon = {
        "t": ex_type,
        "n": name,
        "u": sorted(set(uuids)),
        "p": {k: _plain(v) for k, v in properties.items() if k not in skip and v != ""},
        "c": {k: _plain(v) for k, v in custom.items()},
        "s": state,
        "e": sorted(set(links)),
    }
    text = json.dumps(canon, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _record_digest(recs: PipelineRecords, ex: Execution) -> str:
    links = []
    for ev in recs.events.get(int(ex.id or 0), ()):
        art = recs.artifacts.get(ev.artifact_id)
        if art is not None:
            links.append((ev.kind, art.type, art.name, art.uri))
    return digest_of(ex.type, ex.name, execution_uuids(ex), ex.properties, ex.custom, ex.state, links)


def execution_digests(
    store: Store, pipeline: str, uuids: Optional[Sequence[str]] = None, *, scan_unnamed: bool = True
) -> Dict[str, str]:
    """``{Execution_uuid: digest}`` of a pipeline's executions (``{}`` for an unknown pipeline);
    with ``uuids``, only of those executions.

    Two stores hold the same execution exactly when the digests agree, so a client sends
    (or asks for) only executions whose digest is missing or differs on the other side.
    ``scan_unnamed=False`` leaves out unnamed executions not found by name (a client then
    sends them and the merge, which does look, finds them unchanged).
    """
    ctx = find_pipeline(store, pipeline)
    if ctx is None:
        return {}
    recs = read_pipeline(store, ctx, execution_uuids_wanted=uuids, scan_unnamed=scan_unnamed)
    return {",".join(execution_uuids(ex)): _record_digest(recs, ex) for _, ex in recs.executions}


def missing_from(store: Store, recs: PipelineRecords, have: Mapping[str, str]) -> Tuple[Dict[str, Any], int, int]:
    """The bundle of the executions in ``recs`` whose digest is not in ``have``, how many it
    carries, and how many were considered."""
    def lacks(ex: Execution) -> bool:
        theirs = have.get(",".join(execution_uuids(ex)))
        return theirs is None or theirs != _record_digest(recs, ex)  # no digest to compute for a new one

    keep = tuple((stage, ex) for stage, ex in recs.executions if lacks(ex))
    total = len(recs.executions)
    kept = PipelineRecords(recs.pipeline, recs.stages, keep, recs.events, recs.artifacts)
    return records_to_bundle(store, kept, keep_empty_stages=False), len(keep), total


def export_missing(
    store: Store,
    pipeline: str,
    have: Mapping[str, str],
    *,
    execution_uuids_wanted: Optional[Sequence[str]] = None,
    since_ms: Optional[int] = None,
) -> Tuple[Dict[str, Any], int, int]:
    """The bundle of the executions the other side lacks or holds with another digest
    (``have`` is its :func:`execution_digests`), how many executions it carries, and how
    many were considered (the rest the other side already holds as they are)."""
    ctx = require_pipeline(store, pipeline)
    recs = read_pipeline(store, ctx, execution_uuids_wanted=execution_uuids_wanted, since_ms=since_ms)
    return missing_from(store, recs, have)


__all__ = [
    "dumptojson_node",
    "BundleError",
    "Bundle",
    "BundlePipeline",
    "BundleStage",
    "BundleExecution",
    "BundleEvent",
    "BundleArtifact",
    "PipelineRecords",
    "parse_bundle",
    "export_bundle",
    "execution_digests",
    "export_missing",
    "missing_from",
    "digest_of",
    "read_pipeline",
    "records_to_bundle",
    "find_pipeline",
    "require_pipeline",
    "execution_uuids",
    "STATES",
    "EVENT_NUMBER",
]
