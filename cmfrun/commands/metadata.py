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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

from cmfrun import config, errors
from cmfrun.commands import open_store
from cmfrun.store import Store
from cmfrun.sync.bundle import (
    BundleError,
    PipelineRecords,
    execution_digests,
    execution_uuids,
    export_bundle,
    export_missing,
    missing_from,
    read_pipeline,
    require_pipeline,
)
from cmfrun.sync.client import SyncClient, check_url
from cmfrun.sync.gcpause import gc_paused
from cmfrun.sync.merge import MergeReport, merge_bundle
from cmfrun.sync.state import load_mark, save_mark

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
    have = {u for key in execution_digests(store, pipeline, [execution_uuid]) for u in key.split(",")}
    if execution_uuid not in have:
        raise errors.NotFoundError(f"pipeline {pipeline!r} has no execution with uuid {execution_uuid!r}")


# -- push / pull --------------------------------------------------------------------------------
#: A push mark is the push's start less this much (local writes are short transactions).
PUSH_MARGIN_MS = 1_000
#: A pull mark is the server's clock less this much: a push still being written on the server
#: when we looked carries update times from before; re-receiving recent runs costs little.
PULL_MARGIN_MS = 300_000


def _now_ms() -> int:
    return int(time.time() * 1000)


def _candidates(store: Store, pipeline: str, mark: Optional[int], wanted: Optional[List[str]]) -> PipelineRecords:
    ctx = require_pipeline(store, pipeline)
    if wanted:
        return read_pipeline(store, ctx, execution_uuids_wanted=wanted)
    return read_pipeline(store, ctx, since_ms=mark)


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
    full: bool = False,
) -> TransferResult:
    """Send ``pipeline`` (or one execution of it) to a server, or with ``to`` into another store.

    Incremental twice over: only executions updated since the last push to the same peer
    are considered (a mark kept in the store; ``full=True`` considers all), and of those only
    the ones the other side lacks or holds with another digest are sent. ``site`` (default:
    this host's name) becomes the ``Host`` of executions that have none.
    """
    require_pipeline(store, pipeline)
    _check_uuid(store, pipeline, execution_uuid)
    wanted = [execution_uuid] if execution_uuid else None
    site = site or socket.gethostname()
    started = _now_ms()
    target: Optional[Store] = None
    client: Optional[SyncClient] = None
    if to is not None:
        target = open_store(to, create=True)
        peer = str(target.location)
    else:
        client = _client(server, token, root)
        peer = client.url
    try:
        with gc_paused():  # reading and bundling build ~10^6 objects without cycles
            mark = None if (full or wanted) else load_mark(store, "push", peer, pipeline)
            recs = _candidates(store, pipeline, mark, wanted)
            keys = [",".join(execution_uuids(ex)) for _, ex in recs.executions]
            first = [k.split(",")[0] for k in keys]
            if mark is not None and not keys:
                bundle: Dict[str, Any] = {}
                sent, total = 0, 0
            elif target is not None:
                have = execution_digests(target, pipeline, first if mark is not None or wanted else None)
                bundle, sent, total = missing_from(store, recs, have)
            else:
                assert client is not None
                have = client.digests(pipeline, first if mark is not None or wanted else None)
                bundle, sent, total = missing_from(store, recs, have)
            if not sent:
                report = MergeReport(executions_unchanged=total)
            elif target is not None:
                report = merge_bundle(target, bundle, site=site)
            else:
                assert client is not None
                report = MergeReport.from_json(client.push(pipeline, bundle, site=site))
    finally:
        if target is not None:
            target.close()
    if not wanted:
        save_mark(store, "push", peer, pipeline, started - PUSH_MARGIN_MS)
    if client is None:
        return TransferResult("push", pipeline, peer, sent, total, 0, 0, 0, report)
    return TransferResult(
        "push", pipeline, peer, sent, total, client.bytes_sent, client.bytes_received, client.requests, report
    )


def pull(
    store: Store,
    pipeline: str,
    *,
    server: Optional[str] = None,
    token: Optional[str] = None,
    from_store: Optional[str] = None,
    execution_uuid: Optional[str] = None,
    root: Optional[Path] = None,
    full: bool = False,
) -> TransferResult:
    """Bring ``pipeline`` (or one execution) from a server, or with ``from_store`` from another
    store, into ``store``. The first pull sends this store's digests and receives what they
    lack; later ones ask only for executions updated since the last pull (``full=True``
    compares everything again)."""
    wanted = [execution_uuid] if execution_uuid else None
    if from_store is not None:
        source = open_store(from_store, create=False)
        try:
            peer = str(source.location)
            mark = None if (full or wanted) else load_mark(store, "pull", peer, pipeline)
            started = _now_ms()
            have = {} if mark is not None else execution_digests(store, pipeline, wanted)
            bundle, sent, total = export_missing(source, pipeline, have, execution_uuids_wanted=wanted, since_ms=mark)
        finally:
            source.close()
        if execution_uuid and not total:
            raise errors.NotFoundError(f"{peer}: pipeline {pipeline!r} has no execution with uuid {execution_uuid!r}")
        report = merge_bundle(store, bundle) if sent else MergeReport(executions_unchanged=total)
        if not wanted:
            save_mark(store, "pull", peer, pipeline, started - PULL_MARGIN_MS)
        return TransferResult("pull", pipeline, peer, sent, total, 0, 0, 0, report)
    client = _client(server, token, root)
    mark = None if (full or wanted) else load_mark(store, "pull", client.url, pipeline)
    have = {} if mark is not None else execution_digests(store, pipeline, wanted)
    bundle, server_ms = client.pull(pipeline, have, since_ms=mark, execution_uuids=wanted)
    sent = sum(len(s.get("executions", [])) for p in bundle.get("Pipeline", []) for s in p.get("stages", []))
    report = merge_bundle(store, bundle) if sent else MergeReport()
    if execution_uuid and not sent and not have:
        raise errors.NotFoundError(f"cmf server {client.url}: pipeline {pipeline!r} has no execution {execution_uuid!r}")
    if not wanted and server_ms is not None:
        save_mark(store, "pull", client.url, pipeline, server_ms - PULL_MARGIN_MS)
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
    if ref.isdigit():
        found = store.executions_by_id([int(ref)])
        uuids = execution_uuids(found[0]) if found else ()
        if uuids and execution_digests(store, pipeline, [uuids[0]]):
            return uuids[0]
    elif execution_digests(store, pipeline, [ref]):
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
