"""The merge rules: one bundle into one store, the same for push, pull, import and the server.

Identity:

- an execution is its ``Execution_uuid`` (CMF may join several with commas: any shared uuid
  is the same execution, and the uuids are united); a named execution (cmfrun names each run
  by its uuid, CMF names its reusable executions) is also found by ``(type, name)``, which
  MLMD keeps unique store-wide;
- an artifact is its content: ``(type, name)`` when named (CMF's names carry the content hash),
  else ``(type, uri)``;
- a pipeline or stage context is its name.

Rules, per execution found on both sides:

- immutable fields (type, name, command and the other properties not listed in
  :data:`MUTABLE_PROPERTIES`) that differ, or an input path read at different content on each
  side, are a *conflict*: the receiver keeps its own record untouched and the report lists
  each field; everything else of the bundle still merges. An empty value is "unknown" and is
  filled in, never a conflict.
- state moves forward only: ``UNKNOWN < NEW < RUNNING < COMPLETE | FAILED | CACHED | CANCELED``.
  When the bundle's state is further on, its mutable properties (end time, exit code, ...)
  and custom properties win; when it is behind, only missing values are filled in; two
  different final states (COMPLETE here, FAILED there) are a conflict.
- events are united (an output logged later is added); an event is never removed.
- each execution keeps its site: the ``Host`` property it was recorded with, or, when it has
  none (cmflib records none), the ``site`` the bundle came from.
- ``Context_ID``/``Pipeline_id`` (the sender's record ids) are rewritten to the receiver's.
- properties a record's type does not declare move to its custom properties (MLMD refuses
  undeclared properties).

Atomicity (what the Store API allows): the whole bundle is validated before anything is
written, so a malformed one writes nothing. Then, under the store's write lock (SQLite: an
inter-process lock; servers: one writer at a time per process), a merge writes missing
contexts (one call), then every execution, artifact, event and stage association/attribution
with ``Store.put_lineage_linked``: ONE transaction on the SQL engine (written in bulk, see
:mod:`cmfrun.store.sqlbulk`); through ml-metadata's API the links are a second call after
the lineage transaction. A failure in the lineage transaction leaves at most some new empty
contexts; a crash between MLMD's two calls leaves runs not yet linked to their stage (and
their new artifacts unattributed), which merging the same bundle again repairs: runs found
but not linked (``Store.associated``) are linked, and their artifacts attributed to that
stage, as the interrupted write would have (links are idempotent). ``tests/test_crash.py`` kills merges
mid-write and checks both. Merging the same bundle twice changes nothing.

Identities are looked up in batches: with bound parameters where the engine offers it
(``Store.executions_by_names``/``artifacts_by_names``), else with filter queries.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union

from cmfrun import errors, schema
from cmfrun.records import Artifact, Context, Execution, Value
from cmfrun.store import Store, is_already_exists
from cmfrun.store.literals import in_filters
from cmfrun.sync.bundle import (
    LOCAL_ID_PROPERTIES,
    Bundle,
    BundleArtifact,
    BundleError,
    BundleExecution,
    BundlePipeline,
    execution_digests,
    execution_uuids,
    export_bundle,
    parse_bundle,
    read_pipeline,
)
from cmfrun.sync.gcpause import gc_paused

log = logging.getLogger(__name__)

#: Execution properties that change while (or after) a run: they move forward with the state.
MUTABLE_PROPERTIES = frozenset(
    {"Git_End_Commit", "End_Time_ms", "Duration_s", "Exit_Code", "Peak_RSS_KiB", "CPU_Time_s", "Lock_Fingerprint"}
)
#: How far along a run is: a state only ever moves to a higher rank.
STATE_RANK: Mapping[str, int] = {
    "UNKNOWN": 0, "NEW": 1, "RUNNING": 2, "COMPLETE": 3, "FAILED": 3, "CACHED": 3, "CANCELED": 3,
}
_FINAL = 3
_CHUNK = 400
_RETRIES = 8


@dataclass(frozen=True)
class Conflict:
    """A record both sides hold with different immutable content: the receiver kept ``ours``.

    ``uuid`` is the execution's uuid (for an artifact: its name); ``field`` the property,
    ``state``, ``type``, ``inputs`` (or ``uri`` for an artifact).
    """

    uuid: str
    field: str
    ours: str
    theirs: str
    record: str = "execution"


@dataclass(frozen=True)
class MergeReport:
    """What a merge did. Conflicting executions count in none of the execution counts."""

    executions_added: int = 0
    executions_updated: int = 0
    executions_unchanged: int = 0
    artifacts_added: int = 0
    artifacts_updated: int = 0
    events_added: int = 0
    contexts_added: int = 0
    conflicts: Tuple[Conflict, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether the merge wrote anything."""
        return bool(
            self.executions_added or self.executions_updated or self.artifacts_added
            or self.artifacts_updated or self.events_added or self.contexts_added
        )

    def to_json(self) -> Dict[str, Any]:
        """A JSON-ready dict (conflicts as a list of objects)."""
        d = asdict(self)
        d["conflicts"] = [asdict(c) for c in self.conflicts]
        return d

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "MergeReport":
        """The report :meth:`to_json` wrote (unknown keys are ignored, missing counts are 0)."""
        counts = {k: int(data.get(k, 0) or 0) for k in _COUNTS}
        conflicts = tuple(
            Conflict(str(c.get("uuid", "")), str(c.get("field", "")), str(c.get("ours", "")),
                     str(c.get("theirs", "")), str(c.get("record", "execution")))
            for c in data.get("conflicts", []) if isinstance(c, Mapping)
        )
        return cls(**counts, conflicts=conflicts)

    def __add__(self, other: "MergeReport") -> "MergeReport":
        counts = {k: getattr(self, k) + getattr(other, k) for k in _COUNTS}
        return MergeReport(**counts, conflicts=self.conflicts + other.conflicts)


