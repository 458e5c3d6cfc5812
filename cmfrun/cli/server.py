"""`cmf server`: serve a store to CMF's client (`cmf metadata push/pull`) and cmfrun's JSON API."""
from __future__ import annotations

import os
from typing import Optional

import click

from cmfrun.cli import handle_errors


@click.command("server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (keep loopback unless a token protects it).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port to listen on.")
@click.option("--mlmd", "mlmd", default=None, metavar="STORE", help="Store to serve: a SQLite path or postgresql:// URI (default: DATA/mlmd).")
@click.option("--data", "data_dir", default=None, metavar="DIR", help="Folder for uploaded files (default: ./cmf-server-data).")
@click.option("--token", default=None, metavar="T", help="Require `Authorization: Bearer T` (default: CMFRUN_SERVER_TOKEN).")
@click.option("--public-read", is_flag=True, help="With a token: let reads through without it.")
@click.option("--max-body", default="256MiB", show_default=True, metavar="SIZE", help="Refuse request bodies larger than this (413).")
@handle_errors
def server(
    host: str, port: int, mlmd: Optional[str], data_dir: Optional[str], token: Optional[str], public_read: bool, max_body: str
) -> None:
    """Run a CMF metadata server over one store.

    CMF's client pushes to it and pulls from it (`cmf init ... --cmf-server-url
    http://HOST:PORT`, then `cmf metadata push -p PIPELINE`); cmfrun's JSON API
    is under /api/v1 (OpenAPI spec at /openapi.json). Without a token anyone who
    can reach the port may write: bind to loopback or a private network.

    Example: cmf server --mlmd postgresql://cmf@db/cmf --data /srv/cmf --port 8080
    """
    from cmfrun.server import ServerSettings, serve

    settings = ServerSettings.build(
        store=mlmd,
        data_dir=data_dir,
        token=token if token is not None else os.environ.get("CMFRUN_SERVER_TOKEN") or None,
        public_read=public_read,
        max_body=max_body,
        host=host,
        port=port,
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    click.echo(
        f"cmf server: serving {settings.store} on http://{host}:{port} "
        f"({'token required' if settings.token else 'no token: anyone who reaches this port may write'})",
        err=True,
    )
    serve(settings)


def register(cmf: click.Group) -> None:
    """Add `cmf server` to the `cmf` group."""
    cmf.add_command(server)
