"""The client of the sync endpoints (:mod:`cmfrun.sync.api`), over the standard library.

A push or a pull is two JSON POSTs (digests first, then only what the other side lacks);
``urllib`` does that without another dependency.

Failures are one line (:class:`SyncServerError`, exit code 3; a bad URL is a
:class:`~cmfrun.errors.UsageError`). The token goes only into the ``Authorization``
header: it is never part of a message, a log line or an exception.
"""
from __future__ import annotations

import json
import logging
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlparse

from cmfrun import errors

log = logging.getLogger(__name__)

PREFIX = "/api/v1/sync"
#: A first push of a big pipeline to a PostgreSQL server on the mlmd engine takes minutes
#: (ml-metadata writes row by row; the sql engine writes in bulk).
DEFAULT_TIMEOUT_S = 1800.0


class SyncServerError(errors.CmfrunError):
    """The cmf server cannot be reached, refused the request, or answered nonsense."""

    exit_code = 3


class SyncAuthError(SyncServerError):
    """The server wants a (different) token."""


def check_url(url: str) -> str:
    """``url`` without a trailing slash, or :class:`~cmfrun.errors.UsageError` if it is not http(s)://host."""
    text = (url or "").strip()
    parsed = urlparse(text)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise errors.UsageError(f"bad cmf server URL {_safe(text)!r}: expected http://host:port")
    try:
        parsed.port
    except ValueError:
        raise errors.UsageError(f"bad port in cmf server URL {_safe(text)!r}") from None
    return text.rstrip("/")


def _safe(url: str) -> str:
    """A URL with any user:password part removed (it must never be printed)."""
    p = urlparse(url)
    if p.username is None and p.password is None:
        return url
    host = p.hostname or ""
    if p.port:
        host = f"{host}:{p.port}"
    return p._replace(netloc=host).geturl()


@dataclass
class SyncClient:
    """Talks to one server. ``bytes_sent``/``bytes_received`` count request and answer bodies."""

    url: str
    token: Optional[str] = None
    timeout: float = DEFAULT_TIMEOUT_S
    bytes_sent: int = 0
    bytes_received: int = 0
    requests: int = field(default=0)

    def __post_init__(self) -> None:
        self.url = check_url(self.url)

    def _post(self, path: str, body: Mapping[str, Any]) -> Dict[str, Any]:
        data = json.dumps(body, separators=(",", ":")).encode()
        req = urllib.request.Request(f"{self.url}{PREFIX}{path}", data=data, method="POST")
        req.add_header("Content-Type", "application/json")
        req.add_header("Accept", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        where = _safe(self.url)
        self.requests += 1
        self.bytes_sent += len(data)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read() or b""
            self.bytes_received += len(raw)
            raise self._refused(exc.code, raw, where) from None
        except urllib.error.URLError as exc:
            reason = getattr(exc.reason, "strerror", None) or str(exc.reason)
            raise SyncServerError(f"cannot reach cmf server {where}: {reason}") from None
        except (socket.timeout, TimeoutError):
            raise SyncServerError(f"cmf server {where} did not answer within {self.timeout:.0f} s") from None
        except (ConnectionError, OSError) as exc:
            raise SyncServerError(f"cannot reach cmf server {where}: {exc.strerror or type(exc).__name__}") from None
        self.bytes_received += len(raw)
        try:
            answer = json.loads(raw)
        except ValueError:
            raise SyncServerError(f"cmf server {where} answered {path} with something that is not JSON") from None
        if not isinstance(answer, dict):
            raise SyncServerError(f"cmf server {where} answered {path} with unexpected JSON")
        return answer

    @staticmethod
    def _refused(code: int, raw: bytes, where: str) -> errors.CmfrunError:
        detail = ""
        try:
            body = json.loads(raw)
            d = body.get("detail") if isinstance(body, dict) else None
            if isinstance(d, str):
                detail = d
            elif isinstance(d, list) and d and isinstance(d[0], dict):
                detail = str(d[0].get("msg", ""))
        except ValueError:
            pass
        detail = (detail.strip().splitlines() or [""])[0][:300]
        if code in (401, 403):
            return SyncAuthError(
                f"cmf server {where} refused the request ({code}): give the right token (--token or CMFRUN_SERVER_TOKEN)"
            )
        if code == 404:
            return errors.NotFoundError(detail or f"cmf server {where}: not found (is it a cmfrun server?)")
        if code == 413:
            return SyncServerError(f"cmf server {where} refused the request: too large (413)")
        if 400 <= code < 500:
            return errors.InputFileError(f"cmf server {where} refused the request ({code}): {detail or 'bad request'}")
        return SyncServerError(f"cmf server {where} failed ({code}){': ' + detail if detail else ''}")

    def digests(self, pipeline: str, uuids: Optional[Sequence[str]] = None) -> Dict[str, str]:
        """The server's ``{uuid: digest}`` for ``pipeline`` (empty if it has none); with
        ``uuids`` only for those executions."""
        body: Dict[str, Any] = {"pipeline": pipeline}
        if uuids is not None:
            body["uuids"] = list(uuids)
        answer = self._post("/digests", body)
        execs = answer.get("executions")
        if not isinstance(execs, dict):
            raise SyncServerError(f"cmf server {_safe(self.url)} answered /digests without executions")
        return {str(k): str(v) for k, v in execs.items()}

    def push(self, pipeline: str, bundle: Mapping[str, Any], site: Optional[str] = None) -> Dict[str, Any]:
        """Send a bundle; returns the server's merge report (a dict)."""
        answer = self._post("/push", {"pipeline": pipeline, "site": site, "bundle": bundle})
        report = answer.get("report")
        if answer.get("status") != "success" or not isinstance(report, dict):
            raise SyncServerError(f"cmf server {_safe(self.url)} did not accept the push: {str(answer)[:200]}")
        return report

    def pull(
        self,
        pipeline: str,
        have: Mapping[str, str],
        *,
        since_ms: Optional[int] = None,
        execution_uuids: Optional[Sequence[str]] = None,
    ) -> Tuple[Dict[str, Any], Optional[int]]:
        """The bundle of what the server holds and ``have`` lacks, and the server's clock."""
        body: Dict[str, Any] = {"pipeline": pipeline, "have": dict(have), "since_ms": since_ms}
        if execution_uuids:
            body["execution_uuids"] = list(execution_uuids)
        answer = self._post("/pull", body)
        bundle = answer.get("bundle")
        if not isinstance(bundle, dict):
            raise SyncServerError(f"cmf server {_safe(self.url)} answered /pull without a bundle")
        server_ms = answer.get("server_ms")
        return bundle, int(server_ms) if isinstance(server_ms, (int, float)) else None


__all__ = ["SyncClient", "SyncServerError", "SyncAuthError", "check_url", "PREFIX"]
