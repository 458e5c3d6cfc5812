"""The web UI: server-rendered pages over a store (``cmf ui`` alone, or inside ``cmf server``).

:func:`create_router` returns a FastAPI router; :func:`create_app` wraps it in an app
with ``/`` redirecting to the UI, as ``cmf ui`` serves it. Pages, with their JSON
twins (``?format=json``), live under the router's prefix (``/ui``):

=========================  =====================================================
``/``                      pipelines: stages, execution counts per state, last run
``/executions?pipeline=``  a pipeline's executions: filters, sorting, paging, columns
``/executions/<id>``       one execution
``/artifacts?type=&q=``    artifacts by type, search by name, path or hash prefix
``/artifacts/<id>``        one artifact, its versions, a model card for models
``/lineage?node=``         the lineage graph around ``artifact:<id>``/``execution:<id>``
``/compare?id=&id=``       executions side by side
=========================  =====================================================

Example::

    from fastapi import FastAPI
    from cmfrun.ui import create_router
    app = FastAPI()
    app.include_router(create_router(lambda: store))
"""
from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    from fastapi import APIRouter, FastAPI

    from cmfrun.store import Store


def create_router(open_store: Callable[[], "Store"], *, prefix: str = "/ui", warm_up: bool = False) -> "APIRouter":
    """The UI's pages as a FastAPI router (see :mod:`cmfrun.ui.router`)."""
    from cmfrun.ui.router import create_router as _create

    return _create(open_store, prefix=prefix, warm_up=warm_up)


def create_app(open_store: Callable[[], "Store"], *, prefix: str = "/ui", warm_up: bool = True) -> "FastAPI":
    """An app serving only the UI, with ``/`` redirecting to it (what ``cmf ui`` runs)."""
    from fastapi import FastAPI

    from cmfrun.ui.router import redirect_to

    app = FastAPI(title="cmfrun UI", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(create_router(open_store, prefix=prefix, warm_up=warm_up))
    app.add_api_route("/", redirect_to(prefix), include_in_schema=False)
    return app


def local_store(uri: str) -> Callable[[], "Store"]:
    """An ``open_store`` for one local user: opens the store once (refusing a missing one),
    and before each request merges the ``cmfrun --`` journals that finished since."""
    from cmfrun import journal
    from cmfrun.commands import open_store

    store = open_store(uri, create=False)
    lock = threading.Lock()

    def opener() -> "Store":
        with lock:
            # Never wait on a writer: another process holding the lock merges them itself.
            journal.merge_pending(store, wait=False)
        return store

    return opener


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def serve(app: Any, sock: socket.socket, *, log_level: str = "warning", on_ready: Optional[Callable[[], None]] = None) -> None:
    """Serve ``app`` with uvicorn on an already bound socket until interrupted."""
    import uvicorn

    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    if on_ready is not None:
        on_ready()
    server.run(sockets=[sock])


__all__ = ["create_router", "create_app", "local_store", "bind", "serve"]
