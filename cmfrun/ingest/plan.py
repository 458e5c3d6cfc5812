"""Plan an ingest: what each lock stage adds to the store, computed from reads only.

The plan is both the ``--dry-run`` output (:class:`StagePlan` per stage) and the list of
writes :mod:`cmfrun.ingest.merge` performs in one ``put_lineage`` call. Artifacts are
identified by content hash, so a stage's out used as another stage's dep is one
artifact, and artifacts the store already holds are linked, never duplicated.
"""
from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union

from cmfrun import schema
from cmfrun.cmdline import normalize_command
from cmfrun.dvcyaml import MODEL_SUFFIXES
from cmfrun.ingest.lockfile import LockEntry, LockFile, LockStage, flatten_params
from cmfrun.ingest.match import FINGERPRINT, ExecutionIndex
from cmfrun.recorder import FileRef, RunRecord, file_artifact, new_uuid
from cmfrun.records import INPUT, OUTPUT, Artifact, Execution
from cmfrun.store import Store
from cmfrun.store.literals import executions_named

#: ``Recorded_By`` of executions ingest creates.
RECORDED_BY = "cmf dvc ingest"

CREATE = "create"
MERGE = "merge"
UNCHANGED = "unchanged"


@dataclass(frozen=True)
class StagePlan:
    """What ingest does for one lock stage.

    ``action``: ``create`` (new execution), ``merge`` (events added to an existing
    execution) or ``unchanged``. ``matched_by``: ``fingerprint``, ``stage``, ``command``
    or ``""``. Paths are project-root-relative.
    """

    lock: str
    stage: str
    action: str
    matched_by: str
    execution_id: Optional[int]
    execution_name: str
    command: str
    artifacts_created: Tuple[str, ...] = ()
    artifacts_linked: Tuple[str, ...] = ()
    events_added: int = 0
    conflicts: Tuple[str, ...] = ()


