"""Errors as answers: one-line JSON ``detail`` (plus ``status: "error"``, which CMF's client reads), never a traceback.

- :class:`~cmfrun.errors.CmfrunError`: 404 for records that do not exist, 503
  when the store cannot be used (unreachable, locked too long, read-only), 400
  for every other bad input.
- FastAPI's request validation (malformed JSON, a missing field): 422 with the
  first problems on one line.
- Anything else is a bug: 500 with a generic line; the traceback goes to the
  server log only.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cmfrun import errors

log = logging.getLogger("cmfrun.server")

_MAX_DETAIL = 500


def one_line(text: str) -> str:
    """The first line of ``text``, shortened: an answer never carries a multi-line dump."""
    first = (str(text).strip().splitlines() or [""])[0]
    return first if len(first) <= _MAX_DETAIL else first[: _MAX_DETAIL - 3] + "..."


def error_response(code: int, detail: str, headers: Optional[Dict[str, str]] = None, *, status: str = "error") -> JSONResponse:
    """The JSON answer of every refused request: HTTP ``code``, one-line ``detail``, CMF's ``status`` word."""
    return JSONResponse({"detail": one_line(detail), "status": status}, status_code=code, headers=headers)


def status_of(exc: errors.CmfrunError) -> int:
    """The HTTP status of a cmfrun error."""
    if isinstance(exc, errors.NotFoundError):
        return 404
    if isinstance(exc, errors.StoreURIError):
        return 400
    if isinstance(exc, errors.StoreError):
        return 503
    return 400


def _validation_line(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    more = len(exc.errors()) - 3
    return "invalid request: " + "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(errors.CmfrunError)
    async def cmfrun_error(request: Request, exc: errors.CmfrunError) -> JSONResponse:
        status = status_of(exc)
        log.info("%s %s -> %d: %s", request.method, request.url.path, status, one_line(str(exc)))
        return error_response(status, str(exc) or type(exc).__name__)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, _validation_line(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal server error (the server log has the details)")


__all__ = ["install", "error_response", "one_line", "status_of"]
