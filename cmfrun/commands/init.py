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
from typing import Optional, Union

from cmfrun import config
from cmfrun.remotes.setup import InitConfig, RemoteSpec, init_project, read_init_config


def init(
    type: Optional[str],
    *,
    root: Optional[Union[str, Path]] = None,
    path: str = "",
    url: str = "",
    endpoint_url: str = "",
    access_key_id: str = "",
    secret_key: str = "",
    session_token: str = "",
    user: str = "",
    password: str = "",
    port: int = 0,
    keyfile: str = "",
    osdf_cache: str = "",
    access_token: str = "",
    key_id: str = "",
    key_path: str = "",
    key_issuer: str = "",
    git_remote_url: str = "",
    cmf_server_url: str = "",
    neo4j_uri: str = "",
    neo4j_user: str = "",
    neo4j_password: str = "",
) -> InitConfig:
    """Set up the project at ``root`` (default: the current project root) with a default
    remote of ``type`` (``local``, ``minioS3``, ``amazonS3``, ``sshremote``,
    ``osdfremote``; ``None`` leaves the remote alone). Running it again updates."""
    spec = None
    if type:
        spec = RemoteSpec.build(
            type,
            path=path,
            url=url,
            endpoint_url=endpoint_url,
            access_key_id=access_key_id,
            secret_key=secret_key,
            session_token=session_token,
            user=user,
            password=password,
            port=port,
            keyfile=keyfile,
            osdf_cache=osdf_cache,
            access_token=access_token,
            key_id=key_id,
            key_path=key_path,
            key_issuer=key_issuer,
        )
    base = Path(root) if root is not None else config.find_root(".")
    return init_project(
        base,
        spec,
        git_remote_url=git_remote_url,
        cmf_server_url=cmf_server_url,
        neo4j_uri=neo4j_uri,
        neo4j_user=neo4j_user,
        neo4j_password=neo4j_password,
    )


def show(root: Optional[Union[str, Path]] = None) -> InitConfig:
    """What ``cmf init`` configured for the project at ``root`` (default: the current one)."""
    return read_init_config(Path(root) if root is not None else config.find_root("."))


__all__ = ["init", "show"]
