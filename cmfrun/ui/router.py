"""The UI's routes: server-rendered pages, each with a JSON twin (``?format=json``).

Handlers are thin: parse the query string (bad values -> a 400 page), call one
function of :mod:`cmfrun.commands.browse` under the router's lock (one MLMD
connection is not safe across threads), render a template. Every page is
readable without JavaScript; ``static/ui.js`` adds zoom and pan, auto-submitting
filters and shift-click path highlighting.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cmfrun import errors
from cmfrun.commands import browse
from cmfrun.store import Store
from cmfrun.ui import render
from cmfrun.ui.layout import layout

log = logging.getLogger(__name__)

#: Files served under ``<prefix>/static/`` (a fixed list: no path from a request reaches the disk).
STATIC = {"ui.css": "text/css; charset=utf-8", "ui.js": "text/javascript; charset=utf-8"}


class BadRequest(errors.UsageError):
    """A query string value the page cannot use (-> 400)."""


class _Query:
    """Typed access to a request's query string; every failure is a one-line :class:`BadRequest`."""

    def __init__(self, request: Request) -> None:
        self.params = request.query_params

    def text(self, name: str, default: str = "", max_len: int = 500) -> str:
        value = self.params.get(name, default)
        if len(value) > max_len:
            raise BadRequest(f"{name} is longer than {max_len} characters")
        return value

    def opt(self, name: str) -> Optional[str]:
        value = self.text(name).strip()
        return value or None

    def int(self, name: str, default: int, lo: int, hi: int) -> int:
        raw = self.text(name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise BadRequest(f"{name} must be a whole number, not {raw!r}") from None
        if not lo <= value <= hi:
            raise BadRequest(f"{name} must be between {lo} and {hi}, not {value}")
        return value

    def many(self, name: str) -> List[str]:
        values = [v.strip() for v in self.params.getlist(name)]
        if len(values) > 100 or any(len(v) > 500 for v in values):
            raise BadRequest(f"too many or too long {name} values")
        return [v for v in values if v]

    def choice(self, name: str, options: Tuple[str, ...], default: str) -> str:
        value = self.text(name, default) or default
        if value not in options:
            raise BadRequest(f"{name} must be one of {', '.join(options)}, not {value!r}")
        return value

    @property
    def as_json(self) -> bool:
        return self.choice("format", ("html", "json"), "html") == "json"


def _record_id(text: str, what: str) -> int:
    if not text.isdigit() or len(text) > 15:
        raise BadRequest(f"bad {what} id {text!r}: ids are whole numbers")
    return int(text)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(_jsonable(data), indent=1), status_code=status, media_type="application/json")


#: Defence in depth behind the templates' escaping: no inline script, nothing from elsewhere.
CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"


