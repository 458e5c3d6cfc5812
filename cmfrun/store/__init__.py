"""The metadata store: MLMD's schema behind one interface, two engines.

A location is a path (an MLMD SQLite file, default ``mlmd`` at the project
root) or a URI: ``postgresql://user:pw@host:port/db``, ``mysql://...``
(MariaDB too) or ``sqlite:///abs/path``. :func:`connect` opens it and returns
a :class:`Store` whose methods take and return the plain records of
:mod:`cmfrun.records`.

Two engines implement :class:`Store` on the same tables:

- ``mlmd`` (:mod:`cmfrun.store.mlmd`): Google's ml-metadata library, the only
  module that imports ``ml_metadata`` (wheels for Linux/macOS x86, Python <= 3.11);
- ``sql`` (:mod:`cmfrun.store.sql`): plain SQL writing MLMD's physical schema
  (stdlib ``sqlite3``, psycopg 3, PyMySQL): installs on any Python >= 3.9.

Pick one with ``CMFRUN_ENGINE=mlmd|sql`` or ``engine =`` in ``.cmfconfig``;
by default ml-metadata where it is installed, else the SQL engine.

Example::

    store = connect("mlmd")
    for ctx in store.contexts_by_type("Parent_Context"):
        print(ctx.name)
"""
from __future__ import annotations

import abc
import contextlib
import fcntl
import importlib.util
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Union
from urllib.parse import unquote, urlparse

from cmfrun import errors, schema
from cmfrun.records import Artifact, Context, Event, Execution, Link, Props

DEFAULT_STORE_NAME = "mlmd"
_SQLITE_MAGIC = b"SQLite format 3\x00"
#: How long a writer waits for another process's write lock on a SQLite store.
LOCK_TIMEOUT_S = 120.0
#: Environment variable choosing the engine (``mlmd`` or ``sql``).
ENV_ENGINE = "CMFRUN_ENGINE"
ENGINES = ("mlmd", "sql")
IN_CLAUSE_CHUNK = 500


class AlreadyExistsError(errors.StoreError):
    """A record with this type and name (or a type with this external id) exists already.

    The SQL engine raises it; :func:`is_already_exists` also recognises
    ml-metadata's own class, so callers test with that function.
    """



class WriteConflictError(AlreadyExistsError):
    """A concurrent writer's transaction collided with ours on a database server (a
    deadlock or a serialization failure): ours was rolled back whole, so callers retry
    it exactly as after :class:`AlreadyExistsError` (re-read, then write again)."""


@dataclass(frozen=True)
class StoreLocation:
    """Where a store lives. ``backend`` is ``sqlite``, ``postgresql`` or ``mysql``."""

    backend: str
    path: Optional[Path] = None
    host: str = ""
    port: int = 0
    user: str = ""
    password: str = ""
    database: str = ""

    def __str__(self) -> str:
        if self.backend == "sqlite":
            return str(self.path)
        auth = f"{self.user}@" if self.user else ""
        return f"{self.backend}://{auth}{self.host}:{self.port}/{self.database}"


def default_store_path(root: Union[str, Path]) -> Path:
    """The default store of a project: ``<root>/mlmd``. Tests patch this one function."""
    return Path(root) / DEFAULT_STORE_NAME


def parse_location(uri: Union[str, Path]) -> StoreLocation:
    """Turn a path or URI into a :class:`StoreLocation`, or raise :class:`StoreURIError`."""
    text = str(uri).strip()
    if not text:
        raise errors.StoreURIError("empty store location: give a file path or a postgresql:// or mysql:// URI")
    if "://" not in text:
        return StoreLocation("sqlite", path=Path(text).expanduser().absolute())
    parsed = urlparse(text)
    scheme = parsed.scheme.lower()
    if scheme in ("sqlite", "file"):
        raw = unquote(parsed.path)
        if not raw:
            raise errors.StoreURIError(f"store URI {text!r} names no file")
        return StoreLocation("sqlite", path=Path(raw).absolute())
    backends = {"postgresql": "postgresql", "postgres": "postgresql", "mysql": "mysql", "mariadb": "mysql"}
    if scheme not in backends:
        raise errors.StoreURIError(
            f"unknown store URI scheme {scheme!r} in {text!r}: use a file path, postgresql://, mysql:// or sqlite://"
        )
    backend = backends[scheme]
    database = parsed.path.lstrip("/")
    if not parsed.hostname or not database:
        raise errors.StoreURIError(f"store URI {text!r} needs a host and a database: {scheme}://user:pw@host:port/db")
    try:
        port = parsed.port or (5432 if backend == "postgresql" else 3306)
    except ValueError as exc:
        raise errors.StoreURIError(f"bad port in store URI {text!r}: {exc}") from None
    return StoreLocation(
        backend,
        host=parsed.hostname,
        port=port,
        user=unquote(parsed.username or ""),
        password=unquote(parsed.password or ""),
        database=database,
    )


