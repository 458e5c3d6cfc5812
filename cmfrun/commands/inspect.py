"""Inspect a store: list, show, lineage, diff and export. Typed results, no printing.

Every function takes an open :class:`~cmfrun.store.Store` (see
:func:`cmfrun.commands.open_store`, which merges pending journals first) and
returns frozen dataclasses the CLI renders as tables or JSON.

References (``show``, ``lineage``, ``diff``) may name an execution by id,
``execution:<id>``, its uuid (or a unique prefix of 8+ characters) or its name,
and an artifact by ``artifact:<id>``, full name, content hash (or a unique
prefix of 7+ hex characters) or file path (its latest version).

Example::

    store = open_store("mlmd")
    for ex in list_executions(store, pipeline="demo", state="failed"):
        print(ex.id, ex.command)
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from cmfrun import errors, lineage, schema
from cmfrun.lineage import LineageGraph
from cmfrun.records import INPUT, OUTPUT, Artifact, Context, Execution
from cmfrun.store import Store
from cmfrun.store.literals import artifacts_named, filter_literal, like_prefix, safe_literal

_HEX = re.compile(r"^[0-9a-f]{7,32}(\.dir)?$")
_UUIDISH = re.compile(r"^[0-9a-f]{8}(-[0-9a-f-]*)?$")


# -- results ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PipelineInfo:
    """One pipeline: its stages and how many executions (failed ones) it holds."""

    id: int
    name: str
    stages: Tuple[str, ...]
    executions: int
    failed: int
    last_run_ms: int


@dataclass(frozen=True)
class ExecutionInfo:
    """One execution, flattened for listing."""

    id: int
    uuid: str
    pipeline: str
    stage: str
    type: str
    name: str
    state: str
    exit_code: Optional[int]
    command: str
    git_commit: str
    create_ms: int
    duration_s: Optional[float]
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ArtifactInfo:
    """One artifact, flattened for listing. ``hash`` is its uri (DVC md5)."""

    id: int
    name: str
    path: str
    type: str
    hash: str
    pipelines: Tuple[str, ...]
    create_ms: int
    size: Optional[int]


@dataclass(frozen=True)
class ArtifactLink:
    """An artifact as seen from an execution (or the reverse): the event kind and the other side."""

    kind: str
    artifact: ArtifactInfo


@dataclass(frozen=True)
class ExecutionLink:
    """An execution as seen from an artifact: INPUT (it consumed it) or OUTPUT (it produced it)."""

    kind: str
    execution: ExecutionInfo


@dataclass(frozen=True)
class ShowResult:
    """Everything recorded about one execution or artifact.

    ``record`` holds the raw fields (type, name, properties, custom
    properties, times); ``inputs``/``outputs`` for an execution,
    ``executions`` and ``versions`` (other versions of the same path, newest
    first) for an artifact; ``contexts`` the stage/pipeline names.
    """

    kind: str
    id: int
    record: Mapping[str, Any]
    contexts: Tuple[str, ...] = ()
    inputs: Tuple[ArtifactLink, ...] = ()
    outputs: Tuple[ArtifactLink, ...] = ()
    executions: Tuple[ExecutionLink, ...] = ()
    versions: Tuple[ArtifactInfo, ...] = ()


@dataclass(frozen=True)
class LineageResult:
    """Lineage of one record: ``up`` (ancestors) and/or ``down`` (descendants) graphs."""

    root_kind: str
    root_id: int
    root_label: str
    up: Optional[LineageGraph]
    down: Optional[LineageGraph]


@dataclass(frozen=True)
class DiffRow:
    """One compared field: values on each side (strings, ``""`` when absent)."""

    field: str
    a: str
    b: str

    @property
    def same(self) -> bool:
        return self.a == self.b


@dataclass(frozen=True)
class DiffResult:
    """Two executions (or two artifact versions) compared field by field."""

    kind: str
    a: str
    b: str
    rows: Tuple[DiffRow, ...]

    @property
    def differences(self) -> Tuple[DiffRow, ...]:
        return tuple(r for r in self.rows if not r.same)


@dataclass(frozen=True)
class ExportResult:
    """``cmf metadata export``: CMF's ``dumptojson`` structure and counts."""

    pipeline: str
    data: Mapping[str, Any]
    stages: int
    executions: int
    events: int