def _secure(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def create_router(open_store: Callable[[], Store], *, prefix: str = "/ui", warm_up: bool = False) -> APIRouter:
    """The UI as a FastAPI router mounted at ``prefix``.

    ``open_store`` is called for each request (under a lock) and returns the store to
    read; ``cmf ui`` passes one that merges pending journals first, ``cmf server`` its own.
    ``warm_up=True`` reads every pipeline's rows in a background thread right away, so
    the first page does not wait for them (seconds for 10,000 executions).

    Example::

        app = FastAPI()
        app.include_router(create_router(lambda: store))
    """
    prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
    router = APIRouter(prefix=prefix)
    cache = browse.BrowseCache()
    lock = threading.Lock()
    env = render.environment(prefix)

    def warm() -> None:
        try:
            with lock:
                browse.pipelines(open_store(), cache)
        except Exception as exc:  # a page will report the same problem to the user
            log.info("warming the UI cache failed: %s", exc)

    if warm_up:
        threading.Thread(target=warm, name="cmfrun-ui-warm-up", daemon=True).start()

    def page(request: Request, template: str, code: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template(template).render(request_query=request.query_params, **context)
        return HTMLResponse(html, status_code=code)

    def handle(request: Request, work: Callable[[Store, _Query], Tuple[str, Dict[str, Any], Any]]) -> Response:
        """Run ``work`` (-> template, context, JSON data) and turn user errors into 4xx pages."""
        query: Optional[_Query] = None
        started = time.perf_counter()
        try:
            query = _Query(request)
            wants_json = query.as_json
            with lock:
                store = open_store()
                template, context, data = work(store, query)
            response = _json(data) if wants_json else page(request, template, **context)
            # The time spent here, for browsers' dev tools and the benchmark (Server-Timing).
            response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
            return _secure(response)
        except errors.CmfrunError as exc:
            status = 404 if isinstance(exc, errors.NotFoundError) else 503 if exc.exit_code == 3 else 400
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if query is not None and request.query_params.get("format") == "json":
                return _secure(_json({"error": reason, "status": status}, status))
            return _secure(page(request, "error.html", status, status=status, reason=reason, title=f"Error {status}"))

    @router.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in STATIC:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(render.static_file(name), media_type=STATIC[name], headers={"Cache-Control": "max-age=300"})

    @router.get("/", response_class=HTMLResponse)
    def pipelines(request: Request) -> Response:
        """Pipelines with their stages, execution counts per state and last run."""

        def work(store: Store, q: _Query) -> Tuple[str, Dict[str, Any], Any]:
            items = browse.pipelines(store, cache)
            return "pipelines.html", {"pipelines": items, "title": "Pipelines"}, {"pipelines": items}

        return handle(request, work)

    @router.get("/executions", response_class=HTMLResponse)
    def executions(request: Request) -> Response:
        """A pipeline's executions: filter, sort (also by a param or metric), page, choose columns."""

        def work(store: Store, q: _Query) -> Tuple[str, Dict[str, Any], Any]:
            pipeline = q.opt("pipeline")
            if pipeline is None:
                names = cache.pipelines(store)
                if len(names) != 1:
                    raise BadRequest("name a pipeline: ?pipeline=NAME")
                pipeline = names[0]
            params = []
            for item in q.many("param"):
                key, sep, value = item.partition("=")
                if not sep or not key.strip():
                    raise BadRequest(f"bad param filter {item!r}: use NAME=VALUE")
                params.append((key.strip(), value.strip()))
            since, until = q.opt("since"), q.opt("until")
            columns = tuple(q.many("col"))
            for c in columns:
                browse.check_sort(c)
            query = browse.ExecutionQuery(
                pipeline=pipeline,
                stage=q.opt("stage"),
                state=q.opt("state"),
                params=tuple(params),
                since_ms=browse.parse_time(since) if since else None,
                # A bare date as the end of a range means "to the end of that day".
                until_ms=(browse.parse_time(until) + (86_400_000 if len(until) == 10 else 0)) if until else None,
                sort=browse.check_sort(q.text("sort", "id") or "id"),
                desc=q.choice("order", ("asc", "desc"), "desc") == "desc",
                page=q.int("page", 1, 1, 10**9),
                per_page=q.int("per_page", 50, 1, browse.MAX_PER_PAGE),
                columns=columns,
            )
            result = browse.executions_page(store, cache, query)
            return "executions.html", {"p": result, "title": f"Executions of {pipeline}"}, result

        return handle(request, work)

    @router.get("/executions/{execution_id}", response_class=HTMLResponse)
    def execution(request: Request, execution_id: str) -> Response:
        """Everything recorded about one execution."""

        def work(store: Store, q: _Query) -> Tuple[str, Dict[str, Any], Any]:
            detail = browse.execution_detail(store, _record_id(execution_id, "execution"))
            return "execution.html", {"e": detail, "title": f"Execution {detail.id}"}, detail

        return handle(request, work)

    @router.get("/artifacts", response_class=HTMLResponse)
    def artifacts(request: Request) -> Response:
        """Artifacts by type, searched by name, path or hash prefix."""

        def work(store: Store, q: _Query) -> Tuple[str, Dict[str, Any], Any]:
            result = browse.artifacts_page(
                store,
                cache,
                type=q.opt("type"),
                search=q.text("q", ""),
                page=q.int("page", 1, 1, 10**9),
                per_page=q.int("per_page", 50, 1, browse.MAX_PER_PAGE),
            )
            return "artifacts.html", {"p": result, "title": "Artifacts"}, result

        return handle(request, work)

    @router.get("/artifacts/{artifact_id}", response_class=HTMLResponse)
    def artifact(request: Request, artifact_id: str) -> Response:
        """One artifact: producer, consumers, versions, model card."""

        def work(store: Store, q: _Query) -> Tuple[str, Dict[str, Any], Any]:
            detail = browse.artifact_detail(store, _record_id(artifact_id, "artifact"))
            return "artifact.html", {"a": detail, "title": detail.path or detail.name}, detail

        return handle(request, work)

    @router.get("/lineage", response_class=HTMLResponse)
    def lineage_page(request: Request) -> Response:
        """The lineage graph around a node, laid out on the server as SVG."""

        def work(store: Store, q: _Query) -> Tuple[str, Dict[str, Any], Any]:
            node = q.opt("node")
            if node is None:
                raise BadRequest("name a node: ?node=artifact:<id> or execution:<id>")
            view = browse.lineage_view(
                store,
                node,
                direction=q.choice("dir", ("both", "up", "down"), "both"),
                depth=q.int("depth", 3, 0, browse.MAX_DEPTH),
                path_to=q.opt("to"),
            )
            drawing = layout(view)
            return "lineage.html", {"v": view, "d": drawing, "title": "Lineage"}, {"lineage": view, "layout": drawing}

        return handle(request, work)

    @router.get("/compare", response_class=HTMLResponse)
    def compare_page(request: Request) -> Response:
        """Two or more executions side by side, differences marked."""

        def work(store: Store, q: _Query) -> Tuple[str, Dict[str, Any], Any]:
            ids = [_record_id(i, "execution") for raw in q.many("id") for i in raw.split(",") if i.strip()]
            if len(ids) > 20:
                raise BadRequest("compare at most 20 executions")
            result = browse.compare(store, ids)
            only = q.choice("only", ("all", "diff"), "all") == "diff"
            return "compare.html", {"c": result, "only_diff": only, "title": "Compare"}, result

        return handle(request, work)

    return router


def redirect_to(prefix: str) -> Callable[[], RedirectResponse]:
    """A handler for ``/`` that sends the browser to the UI."""

    def root() -> RedirectResponse:
        return RedirectResponse(prefix.rstrip("/") + "/", status_code=307)

    return root


__all__ = ["create_router", "redirect_to", "BadRequest", "STATIC", "CSP"]