def mlmd_installed() -> bool:
    """Whether the ml-metadata library can be imported here (no import is done)."""
    return importlib.util.find_spec("ml_metadata") is not None


def choose_engine(engine: Optional[str] = None) -> str:
    """The engine to use: ``engine`` > ``$CMFRUN_ENGINE`` > ``engine`` in ``.cmfconfig`` >
    ``sql`` (the plain-SQL engine: faster in every benchmark row, and safe with any text on
    PostgreSQL; ``mlmd``, ml-metadata itself, stays the reference and an opt-in)."""
    name = engine or os.environ.get(ENV_ENGINE, "").strip()
    if not name:
        from cmfrun import config

        name = config.read_file(config.find_root()).get("engine", "").strip()
    name = name.lower()
    if not name:
        return "sql"
    if name not in ENGINES:
        raise errors.UsageError(f"unknown store engine {name!r}: use one of {', '.join(ENGINES)}")
    if name == "mlmd" and not mlmd_installed():
        raise errors.UsageError(
            "store engine 'mlmd' needs the ml-metadata package, which is not installed here "
            "(it has wheels for Python <= 3.11 on Linux/macOS x86): use engine 'sql'"
        )
    return name


def connect(
    uri: Union[str, Path, StoreLocation],
    *,
    create: bool = True,
    read_only: bool = False,
    engine: Optional[str] = None,
) -> "Store":
    """Open the store at ``uri`` with the chosen engine (see :func:`choose_engine`).

    ``create=False`` refuses to make a new SQLite file (readers use it, so a
    typo never leaves an empty store behind). ``read_only=True`` opens a
    SQLite file read-only; writes then raise :class:`ReadOnlyStoreError`.
    """
    loc = uri if isinstance(uri, StoreLocation) else parse_location(uri)
    if choose_engine(engine) == "mlmd":
        from cmfrun.store import mlmd

        return mlmd.connect(loc, create=create, read_only=read_only)
    from cmfrun.store import sql

    return sql.connect(loc, create=create, read_only=read_only)


