"""ArangoML Pipeline's entities (projects, datasets, featuresets, models, runs,
deployments, serving performance) as plain MLMD records on a cmfrun store.

The API follows arangopipe's (``register_*``, ``log_run``, ``lookup_*``,
``find_entity``, ``link_entities``), but nothing here is a new kind of record:
every entity is what CMF itself writes, so ``cmf execution list``, ``cmf show``,
``cmf lineage``, CMF's ``CmfQuery``, the server and the UI show them as they
are.

==================  ==========================================================
ArangoML            MLMD record (CMF contract)
==================  ==========================================================
project             ``Parent_Context`` pipeline named after the project
dataset             ``Dataset`` artifact (a file: its DVC md5; else a name uuid)
featureset          ``Dataset`` artifact, produced from its dataset by a
                    ``featureset`` execution (unless lineage already links them)
model               ``Model`` artifact (a file recorded by ``cmfrun --``/``Cmf``
                    may be registered by path or hash)
run                 ``run`` execution: INPUT dataset + featureset, OUTPUT model +
                    a ``Metrics`` artifact (development performance); model
                    params are its custom properties (as CMF stores params)
deployment          ``deploy`` execution: INPUT model (+ featureset), OUTPUT a
                    ``Deployment`` artifact
serving perf        ``serve`` execution: INPUT the ``Deployment``, OUTPUT a
                    ``Metrics`` artifact
edge (link)         ``link`` execution: INPUT source, OUTPUT destination
==================  ==========================================================

Registered artifacts carry two custom properties, ``ArangoML_Kind`` and
``ArangoML_Name``, and are attributed to the project's ``register`` stage,
which makes lookups a scan of one project instead of the whole store.
Lineage therefore runs from raw data (a ``cmfrun --`` stage) through the
model to the deployment and its serving numbers.

Example::

    ml = ArangoPipe(connect("mlmd"))
    ml.register_project("churn")
    ds = ml.register_dataset({"name": "raw", "path": "data/raw.csv"})
    fs = ml.register_featureset({"name": "features", "technique": "standard scaling"}, "raw")
    m = ml.register_model({"name": "rf", "path": "model.pkl", "technique": "random forest"})
    ml.log_run(ds, fs, m, {"n_estimators": 50}, {"accuracy": 0.95}, "rf-v1", deployment_tag="prod")
    dep = ml.register_deployment("prod")
    ml.log_serving_perf("prod", {"accuracy": 0.93, "latency_ms": 12.5})
    print(ml.performance("prod"))
"""
from __future__ import annotations

import logging
import uuid as _uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from cmfrun import config, lineage, schema
from cmfrun.errors import NotFoundError, UsageError
from cmfrun.records import COMPLETE, INPUT, OUTPUT, Artifact, Context, Execution, Value
from cmfrun.recorder import FileRef, RunRecord, ensure_contexts, new_uuid, record_run
from cmfrun.store import Store
from cmfrun.store.literals import artifacts_named, like_prefix

log = logging.getLogger(__name__)

#: Custom properties that mark a record as an ArangoML entity.
KIND = "ArangoML_Kind"
NAME = "ArangoML_Name"
TAG = "ArangoML_Tag"
DEPLOYMENT_TAG = "ArangoML_Deployment_Tag"
RUN = "ArangoML_Run"

#: Stage names of the executions this module writes (each also the execution type).
STAGE_REGISTER = "register"
STAGE_FEATURESET = "featureset"
STAGE_RUN = "run"
STAGE_DEPLOY = "deploy"
STAGE_SERVE = "serve"
STAGE_LINK = "link"

DEPLOYMENT = "Deployment"
DEV_PERF = "dev_perf"
SERVING_PERF = "serving_perf"
RECORDED_BY = "cmfrun.integrations.arango"

#: Keys of an info mapping that say where the entity's bytes are, not what it is.
_LOCATION_KEYS = ("name", "path", "hash")
#: Keys of a model info mapping that fill the Model type's declared properties.
_MODEL_PROPS = ("model_framework", "model_type", "model_name")
#: Attributes that name a technique (feature engineering on featuresets, modelling on models).
TECHNIQUE_KEYS = ("technique", "transformation", "algorithm")
_NS = _uuid.UUID("5b0c3a52-46a8-4bd5-9a5e-4f3b1f2f7c11")  # cmfrun's namespace for entity uuids