# -- conversions -----------------------------------------------------------------------------
def _int(value: Any) -> Optional[int]:
    try:
        return int(value) if value not in ("", None) else None
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> Optional[float]:
    try:
        return float(value) if value not in ("", None) else None
    except (TypeError, ValueError):
        return None


def execution_stage(ex: Execution) -> Tuple[str, str]:
    """(pipeline, stage) of an execution from its CMF properties."""
    pipeline = str(ex.properties.get("Pipeline_Type", ""))
    stage = str(ex.properties.get("Stage", ""))
    if not stage:
        ctx = str(ex.properties.get("Context_Type", ""))
        stage = ctx[len(pipeline) + 1 :] if pipeline and ctx.startswith(pipeline + "/") else ctx
    return pipeline, stage


def execution_info(ex: Execution) -> ExecutionInfo:
    """Flatten an execution record."""
    pipeline, stage = execution_stage(ex)
    p = ex.properties
    return ExecutionInfo(
        id=int(ex.id or 0),
        uuid=str(p.get("Execution_uuid", "")),
        pipeline=pipeline,
        stage=stage,
        type=ex.type,
        name=ex.name,
        state=ex.state,
        exit_code=_int(p.get("Exit_Code")),
        command=str(p.get("Execution", "")),
        git_commit=str(p.get("Git_End_Commit", "") or p.get("Git_Start_Commit", "")),
        create_ms=ex.create_ms,
        duration_s=_float(p.get("Duration_s")),
        params=dict(ex.custom),
    )


def artifact_pipelines(art: Artifact) -> Tuple[str, ...]:
    """Pipelines named in an artifact's ``url`` (``<pipeline>:<location>,...``)."""
    url = str(art.properties.get("url", ""))
    if art.type == schema.LABEL or not url:
        return ()
    return tuple(dict.fromkeys(e.split(":", 1)[0] for e in url.split(",") if ":" in e))


def artifact_info(art: Artifact) -> ArtifactInfo:
    """Flatten an artifact record."""
    return ArtifactInfo(
        id=int(art.id or 0),
        name=art.name,
        path=art.path,
        type=art.type,
        hash=art.uri,
        pipelines=artifact_pipelines(art),
        create_ms=art.create_ms,
        size=_int(art.custom.get("size")),
    )


def _record_dict(rec: Union[Execution, Artifact]) -> Dict[str, Any]:
    d: Dict[str, Any] = {"id": rec.id, "type": rec.type, "name": rec.name}
    if isinstance(rec, Artifact):
        d["uri"] = rec.uri
    else:
        d["state"] = rec.state
    d.update(
        {
            "properties": dict(rec.properties),
            "custom_properties": dict(rec.custom),
            "create_time_since_epoch": rec.create_ms,
            "last_update_time_since_epoch": rec.update_ms,
        }
    )
    return d


# -- lookups ---------------------------------------------------------------------------------
def _pipeline(store: Store, name: str) -> Context:
    ctx = store.context(schema.PIPELINE_CONTEXT, name)
    if ctx is None:
        known = ", ".join(sorted(c.name for c in store.contexts_by_type(schema.PIPELINE_CONTEXT))) or "none"
        raise errors.NotFoundError(f"no pipeline {name!r} in the store (pipelines: {known})")
    return ctx


def _is_id(text: str) -> bool:
    # Long digit strings are hashes, not ids (MLMD ids are int64). isdigit() alone accepts
    # digits int() refuses ("²").
    return text.isascii() and text.isdigit() and len(text) <= 15


def find_executions(store: Store, ref: str) -> List[Execution]:
    """Executions a reference names: id, ``execution:<id>``, uuid or uuid prefix, or name."""
    ref = ref.strip()
    text = ref.split(":", 1)[1] if ref.startswith("execution:") else ref
    if _is_id(text):
        return store.executions_by_id([int(text)])
    if ref.startswith("execution:") or _UUIDISH.match(text) or len(text) >= 8:
        # Wrapper executions are named after their uuid: try that cheap filter first.
        named = [e for e in store.executions(f"name LIKE {like_prefix(text)}") if e.name.startswith(text)]
        if named:
            return named

        def uuids(e: Execution) -> List[str]:
            return [u for u in str(e.properties.get("Execution_uuid", "")).split(",") if u]

        if _UUIDISH.match(text):
            return [e for e in store.executions() if any(u.startswith(text) for u in uuids(e))]
    return []


