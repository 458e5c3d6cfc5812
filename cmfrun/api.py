"""The CMF-compatible Python API: :class:`Cmf`.

Same constructor and methods as ``cmflib.cmf.Cmf`` and the same records in the
store (see ``docs/schema.md``), without cmflib's costs: no ``dvc add``, no git
commit and no ``pip freeze`` per call, no branch switch, no ``chdir``, no
``sys.exit``. Each ``log_*`` call writes its artifact, event and context links
in one MLMD transaction, so a process killed at any point leaves either the
whole write or none of it.

Returned objects are cmfrun's frozen records (:class:`~cmfrun.records.Context`,
:class:`~cmfrun.records.Execution`, :class:`~cmfrun.records.Artifact`): they
have ``id``, ``name``, ``properties`` and ``custom_properties`` (artifacts also
``uri``) like MLMD's protobufs, but values are plain ``int``/``float``/``str``
(``ex.properties["Execution_uuid"]``, not ``.string_value``).

Example::

    from cmfrun import Cmf

    cmf = Cmf(filepath="mlmd", pipeline_name="demo")
    cmf.create_context(pipeline_stage="train")
    cmf.create_execution(execution_type="Train", custom_properties={"lr": 0.01})
    cmf.log_dataset("data/train.csv", "input")
    cmf.log_model("model.pkl", "output", model_framework="sklearn")
    cmf.log_execution_metrics("eval", {"auc": 0.91})
    for step in range(3):
        cmf.log_metric("train", {"loss": 1.0 / (step + 1)})
    cmf.commit_metrics("train")
    cmf.finalize()
"""
from __future__ import annotations

import getpass
import logging
import os
import shlex
import socket
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union

from cmfrun import config, envinfo, gitinfo, parquet, schema
from cmfrun.errors import (
    GraphNotConfiguredError,
    InputFileError,
    NotFoundError,
    UsageError,
)
from cmfrun.hashing import ContentHash, Hasher, plain_md5
from cmfrun.remotes import cache
from cmfrun.remotes.setup import InitConfig
from cmfrun.records import COMPLETE, FAILED, INPUT, OUTPUT, RUNNING, Artifact, Context, Execution, Link
from cmfrun.recorder import FileRef, RunRecord, ensure_contexts, execution_properties, new_uuid, plan_links
from cmfrun.store import Store, connect, is_already_exists

if TYPE_CHECKING:  # the graph clients load only with graph=True
    from cmfrun.integrations.graph import GraphMirror

log = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
#: Environment variables CMF reads for its Neo4j graph database.
GRAPH_ENV = ("NEO4J_URI", "NEO4J_USER_NAME", "NEO4J_PASSWD")
ARTIFACTS_DIR = "cmf_artifacts"
RECORDED_BY = "cmfrun.api"
_RETRIES = 3
#: Files below this size are hashed directly, without the hash cache.
SMALL_FILE = 1 << 20


def _event_kind(event: str) -> str:
    kind = str(event).strip().lower()
    if kind not in ("input", "output"):
        raise UsageError(f"event must be 'input' or 'output', not {event!r}")
    return INPUT if kind == "input" else OUTPUT


def _check_name(what: str, name: str) -> str:
    text = str(name)
    if not text or ":" in text or "/" in text or text in (".", ".."):
        raise UsageError(f"{what} name {name!r} must be non-empty and contain no ':' or '/'")
    return text


def _merge_csv(existing: object, value: str) -> str:
    items = [x for x in str(existing or "").split(",") if x]
    if value not in items:
        items.append(value)
    return ",".join(items)


def _graph_mirror(graph: bool, root: Path) -> Optional["GraphMirror"]:
    """The graph mirror for ``graph=True``: settings from NEO4J_* or ``cmf init --neo4j-*``."""
    if not graph:
        return None
    from cmfrun.integrations.graph import GraphMirror, resolve_settings

    settings = resolve_settings(root=root)
    if settings is None:
        raise GraphNotConfiguredError(
            f"graph=True needs a graph database: set {', '.join(GRAPH_ENV)} (as `cmf init ... --neo4j-uri` "
            "would), or use graph=False"
        )
    return GraphMirror.connect(settings)