#: An entity given by registered name (or, where noted, path/hash), :class:`Entity` or artifact record.
EntityRef = Union[str, "Entity", Artifact]


@dataclass(frozen=True)
class Entity:
    """An ArangoML entity as stored: ``kind`` (artifacts: project, dataset, featureset,
    model, deployment, devperf, servingperf; executions: featurize, run, deploy, serve,
    link), the MLMD ``record`` it is
    (artifact, execution, context) and that record's id, uri and attributes
    (custom properties)."""

    kind: str
    name: str
    record: str
    id: int
    uri: str = ""
    type: str = ""
    attributes: Mapping[str, Value] = field(default_factory=dict)
    properties: Mapping[str, Value] = field(default_factory=dict)


@dataclass(frozen=True)
class Performance:
    """Development vs serving performance of one deployment.

    ``development``: metrics of the model's runs and evaluations (each a
    ``(stage, metrics)`` pair); ``serving``: metrics logged against the deployment,
    oldest first.
    """

    deployment: str
    model: str
    development: Tuple[Tuple[str, Mapping[str, Value]], ...]
    serving: Tuple[Mapping[str, Value], ...]


@dataclass(frozen=True)
class Techniques:
    """The feature-engineering and modelling techniques used in a project."""

    project: str
    feature_engineering: Tuple[str, ...]
    modelling: Tuple[str, ...]


def _name_uuid(kind: str, name: str) -> str:
    """A stable uri for an entity that is no file (the same name is the same artifact)."""
    return str(_uuid.uuid5(_NS, f"{kind}:{name}"))


def _info(info: Union[str, Mapping[str, Any]], attributes: Mapping[str, Any]) -> Dict[str, Any]:
    data = {"name": info} if isinstance(info, str) else dict(info)
    data.update(attributes)
    name = str(data.get("name", "")).strip()
    if not name or ":" in name:
        raise UsageError(f"an entity needs a non-empty 'name' without ':' (got {data.get('name')!r})")
    data["name"] = name
    return data


def _plain(values: Mapping[str, Any]) -> Dict[str, Value]:
    """Custom-property values: int/float/str (bools as ints, everything else as text)."""
    out: Dict[str, Value] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[str(key)] = int(value)
        elif isinstance(value, (int, float, str)):
            out[str(key)] = value
        else:
            out[str(key)] = str(value)
    return out


def _entity(art: Artifact) -> Entity:
    return Entity(
        kind=str(art.custom.get(KIND, art.type.lower())),
        name=str(art.custom.get(NAME, art.path)),
        record="artifact",
        id=int(art.id or 0),
        uri=art.uri,
        type=art.type,
        attributes=dict(art.custom),
        properties=dict(art.properties),
    )


def _execution_entity(ex: Execution) -> Entity:
    return Entity(
        kind=str(ex.custom.get(KIND, ex.type)),
        name=str(ex.custom.get(TAG, "") or ex.name),
        record="execution",
        id=int(ex.id or 0),
        uri=str(ex.properties.get("Execution_uuid", "")),
        type=ex.type,
        attributes=dict(ex.custom),
        properties=dict(ex.properties),
    )


def find_artifact(store: Store, ref: str, root: Optional[Path] = None) -> Optional[Artifact]:
    """The artifact ``ref`` names: a full name, a content hash (uri), or a path. A file
    on disk is identified by its content (``None`` when those bytes were never recorded,
    so a changed file never stands for an older version); a path that no longer exists
    names its newest recorded version."""
    ref = ref.strip()
    if not ref:
        return None
    found = store.artifacts_by_uri([ref]) or artifacts_named(store, [ref])
    if found:
        return found[0]
    path = Path(ref)
    on_disk = path if path.is_absolute() else Path.cwd() / path
    if on_disk.exists():
        from cmfrun.hashing import Hasher

        hasher = Hasher.for_path(on_disk)
        try:
            found = store.artifacts_by_uri([hasher.hash(on_disk).md5])
        finally:
            hasher.close()
        return found[0] if found else None
    base = root or config.find_root(".")
    rel = ref[2:] if ref.startswith("./") else ref
    try:
        rel = on_disk.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        pass
    versions = [a for a in store.artifacts(f"name LIKE {like_prefix(rel + ':')}") if a.path == rel]
    return max(versions, key=lambda a: (a.create_ms, a.id or 0)) if versions else None


