"""OpenLineage RunEvents from the store, sent through the ``openlineage-python`` client's transports.

Each execution becomes a START event and, once it ended, a COMPLETE, FAIL
(or ABORT, for a canceled run) event:

- ``run.runId``: the execution's uuid (``Execution_uuid``, a uuid1);
- ``job``: namespace = the pipeline, name = the stage;
- inputs/outputs: namespace = the git repository (``Git_Repo``, credentials
  removed) or else the store, name = the artifact's path, with a ``version``
  dataset facet holding the DVC md5 (the artifact's uri);
- run facets: ``processing_engine`` (cmfrun), ``executionParameters`` (the
  run's params) and ``cmfrun_git`` (repository, commits before/after, dirty
  flag) on START; ``cmfrun_execution`` (command, state, exit code, MLMD ids) on
  the end event (on START for a run still running) and ``errorMessage`` on
  FAIL; job facet ``jobType`` (BATCH, integration CMFRUN).

``openlineage-python`` is an optional extra (``pip install 'cmfrun[openlineage]'``);
this module imports it at module level, so import this module lazily.

Example::

    events = list(build_events(store, "demo"))
    sent = send(events, file_transport("lineage.jsonl"))
"""
from __future__ import annotations

import datetime
import logging
import os
import uuid as _uuid
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, cast
from urllib.parse import urlsplit, urlunsplit

from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport, TokenProvider
from openlineage.client.transport.transport import Transport

from cmfrun import __version__, schema
from cmfrun.errors import CmfrunError, InputFileError, NotFoundError, UsageError
from cmfrun.records import INPUT, OUTPUT, Artifact, Execution
from cmfrun.store import Store

log = logging.getLogger(__name__)

#: Where the live emission from ``cmfrun --`` (the background merger) sends events.
ENV_URL = "CMFRUN_OPENLINEAGE_URL"
#: The OpenLineage client's own variable for the API key (sent as ``Authorization: Bearer``).
ENV_API_KEY = "OPENLINEAGE_API_KEY"
#: ``producer`` and facet ``_producer``: a URI naming this version of cmfrun.
PRODUCER = f"urn:cmfrun:{__version__}"
#: ``_schemaURL`` of cmfrun's own facets (no public schema document; a stable URN).
FACET_SCHEMA = "urn:cmfrun:facets:{name}:1-0-0"
#: HTTP retries: an unreachable endpoint must cost seconds, not minutes (export catches up
#: later), and urllib3 logs a warning on stderr for every retry after a connection error:
#: retry only a 5xx answer, once.
HTTP_RETRY = {"total": 1, "connect": 0, "read": 0, "status": 1, "backoff_factor": 0.2,
              "status_forcelist": [500, 502, 503, 504], "allowed_methods": ["POST"]}
_NS = _uuid.UUID("8d3b3f0e-6c77-4c1e-9a55-53f1a3a0e0b2")


class LineageEndpointError(CmfrunError):
    """The OpenLineage endpoint cannot be reached, refused the credentials, or failed."""

    exit_code = 3


class LineageAuthError(LineageEndpointError):
    """The endpoint answered 401/403: the API key is missing or wrong (never shown)."""


#: An event as the transports send it: the JSON object of a RunEvent.
Event = Dict[str, Any]

_SPEC = "https://openlineage.io/spec"
#: ``_schemaURL`` of the event and the standard facets: (client module, class, the spec's URL
#: when this client version does not generate that class yet).
_SCHEMA_SOURCES = {
    "event": ("base", "RunEvent", f"{_SPEC}/2-0-2/OpenLineage.json#/$defs/RunEvent"),
    "version": ("dataset_version_dataset", "DatasetVersionDatasetFacet",
                f"{_SPEC}/facets/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet"),
    "errorMessage": ("error_message_run", "ErrorMessageRunFacet",
                     f"{_SPEC}/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"),
    "executionParameters": ("execution_parameters_run", "ExecutionParametersRunFacet",
                            f"{_SPEC}/facets/1-0-0/ExecutionParametersRunFacet.json#/$defs/ExecutionParametersRunFacet"),
    "jobType": ("job_type_job", "JobTypeJobFacet", f"{_SPEC}/facets/2-0-3/JobTypeJobFacet.json#/$defs/JobTypeJobFacet"),
    "processing_engine": ("processing_engine_run", "ProcessingEngineRunFacet",
                          f"{_SPEC}/facets/1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet"),
}