class Cmf:
    """Log metadata for a pipeline, as ``cmflib.cmf.Cmf`` does.

    ``filepath`` is the store: an MLMD SQLite file (relative to the current
    directory, as in CMF) or a ``postgresql://`` / ``mysql://`` URI.
    ``pipeline_name`` defaults to the project's configured pipeline (the
    project root folder's name). ``graph=True`` mirrors every call into the graph
    database of ``NEO4J_URI``/``NEO4J_USER_NAME``/``NEO4J_PASSWD`` or ``cmf init
    --neo4j-*`` (Neo4j, or FalkorDB with a ``falkor://`` URI; none configured:
    :class:`~cmfrun.errors.GraphNotConfiguredError`); an unreachable one is a warning
    (``cmf graph sync`` catches up). ``is_server=True`` skips git and the DVC cache (the store only).

    Keyword-only extras: ``store`` (an open :class:`~cmfrun.store.Store` to
    use instead of opening ``filepath``) and ``root`` (the project root that
    recorded paths are relative to; default: the git/DVC root of the current
    directory).

    Example::

        cmf = Cmf(filepath="mlmd", pipeline_name="test_pipeline", custom_properties={"owner": "user_a"})
    """

    def __init__(
        self,
        filepath: str = "mlmd",
        pipeline_name: str = "",
        custom_properties: Optional[Mapping[str, Any]] = None,
        graph: bool = False,
        is_server: bool = False,
        *,
        store: Optional[Store] = None,
        root: Optional[PathLike] = None,
    ):
        self.is_server = is_server
        self.root = Path(os.path.abspath(os.fspath(root))) if root is not None else config.find_root(".")
        self._graph = _graph_mirror(graph, self.root)
        self.graph = graph
        self.filepath = filepath
        self.store: Store = store if store is not None else connect(filepath)
        self.pipeline_name = pipeline_name or config.resolve(cwd=self.root).pipeline
        self._pipeline_custom = dict(custom_properties or {})
        self.parent_context: Context = self.store.get_or_create_context(
            schema.PIPELINE_CONTEXT, self.pipeline_name, {"Pipeline": self.pipeline_name}, self._pipeline_custom
        )
        self.child_context: Optional[Context] = None
        self.execution: Optional[Execution] = None
        self._git = gitinfo.GitState() if is_server else gitinfo.state(self.root)
        self._hasher: Optional[Hasher] = None
        self._cache_dir: Optional[Path] = None
        self._remote_root: Optional[str] = None
        self._linked: Set[int] = set()
        self._start_monotonic = 0.0
        self._metrics: Dict[str, List[Dict[str, Any]]] = {}
        self._env_artifact: Optional[Artifact] = None
        if self._graph is not None:
            self._graph.contexts(self.parent_context)

    # -- helpers -------------------------------------------------------------------------------
    @property
    def hasher(self) -> Hasher:
        """The content hasher (DVC's state and cache inside a DVC repository)."""
        if self._hasher is None:
            self._hasher = Hasher.for_path(self.root)
        return self._hasher

    def _remote(self) -> str:
        if self._remote_root is None:
            self._remote_root = "" if self.is_server else self.hasher.remote_root()
        return self._remote_root

    def _require_execution(self) -> Execution:
        if self.execution is None or self.child_context is None:
            raise UsageError("no execution: call create_context() and create_execution() first")
        return self.execution

    def _relpath(self, path: PathLike) -> Tuple[str, str]:
        """(absolute path, path recorded in the store: root-relative with '/' when inside the root)."""
        absolute = os.path.abspath(os.fspath(path))
        try:
            rel = Path(absolute).relative_to(self.root).as_posix()
        except ValueError:
            rel = Path(absolute).as_posix()
        return absolute, rel

    def _content(self, absolute: str, shown: str) -> ContentHash:
        if not os.path.exists(absolute):
            raise InputFileError(f"cannot log {shown}: no such file or directory")
        hasher = self.hasher
        if hasher.dvc_root is None or self.is_server:
            try:
                size = os.path.getsize(absolute) if os.path.isfile(absolute) else None
                if size is not None and size < SMALL_FILE:
                    # DVC 3's md5 of a file is the plain md5 of its bytes; for small files a
                    # hash-cache lookup and update cost more than reading them.
                    return ContentHash(plain_md5(absolute), size)
            except PermissionError:
                raise InputFileError(f"cannot log {shown}: permission denied") from None
        if hasher.dvc_root is not None and not self.is_server:
            return self._save_to_cache(absolute, hasher)
        return hasher.hash(absolute)

    def _save_to_cache(self, absolute: str, hasher: Hasher) -> ContentHash:
        """Hash ``absolute`` and put its bytes into the DVC cache (so `cmf artifact push` can send them).

        A small file is copied straight into DVC's cache layout while it is hashed (one
        read, no dvc-data transfer or hash-state update); a large one is hashed through
        DVC's state first and copied only when the cache lacks it; folders go through dvc-data.
        """
        if os.path.isdir(absolute):
            saved = hasher.save_to_dvc_cache(absolute)
            return saved if saved is not None else hasher.hash(absolute)
        if self._cache_dir is None:
            self._cache_dir = cache.cache_dir(hasher.dvc_root or self.root)
        try:
            if os.path.getsize(absolute) >= SMALL_FILE:
                known = hasher.hash(absolute)
                if cache.in_cache(self._cache_dir, known.md5):
                    return known
            return cache.save_file(self._cache_dir, absolute)
        except PermissionError:
            raise InputFileError(f"cannot log {absolute}: permission denied") from None

    def _current_uuid(self) -> str:
        ex = self._require_execution()
        return str(ex.properties.get("Execution_uuid", "")).split(",")[-1]

    def _naming_run(self, ex: Execution, refs: Sequence[FileRef], kind: str) -> RunRecord:
        # ``uuid`` is the third name token of models and metrics: the API knows the execution
        # id (as CMF uses), the one-transaction wrapper does not (docs/schema.md).
        return RunRecord(
            pipeline=self.pipeline_name,
            stage=self._stage_short(),
            command="",
            uuid=str(ex.id),
            git_repo=self._git.remote_url,
            remote_root=self._remote(),
            inputs=list(refs) if kind == INPUT else [],
            outputs=list(refs) if kind == OUTPUT else [],
        )

    def _stage_short(self) -> str:
        assert self.child_context is not None
        prefix = self.pipeline_name + "/"
        name = self.child_context.name
        return name[len(prefix) :] if name.startswith(prefix) else name

    def _plan(self, ref: FileRef, kind: str, *, merge_custom: bool = True, name: Optional[str] = None) -> Link:
        """One link for ``ref``: the existing artifact with that hash (url merged, custom merged
        when ``merge_custom``) or a new one named by the recorder's rules (or ``name``)."""
        ex = self._require_execution()
        links, _, _ = plan_links(self.store, self._naming_run(ex, [ref], kind), self.pipeline_name)
        link = links[0]
        if link.artifact.id is None:
            if name is not None:
                link = replace(link, artifact=replace(link.artifact, name=name))
        elif merge_custom and ref.custom:
            merged = {**link.artifact.custom, **ref.custom}
            if "labels" in ref.custom:
                merged["labels"] = _merge_csv(link.artifact.custom.get("labels"), str(ref.custom["labels"]))
                merged["labels_uri"] = _merge_csv(link.artifact.custom.get("labels_uri"), str(ref.custom["labels_uri"]))
            link = replace(link, artifact=replace(link.artifact, custom=merged))
        return link

    def _write(self, plans: Sequence[Tuple[FileRef, str, Dict[str, Any]]], *, write_execution: bool = False) -> List[Artifact]:
        """Plan and write ``(ref, kind, plan options)`` links with the execution in ONE transaction.

        An artifact this execution already has an event on gets no second event (CMF skips it);
        only its changed properties are written.
        """
        ex = self._require_execution()
        assert self.child_context is not None
        for attempt in range(_RETRIES + 1):
            with self.store.write_lock():
                links = [self._plan(ref, kind, **opts) for ref, kind, opts in plans]
                fresh = [l for l in links if l.artifact.id is None or l.artifact.id not in self._linked]
                again = [l for l in links if l.artifact.id is not None and l.artifact.id in self._linked]
                try:
                    aids: List[int] = []
                    if fresh or write_execution:  # nothing new to link: leave the execution record alone
                        _, aids = self.store.put_execution(ex, fresh, [int(self.child_context.id or 0)])
                except Exception as exc:
                    if is_already_exists(exc) and attempt < _RETRIES:
                        continue  # a concurrent writer created one of these artifacts first: re-plan
                    raise
                if again:
                    stored = {a.id: a for a in self.store.artifacts_by_id([int(l.artifact.id or 0) for l in again])}
                    for link in again:
                        if stored.get(link.artifact.id) != link.artifact:
                            self.store.update_artifact(link.artifact)
            self._linked.update(aids)
            by_link = {id(l): aid for l, aid in zip(fresh, aids)}
            out = []
            for link in links:
                aid = by_link.get(id(link), link.artifact.id)
                out.append(replace(link.artifact, id=aid))
            self._mirror()
            return out
        raise AssertionError("unreachable")

    def _mirror(self, execution_id: Optional[int] = None) -> None:
        """With ``graph=True``, mirror an execution (default: the current one) into the graph
        database; failures there are one warning (GraphMirror), never an error here."""
        if self._graph is None:
            return
        eid = execution_id if execution_id is not None else (self.execution.id if self.execution else None)
        if eid:
            self._graph.execution(self.store, int(eid))

    # -- contexts and executions ---------------------------------------------------------------
    def create_context(self, pipeline_stage: str, custom_properties: Optional[Mapping[str, Any]] = None) -> Context:
        """Get or create the stage context ``<pipeline>/<pipeline_stage>`` (child of the pipeline).

        Custom properties are set when the stage is first created (as in CMF).

        Example::

            ctx = cmf.create_context(pipeline_stage="prepare", custom_properties={"user-metadata1": "v"})
        """
        stage = str(pipeline_stage)
        if not stage:
            raise UsageError("pipeline_stage must not be empty")
        pipe, ctx = ensure_contexts(self.store, self.pipeline_name, stage, self._pipeline_custom, dict(custom_properties or {}))
        self.parent_context, self.child_context = pipe, ctx
        if self._graph is not None:
            self._graph.contexts(pipe, ctx)
        return ctx

    def _environment_ref(self) -> FileRef:
        env = envinfo.current()
        if not self.is_server:
            self._write_env_file(env)
        return FileRef(env.path, env.md5, type=schema.ENVIRONMENT, custom={"packages": env.text, "python": env.python})

    def _write_env_file(self, env: envinfo.PythonEnv) -> None:
        # CMF writes the package list where its tools look for it; once per distinct environment.
        target = self.root / env.path
        if target.exists():
            return
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_text(env.text)
            os.replace(tmp, target)
            if self.hasher.dvc_root is not None:
                self._save_to_cache(str(target), self.hasher)
        except OSError as exc:  # a read-only project still gets its records
            log.warning("could not write %s: %s", target, exc)

    def _execution_record(self, execution_type: str, name: str, run_uuid: str, cmd: Optional[str], custom: Mapping[str, Any], env_path: str) -> Execution:
        assert self.child_context is not None
        command = cmd if cmd is not None else shlex.join(sys.argv)
        git = self._git
        if git.root and not self.is_server:
            # HEAD and the dirty flag change between executions; root and remote do not.
            sha, dirty = gitinfo.head_and_dirty(self.root)
            git = replace(git, commit=sha, dirty=dirty)
        extras: Dict[str, Any] = {
            "Start_Time_ms": time.time() * 1000.0,
            "Working_Dir": self._relpath(os.getcwd())[1] or ".",  # as the wrapper: root-relative
            "Host": socket.gethostname(),
            "User": _user(),
            "Recorded_By": RECORDED_BY,
        }
        if git.dirty is not None:
            extras["Git_Dirty"] = int(git.dirty)
        run = RunRecord(
            pipeline=self.pipeline_name,
            stage=self._stage_short(),
            command=command,
            uuid=run_uuid,
            git_repo=git.remote_url,
            git_start_commit=git.commit,
            properties=extras,
        )
        props: Dict[str, Any] = execution_properties(run, self.parent_context, self.child_context)
        return Execution(
            type=execution_type,
            name=name,
            properties=props,
            custom={**dict(custom), "Python_Env": env_path},
            state=RUNNING,
        )

    def create_execution(
        self,
        execution_type: str,
        custom_properties: Optional[Mapping[str, Any]] = None,
        cmd: Optional[str] = None,
        create_new_execution: bool = True,
    ) -> Execution:
        """Start an execution in the current stage (state RUNNING); link the Python environment as INPUT.

        With ``create_new_execution=False``, ``execution_type`` is the execution's
        *name*: an execution of that name in this stage is reused (its custom
        properties merged, a new uuid appended to ``Execution_uuid``). Without a
        prior :meth:`create_context`, the stage is named after the running script.

        Example::

            ex = cmf.create_execution(execution_type="Prepare", custom_properties={"split": 0.2, "seed": 1})
        """
        if not execution_type:
            raise UsageError("execution_type must not be empty")
        if self.child_context is None:
            script = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "stage"
            self.create_context(script or "stage")
        assert self.child_context is not None
        run_uuid = new_uuid()
        env_ref = self._environment_ref()
        custom = dict(custom_properties or {})
        existing: Optional[Execution] = None
        if create_new_execution:
            record = self._execution_record(execution_type, "", run_uuid, cmd, custom, env_ref.path)
        else:
            exec_type = self.child_context.name  # Q1: reusable executions are typed by the stage name
            existing = self.store.execution_by_type_and_name(exec_type, execution_type)
            if existing is None:
                record = self._execution_record(exec_type, execution_type, run_uuid, cmd, custom, env_ref.path)
            else:
                uuids = _merge_csv(existing.properties.get("Execution_uuid", ""), run_uuid)
                record = replace(
                    existing,
                    properties={**existing.properties, "Execution_uuid": uuids},
                    custom={**existing.custom, **custom, "Python_Env": env_ref.path},
                    state=RUNNING,
                )
        self.execution = record
        self._linked = set()
        if existing is not None:
            self._linked = {e.artifact_id for e in self.store.events_by_execution([int(existing.id or 0)])}
        self._metrics = {}
        self._start_monotonic = time.monotonic()
        # The execution and its environment link are one write; a crash leaves neither.
        for attempt in range(_RETRIES + 1):
            with self.store.write_lock():
                if self.execution.id is None:
                    ex0 = self.execution
                    naming = replace(ex0, id=0)  # naming needs an id; Environment names do not use it
                    self.execution = naming
                    link = self._plan(env_ref, INPUT, merge_custom=False)
                    self.execution = ex0
                    try:
                        eid, aids = self.store.put_execution(ex0, [link], [int(self.child_context.id or 0)])
                    except Exception as exc:
                        if is_already_exists(exc) and attempt < _RETRIES:
                            continue
                        raise
                    self.execution = replace(ex0, id=eid)
                    self._linked.update(aids)
                else:
                    self._write([(env_ref, INPUT, {"merge_custom": False})], write_execution=True)
            break
        log.debug("execution %s started (%s)", self.execution.id, run_uuid)
        self._mirror()
        return self.execution

    def update_execution(self, execution_id: int, custom_properties: Optional[Mapping[str, Any]] = None) -> Execution:
        """Merge ``custom_properties`` into an execution's custom properties (new values win).

        Example::

            ex = cmf.update_execution(execution_id=8, custom_properties={"split": 0.3})
        """
        found = self.store.executions_by_id([int(execution_id)])
        if not found:
            raise NotFoundError(f"no execution with id {execution_id}")
        updated = replace(found[0], custom={**found[0].custom, **dict(custom_properties or {})})
        self.store.update_execution(updated)
        if self.execution is not None and self.execution.id == updated.id:
            self.execution = updated
        self._mirror(int(updated.id or 0))
        return updated

    def finalize(self) -> Execution:
        """Mark the current execution COMPLETE and record ``Git_End_Commit`` (HEAD now).

        Never commits, never switches branches. Step metrics logged but not
        committed are dropped (as in CMF) with a warning in the log.
        """
        return self._finish(COMPLETE)

    def _finish(self, state: str) -> Execution:
        ex = self._require_execution()
        for name, rows in self._metrics.items():
            if rows:
                log.warning("step metrics %r: %d rows never committed (call commit_metrics)", name, len(rows))
        props: Dict[str, Any] = dict(ex.properties)
        if not self.is_server and self._git.root:
            props["Git_End_Commit"] = gitinfo.head_commit(self.root)
        if self._start_monotonic:
            props["Duration_s"] = round(time.monotonic() - self._start_monotonic, 6)
            props["End_Time_ms"] = time.time() * 1000.0
        final = replace(ex, properties=props, state=state)
        self.store.update_execution(final)
        self.execution = final
        self._mirror()
        return final

    def __enter__(self) -> "Cmf":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        """``with Cmf(...) as cmf:`` finalizes the open execution (FAILED when an exception escapes)."""
        if self.execution is not None and self.execution.state == RUNNING:
            self._finish(FAILED if exc_type is not None else COMPLETE)

    # -- artifacts -----------------------------------------------------------------------------
    def log_dataset(
        self,
        url: PathLike,
        event: str,
        custom_properties: Optional[Mapping[str, Any]] = None,
        label: Optional[PathLike] = None,
        label_properties: Optional[Mapping[str, Any]] = None,
        external: bool = False,
    ) -> Artifact:
        """Log a file or directory as a ``Dataset`` consumed (``"input"``) or produced (``"output"``).

        Identity is DVC's md5 (``.dir`` for folders): the same bytes logged twice
        are one artifact. Inside a DVC repository the bytes also go into the DVC
        cache; no ``.dvc`` file and no git commit are made. ``label`` (a file,
        e.g. a CSV) is logged as a ``Label`` artifact, INPUT of this execution.
        ``external`` is accepted for compatibility and ignored.

        Example::

            art = cmf.log_dataset("data/raw.xml", "input", custom_properties={"source": "kaggle"},
                                  label="labels.csv", label_properties={"user": "Ron"})
        """
        kind = _event_kind(event)
        self._require_execution()
        absolute, rel = self._relpath(url)
        content = self._content(absolute, str(url))
        custom: Dict[str, Any] = dict(custom_properties or {})
        plans: List[Tuple[FileRef, str, Dict[str, Any]]] = []
        if label is not None:
            labs, lrel = self._relpath(label)
            if not os.path.isfile(labs):
                raise InputFileError(f"cannot log label {label}: no such file")
            lcontent = self._content(labs, str(label))
            custom["labels"] = lrel
            custom["labels_uri"] = schema.artifact_name(lrel, lcontent.md5)
            lcustom = {**dict(label_properties or {}), "dataset_uri": content.md5}
            plans.append((FileRef(lrel, lcontent.md5, type=schema.LABEL, size=lcontent.size, custom=lcustom), INPUT, {}))
        ref = FileRef(rel, content.md5, type=schema.DATASET, size=content.size, nfiles=content.nfiles, custom=custom)
        plans.insert(0, (ref, kind, {}))
        return self._write(plans)[0]

    def log_dataset_with_version(
        self,
        url: str,
        version: str,
        event: str,
        props: Optional[Mapping[str, Any]] = None,
        custom_properties: Optional[Mapping[str, Any]] = None,
    ) -> Artifact:
        """Log a dataset whose hash (``version``) the caller already knows; the file need not exist.

        ``props`` may give ``git_repo`` and ``url`` (defaults: this repository and
        ``<pipeline>:<remote location>``).
        """
        kind = _event_kind(event)
        self._require_execution()
        version = str(version or "").strip()
        if not version:
            raise UsageError("log_dataset_with_version needs a non-empty version (the content hash)")
        given = dict(props or {})
        override = {k: str(given[k]) for k in ("git_repo", "url") if given.get(k)}
        _, rel = self._relpath(url) if not str(url).startswith(("s3://", "gs://", "http://", "https://")) else ("", str(url))
        ref = FileRef(rel, version, type=schema.DATASET, properties=override, custom=dict(custom_properties or {}))
        return self._write([(ref, kind, {})])[0]

    def log_model(
        self,
        path: PathLike,
        event: str,
        model_framework: str = "Default",
        model_type: str = "Default",
        model_name: str = "Default",
        custom_properties: Optional[Mapping[str, Any]] = None,
    ) -> Artifact:
        """Log a model file or folder; named ``<path>:<hash>:<id of the creating execution>``.

        Example::

            art = cmf.log_model("model.pkl", "output", model_framework="SKlearn",
                                model_type="RandomForestClassifier")
        """
        kind = _event_kind(event)
        self._require_execution()
        absolute, rel = self._relpath(path)
        content = self._content(absolute, str(path))
        ref = FileRef(
            rel,
            content.md5,
            type=schema.MODEL,
            size=content.size,
            nfiles=content.nfiles,
            properties={"model_framework": model_framework, "model_type": model_type, "model_name": model_name},
            custom=dict(custom_properties or {}),
        )
        return self._write([(ref, kind, {"merge_custom": False})])[0]

    def log_model_with_version(
        self,
        path: str,
        event: str,
        props: Optional[Mapping[str, Any]] = None,
        custom_properties: Optional[Mapping[str, Any]] = None,
    ) -> Artifact:
        """Log a model whose hash the caller already knows: ``props["uri"]`` (required), and
        optionally ``model_framework``, ``model_type``, ``model_name``, ``url``."""
        kind = _event_kind(event)
        self._require_execution()
        given = dict(props or {})
        uri = str(given.get("uri", "")).strip()
        if not uri:
            raise UsageError("log_model_with_version needs props['uri'] (the model's content hash)")
        override = {k: str(given[k]) for k in ("model_framework", "model_type", "model_name", "url") if given.get(k)}
        base = {"model_framework": "Default", "model_type": "Default", "model_name": "Default"}
        _, rel = self._relpath(path) if "://" not in str(path) else ("", str(path))
        ref = FileRef(rel, uri, type=schema.MODEL, properties={**base, **override}, custom=dict(custom_properties or {}))
        return self._write([(ref, kind, {"merge_custom": False})])[0]

    def log_execution_metrics(self, metrics_name: str, custom_properties: Optional[Mapping[str, Any]] = None) -> Artifact:
        """Log coarse metrics of this execution as a ``Metrics`` artifact (no file).

        Named ``<metrics_name>:<uuid1>:<execution id>``; the values are its custom properties.

        Example::

            art = cmf.log_execution_metrics("Training_Metrics", {"auc": 0.9, "loss": 0.1})
        """
        name = _check_name("metrics", metrics_name)
        self._require_execution()
        ref = FileRef(name, new_uuid(), type=schema.METRICS, custom=dict(custom_properties or {}))
        return self._write([(ref, OUTPUT, {"merge_custom": False})])[0]

    def log_metric(self, metrics_name: str, custom_properties: Optional[Mapping[str, Any]] = None) -> None:
        """Buffer one row of step metrics (one call per step or epoch); :meth:`commit_metrics` writes them.

        Example::

            cmf.log_metric("training_metrics", {"train_loss": 0.25})
        """
        name = _check_name("metrics", metrics_name)
        self._metrics.setdefault(name, []).append(dict(custom_properties or {}))

    def commit_metrics(self, metrics_name: str) -> Artifact:
        """Write the buffered rows of ``metrics_name`` to a parquet file and log it as ``Step_Metrics``.

        The file is ``cmf_artifacts/<execution uuid>/metrics/<metrics_name>`` (index
        column ``SequenceNumber`` from 1); the buffer is emptied.
        """
        name = _check_name("metrics", metrics_name)
        ex = self._require_execution()
        rows = self._metrics.get(name)
        if not rows:
            raise UsageError(f"no step metrics logged under {metrics_name!r}: call log_metric first")
        uuid = self._current_uuid()
        rel = f"{ARTIFACTS_DIR}/{uuid}/metrics/{name}"
        target = self.root / rel
        parquet.write_rows(target, "SequenceNumber", list(range(1, len(rows) + 1)), rows)
        content = self._content(str(target), rel)
        full_name = f"{rel}:{content.md5}:{ex.id}:{new_uuid()}"
        ref = FileRef(rel, content.md5, type=schema.STEP_METRICS, size=content.size)
        art = self._write([(ref, OUTPUT, {"merge_custom": False, "name": full_name})])[0]
        self._metrics.pop(name, None)
        return art

    # -- dataslices ----------------------------------------------------------------------------
    def create_dataslice(self, name: str) -> "DataSlice":
        """A new dataslice; add files with :meth:`DataSlice.add_data`, then :meth:`DataSlice.commit`.

        Example::

            ds = cmf.create_dataslice("slice-a")
            ds.add_data("data/raw/1.xml", {"key1": "value1"})
            ds.commit()
        """
        return DataSlice(_check_name("dataslice", name), self)

    def _dataslice_file(self, name: str) -> Tuple[Path, str]:
        rel = f"{ARTIFACTS_DIR}/{self._current_uuid()}/dataslice/{name}"
        return self.root / rel, rel

    def _commit_dataslice(self, name: str, index: Sequence[str], rows: Sequence[Mapping[str, Any]], custom: Mapping[str, Any]) -> Artifact:
        target, rel = self._dataslice_file(name)
        parquet.write_rows(target, "Path", list(index), rows)
        content = self._content(str(target), rel)
        ref = FileRef(rel, content.md5, type=schema.DATASLICE, size=content.size, custom=dict(custom))
        # Q10 fixed: committing a slice is always an OUTPUT of this execution.
        return self._write([(ref, OUTPUT, {})])[0]

    def update_dataslice(self, name: str, record: str, custom_properties: Mapping[str, Any]) -> Artifact:
        """Set ``custom_properties`` on one record (file path) of a committed dataslice.

        The parquet file is rewritten and logged as a new ``Dataslice`` version
        (OUTPUT of the current execution), so the hash in the store stays true.
        ``name`` is the slice name (in this execution's folder) or a path to the slice file.
        """
        self._require_execution()
        target, _ = self._dataslice_file(str(name))
        if not target.exists():
            candidate = Path(os.path.abspath(os.fspath(name)))
            if not candidate.is_file():
                raise NotFoundError(f"no dataslice {name!r}: commit it first (looked at {target})")
            target = candidate
        index, rows = parquet.read_rows(target, "Path")
        key = record if record in index else self._relpath(record)[1]
        if key not in index:
            raise NotFoundError(f"dataslice {name!r} has no record {record!r}")
        rows[index.index(key)].update(dict(custom_properties or {}))
        # A slice of an earlier execution gets its new version in this execution's folder.
        return self._commit_dataslice(target.name, index, rows, {})

    def link_artifacts(self, artifact_source: Artifact, artifact_target: Artifact) -> Artifact:
        """Record that ``artifact_target`` derives from ``artifact_source`` (CMF: a dataslice
        from its dataset), as ``(source)-[:derived]->(target)`` in the graph.

        The link is kept in the store (the target's ``derived_from`` custom property), so
        ``cmf graph sync`` and ``cmf graph export`` show it even with ``graph=False``.
        Returns the updated target.

        Example::

            ds = cmf.log_dataset("data/raw.csv", "input")
            sl = cmf.create_dataslice("slice-a"); sl.add_data("data/raw.csv"); part = sl.commit()
            cmf.link_artifacts(ds, part)
        """
        from cmfrun.integrations.graph import link_artifacts

        updated = link_artifacts(self.store, artifact_source, artifact_target)
        if self._graph is not None:
            found = self.store.artifacts_by_id([int(artifact_source.id or 0)])
            self._graph.artifacts([*found, updated])
        return updated

    def close(self) -> None:
        """Release the DVC state database and the graph connection (the store stays usable by its owner)."""
        if self._hasher is not None:
            self._hasher.close()
            self._hasher = None
        if self._graph is not None:
            self._graph.close()
            self._graph = None


