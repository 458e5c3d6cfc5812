"""The server's gate, as one ASGI middleware: the bearer token and the body size limit.

Both checks run before a route sees the request, so a refused request never
reaches the store. The token check comes first: an unauthenticated client
cannot make the server read a large body. The size limit is checked twice:
a declared ``Content-Length`` above it is refused at once, and the bytes
actually received are counted (a chunked body declares no length).
"""
from __future__ import annotations

import asyncio
import hmac
import json
from typing import Any, Awaitable, Callable, Dict, FrozenSet, MutableMapping, Optional

from fastapi import HTTPException

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when the body grows past the limit (FastAPI re-raises HTTPExceptions)."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"request body larger than the server's limit of {limit} bytes")


def _json_response(status: int, detail: str, headers: Optional[Dict[str, str]] = None) -> Callable[[Send], Awaitable[None]]:
    body = json.dumps({"detail": detail, "status": "error"}).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]

    async def respond(send: Send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})

    return respond


class _BodyState:
    """What one request's body and response have done so far."""

    def __init__(self) -> None:
        self.received = 0
        self.too_large = False
        self.started = False


class Guard:
    """Token and size checks around an ASGI app.

    ``read_posts``: POST paths that only read (CMF's ``/api/mlmd_pull``), open
    to anyone when ``public_read`` is set. Anything else that is not a GET,
    HEAD or OPTIONS request is a write.

    ``merge_posts``: POST paths that merge into the store (CMF's push, the sync
    router's push). They take turns, whichever router serves them: two merges of
    one pipeline running at once on PostgreSQL could both create the same new
    execution, and on SQLite they would only wait for each other's file lock.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: Optional[str],
        public_read: bool,
        max_body: int,
        read_posts: FrozenSet[str] = frozenset(),
        merge_posts: FrozenSet[str] = frozenset(),
    ) -> None:
        self.app = app
        self._token = token.encode() if token else None
        self.public_read = public_read
        self.max_body = max_body
        self.read_posts = read_posts
        self.merge_posts = merge_posts
        self._merge_turn: Optional[asyncio.Lock] = None  # made in the server's event loop

    def _is_read(self, method: str, path: str) -> bool:
        return method in READ_METHODS or (method == "POST" and path.rstrip("/") in self.read_posts)

    def _authorized(self, scope: Scope) -> bool:
        if self._token is None:
            return True
        if self.public_read and self._is_read(scope.get("method", ""), scope.get("path", "")):
            return True
        header = b""
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                header = value
                break
        scheme, _, given = header.partition(b" ")
        # compare_digest: the time taken does not reveal how much of the token matched.
        return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self._token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self._authorized(scope):
            await _json_response(
                401, "this server needs a token: send Authorization: Bearer <token>", {"WWW-Authenticate": "Bearer"}
            )(send)
            return
        declared = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _json_response(400, "bad Content-Length header")(send)
                    return
        if declared is not None and declared > self.max_body:
            await _json_response(413, f"request body of {declared} bytes is larger than the server's limit of {self.max_body} bytes")(send)
            return
        state = _BodyState()

        async def counted_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state.received += len(message.get("body", b""))
                if state.received > self.max_body:
                    state.too_large = True
                    raise BodyTooLarge(self.max_body)
            return message

        async def checked_send(message: Message) -> None:
            # Whatever the app made of the interrupted body (a parse error...), the answer is 413.
            if state.too_large and not state.started:
                state.started = True
                await _json_response(413, f"request body larger than the server's limit of {self.max_body} bytes")(send)
                return
            if state.too_large:
                return
            if message["type"] == "http.response.start":
                state.started = True
            await send(message)

        if scope.get("method") == "POST" and scope.get("path", "").rstrip("/") in self.merge_posts:
            if self._merge_turn is None:
                self._merge_turn = asyncio.Lock()
            async with self._merge_turn:
                await self.app(scope, counted_receive, checked_send)
            return
        await self.app(scope, counted_receive, checked_send)


__all__ = ["Guard", "BodyTooLarge", "READ_METHODS"]
