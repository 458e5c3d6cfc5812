"""``cmf metadata push/pull/export/import``: move a pipeline's metadata between stores.

Push and pull are incremental: the two sides first compare execution digests
(:func:`cmfrun.sync.bundle.execution_digests`) and only executions one side lacks, or holds
with other content, travel. The other side is a ``cmf server`` (``--server URL``, else
``CMFRUN_SERVER``, else ``cmf_server_url`` in ``.cmfconfig``) or, with no server, another
store (``--to``/``--from`` a path or URI). Every merge follows :mod:`cmfrun.sync.merge`.

The Python functions :func:`metadata_push`, :func:`metadata_pull` and
:func:`metadata_export` have CMF's signatures (plus keyword-only extras).
"""
from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from cmfrun import config, errors
from cmfrun.commands import open_store
from cmfrun.store import Store
from cmfrun.sync.bundle import BundleError, execution_digests, export_bundle, export_missing, require_pipeline
from cmfrun.sync.client import SyncClient, check_url
from cmfrun.sync.merge import MergeReport, merge_bundle

ENV_SERVER = "CMFRUN_SERVER"
ENV_TOKEN = "CMFRUN_SERVER_TOKEN"
#: ``.cmfconfig`` keys naming the server (cmfrun's spelling, then CMF's).
CONFIG_SERVER_KEYS = ("cmf_server_url", "cmf-server-url")


@dataclass(frozen=True)
class TransferResult:
    """A push or pull: where to/from, what travelled, and the receiving side's merge report."""

    direction: str  # "push" or "pull"
    pipeline: str
    peer: str  # the server URL or the other store (no credentials)
    executions_sent: int
    executions_considered: int
    bytes_sent: int
    bytes_received: int
    requests: int
    report: MergeReport


@dataclass(frozen=True)
class ExportResult:
    """``cmf metadata export``: the bundle and counts (``path`` is ``None`` for stdout)."""

    pipeline: str
    path: Optional[Path]
    data: Mapping[str, Any]
    stages: int
    executions: int
    events: int


@dataclass(frozen=True)
class ImportResult:
    """``cmf metadata import``: the file and the merge report."""

    path: Path
    report: MergeReport


# -- where the server is ----------------------------------------------------------------------
def resolve_server(server: Optional[str], root: Optional[Path] = None, env: Optional[Mapping[str, str]] = None) -> str:
    """The server URL: ``server``, else ``CMFRUN_SERVER``, else ``.cmfconfig``; checked."""
    env = os.environ if env is None else env
    url = server or env.get(ENV_SERVER, "")
    if not url:
        values = config.read_file(root or config.find_root())
        url = next((values[k] for k in CONFIG_SERVER_KEYS if values.get(k)), "")
    if not url:
        raise errors.UsageError(
            "no cmf server: give --server URL, set CMFRUN_SERVER, or cmf init --cmf-server-url URL (or use --to/--from STORE)"
        )
    return check_url(url)