def _schema_url(module: str, cls: str, fallback: str) -> str:
    """The schema URL the installed client generates for ``cls`` (the version it speaks)."""
    import importlib

    try:
        return str(getattr(importlib.import_module(f"openlineage.client.generated.{module}"), cls)._get_schema())
    except (ImportError, AttributeError):
        return fallback


_SCHEMA = {key: _schema_url(*source) for key, source in _SCHEMA_SOURCES.items()}


def facet(kind: str, **fields: Any) -> Dict[str, Any]:
    """A facet object: ``_producer``, ``_schemaURL`` (a standard facet's, or cmfrun's URN
    for its own ``cmfrun_*`` facets) and the fields."""
    url = _SCHEMA.get(kind) or FACET_SCHEMA.format(name=kind)
    return {"_producer": PRODUCER, "_schemaURL": url, **fields}


@dataclass(frozen=True)
class SendResult:
    """How many events went out, for how many executions, to where."""

    events: int
    executions: int
    target: str


def safe_url(url: str) -> str:
    """``url`` without user, password, query or fragment (for messages and namespaces)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    if not parts.scheme:
        return url.split("@")[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _iso(ms: float) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000.0, tz=datetime.timezone.utc).isoformat(timespec="milliseconds")


def run_id(ex: Execution, store_label: str) -> str:
    """The execution's uuid (the first, for CMF's reused executions), else a stable uuid5."""
    first = str(ex.properties.get("Execution_uuid", "")).split(",")[0].strip()
    try:
        return str(_uuid.UUID(first))
    except ValueError:
        return str(_uuid.uuid5(_NS, f"{store_label}/{ex.id}"))


def _float(value: Any) -> Optional[float]:
    try:
        return float(value) if value not in ("", None) else None
    except (TypeError, ValueError):
        return None


def _stage(ex: Execution) -> Tuple[str, str]:
    pipeline = str(ex.properties.get("Pipeline_Type", ""))
    stage = str(ex.properties.get("Stage", ""))
    if not stage:
        ctx = str(ex.properties.get("Context_Type", ""))
        stage = ctx[len(pipeline) + 1 :] if pipeline and ctx.startswith(pipeline + "/") else (ctx or ex.type)
    return pipeline, stage


def store_namespace(store: Store) -> str:
    """The dataset namespace of artifacts outside any git repository: the store itself."""
    loc = store.location
    if loc.backend == "sqlite":
        return f"file://{loc.path}"
    return str(loc)


class EventBuilder:
    """Turns executions (with their events and artifacts) into OpenLineage RunEvents.

    Events are built as the JSON objects the transports send (the client's attrs
    classes cost ~0.4 ms per event to build and as much again to turn back into
    dicts; 10,000 executions must export in seconds). The standard facets carry
    the ``_schemaURL`` of the client's generated classes, and the tests validate
    every event against the specification's JSON schema. Run facets with the
    run's inputs (params, git) go on START; the end event carries the outcome
    (execution facet, ``errorMessage``) and the outputs. Consumers merge a run's
    facets across its events.
    """

    def __init__(self, store: Store, *, namespace: Optional[str] = None):
        self.store = store
        self.namespace = namespace
        self.store_label = store_namespace(store)
        self._engine = facet("processing_engine", version=__version__, name="cmfrun", openlineageAdapterVersion=__version__)
        self._job_facets = {"jobType": facet("jobType", processingType="BATCH", integration="CMFRUN", jobType="STAGE")}
        self._urls: Dict[str, str] = {"": ""}

    def _safe(self, url: str) -> str:
        # Every execution of a pipeline names the same repository: parse it once.
        if url not in self._urls:
            self._urls[url] = safe_url(url)
        return self._urls[url]

    @staticmethod
    def _datasets(ns: str, arts: Sequence[Artifact]) -> List[Dict[str, Any]]:
        out = []
        for art in arts:
            ds: Dict[str, Any] = {"namespace": ns, "name": art.path or art.name}
            if art.uri:
                ds["facets"] = {"version": facet("version", datasetVersion=art.uri)}
            out.append(ds)
        return out

    def events(self, ex: Execution, inputs: Sequence[Artifact], outputs: Sequence[Artifact]) -> List[Event]:
        """START (and COMPLETE/FAIL/ABORT unless still running) for one execution."""
        p = ex.properties
        pipeline, stage = _stage(ex)
        dirty = p.get("Git_Dirty")
        exit_code = p.get("Exit_Code")
        repo = self._safe(str(p.get("Git_Repo", "")))
        git: Dict[str, Any] = {
            "repoUrl": repo,
            "startCommit": str(p.get("Git_Start_Commit", "")),
            "endCommit": str(p.get("Git_End_Commit", "")),
        }
        if dirty not in ("", None):
            git["dirty"] = bool(dirty)
        execution: Dict[str, Any] = {
            "command": str(p.get("Execution", "")),
            "state": ex.state,
            "executionId": int(ex.id or 0),
            "executionType": ex.type,
            "store": self.store_label,
        }
        if isinstance(exit_code, (int, float)):
            execution["exitCode"] = int(exit_code)
        params = [{"key": str(k), "value": str(v)} for k, v in sorted(ex.custom.items())]
        rid = run_id(ex, self.store_label)
        job = {"namespace": self.namespace or pipeline or "cmfrun", "name": stage or ex.type, "facets": self._job_facets}
        start_ms = _float(p.get("Start_Time_ms")) or float(ex.create_ms)
        end_ms = _float(p.get("End_Time_ms")) or float(ex.update_ms or ex.create_ms)
        ns = repo or self.store_label
        ins = self._datasets(ns, inputs)
        start: Event = {
            "eventType": "START",
            "eventTime": _iso(start_ms),
            "producer": PRODUCER,
            "schemaURL": _SCHEMA["event"],
            "run": {
                "runId": rid,
                "facets": {
                    "processing_engine": self._engine,
                    "executionParameters": facet("executionParameters", parameters=params),
                    "cmfrun_git": facet("GitRunFacet", **git),
                },
            },
            "job": job,
            "inputs": ins,
            "outputs": [],
        }
        if ex.state in ("RUNNING", "NEW"):
            start["run"]["facets"]["cmfrun_execution"] = facet("ExecutionRunFacet", **execution)
            return [start]
        end_facets: Dict[str, Any] = {"cmfrun_execution": facet("ExecutionRunFacet", **execution)}
        if ex.state == "FAILED":
            state = "FAIL"
            message = f"exited with code {exit_code}" if exit_code not in ("", None) else "failed"
            end_facets["errorMessage"] = facet("errorMessage", message=message, programmingLanguage="shell")
        elif ex.state == "CANCELED":
            state = "ABORT"
        else:
            state = "COMPLETE"
        end: Event = {
            "eventType": state,
            "eventTime": _iso(max(end_ms, start_ms)),
            "producer": PRODUCER,
            "schemaURL": _SCHEMA["event"],
            "run": {"runId": rid, "facets": end_facets},
            "job": job,
            "inputs": ins,
            "outputs": self._datasets(ns, outputs),
        }
        return [start, end]


def _pipeline_executions(store: Store, pipeline: str) -> List[Execution]:
    pipe = store.context(schema.PIPELINE_CONTEXT, pipeline)
    if pipe is None:
        known = ", ".join(sorted(c.name for c in store.contexts_by_type(schema.PIPELINE_CONTEXT))) or "none"
        raise NotFoundError(f"no pipeline {pipeline!r} in the store (pipelines: {known})")
    seen: Dict[int, Execution] = {}
    for stage in store.child_contexts(int(pipe.id or 0)):
        for ex in store.executions_by_context(int(stage.id or 0)):
            seen.setdefault(int(ex.id or 0), ex)
    return [seen[k] for k in sorted(seen)]


def build_events(
    store: Store,
    pipeline: Optional[str] = None,
    *,
    since_ms: Optional[int] = None,
    executions: Optional[Sequence[Execution]] = None,
    namespace: Optional[str] = None,
    batch: int = 500,
) -> Iterator[Tuple[Execution, List[Event]]]:
    """``(execution, events)`` for every execution of ``pipeline`` (or the ``executions``
    given) last written at or after ``since_ms``, oldest first; events and artifacts
    are read in batches of ``batch`` executions."""
    if executions is None:
        if not pipeline:
            raise UsageError("name a pipeline (-p PIPELINE)")
        executions = _pipeline_executions(store, pipeline)
    todo = [e for e in executions if since_ms is None or max(e.update_ms, e.create_ms) >= since_ms]
    builder = EventBuilder(store, namespace=namespace)
    for i in range(0, len(todo), batch):
        chunk = todo[i : i + batch]
        evs = [ev for ev in store.events_by_execution([int(e.id or 0) for e in chunk]) if ev.kind in (INPUT, OUTPUT)]
        arts = {int(a.id or 0): a for a in store.artifacts_by_id(sorted({ev.artifact_id for ev in evs}))}
        by_exec: Dict[int, Tuple[List[Artifact], List[Artifact]]] = {}
        for ev in evs:
            art = arts.get(ev.artifact_id)
            if art is None:
                continue
            ins, outs = by_exec.setdefault(ev.execution_id, ([], []))
            (ins if ev.kind == INPUT else outs).append(art)
        for ex in chunk:
            ins, outs = by_exec.get(int(ex.id or 0), ([], []))
            yield ex, builder.events(ex, ins, outs)


def file_transport(path: str) -> Transport:
    """The client's file transport, one JSON event per line, into a fresh ``path``."""
    try:
        with open(path, "w", encoding="utf-8"):
            pass  # start empty: the transport appends
    except OSError as exc:
        raise InputFileError(f"cannot write {path}: {exc.strerror}") from None
    return FileTransport(FileConfig(log_file_path=path, append=True))