def _path_variants(ref: str, root: Optional[Path]) -> List[str]:
    out = [ref]
    norm = ref[2:] if ref.startswith("./") else ref
    out.append(norm)
    if root is not None:
        p = Path(ref)
        absolute = p if p.is_absolute() else Path.cwd() / p
        try:
            out.append(Path(os.path.normpath(absolute)).relative_to(root.absolute()).as_posix())
        except ValueError:
            pass
    return list(dict.fromkeys(x for x in out if x))


def find_artifacts(store: Store, ref: str, root: Optional[Path] = None) -> List[Artifact]:
    """Artifacts a reference names, newest first: ``artifact:<id>``, full name, hash
    (or a prefix of 7+ hex characters), or file path (every version)."""
    ref = ref.strip()
    if ref.startswith("artifact:") and _is_id(ref[9:]):
        return store.artifacts_by_id([int(ref[9:])])
    found = artifacts_named(store, [ref])
    if not found and _is_id(ref):
        found = store.artifacts_by_id([int(ref)])
    if not found and _HEX.match(ref):
        found = store.artifacts_by_uri([ref]) or [
            a for a in store.artifacts(f"uri LIKE {like_prefix(ref)}") if a.uri.startswith(ref)
        ]
    if not found:
        for path in _path_variants(ref, root):
            found = [a for a in store.artifacts(f"name LIKE {like_prefix(path + ':')}") if a.path == path]
            if found:
                break
    if not found:
        found = _by_content(store, ref)
    return sorted(found, key=lambda a: (a.create_ms, a.id or 0), reverse=True)


def _by_content(store: Store, ref: str) -> List[Artifact]:
    """An existing file whose bytes were recorded under another path (identity is the
    content hash, so the artifact carries the first path's name)."""
    from cmfrun.hashing import Hasher

    path = Path(ref)
    if not path.exists():
        return []
    hasher = Hasher.for_path(path)
    try:
        return store.artifacts_by_uri([hasher.hash(path).md5])
    except errors.CmfrunError:
        return []
    finally:
        hasher.close()


def resolve(store: Store, ref: str, root: Optional[Path] = None) -> Union[Execution, Artifact]:
    """The one record a reference names (artifacts: the latest version of a path).

    Raises :class:`~cmfrun.errors.NotFoundError` when nothing matches and
    :class:`~cmfrun.errors.UsageError` when a uuid prefix or hash prefix is ambiguous.
    """
    if not ref.strip():
        raise errors.UsageError("empty reference: give an execution id/uuid or an artifact name, path or hash")
    if not ref.startswith("artifact:"):
        execs = find_executions(store, ref)
        if len(execs) == 1:
            return execs[0]
        if len(execs) > 1:
            ids = ", ".join(str(e.id) for e in execs[:5])
            raise errors.UsageError(f"{ref!r} names {len(execs)} executions (ids {ids}...): give more of the uuid")
    if ref.startswith("execution:"):
        raise errors.NotFoundError(f"no execution {ref[10:]!r} in the store")
    arts = find_artifacts(store, ref, root)
    if arts:
        hashes = {a.uri for a in arts}
        paths = {a.path for a in arts}
        if len(hashes) > 1 and len(paths) > 1 and _HEX.match(ref):
            raise errors.UsageError(f"hash prefix {ref!r} matches {len(hashes)} artifacts: give more of it")
        return arts[0]
    raise errors.NotFoundError(
        f"no execution or artifact {ref!r} in the store (try an id, uuid, artifact name, path or hash)"
    )


# -- commands --------------------------------------------------------------------------------
def list_pipelines(store: Store) -> List[PipelineInfo]:
    """Every pipeline with its stages and execution counts."""
    out = []
    for pipe in store.contexts_by_type(schema.PIPELINE_CONTEXT):
        stages = store.child_contexts(int(pipe.id or 0))
        execs = [e for s in stages for e in store.executions_by_context(int(s.id or 0))]
        out.append(
            PipelineInfo(
                id=int(pipe.id or 0),
                name=pipe.name,
                stages=tuple(s.name[len(pipe.name) + 1 :] if s.name.startswith(pipe.name + "/") else s.name for s in stages),
                executions=len(execs),
                failed=sum(1 for e in execs if e.state == "FAILED"),
                last_run_ms=max((e.create_ms for e in execs), default=0),
            )
        )
    return out