_COUNTS = (
    "executions_added", "executions_updated", "executions_unchanged", "artifacts_added",
    "artifacts_updated", "events_added", "contexts_added",
)


# -- normalising bundle records to what the store accepts ---------------------------------------
def _coerce(value: Value, kind: str, where: str) -> Value:
    """A value of a declared property in the declared kind (MLMD refuses another kind)."""
    try:
        if kind == "INT":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind == "DOUBLE":
            return float(value)
    except (TypeError, ValueError):
        raise BundleError(f"malformed bundle at {where}: {value!r} is not a {kind.lower()}") from None
    return str(value)


def _split(props: Mapping[str, Value], custom: Mapping[str, Value], declared: Mapping[str, str], where: str
           ) -> Tuple[Dict[str, Value], Dict[str, Value]]:
    p: Dict[str, Value] = {}
    c: Dict[str, Value] = dict(custom)
    for k, v in props.items():
        if k in declared:
            p[k] = _coerce(v, declared[k], f"{where}.properties.{k}")
        else:
            c.setdefault(k, v)
    return p, c


@dataclass(frozen=True)
class _Exec:
    """A bundle execution normalised for the store."""

    src: BundleExecution
    properties: Dict[str, Value]
    custom: Dict[str, Value]
    arts: Tuple[Tuple[str, Tuple[str, str, str]], ...]  # (event kind, artifact key)


def _normalise(pipe: BundlePipeline, where: str
               ) -> Tuple[List[_Exec], Dict[Tuple[str, str, str], BundleArtifact], List[Conflict]]:
    execs: List[_Exec] = []
    arts: Dict[Tuple[str, str, str], BundleArtifact] = {}
    conflicts: List[Conflict] = []
    reported: Set[Tuple[str, str, str]] = set()
    # An artifact appears once per event (an output, then an input of the next run): one
    # identical to the first seen needs no second check (a differing one is still checked).
    first_raw: Dict[Tuple[str, str, str], BundleArtifact] = {}
    for i, ex in enumerate(pipe.executions):
        w = f"{where}.execution {ex.uuid}"
        p, c = _split(ex.properties, ex.custom, schema.EXECUTION_PROPERTIES, w)
        links: List[Tuple[str, Tuple[str, str, str]]] = []
        for ev in ex.events:
            a = ev.artifact
            key = a.key
            link = (ev.kind, key)
            seen = arts.get(key)
            if seen is None or first_raw[key] != a:
                ap, ac = _split(a.properties, a.custom, schema.ARTIFACT_PROPERTIES.get(a.type, {}), f"{w}.artifact {a.name or a.uri}")
                if seen is None:
                    arts[key] = BundleArtifact(a.type, a.name, a.uri, ap, ac)
                    first_raw[key] = a
                elif seen.uri != a.uri:
                    # One bundle naming two contents the same: keep the first, report the other.
                    if key not in reported:
                        conflicts.append(Conflict(a.name, "uri", seen.uri, a.uri, record="artifact"))
                        reported.add(key)
                    continue
            if link not in links:
                links.append(link)
        execs.append(_Exec(ex, p, c, tuple(links)))
    return execs, arts, conflicts