def http_transport(url: str, api_key: Optional[str] = None, *, timeout: float = 5.0) -> Transport:
    """The client's HTTP transport (``POST <url>/api/v1/lineage``); ``api_key`` is sent as
    ``Authorization: Bearer``. A URL path other than ``/`` is used as the endpoint."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"OpenLineage URL {safe_url(url)!r} must be http:// or https:// with a host")
    base = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    endpoint = parts.path.lstrip("/") or "api/v1/lineage"
    auth: TokenProvider = ApiKeyTokenProvider({"apiKey": api_key}) if api_key else TokenProvider({})
    config = HttpConfig(url=base, endpoint=endpoint, timeout=timeout, auth=auth, retry=dict(HTTP_RETRY))
    return HttpTransport(config)


def _translate(exc: BaseException, target: str) -> CmfrunError:
    """Transport failures as one line; nothing of the request (no key) is repeated."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status in (401, 403):
        return LineageAuthError(f"OpenLineage endpoint {target} refused the credentials (HTTP {status}): check the API key")
    if status is not None:
        return LineageEndpointError(f"OpenLineage endpoint {target} answered HTTP {status}")
    name = type(exc).__name__
    if "Connection" in name or "Timeout" in name or "MaxRetry" in name or isinstance(exc, OSError):
        return LineageEndpointError(f"cannot reach OpenLineage endpoint {target} ({name})")
    text = str(exc).splitlines()[0] if str(exc) else name
    return LineageEndpointError(f"OpenLineage transport to {target} failed: {text}")


