"""The ``cmf server`` application: :func:`create_app` builds it from :class:`ServerSettings`.

Routes: CMF's client protocol (``/api/mlmd_push``, ``/api/mlmd_pull``, uploads),
our read API (``/api/v1/...``), the sync router (``/api/v1/sync/...``) and the
web UI (``/ui/``) when those modules are installed, ``/healthz``, and FastAPI's
OpenAPI spec at ``/openapi.json`` (docs at ``/docs``).
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Dict, FrozenSet

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from cmfrun import __version__
from cmfrun.commands import browse
from cmfrun.server import cmf_protocol, handlers, read_api
from cmfrun.server.guard import Guard
from cmfrun.server.settings import ServerSettings
from cmfrun.server.stores import StoreProvider
from cmfrun.server.uploads import UploadStore

log = logging.getLogger("cmfrun.server")

#: POST routes of the sync router that only read (with --public-read anyone may call them).
SYNC_READ_POSTS = frozenset({"/api/v1/sync/pull", "/api/v1/sync/digests"})
#: The sync router's merging POST route.
SYNC_MERGE_POSTS = frozenset({"/api/v1/sync/push"})


def create_app(settings: ServerSettings) -> FastAPI:
    """The FastAPI app serving ``settings.store``; the store is opened (created if a missing SQLite file) now."""
    provider = StoreProvider(settings.store)
    provider.create()
    uploads = UploadStore(settings.data_dir)
    app = FastAPI(
        title="cmfrun server",
        version=__version__,
        description="CMF's metadata server protocol and cmfrun's read API over one MLMD store.",
    )
    app.state.settings = settings
    app.state.store_provider = provider
    handlers.install(app)
    app.include_router(cmf_protocol.create_router(provider, uploads))
    cache = browse.BrowseCache()
    app.include_router(read_api.create_router(provider, cache))
    read_posts: FrozenSet[str] = cmf_protocol.READ_POSTS
    merge_posts: FrozenSet[str] = cmf_protocol.MERGE_POSTS
    try:
        from cmfrun.sync.api import create_router as create_sync_router
    except ImportError:
        log.info("cmfrun.sync.api is not installed: no /api/v1/sync routes")
    else:
        app.include_router(create_sync_router(provider.open_fresh))  # it closes each store it opens
        read_posts = read_posts | SYNC_READ_POSTS
        merge_posts = merge_posts | SYNC_MERGE_POSTS
    has_ui = False
    try:
        from cmfrun.ui import create_router as create_ui_router
    except ImportError:
        log.info("cmfrun.ui is not installed: no web pages")
    else:
        app.include_router(create_ui_router(provider.open, prefix="/ui"))
        has_ui = True

    @app.get("/healthz", tags=["server"])
    def healthz() -> Dict[str, Any]:
        """Liveness: the store answers."""
        provider.open().type_names("execution")
        return {"status": "ok", "version": __version__}

    if has_ui:

        @app.get("/", include_in_schema=False)
        def root() -> RedirectResponse:
            return RedirectResponse("/ui/")

    threading.Thread(target=_warm, args=(provider, cache), name="cmf-server-warm-up", daemon=True).start()
    app.add_middleware(
        Guard,  # type: ignore[arg-type]
        token=settings.token,
        public_read=settings.public_read,
        max_body=settings.max_body,
        read_posts=read_posts,
        merge_posts=merge_posts,
    )
    return app


def _warm(provider: StoreProvider, cache: browse.BrowseCache) -> None:
    """Fill the executions cache in the background, so the first listing after a start
    does not read a big store whole while its client waits (requests meanwhile wait for it)."""
    try:
        store = provider.open_fresh()
        try:
            for name in cache.pipelines(store):
                cache.execution_rows(store, name)
        finally:
            store.close()
    except Exception:  # a warm-up failure only means the first request fills the cache
        log.warning("warming the executions cache failed", exc_info=True)


def serve(settings: ServerSettings) -> None:
    """Run the server until interrupted (uvicorn, one process, the given host and port)."""
    import uvicorn

    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", server_header=False)


__all__ = ["create_app", "serve", "SYNC_READ_POSTS", "SYNC_MERGE_POSTS"]
