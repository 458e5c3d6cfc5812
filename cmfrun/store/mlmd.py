"""The ml-metadata engine: the only module that imports ml_metadata.

:func:`connect` opens a location with Google's ml-metadata library; MLMD's
protobufs never leave this module. :mod:`cmfrun.store` imports it only when
this engine is chosen, so ``import cmfrun.store`` works without ml-metadata.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

from cmfrun import errors, schema
from cmfrun.records import Artifact, Context, Event, Execution, Link, Props, Value
from cmfrun.store import Store, StoreLocation, check_sqlite_file, type_external_id
from cmfrun.store import IN_CLAUSE_CHUNK
from cmfrun.store import chunks as _chunks
from cmfrun.store.literals import check_filter_query, in_filters

os.environ.setdefault("GLOG_minloglevel", "2")
from ml_metadata import errors as mlmd_errors  # noqa: E402
from ml_metadata.metadata_store import metadata_store  # noqa: E402
from ml_metadata.proto import metadata_store_pb2 as _pb  # noqa: E402
from google.protobuf.descriptor import FieldDescriptor  # noqa: E402
from google.protobuf.message import Message  # noqa: E402

# The protobuf classes are generated at import time; mypy cannot see them.
pb: Any = _pb
log = logging.getLogger(__name__)

#: How each backend words a unique-constraint violation.
_UNIQUE_VIOLATION = ("duplicate key value", "Duplicate entry", "UNIQUE constraint failed")
#: Up to this many uris, :meth:`Store.artifacts_by_uri` uses one indexed lookup per uri.
_FEW_URIS = 20

_KIND = {"STRING": pb.STRING, "INT": pb.INT, "DOUBLE": pb.DOUBLE}
_EVENT = {
    "INPUT": pb.Event.INPUT,
    "OUTPUT": pb.Event.OUTPUT,
    "INTERNAL_OUTPUT": pb.Event.INTERNAL_OUTPUT,
    "DECLARED_INPUT": pb.Event.DECLARED_INPUT,
    "DECLARED_OUTPUT": pb.Event.DECLARED_OUTPUT,
    "INTERNAL_INPUT": pb.Event.INTERNAL_INPUT,
    "PENDING_OUTPUT": pb.Event.PENDING_OUTPUT,
}
_EVENT_NAME = {v: k for k, v in _EVENT.items()}
_STATE = {
    "UNKNOWN": pb.Execution.UNKNOWN,
    "NEW": pb.Execution.NEW,
    "RUNNING": pb.Execution.RUNNING,
    "COMPLETE": pb.Execution.COMPLETE,
    "FAILED": pb.Execution.FAILED,
    "CACHED": pb.Execution.CACHED,
    "CANCELED": pb.Execution.CANCELED,
}
_STATE_NAME = {v: k for k, v in _STATE.items()}


def connect(loc: StoreLocation, *, create: bool = True, read_only: bool = False) -> "MlmdStore":
    """Open the store at ``loc`` with ml-metadata (see :func:`cmfrun.store.connect`)."""
    _check_server_location(loc)
    config = pb.ConnectionConfig()
    if loc.backend == "sqlite":
        assert loc.path is not None
        read_only = check_sqlite_file(loc.path, create=create, read_only=read_only)
        config.sqlite.filename_uri = str(loc.path)
        config.sqlite.connection_mode = (
            pb.SqliteMetadataSourceConfig.READONLY if read_only else pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        )
    elif loc.backend == "postgresql":
        config.postgresql.host = loc.host
        config.postgresql.port = str(loc.port)
        config.postgresql.dbname = loc.database
        if loc.user:
            config.postgresql.user = loc.user
        if loc.password:
            config.postgresql.password = loc.password
    else:
        config.mysql.host = loc.host
        config.mysql.port = loc.port
        config.mysql.database = loc.database
        config.mysql.user = loc.user
        if loc.password:
            config.mysql.password = loc.password
    try:
        with _quiet_stderr(loc.backend != "sqlite"):
            mlmd = metadata_store.MetadataStore(config)
    except (RuntimeError, mlmd_errors.StatusError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if loc.backend == "sqlite":
            raise errors.CorruptStoreError(f"cannot open store {loc}: {first}") from None
        raise errors.StoreUnavailableError(f"cannot reach store {loc}: {first}") from None
    store = MlmdStore(mlmd, loc, read_only=read_only)
    if not read_only:
        store.ensure_schema_version()
    return store


#: The sql engine's rule for database names (``cmfrun.store.sql``).
_PLAIN_DATABASE = re.compile(r"^[A-Za-z0-9_$-]{1,63}$")
#: What ml-metadata's PostgreSQL connection string cannot hold: it joins ``key=value`` pairs unquoted.
_CONNINFO_UNSAFE = re.compile(r"[\s'\\]")


def _check_server_location(loc: StoreLocation) -> None:
    """ml-metadata puts the database name unquoted into SQL when it creates the database
    (``CREATE DATABASE <name>``) and, on PostgreSQL, every connection field unquoted into
    the libpq connection string: refuse what would change either."""
    if loc.backend == "sqlite":
        return
    if not _PLAIN_DATABASE.match(loc.database):
        raise errors.StoreURIError(f"store {loc}: database name {loc.database!r} is not a plain name")
    if loc.backend == "postgresql" and any(_CONNINFO_UNSAFE.search(v) for v in (loc.host, loc.user, loc.password)):
        raise errors.StoreURIError(
            f"store {loc}: ml-metadata cannot pass a host, user or password holding spaces, quotes or "
            "backslashes to PostgreSQL; use the sql store engine (CMFRUN_ENGINE=sql)"
        )


@contextlib.contextmanager
def _quiet_stderr(enabled: bool) -> Iterator[None]:
    """Silence the C++ client's own log lines while connecting; errors come back as exceptions."""
    if not enabled:
        yield
        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


