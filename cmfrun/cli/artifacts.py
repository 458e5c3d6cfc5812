"""`cmf init ...` and `cmf artifact push/pull`: set up the artifact remote, move the bytes.

Thin: parse options, call :mod:`cmfrun.commands.init` / :mod:`cmfrun.commands.artifacts`,
print a summary. A progress bar (DVC's tqdm callback) is shown only on a terminal.
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import click

from cmfrun.cli import fail, handle_errors, mlmd_option, subgroup


# -- cmf init ---------------------------------------------------------------------------------
@click.group("init", context_settings={"help_option_names": ["-h", "--help"]})
def init_group() -> None:
    """Configure the project's artifact remote (a DVC remote), CMF server and Neo4j settings.

    Secrets (keys, passwords, tokens) go only into git-ignored local files
    (.dvc/config.local, .cmfconfig.local). Running it again updates the settings.

    Example: cmf init local --path /data/cmf-store --git-remote-url https://example.com/me/proj.git
    """


def _common(func: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed(
        [
            click.option("--git-remote-url", default="", help="Git remote (origin) of the project, e.g. https://github.com/me/proj.git."),
            click.option("--cmf-server-url", default="", help="CMF server URL (default http://127.0.0.1:80)."),
            click.option("--neo4j-user", default="", help="Neo4j user."),
            click.option("--neo4j-password", default="", help="Neo4j password (kept in git-ignored .cmfconfig.local)."),
            click.option("--neo4j-uri", default="", help="Neo4j URI, e.g. bolt://127.0.0.1:7687."),
        ]
    ):
        func = opt(func)
    return func


def _run_init(type_: str, **kwargs: Any) -> None:
    from cmfrun.commands import init

    cfg = init.init(type_, **kwargs)
    view = cfg.public()
    click.echo(f"cmf init: default DVC remote {view['remote_name']!r} -> {view['remote_url']}")
    if cfg.secrets_set:
        click.echo(f"  credentials ({', '.join(cfg.secrets_set)}) in .dvc/config.local (git-ignored)")
    click.echo(f"  settings in {Path(cfg.root) / '.cmfconfig'}")


@init_group.command("local")
@click.option("--path", required=True, help="Folder that stores the artifacts (a local DVC remote).")
@_common
@handle_errors
def init_local(path: str, **common: str) -> None:
    """Use a local (or mounted) folder as the artifact remote.

    Example: cmf init local --path /data/cmf-store
    """
    _run_init("local", path=path, **common)


@init_group.command("minioS3")
@click.option("--url", required=True, help="Bucket URL, e.g. s3://bucket/path.")
@click.option("--endpoint-url", required=True, help="MinIO endpoint, e.g. http://127.0.0.1:9000.")
@click.option("--access-key-id", required=True, help="Access key id (kept in .dvc/config.local).")
@click.option("--secret-key", required=True, help="Secret key (kept in .dvc/config.local).")
@_common
@handle_errors
def init_minio(url: str, endpoint_url: str, access_key_id: str, secret_key: str, **common: str) -> None:
    """Use a MinIO (or any S3-compatible) bucket as the artifact remote.

    Example: cmf init minioS3 --url s3://dvc-art --endpoint-url http://127.0.0.1:9000 --access-key-id K --secret-key S
    """
    _run_init("minioS3", url=url, endpoint_url=endpoint_url, access_key_id=access_key_id, secret_key=secret_key, **common)


@init_group.command("amazonS3")
@click.option("--url", required=True, help="Bucket URL, e.g. s3://bucket/path.")
@click.option("--access-key-id", required=True, help="Access key id (kept in .dvc/config.local).")
@click.option("--secret-key", required=True, help="Secret key (kept in .dvc/config.local).")
@click.option("--session-token", default="", help="Session token (kept in .dvc/config.local).")
@click.option("--endpoint-url", default="", help="Another S3 endpoint (optional).")
@_common
@handle_errors
def init_amazon(url: str, access_key_id: str, secret_key: str, session_token: str, endpoint_url: str, **common: str) -> None:
    """Use an Amazon S3 bucket as the artifact remote.

    Example: cmf init amazonS3 --url s3://bucket/path --access-key-id K --secret-key S
    """
    _run_init(
        "amazonS3", url=url, access_key_id=access_key_id, secret_key=secret_key, session_token=session_token, endpoint_url=endpoint_url, **common
    )


@init_group.command("sshremote")
@click.option("--path", required=True, help="ssh://host/absolute/path")
@click.option("--user", default="", help="SSH user.")
@click.option("--port", type=int, default=0, help="SSH port (default 22).")
@click.option("--password", default="", help="SSH password (kept in .dvc/config.local); omit for key-based login.")
@click.option("--keyfile", default="", help="Private key file for key-based login (default: the SSH agent and ~/.ssh keys).")
@_common
@handle_errors
def init_ssh(path: str, user: str, port: int, password: str, keyfile: str, **common: str) -> None:
    """Use a folder on an SSH server as the artifact remote.

    Example: cmf init sshremote --path ssh://host/data/store --user me --port 22 --keyfile ~/.ssh/id_ed25519
    """
    _run_init("sshremote", path=path, user=user, port=port, password=password, keyfile=keyfile, **common)


@init_group.command("osdfremote")
@click.option("--path", required=True, help="OSDF origin (an http(s):// URL accepting PUT).")
@click.option("--cache", "osdf_cache", default="", help="OSDF cache URL (recorded in .cmfconfig).")
@click.option("--access-token", default="", help="Bearer token, or a file holding it (kept in .dvc/config.local).")
@click.option("--key-id", default="", help="Not supported (token generation): give --access-token.")
@click.option("--key-path", default="", help="Not supported (token generation): give --access-token.")
@click.option("--key-issuer", default="", help="Not supported (token generation): give --access-token.")
@_common
@handle_errors
def init_osdf(path: str, osdf_cache: str, access_token: str, key_id: str, key_path: str, key_issuer: str, **common: str) -> None:
    """Use an OSDF origin (an HTTP(S) server taking PUT with a bearer token) as the artifact remote.

    Example: cmf init osdfremote --path https://origin.example.org/ns/store --access-token ~/.fdp/osdf_token
    """
    _run_init(
        "osdfremote", path=path, osdf_cache=osdf_cache, access_token=access_token, key_id=key_id, key_path=key_path, key_issuer=key_issuer, **common
    )


@init_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def init_show(as_json: bool) -> None:
    """Show the configured artifact remote, CMF server and Neo4j settings (never a secret).

    Example: cmf init show
    """
    import json

    from cmfrun.commands import init

    view = init.show().public()
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    if not view["remote_name"] and not view["cmf_server_url"]:
        click.echo("cmf init has not been run here: try `cmf init local --path DIR`")
        return
    for key, value in view.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(value) + (" (set, in .dvc/config.local)" if value else "")
        click.echo(f"{key}: {value}")


# -- cmf artifact push / pull -------------------------------------------------------------------
@contextlib.contextmanager
def _progress(desc: str) -> Iterator[Any]:
    if not sys.stderr.isatty():
        yield None
        return
    from dvc.fs.callbacks import TqdmCallback

    with TqdmCallback(desc=desc, unit="file") as cb:
        yield cb


def _open(mlmd: Optional[str]) -> Any:
    from cmfrun import config
    from cmfrun.commands import open_store

    settings = config.resolve(store=mlmd)
    return open_store(settings.store, create=False), settings.root


def _lines(label: str, refs: Any) -> None:
    for ref in refs:
        click.echo(f"  {label:<8} {ref.path}  {ref.md5}")


@click.command("push")
@mlmd_option
@click.option("-p", "--pipeline", default=None, help="Only this pipeline's artifacts (default: every pipeline's).")
@click.option("-e", "--execution", default=None, help="Only this execution's artifacts (id, uuid or uuid prefix).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, help="Parallel transfers (default: DVC's per remote).")
@handle_errors
def artifact_push(mlmd: Optional[str], pipeline: Optional[str], execution: Optional[str], jobs: Optional[int]) -> None:
    """Push the bytes of recorded artifacts to the DVC remote `cmf init` configured.

    Exactly the cache objects the selected artifacts reference are sent
    (directories with all their files); objects already on the remote are
    not sent again. Artifacts whose bytes are no longer in the local cache are
    reported, not fatal. A remote that cannot be used exits 3.

    Example: cmf artifact push -p demo -j 8
    """
    from cmfrun.commands import artifacts

    store, root = _open(mlmd)
    with _progress("Pushing") as cb:
        report = artifacts.push_artifacts(store, root, pipeline=pipeline, execution=execution, jobs=jobs, callback=cb)
    click.echo(str(report))
    _lines("pushed", report.pushed)
    _lines("missing", report.missing)
    _lines("failed", report.failed)
    if report.failed:
        cause = f": {report.failure}" if report.failure else ""
        raise fail(f"remote {report.remote}: {len(report.failed)} artifact(s) could not be pushed{cause}", 3)


@click.command("pull")
@mlmd_option
@click.option("-p", "--pipeline", required=True, help="The pipeline whose artifacts to pull.")
@click.option("-a", "--artifact", default=None, help="Only this artifact: name, path or hash.")
@click.option("-e", "--execution", default=None, help="Only this execution's artifacts (id, uuid or uuid prefix).")
@click.option("-o", "--out", "out_dir", default=None, type=click.Path(file_okay=False), help="Write under this folder instead of the project root.")
@click.option("--force", is_flag=True, help="Replace existing files whose content differs.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, help="Parallel transfers.")
@handle_errors
def artifact_pull(
    mlmd: Optional[str], pipeline: str, artifact: Optional[str], execution: Optional[str], out_dir: Optional[str], force: bool, jobs: Optional[int]
) -> None:
    """Fetch recorded artifacts from the DVC remote and write them at their recorded paths.

    Each file is md5-verified and appears only when complete. Paths that are
    absolute or lead outside the target folder are refused, nothing written.
    Files already there with the same content are left alone; with other
    content the pull refuses unless --force. Artifacts the remote does not
    have (or cannot give: HTTP reports a refused request as absent) exit 3
    after the others are written.

    Example: cmf artifact pull -p demo -a model.pkl -o /tmp/restore
    """
    from cmfrun.commands import artifacts

    store, root = _open(mlmd)
    with _progress("Fetching") as cb:
        report = artifacts.pull_artifacts(
            store,
            root,
            pipeline=pipeline,
            artifact=artifact,
            execution=execution,
            out_dir=Path(out_dir) if out_dir else None,
            force=force,
            jobs=jobs,
            callback=cb,
        )
    click.echo(str(report))
    _lines("written", report.written)
    _lines("missing", report.missing)
    if report.missing:
        first = report.missing[0]
        more = f" and {len(report.missing) - 1} more" if len(report.missing) > 1 else ""
        raise fail(f"remote {report.remote}: {first.path} ({first.md5}){more} not there (nor in the local cache): not pulled", 3)


def register(group: click.Group) -> None:
    """Add `cmf init` and `cmf artifact push/pull` to the `cmf` group."""
    group.add_command(init_group)
    artifact = subgroup(group, "artifact", "Artifacts (datasets, models, metrics...).")
    artifact.add_command(artifact_push)
    artifact.add_command(artifact_pull)