class ArangoPipe:
    """ArangoML Pipeline's API on an MLMD store, for one project at a time.

    ``store``: an open :class:`~cmfrun.store.Store`; ``project``: the project
    (a pipeline) entities are registered in (set by :meth:`register_project`
    too); ``root``: the project root that file paths are relative to (default:
    the git/DVC root of the current directory).

    Example::

        ml = ArangoPipe(store, project="churn")
        ml.register_dataset({"name": "raw", "path": "data/raw.csv", "source": "s3 export"})
    """

    def __init__(self, store: Store, project: Optional[str] = None, *, root: Optional[Union[str, Path]] = None):
        self.store = store
        self.root = Path(root).absolute() if root is not None else config.find_root(".")
        self._project = project

    # -- projects ----------------------------------------------------------------------------
    @property
    def project(self) -> str:
        """The current project (raises :class:`UsageError` when none is set)."""
        if not self._project:
            raise UsageError("no project: call register_project(name) or pass project=...")
        return self._project

    def register_project(self, info: Union[str, Mapping[str, Any]], **attributes: Any) -> Entity:
        """Create (or get) the project's pipeline context and make it the current project.

        Example::

            ml.register_project({"name": "Housing_Price_Estimation", "owner": "ds-team"})
        """
        data = _info(info, attributes)
        custom = _plain({k: v for k, v in data.items() if k != "name"})
        custom[KIND] = "project"
        ctx = self.store.get_or_create_context(
            schema.PIPELINE_CONTEXT, data["name"], {"Pipeline": data["name"]}, custom
        )
        self._project = data["name"]
        return Entity("project", ctx.name, "context", int(ctx.id or 0), attributes=dict(ctx.custom))

    def _stage(self, stage: str) -> Tuple[Context, Context]:
        return ensure_contexts(self.store, self.project, stage)

    # -- registering artifacts ---------------------------------------------------------------
    def _register_artifact(self, kind: str, data: Mapping[str, Any], art_type: str) -> Artifact:
        """Mark an existing artifact (by path or hash) or create a named one, and
        attribute it to the project's ``register`` stage."""
        name = str(data["name"])
        attrs = _plain({k: v for k, v in data.items() if k not in _LOCATION_KEYS and k not in _MODEL_PROPS})
        existing = self._lookup_artifact(kind, name)
        target: Optional[Artifact] = existing
        ref = str(data.get("hash") or data.get("path") or "")
        if ref:
            target = find_artifact(self.store, ref, self.root)
            if target is None:
                raise NotFoundError(
                    f"{kind} {name!r}: {ref!r} is neither a file nor an artifact in the store "
                    "(record it first with `cmfrun --` or cmfrun.Cmf)"
                )
        _, stage = self._stage(STAGE_REGISTER)
        if target is None:
            uri = _name_uuid(kind, f"{self.project}/{name}")
            props: Dict[str, Value] = {}
            if art_type == schema.MODEL:
                props = {p: "Default" for p in _MODEL_PROPS}
            art = Artifact(
                type=art_type,
                name=schema.artifact_name(name, uri),
                uri=uri,
                properties={**props, **_plain({p: data[p] for p in _MODEL_PROPS if p in data and art_type == schema.MODEL})},
                custom={**attrs, KIND: kind, NAME: name},
            )
            aid = self.store.update_artifact(art)
        else:
            props = dict(target.properties)
            if target.type == schema.MODEL:
                props.update(_plain({p: data[p] for p in _MODEL_PROPS if p in data}))
            art = replace(target, properties=props, custom={**target.custom, **attrs, KIND: kind, NAME: name})
            aid = self.store.update_artifact(art)
        self.store.put_links(attributions=[(int(stage.id or 0), aid)])
        return self.store.artifacts_by_id([aid])[0]

    def register_dataset(self, info: Union[str, Mapping[str, Any]], **attributes: Any) -> Entity:
        """Register a dataset: ``name`` plus any attributes; ``path`` or ``hash`` names
        a file already recorded (or on disk and recorded), else the dataset is a named record.

        Example::

            ml.register_dataset({"name": "raw", "path": "data/raw.csv", "source": "UCI"})
        """
        data = _info(info, attributes)
        return _entity(self._register_artifact("dataset", data, schema.DATASET))

    def register_featureset(
        self, featureset: Union[str, Mapping[str, Any]], dataset: EntityRef, **attributes: Any
    ) -> Entity:
        """Register a featureset made from ``dataset`` (a name or :class:`Entity`).

        Attributes such as ``technique`` describe the transformation. Unless lineage
        already leads from the dataset to the featureset (a real featurize stage), a
        ``featureset`` execution records the edge.

        Example::

            ml.register_featureset({"name": "scaled", "technique": "standard scaling"}, "raw")
        """
        data = _info(featureset, attributes)
        ds = self._artifact_of("dataset", dataset)
        fs = self._register_artifact("featureset", data, schema.DATASET)
        if int(ds.id or 0) not in lineage.ancestors(self.store, artifact_ids=[int(fs.id or 0)], fetch=False).artifact_depth:
            custom = _plain({k: v for k, v in data.items() if k not in _LOCATION_KEYS})
            self._record(
                STAGE_FEATURESET,
                f"register_featureset {data['name']} from {ds.path}",
                {**custom, KIND: "featurize"},
                inputs=[ds],
                outputs=[fs],
            )
        return _entity(self.store.artifacts_by_id([int(fs.id or 0)])[0])

    def register_model(self, info: Union[str, Mapping[str, Any]], **attributes: Any) -> Entity:
        """Register a model: ``name``, and ``path``/``hash`` of a model file recorded by
        ``cmfrun --`` or ``Cmf``; ``model_framework``/``model_type``/``model_name`` fill the
        Model's properties, other keys (``technique``, ``task``...) become attributes.

        Example::

            ml.register_model({"name": "rf", "path": "model.pkl", "technique": "random forest"})
        """
        data = _info(info, attributes)
        return _entity(self._register_artifact("model", data, schema.MODEL))

    # -- executions --------------------------------------------------------------------------
    def _record(
        self,
        stage: str,
        command: str,
        custom: Mapping[str, Value],
        inputs: Sequence[Artifact] = (),
        outputs: Sequence[Artifact] = (),
        new_outputs: Sequence[FileRef] = (),
    ) -> Execution:
        """One execution of ``stage`` in the project, through the recorder (CMF's records)."""
        run_uuid = new_uuid()
        now_ms = _now_ms()
        refs_in = [FileRef(a.path, a.uri, type=a.type) for a in inputs]
        refs_out = [FileRef(a.path, a.uri, type=a.type) for a in outputs] + list(new_outputs)
        result = record_run(
            self.store,
            RunRecord(
                pipeline=self.project,
                stage=stage,
                command=command,
                uuid=run_uuid,
                execution_type=stage,
                execution_name=run_uuid,
                state=COMPLETE,
                properties={"Recorded_By": RECORDED_BY, "Start_Time_ms": now_ms, "End_Time_ms": now_ms},
                custom=custom,
                inputs=refs_in,
                outputs=refs_out,
            ),
        )
        return self.store.executions_by_id([result.execution_id])[0]

    def log_run(
        self,
        dataset: EntityRef,
        featureset: EntityRef,
        model: EntityRef,
        model_params: Optional[Mapping[str, Any]],
        dev_perf: Optional[Mapping[str, Any]],
        tag: str,
        *,
        deployment_tag: Optional[str] = None,
        **attributes: Any,
    ) -> Entity:
        """Log a model-building run: the dataset and featureset it read, the model it
        made, the model params (the execution's custom properties, as CMF keeps params)
        and its development performance (a ``Metrics`` artifact). ``tag`` names the run
        for :meth:`lookup_modelparams`/:meth:`lookup_modelperf`; ``deployment_tag`` marks
        it ready for :meth:`register_deployment`.

        Example::

            ml.log_run("raw", "scaled", "rf", {"n_estimators": 50}, {"accuracy": 0.95},
                       "rf-v1", deployment_tag="prod")
        """
        if not str(tag).strip():
            raise UsageError("log_run needs a non-empty tag")
        ds = self._artifact_of("dataset", dataset)
        fs = self._artifact_of("featureset", featureset)
        mdl = self._artifact_of("model", model)
        custom: Dict[str, Value] = {**_plain(model_params or {}), **_plain(attributes), KIND: "run", TAG: str(tag)}
        if deployment_tag:
            custom[DEPLOYMENT_TAG] = str(deployment_tag)
        perf = FileRef(DEV_PERF, new_uuid(), type=schema.METRICS, custom={**_plain(dev_perf or {}), KIND: "devperf"})
        ex = self._record(
            STAGE_RUN,
            f"log_run {tag}",
            custom,
            inputs=[ds, fs],
            outputs=[mdl],
            new_outputs=[perf],
        )
        return _execution_entity(ex)

    def register_deployment(
        self, tag: str, *, model: Optional[EntityRef] = None, **attributes: Any
    ) -> Entity:
        """Register the deployment ``tag``: of the model of the run logged with that
        ``deployment_tag`` (or ``tag``), or of ``model`` (a registered name, an
        :class:`Entity`, or any model artifact's path, name or hash, e.g. a
        ``cmfrun --`` stage's output). Registering the same tag again returns it.

        Example::

            ml.register_deployment("prod", model="model.pkl", status="active")
        """
        tag = str(tag).strip()
        if not tag or ":" in tag:
            raise UsageError(f"deployment tag {tag!r} must be non-empty and contain no ':'")
        existing = self._lookup_artifact("deployment", tag)
        if existing is not None:
            return _entity(existing)
        run = self._run_by_tag(tag, deployment=True)
        inputs: List[Artifact] = []
        custom: Dict[str, Value] = {**_plain(attributes), KIND: "deploy", TAG: tag}
        if model is not None:
            chosen = self._artifact_of("model", model, any_artifact=True)
            if chosen.type != schema.MODEL:
                raise UsageError(f"{model!s} is a {chosen.type} artifact ({chosen.name}), not a Model")
            inputs.append(chosen)
        if run is not None:
            custom[RUN] = str(run.properties.get("Execution_uuid", ""))
            events = lineage.io_events(self.store, [int(run.id or 0)])
            arts = {a.id: a for a in self.store.artifacts_by_id([ev.artifact_id for ev in events])}
            models = [arts[ev.artifact_id] for ev in events if ev.kind == OUTPUT and arts[ev.artifact_id].type == schema.MODEL]
            featuresets = [
                arts[ev.artifact_id]
                for ev in events
                if ev.kind == INPUT and arts[ev.artifact_id].custom.get(KIND) == "featureset"
            ]
            if model is None:
                inputs += models[:1]
            inputs += featuresets[:1]
            params = {k: v for k, v in run.custom.items() if not k.startswith("ArangoML_")}
            custom.update(params)
        if not any(a.type == schema.MODEL for a in inputs):
            raise NotFoundError(
                f"deployment {tag!r}: no run was logged with deployment_tag={tag!r} in project "
                f"{self.project!r}; name the model (model=PATH|HASH|NAME)"
            )
        deployment = FileRef(
            tag,
            _name_uuid("deployment", f"{self.project}/{tag}"),
            type=DEPLOYMENT,
            custom={**_plain(attributes), KIND: "deployment", NAME: tag},
        )
        mdl = next(a for a in inputs if a.type == schema.MODEL)
        self._record(STAGE_DEPLOY, f"register_deployment {tag} {mdl.path}", custom, inputs=inputs, new_outputs=[deployment])
        found = self._lookup_artifact("deployment", tag)
        assert found is not None
        return _entity(found)

    def log_serving_perf(self, deployment: EntityRef, metrics: Mapping[str, Any], **attributes: Any) -> Entity:
        """Record serving performance of a deployment (a ``Metrics`` artifact made by a
        ``serve`` execution that read the deployment). ``attributes`` (a period, a
        user...) go on the execution.

        Example::

            ml.log_serving_perf("prod", {"accuracy": 0.93, "latency_ms": 12.5}, period="2026-W49")
        """
        if not metrics:
            raise UsageError("log_serving_perf needs at least one metric")
        dep = self._artifact_of("deployment", deployment)
        perf = FileRef(SERVING_PERF, new_uuid(), type=schema.METRICS, custom={**_plain(metrics), KIND: "servingperf"})
        ex = self._record(
            STAGE_SERVE,
            f"log_serving_perf {dep.custom.get(NAME, dep.path)}",
            {**_plain(attributes), KIND: "serve", TAG: str(dep.custom.get(NAME, dep.path))},
            inputs=[dep],
            new_outputs=[perf],
        )
        outs = [ev.artifact_id for ev in lineage.io_events(self.store, [int(ex.id or 0)]) if ev.kind == OUTPUT]
        return _entity(self.store.artifacts_by_id(outs)[0])

    def link_entities(self, source: EntityRef, destination: EntityRef, **attributes: Any) -> Entity:
        """An edge from one artifact entity to another (a ``link`` execution reading
        ``source`` and writing ``destination``), for relations the other calls do not make.

        Example::

            ml.link_entities("raw", "holdout", relation="split")
        """
        src = self._artifact_of("", source, any_artifact=True)
        dst = self._artifact_of("", destination, any_artifact=True)
        if src.id == dst.id:
            raise UsageError("link_entities: source and destination are the same entity")
        ex = self._record(
            STAGE_LINK,
            f"link_entities {src.path} -> {dst.path}",
            {**_plain(attributes), KIND: "link"},
            inputs=[src],
            outputs=[dst],
        )
        return _execution_entity(ex)

    # -- lookups -----------------------------------------------------------------------------
    def _project_stages(self) -> List[Context]:
        pipe = self.store.context(schema.PIPELINE_CONTEXT, self.project)
        if pipe is None:
            raise NotFoundError(f"no project {self.project!r} in the store")
        return self.store.child_contexts(int(pipe.id or 0))

    def _project_artifacts(self) -> List[Artifact]:
        seen: Dict[int, Artifact] = {}
        for stage in self._project_stages():
            for art in self.store.artifacts_by_context(int(stage.id or 0)):
                seen.setdefault(int(art.id or 0), art)
        return list(seen.values())

    def _stage_executions(self, stage: str) -> List[Execution]:
        ctx = self.store.context(schema.STAGE_CONTEXT, schema.stage_context_name(self.project, stage))
        return self.store.executions_by_context(int(ctx.id or 0)) if ctx is not None else []

    def _lookup_artifact(self, kind: str, name: str) -> Optional[Artifact]:
        if self.store.context(schema.PIPELINE_CONTEXT, self.project) is None:
            return None
        matches = [a for a in self._project_artifacts() if a.custom.get(KIND) == kind and a.custom.get(NAME) == name]
        return max(matches, key=lambda a: (a.update_ms, a.id or 0)) if matches else None

    def _artifact_of(self, kind: str, ref: EntityRef, *, any_artifact: bool = False) -> Artifact:
        if isinstance(ref, Artifact):
            return ref
        if isinstance(ref, Entity):
            if ref.record != "artifact":
                raise UsageError(f"{ref.kind} {ref.name!r} is not an artifact entity")
            found = self.store.artifacts_by_id([ref.id])
            if found:
                return found[0]
            raise NotFoundError(f"{ref.kind} {ref.name!r} (artifact {ref.id}) is not in the store")
        text = str(ref)
        kinds = [kind] if kind else ["dataset", "featureset", "model", "deployment"]
        for k in kinds:
            art = self._lookup_artifact(k, text)
            if art is not None:
                return art
        if any_artifact:
            art = find_artifact(self.store, text, self.root)
            if art is not None:
                return art
        what = kind or "entity"
        raise NotFoundError(f"no {what} {text!r} registered in project {self.project!r}")

    def _run_by_tag(self, tag: str, *, deployment: bool = False) -> Optional[Execution]:
        runs = self._stage_executions(STAGE_RUN)
        keys = (DEPLOYMENT_TAG, TAG) if deployment else (TAG,)
        for key in keys:
            matches = [r for r in runs if r.custom.get(key) == tag]
            if matches:
                return max(matches, key=lambda r: (r.create_ms, r.id or 0))
        return None

    def lookup_dataset(self, name: str) -> Entity:
        """The dataset registered as ``name`` (raises :class:`NotFoundError`)."""
        return _entity(self._artifact_of("dataset", name))

    def lookup_featureset(self, name: str) -> Entity:
        """The featureset registered as ``name``."""
        return _entity(self._artifact_of("featureset", name))

    def lookup_model(self, name: str) -> Entity:
        """The model registered as ``name``."""
        return _entity(self._artifact_of("model", name))

    def lookup_deployment(self, tag: str) -> Entity:
        """The deployment registered as ``tag``."""
        return _entity(self._artifact_of("deployment", tag))

    def lookup_modelparams(self, tag: str) -> Dict[str, Value]:
        """The model params of the run tagged ``tag``."""
        run = self._run_by_tag(tag)
        if run is None:
            raise NotFoundError(f"no run tagged {tag!r} in project {self.project!r}")
        return {k: v for k, v in run.custom.items() if not k.startswith("ArangoML_")}

    def lookup_modelperf(self, tag: str) -> Dict[str, Value]:
        """The development performance logged with the run tagged ``tag``."""
        run = self._run_by_tag(tag)
        if run is None:
            raise NotFoundError(f"no run tagged {tag!r} in project {self.project!r}")
        out: Dict[str, Value] = {}
        for art in self._outputs(run, schema.METRICS):
            out.update({k: v for k, v in art.custom.items() if not k.startswith("ArangoML_")})
        return out

    def entities(self) -> List[Entity]:
        """Every entity of the project: registered artifacts, then runs, deployments,
        serving records and links (executions)."""
        out = [_entity(a) for a in self._project_artifacts() if KIND in a.custom]
        for stage in (STAGE_FEATURESET, STAGE_RUN, STAGE_DEPLOY, STAGE_SERVE, STAGE_LINK):
            out += [_execution_entity(e) for e in self._stage_executions(stage)]
        return out

    def find_entity(self, attribute: str, value: Any) -> List[Entity]:
        """Entities of the project whose ``attribute`` (``name``, ``kind``, ``uri``, a
        property or an attribute) equals ``value`` (compared as text).

        Example::

            ml.find_entity("technique", "random forest")
        """
        want = str(value)
        out = []
        for ent in self.entities():
            fields: Dict[str, Any] = {**ent.properties, **ent.attributes, "name": ent.name, "kind": ent.kind, "uri": ent.uri}
            if attribute in fields and str(fields[attribute]) == want:
                out.append(ent)
        return out

    # -- questions across entities ---------------------------------------------------------
    def _outputs(self, ex: Execution, art_type: str) -> List[Artifact]:
        ids = [ev.artifact_id for ev in lineage.io_events(self.store, [int(ex.id or 0)]) if ev.kind == OUTPUT]
        return [a for a in self.store.artifacts_by_id(ids) if a.type == art_type]

    def models_from_dataset(self, dataset: EntityRef) -> List[Artifact]:
        """Models derived, at any distance, from ``dataset`` (a registered name, an
        Entity, or any artifact's path/name/hash)."""
        ds = self._artifact_of("dataset", dataset, any_artifact=True)
        g = lineage.descendants(self.store, artifact_ids=[int(ds.id or 0)])
        return [a for a in g.related_artifacts() if a.type == schema.MODEL]

    def deployments_from_dataset(self, dataset: EntityRef) -> List[Artifact]:
        """Deployments serving a model trained (at any distance) on ``dataset``."""
        ds = self._artifact_of("dataset", dataset, any_artifact=True)
        g = lineage.descendants(self.store, artifact_ids=[int(ds.id or 0)])
        return [a for a in g.related_artifacts() if a.type == DEPLOYMENT]

    def deployed_model(self, deployment: EntityRef) -> Artifact:
        """The model a deployment serves (the Model input of its ``deploy`` execution)."""
        dep = self._artifact_of("deployment", deployment)
        producers = lineage.producers(self.store, [int(dep.id or 0)])
        ids = [ev.artifact_id for ev in lineage.io_events(self.store, producers) if ev.kind == INPUT]
        models = [a for a in self.store.artifacts_by_id(ids) if a.type == schema.MODEL]
        if not models:
            raise NotFoundError(f"deployment {dep.path!r} has no model")
        return models[0]

    def performance(self, deployment: EntityRef) -> Performance:
        """Development vs serving performance of a deployment.

        Development: Metrics written by the executions that produced the deployed
        model (a logged run) or read it (an evaluate stage), except deployments.
        Serving: Metrics of the ``serve`` executions that read the deployment.
        """
        dep = self._artifact_of("deployment", deployment)
        model = self.deployed_model(dep)
        mid = int(model.id or 0)
        execs = lineage.producers(self.store, [mid]) + lineage.consumers(self.store, [mid])
        records = {int(e.id or 0): e for e in self.store.executions_by_id(sorted(set(execs)))}
        development: List[Tuple[str, Mapping[str, Value]]] = []
        for eid in sorted(records):
            ex = records[eid]
            if ex.type == STAGE_DEPLOY:
                continue
            stage = str(ex.properties.get("Stage", "") or ex.type)
            for art in self._outputs(ex, schema.METRICS):
                values = _metric_values(art)
                if values:
                    development.append((stage, values))
        serving: List[Mapping[str, Value]] = []
        consumers = self.store.executions_by_id(lineage.consumers(self.store, [int(dep.id or 0)]))
        for ex in sorted(consumers, key=lambda e: (e.create_ms, e.id or 0)):
            for art in self._outputs(ex, schema.METRICS):
                serving.append(_metric_values(art))
        return Performance(str(dep.custom.get(NAME, dep.path)), model.name, tuple(development), tuple(serving))

    def techniques(self) -> Techniques:
        """Feature-engineering techniques (featureset attributes and ``featureset``
        executions) and modelling techniques (model attributes and ``model_type``)
        used in the project."""
        fe: List[str] = []
        mo: List[str] = []
        for art in self._project_artifacts():
            kind = art.custom.get(KIND)
            values = [str(art.custom[k]) for k in TECHNIQUE_KEYS if art.custom.get(k)]
            if kind == "featureset":
                fe += values
            elif kind == "model" or art.type == schema.MODEL:
                mo += values
                mtype = str(art.properties.get("model_type", ""))
                if mtype and mtype != "Default":
                    mo.append(mtype)
        for ex in self._stage_executions(STAGE_FEATURESET):
            fe += [str(ex.custom[k]) for k in TECHNIQUE_KEYS if ex.custom.get(k)]
        return Techniques(self.project, tuple(dict.fromkeys(fe)), tuple(dict.fromkeys(mo)))


