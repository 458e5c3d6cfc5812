"""Deployments and their serving performance (ArangoML entities): typed results, no printing.

The CLI (``cmf deployment register|list|show``, ``cmf serving-perf log``) and
the server call these; :mod:`cmfrun.integrations.arango` does the work.

Example::

    store = open_store("mlmd", create=True)
    info = register_deployment(store, "churn", "prod", model="model.pkl")
    log_serving_perf(store, "prod", {"accuracy": 0.93}, project="churn")
    report = show_deployment(store, "prod")
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from cmfrun import lineage, schema
from cmfrun.errors import NotFoundError, UsageError
from cmfrun.integrations import arango
from cmfrun.records import Artifact, Value
from cmfrun.store import Store


@dataclass(frozen=True)
class DeploymentInfo:
    """One deployment: its project, tag, the model it serves and how many serving records it has."""

    project: str
    tag: str
    id: int
    uri: str
    model: str
    model_hash: str
    create_ms: int
    serving_records: int
    attributes: Mapping[str, Value] = field(default_factory=dict)


@dataclass(frozen=True)
class DeploymentReport:
    """A deployment with the datasets upstream of its model and development vs serving performance."""

    deployment: DeploymentInfo
    datasets: Tuple[str, ...]
    development: Tuple[Tuple[str, Mapping[str, Value]], ...]
    serving: Tuple[Mapping[str, Value], ...]


@dataclass(frozen=True)
class ServingPerfResult:
    """What ``log_serving_perf`` recorded: the Metrics artifact and its values."""

    project: str
    deployment: str
    artifact_id: int
    name: str
    metrics: Mapping[str, Value]


def parse_pairs(pairs: Sequence[str], what: str = "value") -> Dict[str, Value]:
    """``KEY=VALUE`` words as a dict; numbers become ints or floats.

    >>> parse_pairs(["accuracy=0.93", "n=5", "note=ok"])
    {'accuracy': 0.93, 'n': 5, 'note': 'ok'}
    """
    out: Dict[str, Value] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{what} {pair!r} must be KEY=VALUE")
        value: Value = raw
        for cast in (int, float):
            try:
                value = cast(raw)  # type: ignore[operator]
                break
            except ValueError:
                continue
        out[key.strip()] = value
    return out


def _info(store: Store, ml: arango.ArangoPipe, dep: Artifact) -> DeploymentInfo:
    model = ml.deployed_model(dep)
    serving = [ev for ev in store.events_by_artifact([int(dep.id or 0)]) if ev.kind == "INPUT"]
    attrs = {k: v for k, v in dep.custom.items() if not k.startswith("ArangoML_")}
    return DeploymentInfo(
        project=ml.project,
        tag=str(dep.custom.get(arango.NAME, dep.path)),
        id=int(dep.id or 0),
        uri=dep.uri,
        model=model.name,
        model_hash=model.uri,
        create_ms=dep.create_ms,
        serving_records=len(serving),
        attributes=attrs,
    )


def _deployments(store: Store, project: str) -> List[Artifact]:
    ctx = store.context(schema.STAGE_CONTEXT, schema.stage_context_name(project, arango.STAGE_DEPLOY))
    if ctx is None:
        return []
    arts = store.artifacts_by_context(int(ctx.id or 0))
    return sorted(
        (a for a in arts if a.type == arango.DEPLOYMENT and a.custom.get(arango.KIND) == "deployment"),
        key=lambda a: (a.create_ms, a.id or 0),
    )


def _locate(store: Store, tag: str, project: Optional[str]) -> Tuple[arango.ArangoPipe, Artifact]:
    """The project and deployment artifact ``tag`` names (searching every project when none is given)."""
    projects = [project] if project else arango.projects(store)
    hits = []
    for name in projects:
        if store.context(schema.PIPELINE_CONTEXT, name) is None:
            raise NotFoundError(f"no project {name!r} in the store")
        for dep in _deployments(store, name):
            if dep.custom.get(arango.NAME) == tag:
                hits.append((name, dep))
    if not hits:
        where = f"project {project!r}" if project else "any project"
        raise NotFoundError(f"no deployment {tag!r} in {where}")
    if len(hits) > 1:
        names = ", ".join(sorted(h[0] for h in hits))
        raise UsageError(f"deployment {tag!r} exists in several projects ({names}): give -p PROJECT")
    name, dep = hits[0]
    return arango.ArangoPipe(store, name), dep


def register_deployment(
    store: Store,
    project: str,
    tag: str,
    *,
    model: Optional[str] = None,
    attributes: Optional[Mapping[str, Any]] = None,
    root: Optional[Path] = None,
) -> DeploymentInfo:
    """Register deployment ``tag`` in ``project``: of ``model`` (a registered model name, or
    any model artifact's path, name or hash) or of the run logged with that deployment tag."""
    ml = arango.ArangoPipe(store, project, root=root)
    ent = ml.register_deployment(tag, model=model, **dict(attributes or {}))
    return _info(store, ml, store.artifacts_by_id([ent.id])[0])


def list_deployments(store: Store, project: Optional[str] = None) -> List[DeploymentInfo]:
    """Deployments of one project, or of every project, oldest first."""
    projects = [project] if project else arango.projects(store)
    out: List[DeploymentInfo] = []
    for name in projects:
        if store.context(schema.PIPELINE_CONTEXT, name) is None:
            raise NotFoundError(f"no project {name!r} in the store")
        ml = arango.ArangoPipe(store, name)
        out += [_info(store, ml, dep) for dep in _deployments(store, name)]
    return out


def show_deployment(store: Store, tag: str, project: Optional[str] = None) -> DeploymentReport:
    """One deployment: its model, the datasets upstream of it, development vs serving performance."""
    ml, dep = _locate(store, tag, project)
    perf = ml.performance(dep)
    model = ml.deployed_model(dep)
    up = lineage.ancestors(store, artifact_ids=[int(model.id or 0)])
    datasets = tuple(a.path for a in up.related_artifacts() if a.type == schema.DATASET)
    return DeploymentReport(_info(store, ml, dep), datasets, perf.development, perf.serving)


def log_serving_perf(
    store: Store,
    deployment: str,
    metrics: Mapping[str, Any],
    *,
    project: Optional[str] = None,
    attributes: Optional[Mapping[str, Any]] = None,
) -> ServingPerfResult:
    """Record serving metrics against deployment ``deployment`` (its tag)."""
    ml, dep = _locate(store, deployment, project)
    ent = ml.log_serving_perf(dep, metrics, **dict(attributes or {}))
    values = {k: v for k, v in ent.attributes.items() if not k.startswith("ArangoML_")}
    return ServingPerfResult(ml.project, str(dep.custom.get(arango.NAME, dep.path)), ent.id, ent.name, values)


__all__ = [
    "DeploymentInfo",
    "DeploymentReport",
    "ServingPerfResult",
    "parse_pairs",
    "register_deployment",
    "list_deployments",
    "show_deployment",
    "log_serving_perf",
]
