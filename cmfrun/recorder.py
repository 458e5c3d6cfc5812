"""Turn a finished (or running) run into CMF-shaped MLMD records, atomically.

The wrapper (``cmfrun --``), ``cmf dvc ingest`` and the API all describe a
run as a :class:`RunRecord` and call :func:`record_run`, so the same command
leaves the same records whichever way it was recorded. Artifacts are
identified by content hash (uri): an existing artifact with the same hash is
linked, not duplicated.

Example::

    run = RunRecord(pipeline="demo", stage="train", command="python train.py",
                    uuid=new_uuid(), inputs=[FileRef("data.csv", "d41d8...")])
    result = record_run(store, run)
"""
from __future__ import annotations

import uuid as _uuid
from dataclasses import dataclass, field, replace
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from cmfrun import schema
from cmfrun.records import COMPLETE, INPUT, OUTPUT, Artifact, Context, Execution, Link, Props
from cmfrun.store import Store, is_already_exists


def new_uuid() -> str:
    """A uuid1 in canonical form, as CMF uses for ``Execution_uuid``."""
    return str(_uuid.uuid1())


@dataclass(frozen=True)
class FileRef:
    """An artifact identified by content: ``path`` (relative to the project root, ``/``
    separators) and its DVC md5 (``.dir`` for directories)."""

    path: str
    md5: str
    type: str = schema.DATASET
    size: Optional[int] = None
    nfiles: Optional[int] = None
    properties: Props = field(default_factory=dict)
    custom: Props = field(default_factory=dict)


@dataclass(frozen=True)
class RunRecord:
    """Everything known about one run of a stage.

    ``properties`` holds the cmfrun extras of :data:`schema.CMFRUN_EXECUTION_PROPERTIES`
    (exit code, times, host...); the CMF ones are filled by :func:`record_run`.
    ``custom`` holds parameters (CMF puts the user's dict there).
    """

    pipeline: str
    stage: str
    command: str
    uuid: str
    execution_type: str = ""
    execution_name: str = ""
    state: str = COMPLETE
    git_repo: str = ""
    git_start_commit: str = ""
    git_end_commit: str = ""
    properties: Props = field(default_factory=dict)
    custom: Props = field(default_factory=dict)
    inputs: Sequence[FileRef] = ()
    outputs: Sequence[FileRef] = ()
    remote_root: str = ""
    pipeline_custom: Props = field(default_factory=dict)
    stage_custom: Props = field(default_factory=dict)


@dataclass(frozen=True)
class RecordResult:
    """What :func:`record_run` wrote."""

    execution_id: int
    stage_context_id: int
    pipeline_context_id: int
    created: Tuple[str, ...] = ()
    reused: Tuple[str, ...] = ()
    already_recorded: bool = False
    hash_conflicts: Tuple[str, ...] = ()


def ensure_contexts(
    store: Store, pipeline: str, stage: str, pipeline_custom: Props = {}, stage_custom: Props = {}
) -> Tuple[Context, Context]:
    """Get or create the pipeline context and its stage context (CMF names)."""
    pipe = store.get_or_create_context(schema.PIPELINE_CONTEXT, pipeline, {"Pipeline": pipeline}, pipeline_custom)
    stage_name = schema.stage_context_name(pipeline, stage)
    st = store.get_or_create_context(
        schema.STAGE_CONTEXT, stage_name, {"Pipeline_Stage": stage_name}, stage_custom, parent_id=pipe.id
    )
    return pipe, st


def execution_properties(run: RunRecord, pipe: Context, stage: Context) -> Dict[str, object]:
    """The CMF property set for ``run`` plus its cmfrun extras."""
    props: Dict[str, object] = dict(run.properties)
    props.update(
        {
            "Context_Type": stage.name,
            "Execution_type_name": stage.name,
            "Context_ID": int(stage.id or 0),
            "Pipeline_Type": pipe.name,
            "Pipeline_id": int(pipe.id or 0),
            "Execution": run.command,
            "Execution_uuid": run.uuid,
            "Git_Repo": run.git_repo,
            "Git_Start_Commit": run.git_start_commit,
            "Git_End_Commit": run.git_end_commit,
            "Stage": run.stage,
        }
    )
    return props