def _metric_values(art: Artifact) -> Dict[str, Value]:
    """A Metrics artifact's values: its custom properties without ours and, for a metrics
    file, without the file facts the recorder adds (size, nfiles)."""
    skip = ("size", "nfiles") if str(art.properties.get("metrics_name", "")).endswith((".json", ".yaml", ".yml", ".csv", ".tsv")) else ()
    return {k: v for k, v in art.custom.items() if not k.startswith("ArangoML_") and k not in skip}


def _now_ms() -> float:
    import time

    return time.time() * 1000.0


def projects(store: Store) -> List[str]:
    """Names of the pipelines that hold ArangoML entities (a ``register`` or ``deploy`` stage)."""
    out = []
    for pipe in store.contexts_by_type(schema.PIPELINE_CONTEXT):
        stages = {c.name for c in store.child_contexts(int(pipe.id or 0))}
        if any(schema.stage_context_name(pipe.name, s) in stages for s in (STAGE_REGISTER, STAGE_DEPLOY)):
            out.append(pipe.name)
    return out


__all__ = [
    "ArangoPipe",
    "Entity",
    "Performance",
    "Techniques",
    "find_artifact",
    "projects",
    "KIND",
    "NAME",
    "TAG",
    "DEPLOYMENT_TAG",
    "DEPLOYMENT",
    "STAGE_REGISTER",
    "STAGE_FEATURESET",
    "STAGE_RUN",
    "STAGE_DEPLOY",
    "STAGE_SERVE",
    "STAGE_LINK",
    "TECHNIQUE_KEYS",
]
