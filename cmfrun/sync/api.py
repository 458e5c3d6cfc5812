"""The sync endpoints as a FastAPI router: ``/api/v1/sync/{digests,push,pull}``.

``cmf server`` includes this router (and owns authentication and body size limits);
:mod:`cmfrun.sync.client` speaks to it. Every endpoint opens the store with the
``open_store`` callable it was given, so the router holds no store of its own.

- ``POST /api/v1/sync/digests`` ``{"pipeline": P, "uuids": [...]?}`` ->
  ``{"executions": {uuid: digest}}`` (empty for a pipeline the server does not have yet).
- ``POST /api/v1/sync/push`` ``{"pipeline": P, "site": S, "bundle": {...}}`` ->
  ``{"status": "success", "report": {...}}``; a malformed bundle is a 400 with a one-line
  ``detail`` and writes nothing.
- ``POST /api/v1/sync/pull`` ``{"pipeline": P, "since_ms": T, "have": {uuid: digest}}`` ->
  ``{"bundle": {...}, "executions": N, "server_ms": T}`` with only what the caller lacks or holds with
  another digest; an unknown pipeline is a 404.

Handlers are plain ``def`` functions: FastAPI runs them in its thread pool, so a long
merge does not block the event loop. Merges in one server process take turns (one lock),
which SQLite needs anyway and which keeps concurrent pushes of one pipeline on
PostgreSQL from racing for the same new records.
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from cmfrun import errors
from cmfrun.store import Store
from cmfrun.sync.bundle import BundleError, execution_digests, export_missing, parse_bundle
from cmfrun.sync.gcpause import gc_paused
from cmfrun.sync.merge import merge_bundle

PREFIX = "/api/v1/sync"
#: Stores kept open between requests.
POOL_SIZE = 8

_NAME = Field(..., min_length=1, max_length=255, description="Pipeline name.")


class DigestsRequest(BaseModel):
    """Which pipeline's digests to return (``uuids``: only of those executions)."""

    pipeline: str = _NAME
    uuids: Optional[List[str]] = Field(None, max_length=1_000_000, description="Only these executions.")


class DigestsResponse(BaseModel):
    """``Execution_uuid`` -> digest of every execution of the pipeline the server holds."""

    executions: Dict[str, str]


class PushRequest(BaseModel):
    """A bundle (CMF's ``dumptojson`` shape) of one pipeline, and the site it comes from."""

    pipeline: str = _NAME
    site: Optional[str] = Field(None, max_length=255, description="The pushing site (fills Host where unknown).")
    bundle: Dict[str, Any] = Field(..., description='CMF dumptojson: {"Pipeline": [...]}')


class ConflictModel(BaseModel):
    """A record the server kept as it was because the push disagreed on immutable content."""

    uuid: str
    field: str
    ours: str
    theirs: str
    record: str


class ReportModel(BaseModel):
    """What a merge did."""

    executions_added: int
    executions_updated: int
    executions_unchanged: int
    artifacts_added: int
    artifacts_updated: int
    events_added: int
    contexts_added: int
    conflicts: List[ConflictModel]


class PushResponse(BaseModel):
    """``status`` is ``success`` (conflicts, if any, are listed in the report)."""

    status: str
    report: ReportModel


class PullRequest(BaseModel):
    """What the caller already holds; the answer carries the rest."""

    pipeline: str = _NAME
    since_ms: Optional[int] = Field(None, ge=0, description="Only executions updated at or after this epoch ms.")
    have: Dict[str, str] = Field(default_factory=dict, description="The caller's execution digests.")
    execution_uuids: Optional[List[str]] = Field(None, description="Only these executions.")


class PullResponse(BaseModel):
    """The bundle of what the caller lacks, how many executions it carries, and the server's
    clock when it looked (the caller's ``since_ms`` next time, less a margin)."""

    bundle: Dict[str, Any]
    executions: int
    server_ms: int


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def create_router(open_store: Callable[[], Store]) -> APIRouter:
    """The sync endpoints over the store ``open_store()`` opens (called once per request)."""
    router = APIRouter(prefix=PREFIX, tags=["sync"])
    merging = threading.Lock()
    # Opened stores are reused (one request at a time each): connecting to PostgreSQL costs
    # 60-120 ms, more than an incremental push's whole merge.
    pool: "queue.LifoQueue[Store]" = queue.LifoQueue(maxsize=POOL_SIZE)

    def acquire() -> Store:
        try:
            return pool.get_nowait()
        except queue.Empty:
            pass
        try:
            return open_store()
        except errors.CmfrunError as exc:
            raise HTTPException(status_code=503, detail=_one_line(exc)) from None

    def release(store: Store, healthy: bool) -> None:
        if healthy:
            try:
                pool.put_nowait(store)
                return
            except queue.Full:
                pass
        store.close()  # after a store error the connection may be in any state: drop it

    def run(fn: Callable[[Store], Any]) -> Any:
        store = acquire()
        healthy = False
        try:
            result = fn(store)
            healthy = True
            return result
        except BundleError as exc:
            healthy = True
            raise HTTPException(status_code=400, detail=_one_line(exc)) from None
        except errors.NotFoundError as exc:
            healthy = True
            raise HTTPException(status_code=404, detail=_one_line(exc)) from None
        except errors.StoreError as exc:
            raise HTTPException(status_code=503, detail=_one_line(exc)) from None
        except errors.CmfrunError as exc:
            healthy = True
            raise HTTPException(status_code=400, detail=_one_line(exc)) from None
        finally:
            release(store, healthy)

    @router.post("/digests", response_model=DigestsResponse, summary="Digests of a pipeline's executions")
    def digests(body: DigestsRequest) -> Dict[str, Any]:
        return {"executions": run(lambda s: execution_digests(s, body.pipeline, body.uuids, scan_unnamed=False))}

    @router.post(
        "/push",
        response_model=PushResponse,
        summary="Merge a bundle into the server's store",
        responses={400: {"description": "Malformed bundle (nothing written)"}},
    )
    def push(body: PushRequest) -> Dict[str, Any]:
        parsed = None
        try:
            with gc_paused():
                parsed = parse_bundle(body.bundle)
        except BundleError as exc:
            raise HTTPException(status_code=400, detail=_one_line(exc)) from None
        others = sorted(p.name for p in parsed.pipelines if p.name != body.pipeline)
        if others:
            raise HTTPException(
                status_code=400, detail=f"bundle holds pipeline {others[0]!r}, the request names {body.pipeline!r}"
            )

        def merge(store: Store) -> Dict[str, Any]:
            with merging:
                return merge_bundle(store, parsed, site=body.site).to_json()

        return {"status": "success", "report": run(merge)}

    @router.post(
        "/pull",
        response_model=PullResponse,
        summary="What the caller lacks of a pipeline",
        responses={404: {"description": "Unknown pipeline"}},
    )
    def pull(body: PullRequest) -> Dict[str, Any]:
        server_ms = int(time.time() * 1000)
        bundle, count, _ = run(
            lambda s: export_missing(
                s, body.pipeline, body.have, execution_uuids_wanted=body.execution_uuids, since_ms=body.since_ms
            )
        )
        return {"bundle": bundle, "executions": count, "server_ms": server_ms}

    return router


__all__ = [
    "PREFIX",
    "create_router",
    "DigestsRequest",
    "DigestsResponse",
    "PushRequest",
    "PushResponse",
    "PullRequest",
    "PullResponse",
    "ReportModel",
    "ConflictModel",
]
