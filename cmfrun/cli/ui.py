"""`cmf ui`: the web UI over a local store, on 127.0.0.1."""
from __future__ import annotations

from typing import Optional

import click

from cmfrun.cli import fail, handle_errors, mlmd_option


@click.command("ui")
@mlmd_option
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="Port to listen on (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (keep 127.0.0.1 unless you mean to share it).")
@handle_errors
def ui_command(mlmd: Optional[str], port: int, host: str) -> None:
    """Browse the store in a web browser: pipelines, executions, artifacts, lineage, compare.

    Read-only; runs that finished since are merged before each page, as every cmf command does.

    Example: cmf ui -f mlmd --port 8765
    """
    from cmfrun import config
    from cmfrun.ui import bind, create_app, local_store, serve

    settings = config.resolve(store=mlmd)
    app = create_app(local_store(str(settings.store)))
    try:
        sock = bind(host, port)
    except OSError as exc:
        raise fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", 3) from None
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host

    def ready() -> None:
        click.echo(f"cmf ui: serving {settings.store} at http://{shown}:{bound_port}/ui/ (Ctrl+C stops)", err=False)

    try:
        serve(app, sock, on_ready=ready)
    except KeyboardInterrupt:
        pass


def register(group: click.Group) -> None:
    group.add_command(ui_command)