# -- the merge ----------------------------------------------------------------------------------
def merge_bundle(store: Store, bundle: Union[Mapping[str, Any], Bundle, str], *, site: Optional[str] = None) -> MergeReport:
    """Merge ``bundle`` (CMF's ``dumptojson`` dict, its JSON text, or a parsed :class:`Bundle`)
    into ``store`` by the rules in this module's docstring.

    ``site`` names where the bundle comes from; it becomes the ``Host`` of executions that
    carry none. Raises :class:`~cmfrun.sync.bundle.BundleError` (writing nothing) for a
    malformed bundle.
    """
    if site is not None and (not isinstance(site, str) or len(site) > 255):
        raise errors.UsageError("site must be a string of at most 255 characters")
    site = (site or "").strip() or None
    with gc_paused():
        parsed = bundle if isinstance(bundle, Bundle) else parse_bundle(bundle)
        # Validate and normalise everything before the first write.
        planned = [(pipe, *_normalise(pipe, f"Pipeline {pipe.name!r}")) for pipe in parsed.pipelines]
        report = MergeReport()
        with store.write_lock():
            for pipe, execs, arts, conflicts in planned:
                report = report + _merge_with_retries(store, pipe, execs, arts, conflicts, site)
    log.info("merged %d executions: %s", parsed.execution_count, report.to_json())
    return report


def _merge_with_retries(store: Store, pipe: BundlePipeline, execs: List[_Exec],
                        arts: Dict[Tuple[str, str, str], BundleArtifact], conflicts: List[Conflict],
                        site: Optional[str]) -> MergeReport:
    # On PostgreSQL/MySQL another writer (a second server process, a concurrent push of the
    # same pipeline) may create the same named record between our reads and our write: its
    # transaction wins, ours rolls back whole, and merging again finds its records.
    for attempt in range(_RETRIES + 1):
        try:
            return _merge_pipeline(store, pipe, execs, arts, list(conflicts), site)
        except Exception as exc:  # noqa: BLE001 - only MLMD's AlreadyExists is retried
            if not is_already_exists(exc) or attempt == _RETRIES:
                if is_already_exists(exc):
                    raise errors.StoreError(f"store {store.location}: concurrent writers kept colliding; merge again") from None
                raise
            time.sleep(0.02 * (attempt + 1))
    raise AssertionError("unreachable")


def _stage_contexts(store: Store, pipe: BundlePipeline, pipe_ctx: Context, execs: Sequence[_Exec]) -> Tuple[Dict[str, Context], int]:
    wanted: Dict[str, Mapping[str, Value]] = {s.name: s.custom for s in pipe.stages}
    for e in execs:
        wanted.setdefault(e.src.stage, {})
    pid = int(pipe_ctx.id or 0)
    by_name = {c.name: c for c in store.child_contexts(pid)}
    missing = [n for n in wanted if n not in by_name]
    added = 0
    if missing:
        anywhere = {c.name: c for c in store.contexts_by_type(schema.STAGE_CONTEXT)}
        new = [n for n in missing if n not in anywhere]
        for n in missing:
            if n in anywhere:  # exists under another pipeline: link it here too
                by_name[n] = store.get_or_create_context(schema.STAGE_CONTEXT, n, {"Pipeline_Stage": n}, {}, parent_id=pid)
        ctxs = [Context(schema.STAGE_CONTEXT, n, {"Pipeline_Stage": n}, dict(wanted[n])) for n in new]
        for ctx, cid in zip(ctxs, store.put_contexts(ctxs, pid)):
            by_name[ctx.name] = replace(ctx, id=cid)
        added = len(new)
    return by_name, added