class DataSlice:
    """A named set of files (with per-file properties), written as a parquet table on commit.

    Made by :meth:`Cmf.create_dataslice`.
    """

    def __init__(self, name: str, writer: Cmf):
        self.name = name
        self.writer = writer
        self.props: Dict[str, Dict[str, Any]] = {}

    def add_data(self, path: PathLike, custom_properties: Optional[Mapping[str, Any]] = None) -> None:
        """Add a file (hashed now, the DVC way) with optional properties."""
        absolute, rel = self.writer._relpath(path)
        if not os.path.isfile(absolute):
            raise InputFileError(f"cannot add {path} to dataslice {self.name!r}: no such file")
        content = self.writer._content(absolute, str(path))
        self.props[rel] = {"hash": content.md5, **dict(custom_properties or {})}

    def commit(self, custom_properties: Optional[Mapping[str, Any]] = None) -> Artifact:
        """Write the slice to ``cmf_artifacts/<uuid>/dataslice/<name>`` and log it as ``Dataslice`` (OUTPUT)."""
        if not self.props:
            raise UsageError(f"dataslice {self.name!r} is empty: add_data first")
        index = list(self.props)
        return self.writer._commit_dataslice(self.name, index, [self.props[p] for p in index], dict(custom_properties or {}))


#: What :func:`cmf_init` returns (and :func:`cmf_init_show`): the settings now in force.
InitResult = InitConfig


