"""Graph databases behind one small interface: Neo4j over Bolt and FalkorDB.

:func:`open_target` picks the target from the URI scheme: ``bolt://``, ``neo4j://``
(and their ``+s``/``+ssc`` forms) use the official ``neo4j`` driver; ``falkor://``,
``falkordb://``, ``redis://`` and ``rediss://`` use the official ``falkordb`` client
(the path names the graph, default ``cmf``). Both run the same parameterised Cypher
and report what it created. Driver errors become :class:`~cmfrun.errors.GraphError`
subclasses whose messages name the database but never a password.

Example::

    target = open_target(GraphSettings("falkor://127.0.0.1:6379/cmf"))
    result = target.run("MATCH (n) RETURN count(n)", {})
    print(result.rows[0][0])
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, List, Mapping, Sequence, Set, Tuple
from urllib.parse import unquote, urlparse

from cmfrun import errors

log = logging.getLogger(__name__)

NEO4J_SCHEMES = ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc")
FALKOR_SCHEMES = ("falkor", "falkordb", "redis", "rediss")
DEFAULT_GRAPH = "cmf"
FALKOR_PORT = 6379
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class GraphSettings:
    """Where the graph database is and how to log in. ``password`` never appears in ``repr``."""

    uri: str
    user: str = ""
    password: str = field(default="", repr=False)

    @property
    def kind(self) -> str:
        """``neo4j`` or ``falkordb`` (raises :class:`UsageError` for another scheme)."""
        scheme = urlparse(self.uri).scheme.lower()
        if scheme in NEO4J_SCHEMES:
            return "neo4j"
        if scheme in FALKOR_SCHEMES:
            return "falkordb"
        raise errors.UsageError(
            f"graph URI {safe_uri(self.uri)!r}: unknown scheme {scheme!r}; use bolt://, neo4j:// (Neo4j) "
            "or falkor://, redis:// (FalkorDB)"
        )

    @property
    def shown(self) -> str:
        """The URI with any password removed (for messages)."""
        return safe_uri(self.uri)


def safe_uri(uri: str) -> str:
    """``uri`` without user info (it may hold a password)."""
    try:
        parsed = urlparse(uri)
        host = parsed.hostname or ""
        port = f":{parsed.port}" if parsed.port else ""
    except ValueError:
        return "<unparsable graph URI>"
    if not parsed.scheme:
        return "<graph URI without a scheme>"
    return f"{parsed.scheme}://{host}{port}{parsed.path}"


@dataclass(frozen=True)
class RunResult:
    """Rows a statement returned and what it created."""

    rows: List[List[Any]]
    nodes_created: int = 0
    relationships_created: int = 0
    properties_set: int = 0


class GraphTarget:
    """A graph database: run parameterised Cypher, create indexes, close."""

    kind = ""

    def __init__(self, settings: GraphSettings):
        self.settings = settings
        self._indexed: Set[Tuple[str, str]] = set()

    @property
    def shown(self) -> str:
        """The database, for messages (no password)."""
        return self.settings.shown

    def run(self, query: str, params: Mapping[str, Any]) -> RunResult:
        """Run one statement with ``params`` (values are never spliced into ``query``)."""
        raise NotImplementedError

    def ensure_index(self, label: str, prop: str) -> None:
        """Create an index on ``label.prop`` unless there is one (``label``/``prop`` from
        the fixed allow-lists of :mod:`cmfrun.integrations.graph_model`)."""
        if (label, prop) not in self._indexed:
            self._create_index(label, prop)
            self._indexed.add((label, prop))

    def _create_index(self, label: str, prop: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections."""


def _ident(name: str) -> str:
    """A label or property name quoted for Cypher (backticks doubled)."""
    return "`" + name.replace("`", "``") + "`"


class FalkorTarget(GraphTarget):
    """FalkorDB through the official ``falkordb`` client (Redis protocol)."""

    kind = "falkordb"

    def __init__(self, settings: GraphSettings, timeout: float = CONNECT_TIMEOUT_S):
        super().__init__(settings)
        try:
            from falkordb import FalkorDB
        except ImportError:
            raise errors.UsageError(
                "FalkorDB needs the falkordb client: pip install 'cmfrun[graph]'"
            ) from None
        parsed = urlparse(settings.uri)
        port = _port(settings) or FALKOR_PORT
        self.graph_name = unquote(parsed.path.lstrip("/")) or DEFAULT_GRAPH
        user = settings.user or unquote(parsed.username or "")
        password = settings.password or unquote(parsed.password or "")
        try:
            self._db = FalkorDB(
                host=parsed.hostname or "127.0.0.1",
                port=port,
                username=user or None,
                password=password or None,
                socket_connect_timeout=timeout,
                ssl=parsed.scheme.lower() == "rediss",
            )
            self._db.connection.ping()
        except Exception as exc:
            raise self._error(exc) from None
        self._graph = self._db.select_graph(self.graph_name)

    def _error(self, exc: BaseException) -> errors.GraphError:
        text = str(exc)
        low = text.lower()
        name = type(exc).__name__
        if name == "AuthenticationError" or any(
            m in low
            for m in ("wrongpass", "noauth", "invalid password", "invalid username-password", "authentication", "auth <")
        ):
            return errors.GraphAuthError(f"FalkorDB at {self.shown} refused the credentials")
        if name in ("ConnectionError", "TimeoutError") or isinstance(exc, OSError):
            return errors.GraphUnavailableError(f"cannot reach FalkorDB at {self.shown}: {_first_line(text, name)}")
        return errors.GraphError(f"FalkorDB at {self.shown}: {_first_line(text, name)}")

    def run(self, query: str, params: Mapping[str, Any]) -> RunResult:
        try:
            res = self._graph.query(query, dict(params))
        except Exception as exc:
            raise self._error(exc) from None
        return RunResult(
            [list(r) for r in res.result_set],
            int(res.nodes_created),
            int(res.relationships_created),
            int(res.properties_set),
        )

    def _create_index(self, label: str, prop: str) -> None:
        try:
            self._graph.query(f"CREATE INDEX FOR (n:{_ident(label)}) ON (n.{_ident(prop)})")
        except Exception as exc:
            if "already indexed" not in str(exc):
                raise self._error(exc) from None

    def close(self) -> None:
        try:
            self._db.connection.close()
        except Exception:  # closing a broken connection has nothing left to report
            pass