#: MLMD keeps int_value in a 32-bit column on PostgreSQL and MySQL.
_INT32 = (-(2**31), 2**31 - 1)


def _set_value(target: Any, value: Value, kind: str = "") -> None:
    """Store ``value``; a declared ``kind`` wins. Undeclared ints beyond 32 bits become
    doubles (exact to 2**53) so every backend accepts them."""
    if kind == "DOUBLE" and isinstance(value, (int, float)):
        target.double_value = float(value)
    elif kind == "INT" and isinstance(value, (int, float)):
        target.int_value = int(value)
    elif kind == "STRING":
        target.string_value = str(value)
    elif isinstance(value, bool):
        target.int_value = int(value)
    elif isinstance(value, int):
        if _INT32[0] <= value <= _INT32[1]:
            target.int_value = value
        else:
            target.double_value = float(value)
    elif isinstance(value, float):
        target.double_value = value
    else:
        target.string_value = str(value)


def _get_value(value: Any) -> Value:
    kind = value.WhichOneof("value")
    if kind == "int_value":
        return int(value.int_value)
    if kind == "double_value":
        return float(value.double_value)
    if kind == "string_value":
        return str(value.string_value)
    if kind == "bool_value":
        return int(value.bool_value)
    return str(value)


def _props(mapping: Any) -> Dict[str, Value]:
    return {k: _get_value(v) for k, v in mapping.items()}


def _fill(target: Any, values: Props, declared: Mapping[str, str] = {}) -> None:
    for key, value in values.items():
        if value is None:
            continue
        _set_value(target[key], value, declared.get(key, ""))


def _strings(msg: Any) -> Iterator[str]:
    """Every string in a protobuf message, map keys included."""
    for field, value in msg.ListFields():
        if field.type == FieldDescriptor.TYPE_STRING:
            yield from (value if field.label == FieldDescriptor.LABEL_REPEATED else [value])
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                for key, item in value.items():
                    yield from [key] if isinstance(key, str) else []
                    yield from _strings(item) if isinstance(item, Message) else [item] if isinstance(item, str) else []
            else:
                for item in value if field.label == FieldDescriptor.LABEL_REPEATED else [value]:
                    yield from _strings(item)