def check_sqlite_file(path: Path, *, create: bool, read_only: bool) -> bool:
    """Refuse a SQLite store path that cannot be used as asked; returns ``read_only``."""
    if path.is_dir():
        raise errors.StoreURIError(f"store path {path} is a directory, not an MLMD file")
    if path.exists():
        if not os.access(path, os.R_OK):
            raise errors.StoreError(f"store {path} is not readable")
        with open(path, "rb") as fh:
            head = fh.read(len(_SQLITE_MAGIC))
        if head and head != _SQLITE_MAGIC:
            raise errors.CorruptStoreError(f"store {path} is not an MLMD SQLite file (corrupt or another format)")
        if not read_only and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
            raise errors.ReadOnlyStoreError(f"store {path} is read-only: nothing can be recorded in it")
        return read_only
    if not create:
        raise errors.NotFoundError(f"store {path} does not exist")
    if read_only:
        raise errors.NotFoundError(f"store {path} does not exist")
    if not path.parent.is_dir():
        raise errors.StoreURIError(f"cannot create store {path}: folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise errors.ReadOnlyStoreError(f"cannot create store {path}: folder {path.parent} is read-only")
    return False


@dataclass(frozen=True)
class LineageWalk:
    """What :meth:`Store.walk_lineage` reached: ``{id: generation}`` per kind, the
    ``(execution id, artifact id, kind)`` edges, and whether the depth limit cut it short."""

    artifact_depth: Dict[int, int]
    execution_depth: Dict[int, int]
    edges: Set[Tuple[int, int, str]]
    truncated: bool


#: ``(execution id, artifact id)`` pairs of the events of one kind on the given records.
EdgeReader = Callable[[Sequence[int]], Iterable[Tuple[int, int]]]


def walk_levels(
    direction: str,
    artifact_ids: Sequence[int],
    execution_ids: Sequence[int],
    depth: Optional[int],
    to_exec: EdgeReader,
    to_art: EdgeReader,
) -> LineageWalk:
    """The lineage walk, level by level (the rules of :meth:`Store.walk_lineage`).

    ``to_exec(artifact ids)`` gives the events leading from artifacts to executions
    (OUTPUT events going ``up``, INPUT going ``down``) and ``to_art(execution ids)``
    the events leading on to artifacts; each is called once per generation with the
    whole frontier. Both engines run this one function, so their answers agree.
    """
    to_exec_kind, to_art_kind = ("OUTPUT", "INPUT") if direction == "up" else ("INPUT", "OUTPUT")
    root_arts = list(dict.fromkeys(int(a) for a in artifact_ids))
    root_execs = list(dict.fromkeys(int(e) for e in execution_ids))
    art_depth: Dict[int, int] = {a: 0 for a in root_arts}
    exec_depth: Dict[int, int] = {e: 0 for e in root_execs}
    edges: Set[Tuple[int, int, str]] = set()
    truncated = False

    def expand_executions(execs: Sequence[int], level: int) -> List[int]:
        new: List[int] = []
        for e, a in to_art(execs):
            edges.add((e, a, to_art_kind))
            if a not in art_depth:
                art_depth[a] = level
                new.append(a)
        return new

    frontier_arts: List[int] = list(root_arts)
    level = 0
    if root_execs:
        if depth is None or depth >= 1:
            level = 1
            frontier_arts += expand_executions(root_execs, 1)
        else:
            truncated = True
    while frontier_arts:
        if depth is not None and level >= depth:
            truncated = any(True for _ in to_exec(frontier_arts))
            break
        level += 1
        new_execs: List[int] = []
        for e, a in to_exec(frontier_arts):
            edges.add((e, a, to_exec_kind))
            if e not in exec_depth:
                exec_depth[e] = level
                new_execs.append(e)
        frontier_arts = expand_executions(new_execs, level) if new_execs else []
    return LineageWalk(art_depth, exec_depth, edges, truncated)


class Store(abc.ABC):
    """An open MLMD store. Create with :func:`connect`; pass it in, never keep it global.

    This class holds what both engines share (the SQLite write lock, the
    schema stamp); :mod:`cmfrun.store.mlmd` and :mod:`cmfrun.store.sql`
    implement the record reads and writes.
    """

    #: ``mlmd`` or ``sql``.
    engine = ""

    def __init__(self, location: StoreLocation, *, read_only: bool = False):
        self.location = location
        self.read_only = read_only
        self._lock_depth = 0

    # -- locking ---------------------------------------------------------------------------
    @property
    def lock_path(self) -> Optional[Path]:
        """The file whose flock serialises writers of a SQLite store (``None`` for servers)."""
        if self.location.backend != "sqlite" or self.location.path is None:
            return None
        return self.location.path.with_name(self.location.path.name + ".lock")

    @contextlib.contextmanager
    def write_lock(self, timeout: float = LOCK_TIMEOUT_S, *, blocking: bool = True) -> Iterator[bool]:
        """Hold the store's inter-process write lock (SQLite only; reentrant).

        Yields ``True`` when held; with ``blocking=False`` yields ``False``
        instead of waiting when another process holds it.
        """
        self._require_writable()
        path = self.lock_path
        if path is None or self._lock_depth:
            self._lock_depth += 1
            try:
                yield True
            finally:
                self._lock_depth -= 1
            return
        fh = open(path, "a+b")
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not blocking:
                        yield False
                        return
                    if time.monotonic() > deadline:
                        raise errors.StoreUnavailableError(
                            f"store {self.location} stayed locked by another writer for {timeout:.0f} s"
                        ) from None
                    time.sleep(0.02)
            self._lock_depth = 1
            try:
                yield True
            finally:
                self._lock_depth = 0
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        finally:
            fh.close()

    def _require_writable(self) -> None:
        if self.read_only:
            raise errors.ReadOnlyStoreError(f"store {self.location} is open read-only")

    # -- schema version ----------------------------------------------------------------------
    def ensure_schema_version(self) -> int:
        """Stamp (or read) cmfrun's schema version in the store; refuse a newer one."""
        existing = self.context(schema.META_CONTEXT, "schema")
        if existing is not None:
            version = int(existing.properties.get("schema_version", 0))
            if version > schema.STORE_SCHEMA_VERSION:
                raise errors.StoreError(
                    f"store {self.location} was written by a newer cmfrun (schema {version}); upgrade cmfrun"
                )
            return version
        try:
            self.put_context(
                Context(
                    schema.META_CONTEXT,
                    "schema",
                    properties={"schema_version": schema.STORE_SCHEMA_VERSION},
                )
            )
        except Exception as exc:  # noqa: BLE001 - another writer stamped it first
            if not is_already_exists(exc):
                raise
        return schema.STORE_SCHEMA_VERSION

    # -- lineage -----------------------------------------------------------------------------
    def walk_lineage(
        self, direction: str, artifact_ids: Sequence[int], execution_ids: Sequence[int], depth: Optional[int]
    ) -> "LineageWalk":
        """Ids reached from the roots, with the execution generation each was first reached
        at, the data-flow edges among them, and whether ``depth`` cut the walk short
        (see :mod:`cmfrun.lineage` for the rules). ``direction`` is ``up`` (towards
        inputs) or ``down``.

        Walks level by level: two batched event reads per generation. The SQL
        engine reads every event the walk needs with one recursive query and runs
        the same :func:`walk_levels` in memory.
        """
        to_exec_kind, to_art_kind = ("OUTPUT", "INPUT") if direction == "up" else ("INPUT", "OUTPUT")

        def to_exec(arts: Sequence[int]) -> List[Tuple[int, int]]:
            return [(ev.execution_id, ev.artifact_id) for ev in self.events_by_artifact(arts) if ev.kind == to_exec_kind]

        def to_art(execs: Sequence[int]) -> List[Tuple[int, int]]:
            return [(ev.execution_id, ev.artifact_id) for ev in self.events_by_execution(execs) if ev.kind == to_art_kind]

        return walk_levels(direction, artifact_ids, execution_ids, depth, to_exec, to_art)

    # -- types -------------------------------------------------------------------------------
    @abc.abstractmethod
    def ensure_type(self, kind: str, name: str, properties: Mapping[str, str]) -> int:
        """Get or create an ``artifact``/``execution``/``context`` type with at least ``properties``."""

    @abc.abstractmethod
    def ensure_execution_types(self, names: Iterable[str]) -> None:
        """Register many execution types (CMF properties) at once, in one write."""

    @abc.abstractmethod
    def type_names(self, kind: str) -> List[str]:
        """Names of all ``artifact``/``execution``/``context`` types in the store."""

    # -- reads: contexts ---------------------------------------------------------------------
    @abc.abstractmethod
    def contexts_by_type(self, type_name: str) -> List[Context]:
        """All contexts of one type (``Parent_Context`` = pipelines)."""

    @abc.abstractmethod
    def context(self, type_name: str, name: str) -> Optional[Context]:
        """The context of this type and name, or ``None``."""

    @abc.abstractmethod
    def contexts_by_id(self, ids: Iterable[int]) -> List[Context]:
        """Contexts by id (missing ids are skipped)."""

    @abc.abstractmethod
    def parent_contexts(self, context_id: int) -> List[Context]:
        """Parents of a context (a stage's pipeline)."""

    @abc.abstractmethod
    def child_contexts(self, context_id: int) -> List[Context]:
        """Children of a context (a pipeline's stages)."""

    @abc.abstractmethod
    def contexts_by_execution(self, execution_id: int) -> List[Context]:
        """Contexts an execution is associated with."""

    @abc.abstractmethod
    def contexts_by_artifact(self, artifact_id: int) -> List[Context]:
        """Contexts an artifact is attributed to."""

    # -- reads: executions -------------------------------------------------------------------
    @abc.abstractmethod
    def executions_by_id(self, ids: Iterable[int]) -> List[Execution]:
        """Executions by id, batched."""

    @abc.abstractmethod
    def executions_by_context(self, context_id: int) -> List[Execution]:
        """Executions associated with a context, oldest first."""

    @abc.abstractmethod
    def executions_by_type(self, type_name: str) -> List[Execution]:
        """All executions of one type."""

    @abc.abstractmethod
    def execution_by_type_and_name(self, type_name: str, name: str) -> Optional[Execution]:
        """The execution of this type and (non-empty) name, or ``None``."""

    @abc.abstractmethod
    def executions(self, filter_query: str = "") -> List[Execution]:
        """All executions, optionally narrowed by an MLMD filter query."""

    @abc.abstractmethod
    def newest_executions(self, filter_query: str = "", limit: int = 100) -> List[Execution]:
        """The ``limit`` newest executions (highest ids first) matching an MLMD filter query."""

    # -- reads: artifacts --------------------------------------------------------------------
    @abc.abstractmethod
    def artifacts_by_id(self, ids: Iterable[int]) -> List[Artifact]:
        """Artifacts by id, batched."""

    @abc.abstractmethod
    def artifacts_by_uri(self, uris: Iterable[str]) -> List[Artifact]:
        """Artifacts whose uri (content hash) is in ``uris``, ordered by id."""

    @abc.abstractmethod
    def artifact_by_type_and_name(self, type_name: str, name: str) -> Optional[Artifact]:
        """The artifact of this type and name, or ``None``."""

    @abc.abstractmethod
    def artifacts_by_context(self, context_id: int) -> List[Artifact]:
        """Artifacts attributed to a context."""

    @abc.abstractmethod
    def artifacts_by_type(self, type_name: str) -> List[Artifact]:
        """All artifacts of one type."""

    @abc.abstractmethod
    def artifacts(self, filter_query: str = "") -> List[Artifact]:
        """All artifacts, optionally narrowed by an MLMD filter query."""

    # -- reads: by name, batched ---------------------------------------------------------------
    def executions_by_names(self, names: Sequence[str]) -> Optional[List[Execution]]:
        """Executions (of any type) named one of ``names``, looked up with bound parameters,
        or ``None`` when this engine has no such lookup: callers then use filter queries
        (``name IN (...)``), which hold only names a filter literal can carry."""
        return None

    def artifacts_by_names(self, names: Sequence[str]) -> Optional[List[Artifact]]:
        """Artifacts (of any type) named one of ``names``, like :meth:`executions_by_names`."""
        return None

    def associated(self, stage_of: Mapping[int, int]) -> Set[int]:
        """Those executions of ``{execution id: context id}`` associated with that context
        (batched; here: with one of the contexts given, through a filter query).

        The others were written by a batch interrupted between its records and its links
        (ml-metadata's API writes those in two calls): merges find them here and link them.
        """
        ids = sorted({int(i) for i in stage_of})
        out: Set[int] = set()
        for chunk in chunks(ids):
            ctxs = sorted({int(stage_of[i]) for i in chunk})
            query = f"id IN ({', '.join(map(str, chunk))}) AND contexts_a.id IN ({', '.join(map(str, ctxs))})"
            out.update(int(e.id or 0) for e in self.executions(query))
        return out

    # -- reads: events -----------------------------------------------------------------------
    @abc.abstractmethod
    def events_by_execution(self, ids: Iterable[int]) -> List[Event]:
        """Events of these executions, batched."""

    @abc.abstractmethod
    def events_by_artifact(self, ids: Iterable[int]) -> List[Event]:
        """Events of these artifacts, batched."""

    # -- writes ------------------------------------------------------------------------------
    @abc.abstractmethod
    def put_context(self, context: Context, parent_id: Optional[int] = None) -> int:
        """Create or update a context (and link it under ``parent_id``); returns its id."""

    def get_or_create_context(
        self, type_name: str, name: str, properties: Props, custom: Props, parent_id: Optional[int] = None
    ) -> Context:
        """CMF's get-or-create by name: custom properties are set on first creation only."""
        found = self.context(type_name, name)
        attempt = 0
        while found is None:
            try:
                self.put_context(Context(type_name, name, properties=properties, custom=custom), parent_id)
            except Exception as exc:  # noqa: BLE001 - each engine has its own already-exists class
                if not is_already_exists(exc):
                    raise
                # Another writer is creating it (or its type); on a server its transaction may
                # not be visible yet, or may have rolled back: look again, then retry.
                time.sleep(0.01 * attempt)
            found = self.context(type_name, name)
            attempt += 1
            if found is None and attempt > 20:
                raise errors.StoreError(f"store {self.location}: could not create context {name!r}")
        if parent_id is not None and parent_id not in {c.id for c in self.parent_contexts(found.id or 0)}:
            self._ensure_parent_link(int(found.id or 0), parent_id)
        return found

    @abc.abstractmethod
    def _ensure_parent_link(self, child_id: int, parent_id: int) -> None:
        """Link an existing context under ``parent_id`` (no error when the link exists)."""

    @abc.abstractmethod
    def put_execution(self, execution: Execution, links: Sequence[Link], context_ids: Sequence[int]) -> Tuple[int, List[int]]:
        """Write an execution, its artifacts and events and its context links in one transaction.

        New artifacts (``id`` unset) are created; existing ones are updated with
        the record given. Returns the execution id and the artifact ids in
        ``links`` order. Raises an already-exists error (see
        :func:`is_already_exists`) when a concurrent writer created the same
        named record first.
        """

    @abc.abstractmethod
    def put_lineage(
        self,
        executions: Sequence[Execution],
        artifacts: Sequence[Artifact],
        edges: Sequence[Tuple[int, int, str, Optional[str]]],
        context_ids: Sequence[int],
    ) -> Tuple[List[int], List[int]]:
        """Bulk write in one transaction (ingest); ``edges`` are ``(execution index,
        artifact index, kind, path key)`` into the two lists."""

    def put_lineage_linked(
        self,
        executions: Sequence[Execution],
        artifacts: Sequence[Artifact],
        edges: Sequence[Tuple[int, int, str, Optional[str]]],
        associations: Sequence[Tuple[int, int]],
        attributions: Sequence[Tuple[int, int]],
    ) -> Tuple[List[int], List[int]]:
        """:meth:`put_lineage` plus per-record context links: ``associations`` are
        ``(context id, execution index)``, ``attributions`` ``(context id, artifact index)``.

        Here two writes (MLMD's API links every record of a ``PutLineageSubgraph`` call to
        every context given, so per-stage links are a second call); the SQL engine writes
        everything in one transaction.
        """
        eids, aids = self.put_lineage(executions, artifacts, edges, [])
        self.put_links([(c, eids[i]) for c, i in associations], [(c, aids[i]) for c, i in attributions])
        return eids, aids

    @abc.abstractmethod
    def put_events(self, events: Sequence[Tuple[int, int, str, Optional[str]]]) -> None:
        """Add ``(execution id, artifact id, kind, path key)`` events to existing records."""

    @abc.abstractmethod
    def link(self, context_id: int, execution_ids: Sequence[int] = (), artifact_ids: Sequence[int] = ()) -> None:
        """Associate executions and attribute artifacts to a context (existing links are kept)."""

    @abc.abstractmethod
    def put_contexts(self, contexts: Sequence[Context], parent_id: Optional[int] = None) -> List[int]:
        """Create several contexts at once (each linked under ``parent_id``); returns their ids."""

    @abc.abstractmethod
    def put_links(self, associations: Sequence[Tuple[int, int]] = (), attributions: Sequence[Tuple[int, int]] = ()) -> None:
        """Add ``(context id, execution id)`` associations and ``(context id, artifact id)`` attributions."""

    @abc.abstractmethod
    def update_execution(self, execution: Execution) -> int:
        """Write an execution record (create when ``id`` is unset); returns its id."""

    @abc.abstractmethod
    def update_artifact(self, artifact: Artifact) -> int:
        """Write an artifact record (create when ``id`` is unset); returns its id."""

    @abc.abstractmethod
    def close(self) -> None:
        """Drop the connection."""


def type_external_id(kind: str, name: str) -> str:
    """The unique external id cmfrun gives the types it creates."""
    return f"cmfrun:{kind}:{name}"


def is_already_exists(exc: BaseException) -> bool:
    """Whether ``exc`` says "a record with this type and name exists" (either engine)."""
    if isinstance(exc, AlreadyExistsError):
        return True
    mlmd_errors = sys.modules.get("ml_metadata.errors")  # loaded only if the mlmd engine ran
    return mlmd_errors is not None and isinstance(exc, getattr(mlmd_errors, "AlreadyExistsError"))


def chunks(items: List[Any], size: int = IN_CLAUSE_CHUNK) -> Iterator[List[Any]]:
    """``items`` in slices of at most ``size`` (bounded IN lists)."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def with_id(record: Union[Artifact, Execution, Context], new_id: int):  # type: ignore[no-untyped-def]
    """A copy of ``record`` carrying its stored id."""
    return replace(record, id=new_id)


__all__ = [
    "DEFAULT_STORE_NAME",
    "ENV_ENGINE",
    "AlreadyExistsError",
    "WriteConflictError",
    "LineageWalk",
    "walk_levels",
    "StoreLocation",
    "Store",
    "connect",
    "choose_engine",
    "default_store_path",
    "parse_location",
    "is_already_exists",
    "mlmd_installed",
    "with_id",
]
