"""``cmf server``: CMF's metadata server protocol and cmfrun's JSON API over one store (FastAPI + uvicorn).

Example::

    from cmfrun.server import ServerSettings, create_app
    app = create_app(ServerSettings.build(data_dir="/srv/cmf"))   # any ASGI server can run it
"""
from __future__ import annotations

from cmfrun.server.app import create_app, serve
from cmfrun.server.settings import ServerSettings, parse_size

__all__ = ["create_app", "serve", "ServerSettings", "parse_size"]