def _backslashed(value: Any) -> Optional[str]:
    """The first string holding a backslash in an argument to ml-metadata, else ``None``."""
    if isinstance(value, str):
        return value if "\\" in value else None
    if isinstance(value, Message):
        # Serialising is fast (C++); no backslash byte means no backslash in any string.
        if b"\\" not in value.SerializeToString():
            return None
        return next((s for s in _strings(value) if "\\" in s), None)
    if isinstance(value, (list, tuple)):
        return next((found for item in value for found in [_backslashed(item)] if found is not None), None)
    query = getattr(value, "filter_query", None)  # ListOptions
    return _backslashed(query) if isinstance(query, str) else None


class _Backslash(errors.UsageError):
    """A call would have handed ml-metadata on PostgreSQL text holding a backslash."""


class _NoBackslashes:
    """ml-metadata as is, except that no call passes it text holding a backslash.

    On PostgreSQL ml-metadata 1.17 quotes each value as ``'`` + PQescapeLiteral(value)
    minus its outer quotes + ``'``; for text with a backslash PQescapeLiteral answers
    `` E'...'``, so the value ends up outside the quotes and runs as SQL, in writes and in
    lookups alike (a uri ending in ``; DROP TABLE x; -- \\`` drops the table). No escaping
    on our side can avoid that, so such a call raises :class:`_Backslash` before
    ml-metadata sees it, and :class:`MlmdStore` makes it with the sql engine instead.
    """

    def __init__(self, mlmd: Any, location: StoreLocation):
        self._mlmd, self._location = mlmd, location

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._mlmd, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            for arg in (*args, *kwargs.values()):
                found = _backslashed(arg)
                if found is not None:
                    raise _Backslash(
                        f"store {self._location}: ml-metadata cannot take text holding a backslash on PostgreSQL ({found[:60]!r})"
                    )
            return method(*args, **kwargs)

        return call