def file_artifact(ref: FileRef, pipeline: str, run: RunRecord) -> Artifact:
    """A new artifact record for ``ref`` following the CMF naming rules."""
    location = schema.dvc_location(run.remote_root, ref.md5) if run.remote_root else ref.md5
    url = schema.artifact_url(pipeline, location)
    props: Dict[str, object] = {"Commit": ref.md5, "url": url}
    custom: Dict[str, object] = dict(ref.custom)
    if ref.size is not None:
        custom.setdefault("size", int(ref.size))
    if ref.nfiles is not None:
        custom.setdefault("nfiles", int(ref.nfiles))
    if ref.type == schema.MODEL:
        props.update({"model_framework": "Default", "model_type": "Default", "model_name": "Default"})
        name = schema.model_name(ref.path, ref.md5, run.uuid)
    elif ref.type == schema.METRICS:
        props = {"metrics_name": ref.path}
        name = schema.model_name(ref.path, ref.md5, run.uuid)
    else:
        props["git_repo"] = run.git_repo
        name = schema.artifact_name(ref.path, ref.md5)
    props.update(ref.properties)
    declared = schema.ARTIFACT_PROPERTIES.get(ref.type, {})
    return Artifact(
        type=ref.type,
        name=name,
        uri=ref.md5,
        properties={k: v for k, v in props.items() if k in declared},  # type: ignore[misc]
        custom=custom,  # type: ignore[arg-type]
    )


def plan_links(store: Store, run: RunRecord, pipeline: str) -> Tuple[List[Link], List[str], List[str]]:
    """Links for the run's artifacts: existing ones by hash (one batched lookup), new ones otherwise.

    Each artifact gets one event per run, of the first kind listed (inputs come first).
    """
    refs = [(r, INPUT) for r in run.inputs] + [(r, OUTPUT) for r in run.outputs]
    existing: Dict[str, Artifact] = {}
    for art in store.artifacts_by_uri({r.md5 for r, _ in refs}):
        existing.setdefault(art.uri, art)
    links: List[Link] = []
    created: List[str] = []
    reused: List[str] = []
    seen = set()
    for ref, kind in refs:
        # One event per artifact per execution, the first kind wins (as the API does): an
        # output with the bytes of an input (a plain copy) is the same artifact, and an
        # OUTPUT event on it would make it its own parent, a cycle lineage readers (CMF's
        # recursive CmfQuery among them) cannot walk.
        if ref.md5 in seen:
            continue
        seen.add(ref.md5)
        found = existing.get(ref.md5)
        if found is not None:
            art = found
            url = str(art.properties.get("url", ""))
            merged = schema.extend_url(url, pipeline)
            if merged != url:
                art = replace(art, properties={**art.properties, "url": merged})
                existing[ref.md5] = art
            links.append(Link(art, kind, path_key=schema.artifact_name(ref.path, ref.md5)))
            reused.append(ref.path)
        else:
            links.append(Link(file_artifact(ref, pipeline, run), kind))
            created.append(ref.path)
    return links, created, reused


def record_run(store: Store, run: RunRecord, *, retries: int = 2) -> RecordResult:
    """Write ``run`` with its artifacts, events and context links in one transaction.

    Idempotent when ``run.execution_name`` is set: a second call for the same
    (type, name) writes nothing and returns ``already_recorded=True``.
    """
    exec_type = run.execution_type or run.stage
    with store.write_lock():
        pipe, stage = ensure_contexts(store, run.pipeline, run.stage, run.pipeline_custom, run.stage_custom)
        for attempt in range(retries + 1):
            if run.execution_name:
                found = store.execution_by_type_and_name(exec_type, run.execution_name)
                if found is not None:
                    return RecordResult(int(found.id or 0), int(stage.id or 0), int(pipe.id or 0), already_recorded=True)
            links, created, reused = plan_links(store, run, run.pipeline)
            execution = Execution(
                type=exec_type,
                name=run.execution_name,
                properties=execution_properties(run, pipe, stage),  # type: ignore[arg-type]
                custom=run.custom,
                state=run.state,
            )
            try:
                eid, _ = store.put_execution(execution, links, [int(stage.id or 0)])
            except Exception as exc:
                if is_already_exists(exc) and attempt < retries:
                    continue  # a concurrent writer created one of our artifacts first: re-plan
                raise
            return RecordResult(eid, int(stage.id or 0), int(pipe.id or 0), tuple(created), tuple(reused))
    raise AssertionError("unreachable")


def latest_execution(store: Store, pipeline: str, stage: str) -> Optional[Execution]:
    """The most recent execution associated with ``<pipeline>/<stage>``, or ``None``."""
    ctx = store.context(schema.STAGE_CONTEXT, schema.stage_context_name(pipeline, stage))
    if ctx is None:
        return None
    execs = store.executions_by_context(int(ctx.id or 0))
    return max(execs, key=lambda e: (e.create_ms, e.id or 0)) if execs else None


__all__ = [
    "FileRef",
    "RunRecord",
    "RecordResult",
    "new_uuid",
    "ensure_contexts",
    "execution_properties",
    "file_artifact",
    "plan_links",
    "record_run",
    "latest_execution",
]