def list_executions(
    store: Store,
    *,
    pipeline: Optional[str] = None,
    stage: Optional[str] = None,
    uuid: Optional[str] = None,
    state: Optional[str] = None,
    limit: Optional[int] = None,
) -> List[ExecutionInfo]:
    """Executions, oldest first, narrowed by pipeline, stage (short or full name), uuid
    (prefix) and state; ``limit`` keeps only the newest ``limit`` matches.

    Pipeline, stage and state become one MLMD filter query, so only matching
    records are read; with ``limit`` only that many.
    """
    clauses: List[str] = []
    if pipeline or stage:
        where = stage_filter(store, pipeline, stage)
        if where is None:
            return []
        clauses.append(where)
    if state:
        if state.upper() not in ("RUNNING", "COMPLETE", "FAILED", "CANCELED", "UNKNOWN", "NEW", "CACHED"):
            raise errors.UsageError(f"unknown execution state {state!r}")
        clauses.append(f"last_known_state = {state.upper()}")
    query = " AND ".join(clauses)
    if limit is not None and not uuid:
        execs = store.newest_executions(query, limit) if limit > 0 else []
    else:
        execs = store.executions(query)
    infos = [execution_info(e) for e in execs]
    if pipeline:
        infos = [i for i in infos if i.pipeline == pipeline]
    if stage and not pipeline:
        infos = [i for i in infos if stage in (i.stage, f"{i.pipeline}/{i.stage}")]
    if uuid:
        infos = [i for i in infos if any(u.startswith(uuid) for u in i.uuid.split(","))]
    infos.sort(key=lambda i: (i.create_ms, i.id))
    if limit is not None and len(infos) > limit:
        infos = infos[-limit:] if limit > 0 else []
    return infos


def stage_filter(store: Store, pipeline: Optional[str], stage: Optional[str]) -> Optional[str]:
    """An MLMD filter query for executions of ``pipeline``'s stage contexts (all, or the
    stage ``stage``, short or full name; without ``pipeline``: that stage in any pipeline);
    ``None`` when no stage context matches. Names no filter query may hold are matched
    here, and the query names context ids instead."""
    where = _stage_where(store, pipeline, stage)
    return None if where is None else f"contexts_a.type = {safe_literal(schema.STAGE_CONTEXT)} AND {where}"


def _stage_where(store: Store, pipeline: Optional[str], stage: Optional[str]) -> Optional[str]:
    if pipeline:
        _pipeline(store, pipeline)
        if stage:
            full = stage if stage.startswith(pipeline + "/") else schema.stage_context_name(pipeline, stage)
            ctx = store.context(schema.STAGE_CONTEXT, full)
            if ctx is None:
                raise errors.NotFoundError(f"pipeline {pipeline!r} has no stage {stage!r}")
            return f"contexts_a.id = {int(ctx.id or 0)}"
        pattern = filter_literal(pipeline + "/%")
        if pattern is not None:
            return f"contexts_a.name LIKE {pattern}"
        ids = [c.id for c in store.contexts_by_type(schema.STAGE_CONTEXT) if c.name.startswith(pipeline + "/")]
    else:
        assert stage
        name, suffix = filter_literal(stage), filter_literal("%/" + stage)
        if name is not None and suffix is not None:
            return f"(contexts_a.name = {name} OR contexts_a.name LIKE {suffix})"
        ids = [c.id for c in store.contexts_by_type(schema.STAGE_CONTEXT) if c.name == stage or c.name.endswith("/" + stage)]
    return f"contexts_a.id IN ({','.join(str(int(i or 0)) for i in ids)})" if ids else None


def list_artifacts(
    store: Store, *, pipeline: Optional[str] = None, name: Optional[str] = None, type: Optional[str] = None
) -> List[ArtifactInfo]:
    """Artifacts, oldest first. ``pipeline``: artifacts its executions used or made (shared
    ones included); ``name``: full name, path or hash; ``type``: artifact type (any case)."""
    if name:
        arts = find_artifacts(store, name)
    elif type and not pipeline:
        arts = [a for t in store.type_names("artifact") if t.lower() == type.lower() for a in store.artifacts_by_type(t)]
    else:
        arts = store.artifacts()
    if pipeline:
        pipe = _pipeline(store, pipeline)
        stages = store.child_contexts(int(pipe.id or 0))
        exec_ids = [int(e.id or 0) for s in stages for e in store.executions_by_context(int(s.id or 0))]
        ids = {ev.artifact_id for ev in store.events_by_execution(exec_ids)}
        for s in stages:
            ids.update(int(a.id or 0) for a in store.artifacts_by_context(int(s.id or 0)))
        arts = [a for a in arts if a.id in ids]
    if type:
        arts = [a for a in arts if a.type.lower() == type.lower()]
    return [artifact_info(a) for a in sorted(arts, key=lambda a: (a.create_ms, a.id or 0))]