def _artifacts_by_key(store: Store, keys: Sequence[Tuple[str, str, str]], known: Mapping[int, Artifact]
                      ) -> Dict[Tuple[str, str, str], Artifact]:
    """Stored artifacts for bundle artifact keys, in batched queries."""
    out: Dict[Tuple[str, str, str], Artifact] = {}

    def index(a: Artifact) -> None:
        k = (a.type, "name", a.name) if a.name else (a.type, "uri", a.uri)
        out.setdefault(k, a)

    for a in known.values():
        index(a)
    names = sorted({k[2] for k in keys if k[1] == "name" and k not in out})
    by_names = store.artifacts_by_names(names)  # the engine's bound-parameter lookup, if it has one
    odd: Set[str] = set()
    if by_names is None:
        queries, others = in_filters("name", names, _CHUNK)
        by_names = [a for query in queries for a in store.artifacts(query)]
        odd = set(others)
    for a in by_names:
        index(a)
    for k in keys:  # names no filter query may hold: one parameterised lookup each
        if k[1] == "name" and k not in out and k[2] in odd:
            found = store.artifact_by_type_and_name(k[0], k[2])
            if found is not None:
                index(found)
    uris = sorted({k[2] for k in keys if k[1] == "uri" and k not in out})
    for a in store.artifacts_by_uri(uris) if uris else []:  # it looks odd uris up one by one itself
        if not a.name:
            index(a)
    return out


def _same(a: Value, b: Value) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return str(a) == str(b)


def _compare(ours: Execution, theirs: _Exec, ours_inputs: Mapping[str, Set[str]],
             theirs_inputs: Mapping[str, Set[str]]) -> Tuple[Optional[Execution], List[Conflict]]:
    """Our record after taking what the bundle may change, or the conflicts (we keep ours)."""
    src = theirs.src
    uuid = ",".join(execution_uuids(ours)) or src.uuid
    conflicts: List[Conflict] = []

    def conflict(fld: str, a: Any, b: Any) -> None:
        conflicts.append(Conflict(uuid, fld, str(a), str(b)))

    if ours.type != src.type:
        conflict("type", ours.type, src.type)
    if ours.name and src.name and ours.name != src.name:
        conflict("name", ours.name, src.name)
    ro, rt = STATE_RANK.get(ours.state, 0), STATE_RANK.get(src.state, 0)
    forward = rt > ro
    props = dict(ours.properties)
    for k, v in theirs.properties.items():
        if k in LOCAL_ID_PROPERTIES or k == "Execution_uuid":
            continue
        cur = props.get(k, "")
        if cur == "" or _same(cur, v):
            if v != "":
                props[k] = v
            continue
        if v == "":
            continue
        if k not in MUTABLE_PROPERTIES:
            conflict(k, cur, v)
        elif forward:
            props[k] = v
        elif rt == ro == _FINAL:
            conflict(k, cur, v)
    custom = dict(ours.custom)
    for k, v in theirs.custom.items():
        if k not in custom or _same(custom[k], v):
            custom[k] = v
        elif forward:
            custom[k] = v
        elif rt == ro == _FINAL:
            conflict(f"custom.{k}", custom[k], v)
    state = ours.state
    if forward:
        state = src.state
    elif rt == ro == _FINAL and ours.state != src.state:
        conflict("state", ours.state, src.state)
    for path, uris in theirs_inputs.items():
        have = ours_inputs.get(path)
        if have and not have & uris:
            conflict("inputs", f"{path}@{','.join(sorted(have))}", f"{path}@{','.join(sorted(uris))}")
    if conflicts:
        return None, conflicts
    ours_uuids = list(execution_uuids(ours))
    extra = [u for u in src.uuids if u not in ours_uuids]
    if extra:
        props["Execution_uuid"] = ",".join(ours_uuids + extra)
    name = ours.name or src.name
    if props == dict(ours.properties) and custom == dict(ours.custom) and state == ours.state and name == ours.name:
        return ours, []
    return replace(ours, name=name, properties=props, custom=custom, state=state), []


def _inputs(links: Sequence[Tuple[str, Tuple[str, str, str]]], arts: Mapping[Tuple[str, str, str], Any]) -> Dict[str, Set[str]]:
    out: Dict[str, Set[str]] = {}
    for kind, key in links:
        a = arts.get(key)
        if kind == "INPUT" and a is not None:
            path = a.name.split(":", 1)[0] if a.name else a.uri
            out.setdefault(path, set()).add(a.uri)
    return out


def _merged_artifact(ours: Artifact, theirs: BundleArtifact) -> Artifact:
    """Ours plus what theirs knows that we do not (url entries of other pipelines, missing values)."""
    props = dict(ours.properties)
    for k, v in theirs.properties.items():
        if k == "url" and props.get("url") and v:
            url = str(props["url"])
            for entry in str(v).split(","):
                if ":" in entry:
                    pipe, loc = entry.split(":", 1)
                    url = schema.merge_url(url, pipe, loc)
            props["url"] = url
        elif props.get(k, "") == "" and v != "":
            props[k] = v
    custom = dict(ours.custom)
    for k, v in theirs.custom.items():
        custom.setdefault(k, v)
    if props == dict(ours.properties) and custom == dict(ours.custom):
        return ours
    return replace(ours, properties=props, custom=custom)


