"""CMF's client protocol, as cmflib 0.1.0 speaks it (``cmflib/server_interface``).

- ``POST /api/mlmd_push`` ``{exec_uuid, json_payload, pipeline_name}``: merge a
  pushed pipeline (``json_payload`` is the ``dumptojson`` string) into the
  store. 200 ``{"status": "success"}`` when something landed, ``"exists"``
  when everything was already there; 422 ``{"status": "version_update"}`` for
  executions without a uuid (cmflib's rule); 400 for a malformed payload.
- ``POST /api/mlmd_pull`` ``{pipeline_name, exec_uuid}``: the pipeline in the
  ``dumptojson`` shape; 404 when the pipeline does not exist; the body
  ``no_exec_uuid`` when the execution does not (cmflib tests for that text).
- ``POST /api/python-env``, ``/api/label``, ``/api/tensorboard?pipeline_name=``
  (multipart ``file``): files kept content-addressed in the data folder;
  ``GET /api/python-env?file_name=`` gives one back.

Each push is validated whole, then merged by :func:`cmfrun.sync.merge.merge_bundle`
(one transaction for its executions, artifacts and events) under the store's write
lock; the server's guard makes merges take turns.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Dict, List, Mapping, Optional, Union

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field

from cmfrun import errors
from cmfrun.commands import inspect, serve_queries
from cmfrun.server import bundle
from cmfrun.server.handlers import error_response, one_line
from cmfrun.server.stores import StoreProvider
from cmfrun.server.uploads import StoredFile, UploadStore
from cmfrun.sync.merge import merge_bundle

log = logging.getLogger("cmfrun.server")

#: POST endpoints of this router that only read (open to all with ``--public-read``).
READ_POSTS = frozenset({"/api/mlmd_pull"})
#: POST endpoints of this router that merge into the store (they take turns, see :class:`~cmfrun.server.guard.Guard`).
MERGE_POSTS = frozenset({"/api/mlmd_push"})


class MlmdPushRequest(BaseModel):
    """What ``cmf metadata push`` sends."""

    pipeline_name: str = Field(min_length=1, description="The pipeline to merge from the payload.")
    json_payload: Union[str, Dict[str, Any]] = Field(description="CMF's dumptojson output (a JSON string, or the object).")
    exec_uuid: Optional[str] = Field(default=None, description="Only this execution of the payload.")


class MlmdPullRequest(BaseModel):
    """What ``cmf metadata pull`` sends."""

    pipeline_name: Optional[str] = Field(default=None, description="The pipeline to pull (all when empty).")
    exec_uuid: Optional[str] = Field(default=None, description="Only this execution.")


class PushAnswer(BaseModel):
    """The answer to a push: ``success`` or ``exists``, and what the merge did."""

    status: str
    pipeline: str
    executions: int = Field(description="Executions in the (filtered) payload.")
    report: Dict[str, Any] = Field(default_factory=dict)


class UploadAnswer(BaseModel):
    """The answer to an upload (cmflib prints it)."""

    status: str
    message: str
    name: str
    sha256: str
    size: int


def _report_dict(report: Any) -> Dict[str, Any]:
    to_json = getattr(report, "to_json", None)
    if callable(to_json):
        return dict(to_json())
    if dataclasses.is_dataclass(report) and not isinstance(report, type):
        return {k: v for k, v in dataclasses.asdict(report).items()}
    if isinstance(report, Mapping):
        return dict(report)
    return {"result": str(report)}


def report_changed(report: Any) -> bool:
    """Whether a merge changed anything (then cmflib's answer is ``success``, else ``exists``)."""
    changed = getattr(report, "changed", None)
    if isinstance(changed, bool):
        return changed
    counts = _report_dict(report)
    return any(
        isinstance(v, int) and not isinstance(v, bool) and v > 0
        for k, v in counts.items()
        if any(word in k for word in ("created", "added", "updated", "new", "advanced", "linked"))
    )


def create_router(provider: StoreProvider, uploads: UploadStore) -> APIRouter:
    """The ``/api`` routes cmflib's client calls."""
    router = APIRouter(prefix="/api", tags=["cmf protocol"])

    @router.post("/mlmd_push", response_model=PushAnswer)
    def mlmd_push(req: MlmdPushRequest) -> Any:
        """Merge a pushed pipeline into the store, in one transaction."""
        try:
            data = bundle.parse_payload(req.json_payload)
            pipeline = bundle.select_pipeline(data, req.pipeline_name)
            bundle.require_uuids(pipeline)
            if req.exec_uuid:
                pipeline = bundle.only_execution(pipeline, req.exec_uuid)
        except bundle.VersionUpdate as exc:
            return error_response(422, str(exc), status="version_update")
        store = provider.open()
        with store.write_lock():
            report = merge_bundle(store, {"Pipeline": [pipeline]})
        answer = PushAnswer(
            status="success" if report_changed(report) else "exists",
            pipeline=req.pipeline_name,
            executions=bundle.count_executions(pipeline),
            report=_report_dict(report),
        )
        log.info("push of %r: %s", req.pipeline_name, answer.status)
        return answer

    @router.post(
        "/mlmd_pull",
        responses={200: {"content": {"application/json": {}, "text/plain": {}}, "description": "dumptojson, or no_exec_uuid"}},
    )
    def mlmd_pull(req: MlmdPullRequest) -> Response:
        """A pipeline (or all pipelines) in CMF's dumptojson shape."""
        store = provider.open()
        if not req.pipeline_name:
            pipelines: List[Dict[str, Any]] = []
            for info in inspect.list_pipelines(store):
                pipelines += inspect.export_metadata(store, info.name).data["Pipeline"]
            return JSONResponse({"Pipeline": pipelines})
        execution_id = None
        if req.exec_uuid:
            matches = [
                e
                for e in inspect.find_executions(store, req.exec_uuid)
                if req.exec_uuid in bundle.execution_uuids({"properties": e.properties})
                and inspect.execution_stage(e)[0] == req.pipeline_name
            ]
            inspect.export_metadata(store, req.pipeline_name)  # 404 for a missing pipeline first
            if not matches:
                return PlainTextResponse("no_exec_uuid")
            execution_id = int(matches[0].id or 0)
        result = inspect.export_metadata(store, req.pipeline_name, execution_id)
        return JSONResponse(dict(result.data))

    def _upload(kind: str, file: UploadFile, pipeline: str = "") -> UploadAnswer:
        stored: StoredFile = uploads.save(kind, file.filename, file.file, pipeline=pipeline)
        if stored.existed and not stored.new_content and kind == "label":
            status, message = "exists", f"File '{stored.name}' already exists. Skipping upload."
        else:
            status, message = "success", f"File '{stored.name}' uploaded successfully"
        return UploadAnswer(status=status, message=message, name=stored.name, sha256=stored.sha256, size=stored.size)

    @router.post("/python-env", response_model=UploadAnswer)
    def upload_python_env(file: UploadFile = File(..., description="The environment file.")) -> UploadAnswer:
        """Keep a Python environment file (pip freeze / conda yaml) an execution refers to."""
        return _upload("python-env", file)

    @router.get("/python-env", response_class=PlainTextResponse)
    def get_python_env(file_name: str = Query(..., min_length=1, description="The file's name.")) -> PlainTextResponse:
        """The content of an uploaded environment file."""
        entry = uploads.find("python-env", file_name)
        if entry is None:
            raise errors.NotFoundError(f"no environment file {one_line(file_name)!r} on this server")
        return PlainTextResponse(uploads.read(entry).decode("utf-8", errors="replace"))

    @router.post("/label", response_model=UploadAnswer)
    def upload_label(file: UploadFile = File(..., description="The label file.")) -> UploadAnswer:
        """Keep a label file a dataset artifact refers to."""
        return _upload("label", file)

    @router.post("/tensorboard", response_model=UploadAnswer)
    def upload_tensorboard(
        pipeline_name: str = Query(..., min_length=1, description="Pipeline name"),
        file: UploadFile = File(..., description="One tensorboard log file."),
    ) -> UploadAnswer:
        """Keep one tensorboard log file of a pipeline (its relative path is the name)."""
        return _upload("tensorboard", file, pipeline_name)

    return router


__all__ = ["create_router", "READ_POSTS", "MERGE_POSTS", "MlmdPushRequest", "MlmdPullRequest", "PushAnswer", "UploadAnswer", "report_changed"]