@dataclass
class ExecWrite:
    """An execution to write: ``existing`` (merge) or a new one built from ``run``."""

    stage_plan_index: int
    stage: str
    existing: Optional[Execution] = None
    run: Optional[RunRecord] = None
    custom_update: Dict[str, Any] = field(default_factory=dict)
    property_update: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Writes:
    """Everything the merge writes, in ``put_lineage`` shape."""

    executions: List[ExecWrite] = field(default_factory=list)
    #: new artifacts (no id) and existing ones getting events (with id)
    artifacts: List[Artifact] = field(default_factory=list)
    #: stage (context) that first logs each new artifact, by artifact index
    attribution: Dict[int, str] = field(default_factory=dict)
    edges: List[Tuple[int, int, str, Optional[str]]] = field(default_factory=list)
    stages: Set[str] = field(default_factory=set)
    #: (stage, execution id) of existing executions to associate with their stage context
    relinks: List[Tuple[str, int]] = field(default_factory=list)
    #: (stage, artifact id) of existing artifacts to attribute to the stage that first logged them
    reattributions: List[Tuple[str, int]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.edges and not self.relinks and not self.reattributions and not any(
            w.existing is None or w.custom_update or w.property_update for w in self.executions)


@dataclass(frozen=True)
class Plan:
    """The per-stage plan plus the counts of the summary."""

    stages: Tuple[StagePlan, ...]
    artifacts_created: int
    artifacts_reused: int
    warnings: Tuple[str, ...]
    writes: Writes


def stage_id(lock: LockFile, stage: LockStage) -> str:
    """The stage's name as DVC addresses it from the project root (and as ``DVC_STAGE``
    holds it): ``train`` for the root ``dvc.lock``, ``sub/dvc.yaml:train`` otherwise."""
    folder = posixpath.dirname(lock.path)
    if folder in ("", "."):
        return stage.name
    return f"{folder}/dvc.yaml:{stage.name}"


def stage_command(stage: LockStage) -> str:
    """The normalised command of a lock stage; a list ``cmd`` (DVC runs each item in turn)
    becomes its normalised items joined with `` && ``."""
    if isinstance(stage.cmd, tuple):
        return " && ".join(normalize_command(c) for c in stage.cmd)
    return normalize_command(stage.cmd)


def fingerprint(sid: str, command: str, stage: LockStage, params: Mapping[str, Any]) -> str:
    """A stable digest of one lock stage's content: same lock state, same fingerprint."""
    body = {
        "stage": sid,
        "cmd": command,
        "deps": sorted((e.path, e.md5 or "") for e in stage.deps),
        "outs": sorted((e.path, e.md5 or "") for e in stage.outs),
        "params": sorted((k, repr(v)) for k, v in params.items()),
    }
    return hashlib.md5(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


def artifact_type(path: str, kinds: Mapping[str, str], is_out: bool) -> str:
    """The artifact type of a path: the kind ``dvc.yaml`` gives it, else Model by suffix."""
    kind = kinds.get(path)
    if kind is not None:
        return kind
    if is_out and path.lower().endswith(MODEL_SUFFIXES):
        return schema.MODEL
    return schema.DATASET


_INT32 = 2**31


def fit_int(value: Any) -> Any:
    """An int MLMD can hold on every backend: PostgreSQL and MySQL keep ``int_value`` in a
    32-bit column, so larger ints (file sizes above 2 GiB) become doubles (exact to 2**53)."""
    if isinstance(value, int) and not isinstance(value, bool) and not -_INT32 <= value < _INT32:
        return float(value)
    return value


def _first_uuid(execution: Execution) -> str:
    return str(execution.properties.get("Execution_uuid", "") or "").split(",")[0]


def _unattributed(store: Store, stages: Sequence[LockStage]) -> Dict[str, int]:
    """``{md5: artifact id}`` of the stages' artifacts attributed to no context.

    Only the stages of executions an interrupted ingest left unlinked come here (rare), so
    one lookup per artifact is fine.
    """
    md5s = {e.md5 for st in stages for e in (*st.deps, *st.outs) if e.md5}
    out: Dict[str, int] = {}
    for art in store.artifacts_by_uri(md5s) if md5s else []:
        if art.uri not in out and not store.contexts_by_artifact(int(art.id or 0)):
            out[art.uri] = int(art.id or 0)
    return out


def make_plan(
    store: Store,
    locks: Sequence[LockFile],
    *,
    pipeline: str,
    out_kinds: Mapping[str, Mapping[str, str]],
    git_info: Callable[[], Tuple[str, str]] = lambda: ("", ""),
    remote_root: Callable[[], str] = lambda: "",
) -> Plan:
    """Plan the ingest of ``locks`` into ``pipeline``; reads the store, writes nothing.

    ``out_kinds`` maps a lock path to ``{root-relative path: artifact type}`` from its
    ``dvc.yaml``; ``remote_root`` and ``git_info`` (remote URL, HEAD commit) are called
    only when something has to be created.
    """
    index = ExecutionIndex.load(store, pipeline)
    warnings: List[str] = [w for lock in locks for w in lock.warnings]
    all_ids = {stage_id(lock, s) for lock in locks for s in lock.stages}

    # Match every stage first, so the artifact reads below are batched.
    matched: List[Tuple[LockFile, LockStage, str, str, str, Dict[str, Any], Optional[Execution], str]] = []
    for lock in locks:
        for st in lock.stages:
            sid = stage_id(lock, st)
            cmd = stage_command(st)
            params = {k: fit_int(v) for k, v in flatten_params(st.params).items()}
            fp = fingerprint(sid, cmd, st, params)
            # All stage ids, this one included: a command match never reaches an execution of
            # this stage (those are matched by stage first), and no per-stage set copy (n^2).
            found, how = index.match(sid, cmd, fp, all_ids)
            matched.append((lock, st, sid, cmd, fp, params, found, how))

    # An execution ingest created whose stage-context association is missing (an ingest
    # interrupted between its two writes) is not in the index: find it by its name.
    relink: Set[int] = set()
    names = {f"{pipeline}/{m[2]}:{m[4]}": i for i, m in enumerate(matched) if m[6] is None}
    if names:
        for lost in executions_named(store, list(names)):
            i = names.get(lost.name)
            if i is not None and lost.properties.get(FINGERPRINT) == matched[i][4]:
                m = matched[i]
                matched[i] = (m[0], m[1], m[2], m[3], m[4], m[5], lost, "fingerprint")
                relink.add(int(lost.id or 0))

    # A stage already ingested (same fingerprint) got its events in the same transaction
    # as the fingerprint: nothing to check for it.
    target_ids = [int(m[6].id or 0) for m in matched if m[6] is not None and m[7] != "fingerprint"]
    events = store.events_by_execution(target_ids) if target_ids else []
    event_arts = {a.id: a for a in store.artifacts_by_id({e.artifact_id for e in events})} if events else {}
    have_event: Set[Tuple[int, int, str]] = set()
    have_path: Dict[Tuple[int, str, str], str] = {}
    for ev in events:
        have_event.add((ev.execution_id, ev.artifact_id, ev.kind))
        art = event_arts.get(ev.artifact_id)
        if art is not None:
            have_path[(ev.execution_id, art.path, ev.kind)] = art.uri

    md5s = {e.md5 for m in matched if m[7] != "fingerprint" for e in (*m[1].deps, *m[1].outs) if e.md5}
    existing: Dict[str, Artifact] = {}
    for art in store.artifacts_by_uri(md5s) if md5s else []:
        existing.setdefault(art.uri, art)

    writes = Writes()
    art_index: Dict[str, int] = {}  # md5 -> index in writes.artifacts
    created_md5: Set[str] = set()
    reused_md5: Set[str] = set()
    plans: List[StagePlan] = []
    remote: Optional[str] = None
    skipped_warned: Set[str] = set()

    orphans = _unattributed(store, [m[1] for m in matched if m[6] is not None and int(m[6].id or 0) in relink])
    for lock, st, sid, cmd, fp, params, found, how in matched:
        kinds = out_kinds.get(lock.path, {})
        eid = int(found.id or 0) if found is not None else 0
        if found is not None and how == "fingerprint":
            reused_md5.update(e.md5 for e in (*st.deps, *st.outs) if e.md5)
            if eid in relink:
                writes.relinks.append((sid, eid))
                writes.stages.add(sid)
                # Its artifacts' attributions were in the same lost write: the first stage (in
                # plan order, as when they were created) that logs one gets it.
                for e in (*st.deps, *st.outs):
                    aid = orphans.pop(e.md5, None) if e.md5 else None
                    if aid is not None:
                        writes.reattributions.append((sid, aid))
            plans.append(StagePlan(lock=lock.path, stage=sid, action=MERGE if eid in relink else UNCHANGED,
                                   matched_by=how, execution_id=eid, execution_name=found.name, command=cmd))
            continue
        if found is not None:
            run_uuid = _first_uuid(found) or new_uuid()
            exec_name = found.name
        else:
            run_uuid = new_uuid()
            exec_name = f"{pipeline}/{sid}:{fp}"
        exec_pos = len(writes.executions)
        created_paths: List[str] = []
        linked_paths: List[str] = []
        conflicts: List[str] = []
        n_events = 0
        seen: Set[str] = set()
        pending_edges: List[Tuple[int, int, str, Optional[str]]] = []
        artifact_run: Optional[RunRecord] = None  # what names this stage's new artifacts (one per stage)
        for entry, kind in [(d, INPUT) for d in st.deps] + [(o, OUTPUT) for o in st.outs]:
            if not entry.md5:
                if entry.path not in skipped_warned:
                    skipped_warned.add(entry.path)
                    warnings.append(f"{lock.path}: stage {st.name!r}: {entry.raw_path} has no md5 (not recorded)")
                continue
            if entry.md5 in seen:
                continue  # one event per artifact per execution, first kind wins (recorder.plan_links)
            seen.add(entry.md5)
            if found is not None:
                recorded = have_path.get((eid, entry.path, kind))
                if recorded is not None:
                    if recorded != entry.md5:
                        conflicts.append(entry.path)
                        warnings.append(
                            f"{lock.path}: stage {st.name!r}: {entry.path} is {entry.md5} in the lock but "
                            f"{recorded} on execution {eid}: kept the recorded hash"
                        )
                    elif entry.md5 in existing:
                        reused_md5.add(entry.md5)
                    continue
            art = existing.get(entry.md5)
            if art is not None:
                reused_md5.add(entry.md5)
                if found is not None and any((eid, int(art.id or 0), k) in have_event for k in (INPUT, OUTPUT)):
                    continue
                pos = art_index.get(entry.md5)
                if pos is None:
                    url = str(art.properties.get("url", "") or "")
                    merged = schema.extend_url(url, pipeline)
                    if merged != url:
                        art = replace(art, properties={**art.properties, "url": merged})
                    pos = len(writes.artifacts)
                    writes.artifacts.append(art)
                    art_index[entry.md5] = pos
                pending_edges.append((exec_pos, pos, kind, schema.artifact_name(entry.path, entry.md5)))
                linked_paths.append(entry.path)
            elif entry.md5 in art_index:
                # Created earlier in this ingest by another stage: the same artifact.
                pending_edges.append((exec_pos, art_index[entry.md5], kind, schema.artifact_name(entry.path, entry.md5)))
                linked_paths.append(entry.path)
            else:
                if remote is None:
                    remote = remote_root()
                ref = FileRef(
                    path=entry.path,
                    md5=entry.md5,
                    type=artifact_type(entry.path, kinds, kind == OUTPUT),
                    custom={k: fit_int(v) for k, v in (("size", entry.size), ("nfiles", entry.nfiles)) if v is not None},
                )
                if artifact_run is None:
                    artifact_run = RunRecord(pipeline=pipeline, stage=sid, command=cmd, uuid=run_uuid,
                                             git_repo=git_info()[0], remote_root=remote)
                pos = len(writes.artifacts)
                writes.artifacts.append(file_artifact(ref, pipeline, artifact_run))
                writes.attribution[pos] = sid
                art_index[entry.md5] = pos
                created_md5.add(entry.md5)
                pending_edges.append((exec_pos, pos, kind, None))
                created_paths.append(entry.path)
            n_events += 1

        custom_update: Dict[str, Any] = {}
        property_update: Dict[str, Any] = {}
        if found is not None:
            custom_update = {k: v for k, v in params.items() if k not in found.custom}
            if found.properties.get(FINGERPRINT) != fp:
                property_update[FINGERPRINT] = fp
        if found is None:
            action = CREATE
            run = RunRecord(
                pipeline=pipeline,
                stage=sid,
                command=cmd,
                uuid=run_uuid,
                execution_type=sid,
                execution_name=exec_name,
                git_repo=git_info()[0],
                git_start_commit=git_info()[1],
                properties={"Recorded_By": RECORDED_BY, FINGERPRINT: fp},
                custom=params,
            )
            writes.executions.append(ExecWrite(len(plans), sid, run=run))
            writes.stages.add(sid)
        elif pending_edges or custom_update or property_update:
            action = MERGE
            writes.executions.append(ExecWrite(len(plans), sid, existing=found, custom_update=custom_update,
                                               property_update=property_update))
        else:
            action = UNCHANGED
        if action != UNCHANGED:
            writes.edges.extend(pending_edges)
        plans.append(
            StagePlan(
                lock=lock.path,
                stage=sid,
                action=action,
                matched_by=how,
                execution_id=eid or None,
                execution_name=exec_name,
                command=cmd,
                artifacts_created=tuple(created_paths),
                artifacts_linked=tuple(linked_paths),
                events_added=n_events,
                conflicts=tuple(conflicts),
            )
        )
    writes.stages.update(writes.attribution.values())
    return Plan(
        stages=tuple(plans),
        artifacts_created=len(created_md5),
        artifacts_reused=len(reused_md5),
        warnings=tuple(warnings),
        writes=writes,
    )


__all__ = ["StagePlan", "Plan", "Writes", "ExecWrite", "make_plan", "stage_id", "stage_command", "fingerprint",
           "artifact_type", "RECORDED_BY", "CREATE", "MERGE", "UNCHANGED"]