class MlmdStore(Store):
    """A :class:`~cmfrun.store.Store` on ml-metadata's ``MetadataStore``."""

    engine = "mlmd"

    def __init__(self, mlmd: Any, location: StoreLocation, *, read_only: bool = False):
        super().__init__(location, read_only=read_only)
        self._mlmd = _NoBackslashes(mlmd, location) if location.backend == "postgresql" else mlmd
        self._type_ids: Dict[Tuple[str, str], int] = {}
        self._type_names: Dict[Tuple[str, int], str] = {}
        self._twin: Optional[Store] = None

    def _sql_twin(self) -> Store:
        """The sql engine on this same database, opened on first need: it makes the calls
        ml-metadata cannot make safely (text with a backslash on PostgreSQL). Both engines
        read and write the same tables, so its records are ml-metadata's as well."""
        if self._twin is None:
            from cmfrun.store import sql

            twin = sql.connect(self.location, create=False, read_only=self.read_only)
            twin.read_only = self.read_only
            self._twin = twin
            log.debug("store %s: the sql engine takes the calls holding a backslash", self.location)
        return self._twin

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        with self.write_lock():
            try:
                yield
            except mlmd_errors.AlreadyExistsError:
                raise
            except mlmd_errors.StatusError as exc:
                msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                if any(m in str(exc) for m in _UNIQUE_VIOLATION):
                    # PostgreSQL/MySQL report a lost creation race as an internal error.
                    raise mlmd_errors.AlreadyExistsError(msg) from None  # type: ignore[no-untyped-call]
                if "readonly" in msg.lower() or "read-only" in msg.lower():
                    raise errors.ReadOnlyStoreError(f"store {self.location} is read-only: {msg}") from None
                raise errors.StoreError(f"store {self.location}: write failed: {msg}") from None

    # -- types -------------------------------------------------------------------------------
    def ensure_type(self, kind: str, name: str, properties: Mapping[str, str]) -> int:
        """Get or create an ``artifact``/``execution``/``context`` type with at least ``properties``."""
        key = (kind, name)
        if key in self._type_ids:
            return self._type_ids[key]
        cls = {"artifact": pb.ArtifactType, "execution": pb.ExecutionType, "context": pb.ContextType}[kind]
        getter = getattr(self._mlmd, f"get_{kind}_type")
        putter = getattr(self._mlmd, f"put_{kind}_type")
        try:
            existing = getter(name)
        except mlmd_errors.NotFoundError:
            existing = None
        if existing is not None and all(p in existing.properties for p in properties):
            type_id = int(existing.id)
        else:
            if self.read_only:
                raise errors.ReadOnlyStoreError(f"store {self.location} is open read-only")
            proto = cls(name=name)
            if existing is None:
                # MLMD has no unique index on type names (PostgreSQL/MySQL writers racing
                # would create two "train" types); external_id is unique, so the loser of
                # the race gets AlreadyExists and reads the winner's type instead.
                proto.external_id = type_external_id(kind, name)
            for prop, pkind in properties.items():
                proto.properties[prop] = _KIND[pkind]
            try:
                with self._writing():
                    type_id = int(putter(proto, can_add_fields=True, can_omit_fields=True))
            except mlmd_errors.AlreadyExistsError:
                return self.ensure_type(kind, name, properties)
        self._type_ids[key] = type_id
        self._type_names[(kind, type_id)] = name
        return type_id

    def ensure_execution_types(self, names: Iterable[str]) -> None:
        """Register many execution types (CMF properties) at once: one read of the existing
        types and one ``PutTypes`` call, instead of one transaction per type (ingest of a
        lock with hundreds of stage names)."""
        wanted = [n for n in dict.fromkeys(names) if ("execution", n) not in self._type_ids]
        if not wanted:
            return
        props = schema.EXECUTION_PROPERTIES
        existing = {t.name: t for t in self._mlmd.get_execution_types()}
        missing = [n for n in wanted if n not in existing or not all(p in existing[n].properties for p in props)]
        if missing:
            self._require_writable()
            from ml_metadata.proto import metadata_store_service_pb2

            svc: Any = metadata_store_service_pb2  # generated classes: invisible to mypy
            request = svc.PutTypesRequest(can_add_fields=True, can_omit_fields=True)
            for n in missing:
                t = request.execution_types.add(name=n)
                if n not in existing:
                    t.external_id = type_external_id("execution", n)  # see ensure_type
                for prop, pkind in props.items():
                    t.properties[prop] = _KIND[pkind]
            try:
                with self._writing():
                    self._mlmd._call("PutTypes", request, svc.PutTypesResponse())
            except mlmd_errors.AlreadyExistsError:
                for n in missing:  # a concurrent writer created some: settle them one by one
                    self.ensure_type("execution", n, props)
            existing = {t.name: t for t in self._mlmd.get_execution_types()}
        for n in wanted:
            self._type_ids[("execution", n)] = int(existing[n].id)
            self._type_names[("execution", int(existing[n].id))] = n

    def _type_name(self, kind: str, type_id: int) -> str:
        key = (kind, type_id)
        if key not in self._type_names:
            getter = getattr(self._mlmd, f"get_{kind}_types")
            for t in getter():
                self._type_names[(kind, int(t.id))] = t.name
        return self._type_names.get(key, "")

    def _artifact_type_id(self, name: str) -> int:
        return self.ensure_type("artifact", name, schema.ARTIFACT_PROPERTIES.get(name, {}))

    def _execution_type_id(self, name: str) -> int:
        return self.ensure_type("execution", name, schema.EXECUTION_PROPERTIES)

    def _context_type_id(self, name: str) -> int:
        return self.ensure_type("context", name, schema.CONTEXT_PROPERTIES.get(name, {}))

    def type_names(self, kind: str) -> List[str]:
        """Names of all ``artifact``/``execution``/``context`` types in the store."""
        return [t.name for t in getattr(self._mlmd, f"get_{kind}_types")()]

    # -- conversion --------------------------------------------------------------------------
    def _context(self, p: Any) -> Context:
        return Context(
            type=self._type_name("context", p.type_id),
            name=p.name,
            properties=_props(p.properties),
            custom=_props(p.custom_properties),
            id=int(p.id),
            create_ms=int(p.create_time_since_epoch),
            update_ms=int(p.last_update_time_since_epoch),
        )

    def _artifact(self, p: Any) -> Artifact:
        return Artifact(
            type=self._type_name("artifact", p.type_id),
            name=p.name,
            uri=p.uri,
            properties=_props(p.properties),
            custom=_props(p.custom_properties),
            id=int(p.id),
            create_ms=int(p.create_time_since_epoch),
            update_ms=int(p.last_update_time_since_epoch),
        )

    def _execution(self, p: Any) -> Execution:
        return Execution(
            type=self._type_name("execution", p.type_id),
            name=p.name,
            properties=_props(p.properties),
            custom=_props(p.custom_properties),
            state=_STATE_NAME.get(p.last_known_state, "UNKNOWN"),
            id=int(p.id),
            create_ms=int(p.create_time_since_epoch),
            update_ms=int(p.last_update_time_since_epoch),
        )

    def _event(self, p: Any) -> Event:
        path = tuple(s.key for s in p.path.steps if s.HasField("key"))
        return Event(
            artifact_id=int(p.artifact_id),
            execution_id=int(p.execution_id),
            kind=_EVENT_NAME.get(p.type, "UNKNOWN"),
            path=path,
            ms=int(p.milliseconds_since_epoch),
        )

    def _context_proto(self, c: Context) -> Any:
        p = pb.Context(type_id=self._context_type_id(c.type), name=c.name)
        if c.id is not None:
            p.id = c.id
        _fill(p.properties, c.properties, schema.CONTEXT_PROPERTIES.get(c.type, {}))
        _fill(p.custom_properties, c.custom)
        return p

    def _artifact_proto(self, a: Artifact) -> Any:
        p = pb.Artifact(type_id=self._artifact_type_id(a.type), name=a.name, uri=a.uri)
        if a.id is not None:
            p.id = a.id
        _fill(p.properties, a.properties, schema.ARTIFACT_PROPERTIES.get(a.type, {}))
        _fill(p.custom_properties, a.custom)
        return p

    def _execution_proto(self, e: Execution) -> Any:
        p = pb.Execution(type_id=self._execution_type_id(e.type))
        if e.name:
            p.name = e.name
        if e.id is not None:
            p.id = e.id
        p.last_known_state = _STATE[e.state]
        _fill(p.properties, e.properties, schema.EXECUTION_PROPERTIES)
        _fill(p.custom_properties, e.custom)
        return p

    @staticmethod
    def _event_proto(kind: str, path_key: Optional[str], artifact_id: int = 0, execution_id: int = 0) -> Any:
        ev = pb.Event(type=_EVENT[kind])
        if artifact_id:
            ev.artifact_id = artifact_id
        if execution_id:
            ev.execution_id = execution_id
        if path_key:
            ev.path.steps.add().key = path_key
        return ev

    # -- reads: contexts ---------------------------------------------------------------------
    def contexts_by_type(self, type_name: str) -> List[Context]:
        """All contexts of one type (``Parent_Context`` = pipelines)."""
        return [self._context(c) for c in self._mlmd.get_contexts_by_type(type_name)]

    def context(self, type_name: str, name: str) -> Optional[Context]:
        """The context of this type and name, or ``None``."""
        p = self._mlmd.get_context_by_type_and_name(type_name, name)
        return self._context(p) if p is not None else None

    def contexts_by_id(self, ids: Iterable[int]) -> List[Context]:
        """Contexts by id (missing ids are skipped)."""
        ids = list(ids)
        return [self._context(c) for c in self._mlmd.get_contexts_by_id(ids)] if ids else []

    def parent_contexts(self, context_id: int) -> List[Context]:
        """Parents of a context (a stage's pipeline)."""
        return [self._context(c) for c in self._mlmd.get_parent_contexts_by_context(context_id)]

    def child_contexts(self, context_id: int) -> List[Context]:
        """Children of a context (a pipeline's stages)."""
        return [self._context(c) for c in self._mlmd.get_children_contexts_by_context(context_id)]

    def associated(self, stage_of: Mapping[int, int]) -> Set[int]:
        """Those executions of ``{execution id: context id}`` associated with that context.

        Read by the sql engine on this same database: ml-metadata answers links only per
        record, or through a filter query that loads whole records (a 2,000-run re-merge
        took 1.4-1.5x as long that way; the link rows alone add nothing measurable).
        """
        return self._sql_twin().associated(stage_of)

    def contexts_by_execution(self, execution_id: int) -> List[Context]:
        """Contexts an execution is associated with ([] for none, as on the SQL engine)."""
        try:
            return [self._context(c) for c in self._mlmd.get_contexts_by_execution(execution_id)]
        except mlmd_errors.NotFoundError:  # ml-metadata's answer for "no contexts"
            return []

    def contexts_by_artifact(self, artifact_id: int) -> List[Context]:
        """Contexts an artifact is attributed to ([] for none, as on the SQL engine)."""
        try:
            return [self._context(c) for c in self._mlmd.get_contexts_by_artifact(artifact_id)]
        except mlmd_errors.NotFoundError:  # ml-metadata's answer for "no contexts"
            return []

    # -- reads: executions -------------------------------------------------------------------
    def executions_by_id(self, ids: Iterable[int]) -> List[Execution]:
        """Executions by id, batched."""
        out: List[Execution] = []
        for chunk in _chunks(list(ids)):
            out.extend(self._execution(e) for e in self._mlmd.get_executions_by_id(chunk))
        return out

    def executions_by_context(self, context_id: int) -> List[Execution]:
        """Executions associated with a context, oldest first."""
        return [self._execution(e) for e in self._mlmd.get_executions_by_context(context_id)]

    def executions_by_type(self, type_name: str) -> List[Execution]:
        """All executions of one type."""
        return [self._execution(e) for e in self._mlmd.get_executions_by_type(type_name)]

    def execution_by_type_and_name(self, type_name: str, name: str) -> Optional[Execution]:
        """The execution of this type and (non-empty) name, or ``None``."""
        try:
            p = self._mlmd.get_execution_by_type_and_name(type_name, name)
        except mlmd_errors.NotFoundError:
            return None
        return self._execution(p) if p is not None else None

    def executions(self, filter_query: str = "") -> List[Execution]:
        """All executions, optionally narrowed by an MLMD filter query."""
        if filter_query:
            check_filter_query(filter_query)
            opts = metadata_store.ListOptions(filter_query=filter_query)
            return [self._execution(e) for e in self._mlmd.get_executions(list_options=opts)]
        return [self._execution(e) for e in self._mlmd.get_executions()]

    def newest_executions(self, filter_query: str = "", limit: int = 100) -> List[Execution]:
        """The ``limit`` newest executions (highest ids first) matching an MLMD filter query.

        One query that reads only ``limit`` records: listing stays fast on big stores.
        """
        check_filter_query(filter_query)
        opts = metadata_store.ListOptions(
            limit=limit, order_by=metadata_store.OrderByField.ID, is_asc=False, filter_query=filter_query
        )
        return [self._execution(e) for e in self._mlmd.get_executions(list_options=opts)]

    # -- reads: artifacts --------------------------------------------------------------------
    def artifacts_by_id(self, ids: Iterable[int]) -> List[Artifact]:
        """Artifacts by id, batched."""
        out: List[Artifact] = []
        for chunk in _chunks(list(ids)):
            out.extend(self._artifact(a) for a in self._mlmd.get_artifacts_by_id(chunk))
        return out

    def artifacts_by_uri(self, uris: Iterable[str]) -> List[Artifact]:
        """Artifacts whose uri (content hash) is in ``uris``, in batched queries."""
        out: List[Artifact] = []
        wanted = sorted(set(uris))
        queries, one_by_one = in_filters("uri", wanted, IN_CLAUSE_CHUNK) if len(wanted) > _FEW_URIS else ([], wanted)
        for query in queries:
            opts = metadata_store.ListOptions(filter_query=query)
            out.extend(self._artifact(a) for a in self._mlmd.get_artifacts(list_options=opts))
        # MLMD's indexed per-uri lookup costs ~0.01 ms, a filter query ~0.75 ms (API hot path);
        # it also escapes the uri itself, so uris no filter query may hold go this way too.
        for uri in one_by_one:
            out.extend(self._artifact(a) for a in self._mlmd.get_artifacts_by_uri(uri))
        return sorted(out, key=lambda a: a.id or 0)

    def artifact_by_type_and_name(self, type_name: str, name: str) -> Optional[Artifact]:
        """The artifact of this type and name, or ``None``."""
        try:
            p = self._mlmd.get_artifact_by_type_and_name(type_name, name)
        except mlmd_errors.NotFoundError:
            return None
        return self._artifact(p) if p is not None else None

    def artifacts_by_context(self, context_id: int) -> List[Artifact]:
        """Artifacts attributed to a context."""
        return [self._artifact(a) for a in self._mlmd.get_artifacts_by_context(context_id)]

    def artifacts_by_type(self, type_name: str) -> List[Artifact]:
        """All artifacts of one type."""
        return [self._artifact(a) for a in self._mlmd.get_artifacts_by_type(type_name)]

    def artifacts(self, filter_query: str = "") -> List[Artifact]:
        """All artifacts, optionally narrowed by an MLMD filter query."""
        if filter_query:
            check_filter_query(filter_query)
            opts = metadata_store.ListOptions(filter_query=filter_query)
            return [self._artifact(a) for a in self._mlmd.get_artifacts(list_options=opts)]
        return [self._artifact(a) for a in self._mlmd.get_artifacts()]

    # -- reads: events -----------------------------------------------------------------------
    def events_by_execution(self, ids: Iterable[int]) -> List[Event]:
        """Events of these executions, batched."""
        out: List[Event] = []
        for chunk in _chunks(list(ids)):
            out.extend(self._event(e) for e in self._mlmd.get_events_by_execution_ids(chunk))
        return out

    def events_by_artifact(self, ids: Iterable[int]) -> List[Event]:
        """Events of these artifacts, batched."""
        out: List[Event] = []
        for chunk in _chunks(list(ids)):
            out.extend(self._event(e) for e in self._mlmd.get_events_by_artifact_ids(chunk))
        return out

    # -- writes ------------------------------------------------------------------------------
    def put_context(self, context: Context, parent_id: Optional[int] = None) -> int:
        """Create or update a context (and link it under ``parent_id``); returns its id."""
        with self._writing():
            if parent_id is None:
                [cid] = self._mlmd.put_contexts([self._context_proto(context)])
                return int(cid)
            # One transaction: the child context and its parent link appear together.
            _, _, [cid] = self._mlmd.put_lineage_subgraph([], [], [self._context_proto(context)], [])
            link = pb.ParentContext(child_id=int(cid), parent_id=parent_id)
            try:
                self._mlmd.put_parent_contexts([link])
            except mlmd_errors.AlreadyExistsError:
                pass
            return int(cid)

    def _ensure_parent_link(self, child_id: int, parent_id: int) -> None:
        with self._writing():
            try:
                self._mlmd.put_parent_contexts([pb.ParentContext(child_id=child_id, parent_id=parent_id)])
            except mlmd_errors.AlreadyExistsError:
                pass

    def put_execution(self, execution: Execution, links: Sequence[Link], context_ids: Sequence[int]) -> Tuple[int, List[int]]:
        """Write an execution, its artifacts and events and its context links in one transaction.

        New artifacts (``id`` unset) are created; existing ones are updated with
        the record given. Every artifact and the execution are linked to every
        context in ``context_ids``. Returns the execution id and the artifact
        ids in ``links`` order. Raises MLMD's AlreadyExistsError (unwrapped)
        when a concurrent writer created the same named record first.
        """
        contexts = [pb.Context(id=c) for c in context_ids]
        # MLMD wants full context protos; fetch them so put_execution doesn't clear fields.
        if context_ids:
            contexts = list(self._mlmd.get_contexts_by_id(list(context_ids)))
        pairs = []
        for link in links:
            pairs.append((self._artifact_proto(link.artifact), self._event_proto(link.kind, link.path_key)))
        with self._writing():
            eid, aids, _ = self._mlmd.put_execution(
                self._execution_proto(execution), pairs, contexts, reuse_context_if_already_exist=True
            )
        return int(eid), [int(a) for a in aids]

    def put_lineage(
        self,
        executions: Sequence[Execution],
        artifacts: Sequence[Artifact],
        edges: Sequence[Tuple[int, int, str, Optional[str]]],
        context_ids: Sequence[int],
    ) -> Tuple[List[int], List[int]]:
        """Bulk write in one transaction (ingest).

        ``edges`` are ``(execution index, artifact index, kind, path key)`` into
        the two lists. Every record is linked to every context in ``context_ids``.
        """
        contexts = list(self._mlmd.get_contexts_by_id(list(context_ids))) if context_ids else []
        ev = [(e, a, self._event_proto(kind, key)) for e, a, kind, key in edges]
        with self._writing():
            eids, aids, _ = self._mlmd.put_lineage_subgraph(
                [self._execution_proto(e) for e in executions],
                [self._artifact_proto(a) for a in artifacts],
                contexts,
                ev,
                reuse_context_if_already_exist=True,
            )
        return [int(x) for x in eids], [int(x) for x in aids]

    def put_events(self, events: Sequence[Tuple[int, int, str, Optional[str]]]) -> None:
        """Add ``(execution id, artifact id, kind, path key)`` events to existing records."""
        protos = [self._event_proto(kind, key, artifact_id=a, execution_id=e) for e, a, kind, key in events]
        with self._writing():
            self._mlmd.put_events(protos)

    def link(self, context_id: int, execution_ids: Sequence[int] = (), artifact_ids: Sequence[int] = ()) -> None:
        """Associate executions and attribute artifacts to a context (existing links are kept)."""
        assoc = [pb.Association(context_id=context_id, execution_id=e) for e in execution_ids]
        attr = [pb.Attribution(context_id=context_id, artifact_id=a) for a in artifact_ids]
        with self._writing():
            self._mlmd.put_attributions_and_associations(attr, assoc)

    def put_contexts(self, contexts: Sequence[Context], parent_id: Optional[int] = None) -> List[int]:
        """Create several contexts at once (each linked under ``parent_id``); returns their ids.

        Ingest uses it to create hundreds of stage contexts without one transaction each.
        """
        if not contexts:
            return []
        with self._writing():
            _, _, cids = self._mlmd.put_lineage_subgraph([], [], [self._context_proto(c) for c in contexts], [])
            if parent_id is not None:
                self._mlmd.put_parent_contexts([pb.ParentContext(child_id=int(c), parent_id=parent_id) for c in cids])
        return [int(c) for c in cids]

    def put_links(self, associations: Sequence[Tuple[int, int]] = (), attributions: Sequence[Tuple[int, int]] = ()) -> None:
        """Add ``(context id, execution id)`` associations and ``(context id, artifact id)``
        attributions in one call (existing links are kept)."""
        assoc = [pb.Association(context_id=c, execution_id=e) for c, e in associations]
        attr = [pb.Attribution(context_id=c, artifact_id=a) for c, a in attributions]
        if not assoc and not attr:
            return
        with self._writing():
            self._mlmd.put_attributions_and_associations(attr, assoc)

    def update_execution(self, execution: Execution) -> int:
        """Write an execution record (create when ``id`` is unset); returns its id."""
        with self._writing():
            [eid] = self._mlmd.put_executions([self._execution_proto(execution)])
        return int(eid)

    def update_artifact(self, artifact: Artifact) -> int:
        """Write an artifact record (create when ``id`` is unset); returns its id."""
        with self._writing():
            [aid] = self._mlmd.put_artifacts([self._artifact_proto(artifact)])
        return int(aid)

    def close(self) -> None:
        """Drop the connection (MLMD closes it when the object goes away)."""
        self._mlmd = None  # type: ignore[assignment]
        if self._twin is not None:
            self._twin.close()
            self._twin = None


def _by_sql_when_backslashed(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: MlmdStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except _Backslash:
            # Nothing reached ml-metadata with the text (reads or idempotent type lookups may
            # have run before); the sql engine does the whole call with bound parameters.
            return getattr(self._sql_twin(), name)(*args, **kwargs)

    return call


# Every Store call of the ml-metadata engine that may hand it text: the same call on the sql
# engine when that text holds a backslash (only ever raised on PostgreSQL).
for _name, _method in list(vars(MlmdStore).items()):
    if callable(_method) and not _name.startswith("_") and _name != "close":
        setattr(MlmdStore, _name, _by_sql_when_backslashed(_name, _method))


__all__ = ["MlmdStore", "connect"]