def resolve_token(token: Optional[str], env: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The bearer token: ``token``, else ``CMFRUN_SERVER_TOKEN``, else none."""
    env = os.environ if env is None else env
    return token or env.get(ENV_TOKEN) or None


def _client(server: Optional[str], token: Optional[str], root: Optional[Path]) -> SyncClient:
    return SyncClient(resolve_server(server, root), token=resolve_token(token))


def _check_uuid(store: Store, pipeline: str, execution_uuid: Optional[str]) -> None:
    if not execution_uuid:
        return
    have = {u for key in execution_digests(store, pipeline) for u in key.split(",")}
    if execution_uuid not in have:
        raise errors.NotFoundError(f"pipeline {pipeline!r} has no execution with uuid {execution_uuid!r}")


# -- push / pull --------------------------------------------------------------------------------
def push(
    store: Store,
    pipeline: str,
    *,
    server: Optional[str] = None,
    token: Optional[str] = None,
    to: Optional[str] = None,
    execution_uuid: Optional[str] = None,
    site: Optional[str] = None,
    root: Optional[Path] = None,
) -> TransferResult:
    """Send ``pipeline`` (or one execution of it) to a server, or with ``to`` into another store.

    Only executions the other side lacks or holds with another digest are sent.
    ``site`` (default: this host's name) becomes the ``Host`` of executions that have none.
    """
    require_pipeline(store, pipeline)
    _check_uuid(store, pipeline, execution_uuid)
    wanted = [execution_uuid] if execution_uuid else None
    site = site or socket.gethostname()
    if to is not None:
        target = open_store(to, create=True)
        try:
            have = execution_digests(target, pipeline)
            bundle, sent, total = export_missing(store, pipeline, have, execution_uuids_wanted=wanted)
            report = merge_bundle(target, bundle, site=site) if sent else MergeReport(executions_unchanged=total)
            peer = str(target.location)
        finally:
            target.close()
        return TransferResult("push", pipeline, peer, sent, total, 0, 0, 0, report)
    client = _client(server, token, root)
    have = client.digests(pipeline)
    bundle, sent, total = export_missing(store, pipeline, have, execution_uuids_wanted=wanted)
    if sent:
        report = MergeReport.from_json(client.push(pipeline, bundle, site=site))
    else:
        report = MergeReport(executions_unchanged=total)
    return TransferResult(
        "push", pipeline, client.url, sent, total, client.bytes_sent, client.bytes_received, client.requests, report
    )


def pull(
    store: Store,
    pipeline: str,
    *,
    server: Optional[str] = None,
    token: Optional[str] = None,
    from_store: Optional[str] = None,
    execution_uuid: Optional[str] = None,
    since_ms: Optional[int] = None,
    root: Optional[Path] = None,
) -> TransferResult:
    """Bring ``pipeline`` (or one execution) from a server, or with ``from_store`` from another
    store, into ``store``: only what ``store`` lacks or holds with another digest travels."""
    have = execution_digests(store, pipeline)
    wanted = [execution_uuid] if execution_uuid else None
    if from_store is not None:
        source = open_store(from_store, create=False)
        try:
            bundle, sent, total = export_missing(source, pipeline, have, execution_uuids_wanted=wanted, since_ms=since_ms)
            peer = str(source.location)
        finally:
            source.close()
        if execution_uuid and not total:
            raise errors.NotFoundError(f"{peer}: pipeline {pipeline!r} has no execution with uuid {execution_uuid!r}")
        report = merge_bundle(store, bundle) if sent else MergeReport(executions_unchanged=total)
        return TransferResult("pull", pipeline, peer, sent, total, 0, 0, 0, report)
    client = _client(server, token, root)
    bundle = client.pull(pipeline, have, since_ms=since_ms, execution_uuids=wanted)
    sent = sum(len(s.get("executions", [])) for p in bundle.get("Pipeline", []) for s in p.get("stages", []))
    report = merge_bundle(store, bundle) if sent else MergeReport()
    if execution_uuid and not sent and not any(execution_uuid in k.split(",") for k in have):
        raise errors.NotFoundError(f"cmf server {client.url}: pipeline {pipeline!r} has no execution {execution_uuid!r}")
    return TransferResult(
        "pull", pipeline, client.url, sent, sent + report.executions_unchanged, client.bytes_sent,
        client.bytes_received, client.requests, report,
    )


# -- export / import ----------------------------------------------------------------------------
def export(store: Store, pipeline: str, execution: Optional[str] = None) -> ExportResult:
    """The pipeline's bundle (``execution``: an execution id or uuid keeps only that one)."""
    uuids = None
    if execution:
        uuids = [_uuid_of(store, pipeline, execution)]
    data = export_bundle(store, pipeline, execution_uuids=uuids)
    stages = [s for p in data["Pipeline"] for s in p["stages"]]
    execs = [e for s in stages for e in s["executions"]]
    return ExportResult(pipeline, None, data, len(stages), len(execs), sum(len(e["events"]) for e in execs))


def _uuid_of(store: Store, pipeline: str, ref: str) -> str:
    digests = execution_digests(store, pipeline)
    if ref.isdigit():
        found = store.executions_by_id([int(ref)])
        key = ",".join(str(found[0].properties.get("Execution_uuid", "")).split(",")) if found else ""
        if key and key in digests:
            return key.split(",")[0]
    elif any(ref in k.split(",") for k in digests):
        return ref
    raise errors.NotFoundError(f"pipeline {pipeline!r} has no execution {ref}")


def write_export(result: ExportResult, target: Union[str, Path]) -> ExportResult:
    """Write an export to ``target`` (one JSON document); returns it with ``path`` set."""
    path = Path(target)
    try:
        path.write_text(json.dumps(result.data) + "\n", encoding="utf-8")
    except OSError as exc:
        raise errors.InputFileError(f"cannot write {path}: {exc.strerror}") from None
    return ExportResult(result.pipeline, path, result.data, result.stages, result.executions, result.events)


def import_file(store: Store, path: Union[str, Path], *, site: Optional[str] = None) -> ImportResult:
    """Merge a bundle file (``cmf metadata export`` output, or any CMF ``dumptojson``) into ``store``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise errors.InputFileError(f"bundle file {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise errors.InputFileError(f"cannot read bundle file {p}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BundleError(f"{p}: not a JSON bundle ({exc})") from None
    return ImportResult(p, merge_bundle(store, data, site=site))


# -- CMF's Python functions ---------------------------------------------------------------------
def _store_for(file_name: str, *, create: bool) -> Store:
    return open_store(file_name or "./mlmd", create=create)


def metadata_push(
    pipeline_name: str,
    file_name: str = "./mlmd",
    tensorboard_path: str = "",
    execution_uuid: str = "",
    *,
    server: Optional[str] = None,
    token: Optional[str] = None,
    to: Optional[str] = None,
) -> TransferResult:
    """Push a pipeline's metadata to the cmf server (CMF's ``metadata_push``); ``to`` pushes
    into another store instead. Tensorboard logs are not sent by cmfrun's client."""
    if tensorboard_path:
        raise errors.UsageError("cmfrun's metadata_push does not upload tensorboard logs (cmflib's client does)")
    store = _store_for(file_name, create=False)
    try:
        return push(store, pipeline_name, server=server, token=token, to=to, execution_uuid=execution_uuid or None)
    finally:
        store.close()


def metadata_pull(
    pipeline_name: str,
    file_name: str = "./mlmd",
    execution_uuid: str = "",
    *,
    server: Optional[str] = None,
    token: Optional[str] = None,
    from_store: Optional[str] = None,
) -> TransferResult:
    """Pull a pipeline's metadata from the cmf server into ``file_name`` (CMF's ``metadata_pull``)."""
    store = _store_for(file_name, create=True)
    try:
        return pull(store, pipeline_name, server=server, token=token, from_store=from_store,
                    execution_uuid=execution_uuid or None)
    finally:
        store.close()


def metadata_export(pipeline_name: str, json_file_name: str = "", file_name: str = "./mlmd") -> ExportResult:
    """Write a pipeline's metadata as CMF JSON (CMF's ``metadata_export``; default ``./<pipeline>.json``)."""
    store = _store_for(file_name, create=False)
    try:
        return write_export(export(store, pipeline_name), json_file_name or f"{pipeline_name}.json")
    finally:
        store.close()


__all__ = [
    "TransferResult",
    "ExportResult",
    "ImportResult",
    "ENV_SERVER",
    "ENV_TOKEN",
    "resolve_server",
    "resolve_token",
    "push",
    "pull",
    "export",
    "write_export",
    "import_file",
    "metadata_push",
    "metadata_pull",
    "metadata_export",
]