def _stage_names(store: Store, contexts: Sequence[Context]) -> Tuple[str, ...]:
    names: List[str] = []
    for ctx in contexts:
        names.append(ctx.name)
    return tuple(names)


def show(store: Store, ref: str, root: Optional[Path] = None) -> ShowResult:
    """Everything recorded about the execution or artifact ``ref`` names."""
    rec = resolve(store, ref, root)
    rid = int(rec.id or 0)
    if isinstance(rec, Execution):
        events = lineage.io_events(store, [rid])
        arts = {a.id: a for a in store.artifacts_by_id(sorted({ev.artifact_id for ev in events}))}
        links = [(ev.kind, arts[ev.artifact_id]) for ev in events if ev.artifact_id in arts]
        return ShowResult(
            kind="execution",
            id=rid,
            record=_record_dict(rec),
            contexts=_stage_names(store, store.contexts_by_execution(rid)),
            inputs=tuple(ArtifactLink(k, artifact_info(a)) for k, a in links if k == INPUT),
            outputs=tuple(ArtifactLink(k, artifact_info(a)) for k, a in links if k == OUTPUT),
        )
    events = [ev for ev in store.events_by_artifact([rid]) if ev.kind in (INPUT, OUTPUT)]
    execs = {e.id: e for e in store.executions_by_id(sorted({ev.execution_id for ev in events}))}
    ex_links = tuple(ExecutionLink(ev.kind, execution_info(execs[ev.execution_id])) for ev in events if ev.execution_id in execs)
    versions = [a for a in find_artifacts(store, rec.path, root) if a.id != rid] if rec.path else []
    return ShowResult(
        kind="artifact",
        id=rid,
        record=_record_dict(rec),
        contexts=_stage_names(store, store.contexts_by_artifact(rid)),
        executions=ex_links,
        versions=tuple(artifact_info(a) for a in versions),
    )


def lineage_of(
    store: Store, ref: str, *, up: bool = True, down: bool = True, depth: Optional[int] = None, root: Optional[Path] = None
) -> LineageResult:
    """Ancestors (``up``) and/or descendants (``down``) of what ``ref`` names (a path: its latest version)."""
    if depth is not None and depth < 0:
        raise errors.UsageError("--depth must be 0 or more")
    rec = resolve(store, ref, root)
    rid = int(rec.id or 0)
    kw: Dict[str, Any] = (
        {"execution_ids": [rid]} if isinstance(rec, Execution) else {"artifact_ids": [rid]}
    )
    g_up = lineage.ancestors(store, depth=depth, **kw) if up else None
    g_down = lineage.descendants(store, depth=depth, **kw) if down else None
    if isinstance(rec, Execution):
        label = f"{execution_stage(rec)[1] or rec.type} #{rid}"
        kind = "execution"
    else:
        label, kind = rec.name, "artifact"
    return LineageResult(kind, rid, label, g_up, g_down)


def _fmt(value: Any) -> str:
    return "" if value is None else str(value)


def _io_by_path(store: Store, execution_id: int, kind: str) -> Dict[str, str]:
    events = [ev for ev in lineage.io_events(store, [execution_id]) if ev.kind == kind]
    arts = store.artifacts_by_id(sorted({ev.artifact_id for ev in events}))
    out: Dict[str, str] = {}
    for a in arts:
        key = a.path if a.type != schema.ENVIRONMENT else f"environment:{a.path}"
        out[key] = a.uri
    return out


