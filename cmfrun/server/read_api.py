"""Our read-only JSON API under ``/api/v1``: pipelines, executions, artifacts, one record, lineage.

Every route is a thin call into :mod:`cmfrun.commands.serve_queries` /
:mod:`cmfrun.commands.inspect`; the answers are those commands' dataclasses
as JSON. References in paths may contain ``/`` (artifact paths).
"""
from __future__ import annotations

from typing import List, Optional

from fastapi import APIRouter, Query

from cmfrun.commands import browse, inspect, serve_queries
from cmfrun.commands.inspect import PipelineInfo, ShowResult
from cmfrun.commands.serve_queries import ArtifactPage, ExecutionPage, LineageView
from cmfrun.server.stores import StoreProvider

_LIMIT = Query(100, ge=1, le=serve_queries.MAX_LIMIT, description="Page size.")
_OFFSET = Query(0, ge=0, le=2**31, description="Records to skip.")


def create_router(provider: StoreProvider, cache: Optional[browse.BrowseCache] = None) -> APIRouter:
    """The ``/api/v1`` read routes; ``cache`` holds flattened execution rows kept up to date
    with the store's writes (shared by all threads; one is made when not given)."""
    router = APIRouter(prefix="/api/v1", tags=["read"])
    cache = cache if cache is not None else browse.BrowseCache()

    @router.get("/pipelines", response_model=List[PipelineInfo])
    def pipelines() -> List[PipelineInfo]:
        """Every pipeline with its stages and execution counts."""
        return inspect.list_pipelines(provider.open())

    @router.get("/pipelines/{name}", response_model=PipelineInfo)
    def pipeline(name: str) -> PipelineInfo:
        """One pipeline."""
        return serve_queries.get_pipeline(provider.open(), name)

    @router.get("/executions", response_model=ExecutionPage)
    def executions(
        pipeline: Optional[str] = Query(None, description="Only this pipeline."),
        stage: Optional[str] = Query(None, description="Only this stage (short or <pipeline>/<stage>)."),
        state: Optional[str] = Query(None, description="running, complete, failed, canceled, unknown."),
        uuid: Optional[str] = Query(None, description="Only this execution uuid (a prefix is enough)."),
        sort: str = Query("-create_ms", description=f"One of {', '.join(serve_queries.EXECUTION_SORTS)}; - for descending."),
        limit: int = _LIMIT,
        offset: int = _OFFSET,
    ) -> ExecutionPage:
        """A page of executions, newest first unless ``sort`` says otherwise."""
        return serve_queries.page_executions(
            provider.open(), pipeline=pipeline, stage=stage, state=state, uuid=uuid, sort=sort, limit=limit, offset=offset,
            cache=cache,
        )

    @router.get("/executions/{ref:path}", response_model=ShowResult)
    def execution(ref: str) -> ShowResult:
        """One execution (id, uuid or uuid prefix, name) with its inputs and outputs."""
        return serve_queries.show_execution(provider.open(), ref)

    @router.get("/artifacts", response_model=ArtifactPage)
    def artifacts(
        pipeline: Optional[str] = Query(None, description="Only artifacts this pipeline used or made."),
        name: Optional[str] = Query(None, description="Full name, path or content hash."),
        type: Optional[str] = Query(None, description="Artifact type (Dataset, Model, Metrics...)."),
        sort: str = Query("-create_ms", description=f"One of {', '.join(serve_queries.ARTIFACT_SORTS)}; - for descending."),
        limit: int = _LIMIT,
        offset: int = _OFFSET,
    ) -> ArtifactPage:
        """A page of artifacts, newest first unless ``sort`` says otherwise."""
        return serve_queries.page_artifacts(
            provider.open(), pipeline=pipeline, name=name, type=type, sort=sort, limit=limit, offset=offset
        )

    @router.get("/artifacts/{ref:path}", response_model=ShowResult)
    def artifact(ref: str) -> ShowResult:
        """One artifact (id, name, hash, or path: its latest version) with the executions that used or made it."""
        return serve_queries.show_artifact(provider.open(), ref)

    @router.get("/lineage/{ref:path}", response_model=LineageView)
    def lineage(
        ref: str,
        direction: str = Query("both", pattern="^(up|down|both)$", description="up (ancestors), down (descendants) or both."),
        depth: Optional[int] = Query(None, ge=0, le=10000, description="Execution generations to walk (all when absent)."),
    ) -> LineageView:
        """Ancestors and/or descendants of an execution or artifact."""
        return serve_queries.lineage_view(provider.open(), ref, direction=direction, depth=depth)

    return router


__all__ = ["create_router"]