def _merge_pipeline(
    store: Store,
    pipe: BundlePipeline,
    execs: List[_Exec],
    bundle_arts: Dict[Tuple[str, str, str], BundleArtifact],
    conflicts: List[Conflict],
    site: Optional[str],
) -> MergeReport:
    counts = dict.fromkeys(_COUNTS, 0)
    pipe_ctx = store.context(schema.PIPELINE_CONTEXT, pipe.name)
    if pipe_ctx is None:
        pipe_ctx = store.get_or_create_context(schema.PIPELINE_CONTEXT, pipe.name, {"Pipeline": pipe.name}, dict(pipe.custom))
        counts["contexts_added"] += 1
    pid = int(pipe_ctx.id or 0)
    stages, added = _stage_contexts(store, pipe, pipe_ctx, execs)
    counts["contexts_added"] += added

    # What the receiver already holds of these executions: by indexed lookups by name (i.e.
    # by uuid for cmfrun's runs) when every execution is named, else the whole pipeline
    # (unnamed executions can only be found by reading it); then named ones store-wide.
    if all(e.src.name for e in execs):
        recs = read_pipeline(store, pipe_ctx, execution_uuids_wanted=[u for e in execs for u in e.src.uuids],
                             scan_unnamed=False)
    else:
        recs = read_pipeline(store, pipe_ctx)
    by_uuid: Dict[str, Execution] = {}
    by_name: Dict[Tuple[str, str], Execution] = {}
    stage_of: Dict[int, int] = {}
    for stage, ex in recs.executions:
        stage_of[int(ex.id or 0)] = int(stage.id or 0)
        for u in execution_uuids(ex):
            by_uuid[u] = ex
        if ex.name:
            by_name[(ex.type, ex.name)] = ex
    events = {k: list(v) for k, v in recs.events.items()}
    known_arts: Dict[int, Artifact] = dict(recs.artifacts)
    names = sorted({e.src.name for e in execs if e.src.name and (e.src.type, e.src.name) not in by_name
                    and not any(u in by_uuid for u in e.src.uuids)})
    outside: List[Execution] = []
    found_by_name = store.executions_by_names(names)
    if found_by_name is None:  # the engine takes filter queries: the names none may hold go one by one
        queries, others = in_filters("name", names, _CHUNK)
        found_by_name = [ex for query in queries for ex in store.executions(query)]
        odd = set(others)
        for e in execs:
            if e.src.name in odd:
                one = store.execution_by_type_and_name(e.src.type, e.src.name)
                found_by_name += [one] if one is not None else []
    for ex in found_by_name:
        if (ex.type, ex.name) not in by_name:
            by_name[(ex.type, ex.name)] = ex
            outside.append(ex)
    if outside:
        for ev in store.events_by_execution([int(e.id or 0) for e in outside]):
            events.setdefault(ev.execution_id, []).append(ev)
        need = sorted({ev.artifact_id for e in outside for ev in events.get(int(e.id or 0), [])} - set(known_arts))
        known_arts.update({int(a.id or 0): a for a in store.artifacts_by_id(need)})

    stored_arts = _artifacts_by_key(store, list(bundle_arts), known_arts)
    art_conflict: Set[Tuple[str, str, str]] = set()
    for key, theirs in bundle_arts.items():
        ours_a = stored_arts.get(key)
        if ours_a is not None and ours_a.uri != theirs.uri:
            conflicts.append(Conflict(theirs.name, "uri", ours_a.uri, theirs.uri, record="artifact"))
            art_conflict.add(key)

    def art_key(a: Artifact) -> Tuple[str, str, str]:
        return (a.type, "name", a.name) if a.name else (a.type, "uri", a.uri)

    out_execs: List[Execution] = []
    out_arts: List[Artifact] = []
    art_pos: Dict[Tuple[str, str, str], int] = {}
    edges: List[Tuple[int, int, str, Optional[str]]] = []
    assoc_stage: List[int] = []  # per out_execs entry: the stage context to associate (0: none)
    attr: Set[Tuple[int, Tuple[str, str, str]]] = set()  # (stage ctx id, artifact key)
    claimed: Set[int] = set()

    def art_index(key: Tuple[str, str, str]) -> int:
        if key not in art_pos:
            ours_a = stored_arts.get(key)
            if ours_a is None:
                b = bundle_arts[key]
                rec = Artifact(b.type, b.name, b.uri, properties=dict(b.properties), custom=dict(b.custom))
                counts["artifacts_added"] += 1
            else:
                rec = _merged_artifact(ours_a, bundle_arts[key])
                if rec is not ours_a:
                    counts["artifacts_updated"] += 1
            art_pos[key] = len(out_arts)
            out_arts.append(rec)
        return art_pos[key]

    stored_by_key = {art_key(a): a for a in known_arts.values()}
    # Runs paired with a stage by their Context_Type but not linked to it: a merge (or ingest)
    # interrupted between its records and its links (ml-metadata's API writes those in two calls).
    linked = store.associated(stage_of)

    def reattribute(have: Set[Tuple[str, Tuple[str, str, str]]], stage_id: int) -> None:
        """Attribute to ``stage_id`` the artifacts of a run left unlinked, as the interrupted
        write would have (every artifact of a new run; links already there are kept)."""
        for _, key in sorted(have):
            if key in stored_arts:
                attr.add((stage_id, key))
                art_index(key)

    for e in execs:
        src = e.src
        stage_id = int(stages[src.stage].id or 0)
        matches = {int(x.id or 0): x for x in (by_uuid.get(u) for u in src.uuids) if x is not None}
        if src.name and (src.type, src.name) in by_name:
            named = by_name[(src.type, src.name)]
            matches.setdefault(int(named.id or 0), named)
        links = [(k, key) for k, key in e.arts if key not in art_conflict]
        if len(matches) > 1 or (matches and next(iter(matches)) in claimed):
            ids = ",".join(str(i) for i in sorted(matches))
            conflicts.append(Conflict(src.uuid, "Execution_uuid", f"executions {ids}", src.uuid))
            continue
        if not matches:
            props = dict(e.properties)
            props.update({"Context_ID": stage_id, "Pipeline_id": pid})
            if site and not props.get("Host"):
                props["Host"] = site
            out_execs.append(Execution(type=src.type, name=src.name, properties=props, custom=dict(e.custom), state=src.state))
            assoc_stage.append(stage_id)
            xi = len(out_execs) - 1
            for kind, key in links:
                edges.append((xi, art_index(key), kind, None))
                attr.add((stage_id, key))
            counts["executions_added"] += 1
            counts["events_added"] += len(links)
            continue
        ours = next(iter(matches.values()))
        oid = int(ours.id or 0)
        claimed.add(oid)
        have = {(ev.kind, art_key(known_arts[ev.artifact_id])) for ev in events.get(oid, []) if ev.artifact_id in known_arts}
        merged, found = _compare(ours, e, _inputs(list(have), stored_by_key), _inputs(links, bundle_arts))
        if found:
            conflicts.extend(found)
            continue
        assert merged is not None
        new_links = [(k, key) for k, key in links if (k, key) not in have]
        # Found by name outside the pipeline's stages, or left unlinked by a crash: link it.
        relink = oid not in stage_of or oid not in linked
        if oid in stage_of and oid not in linked:
            reattribute(have, stage_id)
        if merged is ours and not new_links:
            counts["executions_unchanged"] += 1
            if relink:
                out_execs.append(ours)
                assoc_stage.append(stage_id)
            continue
        out_execs.append(merged)
        assoc_stage.append(stage_id)  # idempotent; repairs a link a crashed merge left out
        xi = len(out_execs) - 1
        for kind, key in new_links:
            edges.append((xi, art_index(key), kind, None))
            attr.add((stage_of.get(oid, stage_id), key))
        counts["executions_updated"] += 1
        counts["events_added"] += len(new_links)

    if out_execs or out_arts:
        store.ensure_execution_types(x.type for x in out_execs)
        assoc = [(sid, xi) for xi, sid in enumerate(assoc_stage) if sid]
        attributions = sorted({(sid, art_pos[key]) for sid, key in attr})
        store.put_lineage_linked(out_execs, out_arts, edges, assoc, attributions)
    return MergeReport(**counts, conflicts=tuple(conflicts))


__all__ = [
    "Conflict",
    "MergeReport",
    "BundleError",
    "merge_bundle",
    "export_bundle",
    "execution_digests",
    "parse_bundle",
    "MUTABLE_PROPERTIES",
    "STATE_RANK",
]