class Neo4jTarget(GraphTarget):
    """Neo4j over Bolt through the official ``neo4j`` driver."""

    kind = "neo4j"

    def __init__(self, settings: GraphSettings, timeout: float = CONNECT_TIMEOUT_S):
        super().__init__(settings)
        try:
            import neo4j
        except ImportError:
            raise errors.UsageError("Neo4j needs the neo4j driver: pip install 'cmfrun[graph]'") from None
        self._neo4j: Any = neo4j
        parsed = urlparse(settings.uri)
        self.database = unquote(parsed.path.lstrip("/")) or None
        # The driver gets the address without user info (credentials go in ``auth``) or database.
        port = _port(settings)
        plain = f"{parsed.scheme}://{parsed.hostname or ''}" + (f":{port}" if port else "")
        if parsed.query:
            plain += f"?{parsed.query}"
        user = settings.user or unquote(parsed.username or "")
        password = settings.password or unquote(parsed.password or "")
        try:
            self._driver = neo4j.GraphDatabase.driver(
                plain, auth=(user, password) if user else None, connection_timeout=timeout
            )
            self._driver.verify_connectivity()
        except Exception as exc:
            raise self._error(exc) from None

    def _error(self, exc: BaseException) -> errors.GraphError:
        ex = self._neo4j.exceptions
        name = type(exc).__name__
        if isinstance(exc, ex.AuthError) or "Unauthorized" in str(exc):
            return errors.GraphAuthError(f"Neo4j at {self.shown} refused the credentials")
        if isinstance(exc, (ex.ServiceUnavailable, ex.SessionExpired, OSError)):
            return errors.GraphUnavailableError(f"cannot reach Neo4j at {self.shown}: {_first_line(str(exc), name)}")
        return errors.GraphError(f"Neo4j at {self.shown}: {_first_line(str(exc), name)}")

    def run(self, query: str, params: Mapping[str, Any]) -> RunResult:
        try:
            with self._driver.session(database=self.database) as session:
                result = session.run(query, dict(params))
                rows = [list(r.values()) for r in result]
                counters = result.consume().counters
        except Exception as exc:
            raise self._error(exc) from None
        return RunResult(rows, counters.nodes_created, counters.relationships_created, counters.properties_set)

    def _create_index(self, label: str, prop: str) -> None:
        self.run(f"CREATE INDEX IF NOT EXISTS FOR (n:{_ident(label)}) ON (n.{_ident(prop)})", {})

    def close(self) -> None:
        try:
            self._driver.close()
        except Exception:  # closing a broken driver has nothing left to report
            pass


def _port(settings: GraphSettings) -> int:
    """The URI's port (0 when it names none); a malformed one is bad input."""
    try:
        return urlparse(settings.uri).port or 0
    except ValueError:
        raise errors.UsageError(f"bad port in graph URI {settings.shown!r}") from None


def _first_line(text: str, fallback: str) -> str:
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[0] if lines else fallback


def open_target(settings: GraphSettings, *, timeout: float = CONNECT_TIMEOUT_S) -> GraphTarget:
    """Connect to the graph database ``settings`` names (and check that it answers).

    Raises :class:`~cmfrun.errors.GraphUnavailableError` (unreachable),
    :class:`~cmfrun.errors.GraphAuthError` (credentials refused) or
    :class:`~cmfrun.errors.UsageError` (unknown scheme, client not installed).
    """
    if settings.kind == "neo4j":
        return Neo4jTarget(settings, timeout)
    return FalkorTarget(settings, timeout)


def batches(rows: Sequence[Any], size: int) -> List[Tuple[int, Sequence[Any]]]:
    """``rows`` in slices of ``size`` with their start offsets."""
    return [(i, rows[i : i + size]) for i in range(0, len(rows), size)]


__all__ = [
    "NEO4J_SCHEMES",
    "FALKOR_SCHEMES",
    "DEFAULT_GRAPH",
    "GraphSettings",
    "RunResult",
    "GraphTarget",
    "FalkorTarget",
    "Neo4jTarget",
    "open_target",
    "safe_uri",
    "batches",
]
