"""``cmf init``: configure the project's artifact remote, CMF server and graph settings.

Thin typed layer over :mod:`cmfrun.remotes.setup`; returns
:class:`~cmfrun.remotes.setup.InitConfig` (print its :meth:`public` view: it
never holds a DVC secret, and shows the Neo4j password only as set or not).

Example::

    cfg = init("local", path="/data/cmf-store", git_remote_url="https://example.com/me/proj.git")
    print(cfg.remote_name, cfg.remote_url)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

from cmfrun import config
from cmfrun.remotes.setup import InitConfig, configure, read_init_config


def init(type: Optional[str], *, root: Optional[Union[str, Path]] = None, **options: Any) -> InitConfig:
    """Set up the project at ``root`` (default: the current project root) with a default
    remote of ``type`` (``local``, ``minioS3``, ``amazonS3``, ``sshremote``,
    ``osdfremote``; ``None`` leaves the remote alone). ``options`` are
    :func:`cmfrun.remotes.setup.configure`'s (the remote's flags, ``git_remote_url``,
    ``cmf_server_url``, ``neo4j_*``). Running it again updates."""
    return configure(Path(root) if root is not None else config.find_root("."), type or "", **options)


def show(root: Optional[Union[str, Path]] = None) -> InitConfig:
    """What ``cmf init`` configured for the project at ``root`` (default: the current one)."""
    return read_init_config(Path(root) if root is not None else config.find_root("."))


__all__ = ["init", "show"]
