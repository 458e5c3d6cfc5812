"""Checks on a pushed ``json_payload`` (CMF's ``dumptojson`` shape) before anything is written.

A payload that is not JSON, or whose pipeline > stages > executions > events
tree has the wrong shape, is refused with one line naming the first problem,
so a malformed push never reaches the merge (and the store never changes).
Names may hold any character: the merge looks them up and writes them without putting
them into SQL text (:mod:`cmfrun.store.literals`, :class:`cmfrun.store.mlmd.MlmdStore`).
"""
from __future__ import annotations

import copy
import json
from typing import Any, Dict, List, Mapping, Union

from cmfrun import errors

_SCALAR = (str, int, float, bool, type(None))


class VersionUpdate(errors.UsageError):
    """Executions without ``Execution_uuid``: written by a CMF older than the protocol (cmflib answers 422 ``version_update``)."""


def parse_payload(payload: Union[str, Mapping[str, Any]]) -> Dict[str, Any]:
    """The pushed bundle as a dict: cmflib sends a JSON string, our client may send the object."""
    if isinstance(payload, str):
        try:
            data = json.loads(payload)
        except ValueError as exc:
            raise errors.UsageError(f"json_payload is not valid JSON: {exc}") from None
    else:
        data = payload
    if not isinstance(data, Mapping) or not isinstance(data.get("Pipeline"), list) or not data["Pipeline"]:
        raise errors.UsageError('json_payload holds no pipeline: expected {"Pipeline": [...]} as `cmf metadata export` writes')
    check_bundle(data)
    return dict(data)


def _need(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise errors.UsageError(f"malformed json_payload at {where}: {what}")


def _props(node: Mapping[str, Any], where: str) -> None:
    for key in ("properties", "custom_properties"):
        value = node.get(key, {})
        _need(isinstance(value, Mapping), f"{where}.{key}", "must be an object")
        for name, v in value.items():
            _need(isinstance(v, _SCALAR), f"{where}.{key}.{name}", "must be a string or a number")


def check_bundle(data: Mapping[str, Any]) -> None:
    """Raise :class:`UsageError` naming the first place where ``data`` is not a CMF pipeline tree."""
    for i, pipe in enumerate(data["Pipeline"]):
        where = f"Pipeline[{i}]"
        _need(isinstance(pipe, Mapping), where, "must be an object")
        _need(isinstance(pipe.get("name"), str) and bool(pipe.get("name")), f"{where}.name", "must be a non-empty string")
        _props(pipe, where)
        stages = pipe.get("stages", [])
        _need(isinstance(stages, list), f"{where}.stages", "must be a list")
        for j, stage in enumerate(stages):
            sw = f"{where}.stages[{j}]"
            _need(isinstance(stage, Mapping), sw, "must be an object")
            _need(isinstance(stage.get("name"), str) and bool(stage.get("name")), f"{sw}.name", "must be a non-empty string")
            _props(stage, sw)
            execs = stage.get("executions", [])
            _need(isinstance(execs, list), f"{sw}.executions", "must be a list")
            for k, ex in enumerate(execs):
                ew = f"{sw}.executions[{k}]"
                _need(isinstance(ex, Mapping), ew, "must be an object")
                _need(isinstance(ex.get("type", ""), str), f"{ew}.type", "must be a string")
                _need(isinstance(ex.get("name", ""), str), f"{ew}.name", "must be a string")
                _props(ex, ew)
                events = ex.get("events", [])
                _need(isinstance(events, list), f"{ew}.events", "must be a list")
                for m, ev in enumerate(events):
                    vw = f"{ew}.events[{m}]"
                    _need(isinstance(ev, Mapping), vw, "must be an object")
                    _need(isinstance(ev.get("type"), (int, str)) and not isinstance(ev.get("type"), bool), f"{vw}.type", "must be an event type")
                    art = ev.get("artifact")
                    _need(isinstance(art, Mapping), f"{vw}.artifact", "must be an object")
                    for key in ("name", "uri", "type"):
                        _need(isinstance(art.get(key, ""), str), f"{vw}.artifact.{key}", "must be a string")
                    _need(bool(art.get("name")), f"{vw}.artifact.name", "must be a non-empty string")
                    _props(art, f"{vw}.artifact")


def select_pipeline(data: Mapping[str, Any], name: str) -> Dict[str, Any]:
    """The pipeline called ``name`` in the bundle (a :class:`UsageError` when it is not there)."""
    found = [p for p in data["Pipeline"] if p.get("name") == name]
    if not found:
        names = ", ".join(repr(p.get("name")) for p in data["Pipeline"][:5])
        raise errors.UsageError(f"json_payload has no pipeline {name!r} (it has {names})")
    return dict(found[0])


def execution_uuids(ex: Mapping[str, Any]) -> List[str]:
    """The uuids of one execution (CMF joins merged ones with commas)."""
    raw = ex.get("properties", {}).get("Execution_uuid", "")
    return [u for u in str(raw or "").split(",") if u]


def require_uuids(pipeline: Mapping[str, Any]) -> None:
    """cmflib's rule: every unnamed execution must carry ``Execution_uuid`` (else ``version_update``)."""
    for stage in pipeline.get("stages", []):
        for ex in stage.get("executions", []):
            # Named executions are CMF's reusable ones, merged whatever their uuid (cmf_federation does the same).
            if not ex.get("name") and not execution_uuids(ex):
                raise VersionUpdate(
                    f"an execution of stage {stage.get('name')!r} has no Execution_uuid: the client's CMF is too old"
                )


def only_execution(pipeline: Mapping[str, Any], exec_uuid: str) -> Dict[str, Any]:
    """A copy of ``pipeline`` keeping only the execution with ``exec_uuid`` (and its stage)."""
    out = copy.deepcopy(dict(pipeline))
    stages = []
    for stage in out.get("stages", []):
        execs = [ex for ex in stage.get("executions", []) if exec_uuid in execution_uuids(ex)]
        if execs:
            stages.append({**stage, "executions": execs})
    if not stages:
        raise errors.NotFoundError(f"json_payload has no execution with uuid {exec_uuid!r}")
    out["stages"] = stages
    return out


def count_executions(pipeline: Mapping[str, Any]) -> int:
    """How many executions a pipeline tree holds."""
    return sum(len(s.get("executions", [])) for s in pipeline.get("stages", []))


__all__ = [
    "VersionUpdate",
    "parse_payload",
    "check_bundle",
    "select_pipeline",
    "execution_uuids",
    "require_uuids",
    "only_execution",
    "count_executions",
]