def _execution_fields(store: Store, ex: Execution) -> Dict[str, str]:
    p = ex.properties
    pipeline, stage = execution_stage(ex)
    fields: Dict[str, str] = {
        "pipeline": pipeline,
        "stage": stage,
        "command": _fmt(p.get("Execution")),
        "state": ex.state,
        "exit code": _fmt(p.get("Exit_Code")),
        "git commit (start)": _fmt(p.get("Git_Start_Commit")),
        "git commit (end)": _fmt(p.get("Git_End_Commit")),
        "git dirty": _fmt(p.get("Git_Dirty")),
        "git repo": _fmt(p.get("Git_Repo")),
        "host": _fmt(p.get("Host")),
        "user": _fmt(p.get("User")),
        "working dir": _fmt(p.get("Working_Dir")),
        "duration s": _fmt(p.get("Duration_s")),
        "uuid": _fmt(p.get("Execution_uuid")),
    }
    for key, value in sorted(ex.custom.items()):
        fields[f"param {key}" if key != "Python_Env" else "environment file"] = _fmt(value)
    for path, md5 in sorted(_io_by_path(store, int(ex.id or 0), INPUT).items()):
        fields[f"input {path}"] = md5
    for path, md5 in sorted(_io_by_path(store, int(ex.id or 0), OUTPUT).items()):
        fields[f"output {path}"] = md5
    return fields


def _artifact_fields(store: Store, art: Artifact) -> Dict[str, str]:
    fields: Dict[str, str] = {"name": art.name, "path": art.path, "type": art.type, "hash": art.uri}
    for key, value in sorted(art.properties.items()):
        fields[f"property {key}"] = _fmt(value)
    for key, value in sorted(art.custom.items()):
        fields[f"custom {key}"] = _fmt(value)
    prod = lineage.producers(store, [int(art.id or 0)])
    if prod:
        [ex] = store.executions_by_id(prod[-1:])
        fields["producer"] = f"{ex.id}"
        for key, value in _execution_fields(store, ex).items():
            fields[f"producer {key}"] = value
    return fields


def diff(store: Store, a: str, b: str, root: Optional[Path] = None) -> DiffResult:
    """Compare two executions, or two artifacts (usually two versions of one path), field by field.

    For artifacts the producing executions are compared too (command, params,
    inputs, git commit...). When ``a`` and ``b`` name the same path (e.g.
    ``data.csv`` twice) nothing would differ: name the versions by hash.
    """
    ra, rb = resolve(store, a, root), resolve(store, b, root)
    if type(ra) is not type(rb):
        raise errors.UsageError(f"cannot compare an execution with an artifact ({a!r} vs {b!r})")
    if isinstance(ra, Execution):
        fa, fb = _execution_fields(store, ra), _execution_fields(store, rb)  # type: ignore[arg-type]
        kind = "execution"
    else:
        fa, fb = _artifact_fields(store, ra), _artifact_fields(store, rb)  # type: ignore[arg-type]
        kind = "artifact"
    keys = list(dict.fromkeys([*fa, *fb]))
    rows = tuple(DiffRow(k, fa.get(k, ""), fb.get(k, "")) for k in keys)
    return DiffResult(kind, f"{kind} {ra.id}", f"{kind} {rb.id}", rows)


def export_metadata(store: Store, pipeline: str, execution_id: Optional[int] = None) -> ExportResult:
    """CMF's ``dumptojson`` of one pipeline (optionally one execution), as ``cmf metadata push`` expects."""
    from cmfrun.query import dump_pipeline

    _pipeline(store, pipeline)
    data = dump_pipeline(store, pipeline, execution_id)
    if execution_id is not None and not any(s["executions"] for p in data["Pipeline"] for s in p["stages"]):
        raise errors.NotFoundError(f"pipeline {pipeline!r} has no execution {execution_id}")
    stages = [s for p in data["Pipeline"] for s in p["stages"]]
    execs = [e for s in stages for e in s["executions"]]
    return ExportResult(
        pipeline=pipeline,
        data=data,
        stages=len(stages),
        executions=len(execs),
        events=sum(len(e["events"]) for e in execs),
    )


__all__ = [
    "PipelineInfo",
    "ExecutionInfo",
    "ArtifactInfo",
    "ArtifactLink",
    "ExecutionLink",
    "ShowResult",
    "LineageResult",
    "DiffRow",
    "DiffResult",
    "ExportResult",
    "execution_info",
    "artifact_info",
    "execution_stage",
    "find_executions",
    "find_artifacts",
    "resolve",
    "list_pipelines",
    "list_executions",
    "stage_filter",
    "list_artifacts",
    "show",
    "lineage_of",
    "diff",
    "export_metadata",
]