def cmf_init(
    type: str = "",
    path: str = "",
    git_remote_url: str = "",
    cmf_server_url: str = "",
    neo4j_user: str = "",
    neo4j_password: str = "",
    neo4j_uri: str = "",
    url: str = "",
    endpoint_url: str = "",
    access_key_id: str = "",
    secret_key: str = "",
    session_token: str = "",
    user: str = "",
    password: str = "",
    port: int = 0,
    osdf_path: str = "",
    osdf_cache: str = "",
    key_id: str = "",
    key_path: str = "",
    key_issuer: str = "",
    *,
    access_token: str = "",
    keyfile: str = "",
    root: Optional[PathLike] = None,
) -> InitConfig:
    """Configure the project's artifact remote, CMF server and Neo4j settings, as
    ``cmflib.cmf.cmf_init`` (and ``cmf init <type>``) does.

    ``type`` is ``"local"``, ``"minioS3"``, ``"amazonS3"``, ``"sshremote"`` or
    ``"osdfremote"``: it becomes the project's default DVC remote (DVC's config
    code; secrets only in ``.dvc/config.local``). Git and DVC are initialised if
    missing; ``git_remote_url`` becomes ``origin``. Running it again updates.
    Keyword-only extras: ``access_token`` (OSDF bearer token or a file holding
    it), ``keyfile`` (SSH private key), ``root`` (the project folder).

    Example::

        cmf_init(type="local", path="/data/cmf-store", git_remote_url="git@github.com:me/proj.git")
    """
    from cmfrun.remotes.setup import RemoteSpec, init_project

    spec = None
    if type:
        spec = RemoteSpec.build(
            type,
            path=path,
            url=url,
            endpoint_url=endpoint_url,
            access_key_id=access_key_id,
            secret_key=secret_key,
            session_token=session_token,
            user=user,
            password=password,
            port=port,
            keyfile=keyfile,
            osdf_path=osdf_path,
            osdf_cache=osdf_cache,
            access_token=access_token,
            key_id=key_id,
            key_path=key_path,
            key_issuer=key_issuer,
        )
    base = Path(os.path.abspath(os.fspath(root))) if root is not None else config.find_root(".")
    return init_project(
        base,
        spec,
        git_remote_url=git_remote_url,
        cmf_server_url=cmf_server_url,
        neo4j_uri=neo4j_uri,
        neo4j_user=neo4j_user,
        neo4j_password=neo4j_password,
    )


def cmf_init_show(*, root: Optional[PathLike] = None) -> InitConfig:
    """What :func:`cmf_init` configured for the current project (``cmf init show``).

    Example::

        print(cmf_init_show().public())
    """
    from cmfrun.remotes.setup import read_init_config

    return read_init_config(Path(os.path.abspath(os.fspath(root))) if root is not None else config.find_root("."))


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return ""


__all__ = ["Cmf", "DataSlice", "InitResult", "cmf_init", "cmf_init_show", "GRAPH_ENV"]
