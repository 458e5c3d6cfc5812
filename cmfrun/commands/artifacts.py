"""``cmf artifact push/pull``: move the bytes of recorded artifacts to and from the DVC remote.

The artifacts come from the store (a pipeline's, an execution's, or one named
by name, path or hash); the bytes move through :mod:`cmfrun.remotes.transfer`
(DVC's transfer code, the project's default DVC remote from ``cmf init``).

The CMF-style functions :func:`artifact_push`, :func:`artifact_pull` and
:func:`artifact_pull_single` have the signatures of ``cmflib.cmf``'s.

Example::

    store = open_store("mlmd")
    report = push_artifacts(store, Path("."), pipeline="demo")
    print(len(report.pushed), "pushed,", len(report.already), "already there")
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set

from cmfrun import config, errors, schema
from cmfrun.commands import inspect, open_store
from cmfrun.records import Artifact
from cmfrun.remotes.cache import is_md5
from cmfrun.remotes.transfer import ArtifactRef, Location, PullReport, PushReport, locate, pull, push
from cmfrun.store import Store


def _ref(art: Artifact) -> ArtifactRef:
    return ArtifactRef(art.path, art.uri, art.name, art.type)


def select_artifacts(
    store: Store,
    *,
    pipeline: Optional[str] = None,
    execution: Optional[str] = None,
    artifact: Optional[str] = None,
    root: Optional[Path] = None,
) -> List[Artifact]:
    """The file artifacts (those named by a DVC md5) of a pipeline (``None``: every one),
    narrowed to one execution (id, uuid or prefix) and/or one artifact (name, path or hash)."""
    ids: Optional[Set[Optional[int]]] = None
    if pipeline:
        ids = _pipeline_artifact_ids(store, pipeline)
    if execution:
        found = inspect.find_executions(store, execution)
        if not found:
            raise errors.NotFoundError(f"no execution {execution!r} in the store")
        if len(found) > 1:
            raise errors.UsageError(f"execution {execution!r} is ambiguous ({len(found)} match): give more of its uuid")
        of_execution: Set[Optional[int]] = {ev.artifact_id for ev in store.events_by_execution([int(found[0].id or 0)])}
        ids = of_execution if ids is None else ids & of_execution
    if artifact:
        arts = inspect.find_artifacts(store, artifact, root)
        if not arts:
            raise errors.NotFoundError(f"no artifact {artifact!r} in the store")
        if ids is not None:
            arts = [a for a in arts if a.id in ids]
            if not arts:
                raise errors.NotFoundError(f"artifact {artifact!r} is not one of the selected pipeline/execution's")
    elif ids is not None:
        arts = store.artifacts_by_id(sorted(i for i in ids if i is not None))
    else:
        arts = store.artifacts()
    return [a for a in sorted(arts, key=lambda a: (a.create_ms, a.id or 0)) if is_md5(a.uri) and a.path]


def _pipeline_artifact_ids(store: Store, pipeline: str) -> Set[Optional[int]]:
    """Ids of the artifacts a pipeline's executions used or made (as ``cmf artifact list -p``),
    from events and attributions only: the artifacts themselves are read once, by id, later."""
    pipe = store.context(schema.PIPELINE_CONTEXT, pipeline)
    if pipe is None:
        inspect.list_artifacts(store, pipeline=pipeline)  # raises the usual "no pipeline" error
        return set()
    stages = store.child_contexts(int(pipe.id or 0))
    exec_ids = [int(e.id or 0) for st in stages for e in store.executions_by_context(int(st.id or 0))]
    ids: Set[Optional[int]] = {ev.artifact_id for ev in store.events_by_execution(exec_ids)}
    for st in stages:
        ids.update(a.id for a in store.artifacts_by_context(int(st.id or 0)))
    return ids


def _latest_per_path(arts: Sequence[Artifact]) -> List[Artifact]:
    """One artifact per path, the newest: a pull writes one version of each file."""
    latest: Dict[str, Artifact] = {}
    for art in sorted(arts, key=lambda a: (a.create_ms, a.id or 0)):
        latest[art.path] = art
    return list(latest.values())


def push_artifacts(
    store: Store,
    root: Path,
    *,
    pipeline: Optional[str] = None,
    execution: Optional[str] = None,
    jobs: Optional[int] = None,
    callback: Any = None,
) -> PushReport:
    """Push the cache objects of the selected artifacts (every version) to the default remote."""
    arts = select_artifacts(store, pipeline=pipeline, execution=execution, root=root)
    refs = list({a.uri: _ref(a) for a in arts}.values())
    return push(root, refs, jobs=jobs, callback=callback)


def pull_artifacts(
    store: Store,
    root: Path,
    *,
    pipeline: Optional[str] = None,
    artifact: Optional[str] = None,
    execution: Optional[str] = None,
    out_dir: Optional[Path] = None,
    force: bool = False,
    jobs: Optional[int] = None,
    callback: Any = None,
) -> PullReport:
    """Fetch the selected artifacts (the newest version of each path) and write them at their
    recorded paths under ``out_dir`` (default: the project root)."""
    arts = _latest_per_path(select_artifacts(store, pipeline=pipeline, execution=execution, artifact=artifact, root=root))
    if not arts:
        raise errors.NotFoundError("no file artifacts selected: nothing to pull")
    return pull(root, [_ref(a) for a in arts], out_dir=out_dir, force=force, jobs=jobs, callback=callback)


def artifact_locations(root: Path, hashes: Sequence[str], *, remote: bool = True) -> Dict[str, Location]:
    """Whether each hash's bytes are in the local DVC cache and (``remote``) on the default remote.

    Without a configured remote, ``on_remote`` is ``None``.
    """
    try:
        return locate(root, hashes, remote=remote)
    except errors.UsageError:
        return locate(root, hashes, remote=False)


# -- CMF's module functions ------------------------------------------------------------------
def _store_and_root(filepath: str) -> "tuple[Store, Path]":
    return open_store(filepath, create=False), config.find_root(".")


def artifact_push(pipeline_name: str, filepath: str = "./mlmd", jobs: int = 32) -> PushReport:
    """Push the artifacts of ``pipeline_name`` in the store ``filepath`` to the configured remote
    (``cmflib.cmf.artifact_push``).

    Example::

        report = artifact_push("example_pipeline", "./mlmd", 32)
    """
    store, root = _store_and_root(filepath)
    return push_artifacts(store, root, pipeline=pipeline_name, jobs=jobs)


def artifact_pull(pipeline_name: str, file_name: str = "./mlmd") -> PullReport:
    """Pull every artifact of ``pipeline_name`` to its recorded path (``cmflib.cmf.artifact_pull``).

    Example::

        report = artifact_pull("example_pipeline", "./mlmd")
    """
    store, root = _store_and_root(file_name)
    return pull_artifacts(store, root, pipeline=pipeline_name)


def artifact_pull_single(pipeline_name: str, file_name: str, artifact_name: str) -> PullReport:
    """Pull one artifact (name, path or hash) of ``pipeline_name`` (``cmflib.cmf.artifact_pull_single``).

    Example::

        report = artifact_pull_single("example_pipeline", "./mlmd", "data/raw.csv")
    """
    store, root = _store_and_root(file_name)
    return pull_artifacts(store, root, pipeline=pipeline_name, artifact=artifact_name)


__all__ = [
    "select_artifacts",
    "push_artifacts",
    "pull_artifacts",
    "artifact_locations",
    "artifact_push",
    "artifact_pull",
    "artifact_pull_single",
]