def send(
    items: Iterable[Tuple[Execution, List[Event]]], transport: Transport, *, target: str = ""
) -> SendResult:
    """Emit every event through ``transport``; stops at the first failure, raising
    :class:`LineageEndpointError` (what was sent before it stays sent)."""
    events = executions = 0
    try:
        for _, batch in items:
            for event in batch:
                # The transports serialise with the client's Serde, which takes the event's
                # JSON object as it is (see EventBuilder).
                transport.emit(cast(Any, event))
                events += 1
            executions += 1
    except CmfrunError:
        raise
    except Exception as exc:
        raise _translate(exc, target or transport.kind or "") from None
    finally:
        try:
            transport.close()
        except Exception:  # closing never hides the result or the first error
            pass
    return SendResult(events, executions, target)


def emit_live(
    store: Store, runs: Sequence[Tuple[str, str]], url: str, api_key: Optional[str] = None
) -> SendResult:
    """Send the events of the executions named by ``runs`` (``(execution type, name)``
    pairs, as the wrapper's journals give them): the background merger's live emission.
    Raises :class:`LineageEndpointError`; the caller warns once."""
    execs = [e for e in (store.execution_by_type_and_name(t, n) for t, n in runs) if e is not None]
    if not execs:
        return SendResult(0, 0, safe_url(url))
    return send(build_events(store, executions=execs), http_transport(url, api_key), target=safe_url(url))


def api_key_from_env(given: Optional[str] = None) -> Optional[str]:
    """The API key: ``given``, else ``OPENLINEAGE_API_KEY`` (empty means none)."""
    return given or os.environ.get(ENV_API_KEY) or None


def event_dicts(items: Iterable[Tuple[Execution, List[Event]]]) -> Iterator[Mapping[str, Any]]:
    """The events exactly as the transports send them (the client's Serde drops nulls)."""
    from openlineage.client.serde import Serde

    for _, batch in items:
        for event in batch:
            yield Serde.to_dict(event)


__all__ = [
    "ENV_URL",
    "ENV_API_KEY",
    "PRODUCER",
    "LineageEndpointError",
    "LineageAuthError",
    "Event",
    "facet",
    "SendResult",
    "EventBuilder",
    "safe_url",
    "run_id",
    "store_namespace",
    "build_events",
    "file_transport",
    "http_transport",
    "send",
    "emit_live",
    "api_key_from_env",
    "event_dicts",
]
