"""The plain-SQL engine: MLMD's physical schema (version 10, as ml-metadata 1.17
creates it) read and written with parameterised SQL, no ml-metadata needed.

SQLite goes through the standard library's ``sqlite3``, PostgreSQL through psycopg 3 and
MySQL/MariaDB through PyMySQL (both imported only for their backend). A store made here opens
in ml-metadata without migration and the other way round: the DDL, the
pre-registered ``mlmd.*`` types, the enum numbers (type kinds, property data
types, event types, execution states) and the property encoding
(``is_custom_property``, one typed value column) are MLMD's own, checked
against dumps of stores ml-metadata made (``tests/fixtures/mlmd_schema/``).
Every write call is one transaction.
"""
from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
import threading
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

from cmfrun import errors, schema
from cmfrun.records import Artifact, Context, Event, Execution, Link, Props, Value
from cmfrun.store import (
    IN_CLAUSE_CHUNK,
    AlreadyExistsError,
    WriteConflictError,
    LineageWalk,
    Store,
    StoreLocation,
    check_sqlite_file,
    chunks,
    type_external_id,
    walk_levels,
)
from cmfrun.store import sqlbulk
from cmfrun.store.ddl import MYSQL_DDL, POSTGRESQL_DDL
from cmfrun.store.filterquery import compile_filter

log = logging.getLogger(__name__)

#: The backends this engine speaks so far.
BACKENDS = ("sqlite", "postgresql", "mysql")
#: MLMD's ``MLMDEnv.schema_version`` for ml-metadata 1.15-1.17.
MLMD_SCHEMA_VERSION = 10
#: ``Type.type_kind``.
TYPE_KIND = {"execution": 0, "artifact": 1, "context": 2}
#: ``TypeProperty.data_type`` (MLMD's PropertyType enum).
DATA_TYPE = {"INT": 1, "DOUBLE": 2, "STRING": 3}
#: ``Event.type``.
EVENT_TYPE = {
    "UNKNOWN": 0,
    "DECLARED_OUTPUT": 1,
    "DECLARED_INPUT": 2,
    "INPUT": 3,
    "OUTPUT": 4,
    "INTERNAL_INPUT": 5,
    "INTERNAL_OUTPUT": 6,
    "PENDING_OUTPUT": 7,
}
_EVENT_NAME = {v: k for k, v in EVENT_TYPE.items()}
#: ``Execution.last_known_state``.
EXECUTION_STATE = {"UNKNOWN": 0, "NEW": 1, "RUNNING": 2, "COMPLETE": 3, "FAILED": 4, "CACHED": 5, "CANCELED": 6}
_STATE_NAME = {v: k for k, v in EXECUTION_STATE.items()}
#: The simple types ml-metadata registers in every new store, in its order (name, kind).
SIMPLE_TYPES = (
    ("mlmd.Dataset", 1),
    ("mlmd.Model", 1),
    ("mlmd.Metrics", 1),
    ("mlmd.Statistics", 1),
    ("mlmd.Train", 0),
    ("mlmd.Transform", 0),
    ("mlmd.Process", 0),
    ("mlmd.Evaluate", 0),
    ("mlmd.Deploy", 0),
)
#: How each backend words a unique-constraint violation.
_UNIQUE_VIOLATION = ("duplicate key value", "Duplicate entry", "UNIQUE constraint failed")
#: InnoDB (1213) and PostgreSQL (40P01, 40001) abort one of two colliding transactions whole.
_WRITE_CONFLICT = ("Deadlock found", "deadlock detected", "could not serialize access")
_SIMPLE_NAMES = {name for name, _ in SIMPLE_TYPES}
#: MLMD keeps int_value in a 32-bit column on PostgreSQL and MySQL.
_INT32 = (-(2**31), 2**31 - 1)
_FEW = 20

#: ml-metadata 1.17's SQLite DDL, statement for statement (``sqlite3 mlmd .schema``).
SQLITE_DDL = (
    "CREATE TABLE IF NOT EXISTS `Type` (    `id` INTEGER PRIMARY KEY AUTOINCREMENT,    `name` VARCHAR(255) NOT NULL,    `version` VARCHAR(255),    `type_kind` TINYINT(1) NOT NULL,    `description` TEXT,    `input_type` TEXT,    `output_type` TEXT,    `external_id` VARCHAR(255) UNIQUE )",
    "CREATE TABLE IF NOT EXISTS `TypeProperty` (    `type_id` INT NOT NULL,    `name` VARCHAR(255) NOT NULL,    `data_type` INT NULL,  PRIMARY KEY (`type_id`, `name`))",
    "CREATE TABLE IF NOT EXISTS `ParentType` (    `type_id` INT NOT NULL,    `parent_type_id` INT NOT NULL,  PRIMARY KEY (`type_id`, `parent_type_id`))",
    "CREATE TABLE IF NOT EXISTS `Artifact` (    `id` INTEGER PRIMARY KEY AUTOINCREMENT,    `type_id` INT NOT NULL,    `uri` TEXT,    `state` INT,    `name` VARCHAR(255),    `external_id` VARCHAR(255) UNIQUE,    `create_time_since_epoch` INT NOT NULL DEFAULT 0,    `last_update_time_since_epoch` INT NOT NULL DEFAULT 0,    UNIQUE(`type_id`, `name`)  )",
    "CREATE TABLE IF NOT EXISTS `ArtifactProperty` (    `artifact_id` INT NOT NULL,    `name` VARCHAR(255) NOT NULL,    `is_custom_property` TINYINT(1) NOT NULL,    `int_value` INT,    `double_value` DOUBLE,    `string_value` TEXT,    `byte_value` BLOB,    `proto_value` BLOB,    `bool_value` BOOLEAN,  PRIMARY KEY (`artifact_id`, `name`, `is_custom_property`))",
    "CREATE TABLE IF NOT EXISTS `Execution` (    `id` INTEGER PRIMARY KEY AUTOINCREMENT,    `type_id` INT NOT NULL,    `last_known_state` INT,    `name` VARCHAR(255),    `external_id` VARCHAR(255) UNIQUE,    `create_time_since_epoch` INT NOT NULL DEFAULT 0,    `last_update_time_since_epoch` INT NOT NULL DEFAULT 0,    UNIQUE(`type_id`, `name`)  )",
    "CREATE TABLE IF NOT EXISTS `ExecutionProperty` (    `execution_id` INT NOT NULL,    `name` VARCHAR(255) NOT NULL,    `is_custom_property` TINYINT(1) NOT NULL,    `int_value` INT,    `double_value` DOUBLE,    `string_value` TEXT,    `byte_value` BLOB,    `proto_value` BLOB,    `bool_value` BOOLEAN,  PRIMARY KEY (`execution_id`, `name`, `is_custom_property`))",
    "CREATE TABLE IF NOT EXISTS `Event` (    `id` INTEGER PRIMARY KEY AUTOINCREMENT,    `artifact_id` INT NOT NULL,    `execution_id` INT NOT NULL,    `type` INT NOT NULL,    `milliseconds_since_epoch` INT,    UNIQUE(`artifact_id`, `execution_id`, `type`)  )",
    "CREATE TABLE IF NOT EXISTS `EventPath` (    `event_id` INT NOT NULL,    `is_index_step` TINYINT(1) NOT NULL,    `step_index` INT,    `step_key` TEXT  )",
    "CREATE TABLE IF NOT EXISTS `MLMDEnv` (    `schema_version` INTEGER PRIMARY KEY  )",
    "CREATE TABLE IF NOT EXISTS `Context` (    `id` INTEGER PRIMARY KEY AUTOINCREMENT,    `type_id` INT NOT NULL,    `name` VARCHAR(255) NOT NULL,    `external_id` VARCHAR(255) UNIQUE,    `create_time_since_epoch` INT NOT NULL DEFAULT 0,    `last_update_time_since_epoch` INT NOT NULL DEFAULT 0,    UNIQUE(`type_id`, `name`)  )",
    "CREATE TABLE IF NOT EXISTS `ContextProperty` (    `context_id` INT NOT NULL,    `name` VARCHAR(255) NOT NULL,    `is_custom_property` TINYINT(1) NOT NULL,    `int_value` INT,    `double_value` DOUBLE,    `string_value` TEXT,    `byte_value` BLOB,    `proto_value` BLOB,    `bool_value` BOOLEAN,  PRIMARY KEY (`context_id`, `name`, `is_custom_property`))",
    "CREATE TABLE IF NOT EXISTS `ParentContext` (    `context_id` INT NOT NULL,    `parent_context_id` INT NOT NULL,  PRIMARY KEY (`context_id`, `parent_context_id`))",
    "CREATE TABLE IF NOT EXISTS `Association` (    `id` INTEGER PRIMARY KEY AUTOINCREMENT,    `context_id` INT NOT NULL,    `execution_id` INT NOT NULL,    UNIQUE(`context_id`, `execution_id`)  )",
    "CREATE TABLE IF NOT EXISTS `Attribution` (    `id` INTEGER PRIMARY KEY AUTOINCREMENT,    `context_id` INT NOT NULL,    `artifact_id` INT NOT NULL,    UNIQUE(`context_id`, `artifact_id`)  )",
    "CREATE INDEX IF NOT EXISTS `idx_artifact_uri`  ON `Artifact`(`uri`)",
    "CREATE INDEX IF NOT EXISTS `idx_artifact_create_time_since_epoch`  ON `Artifact`(`create_time_since_epoch`)",
    "CREATE INDEX IF NOT EXISTS `idx_artifact_last_update_time_since_epoch`  ON `Artifact`(`last_update_time_since_epoch`)",
    "CREATE INDEX IF NOT EXISTS `idx_event_execution_id`  ON `Event`(`execution_id`)",
    "CREATE INDEX IF NOT EXISTS `idx_parentcontext_parent_context_id`  ON `ParentContext`(`parent_context_id`)",
    "CREATE INDEX IF NOT EXISTS `idx_type_name`  ON `Type`(`name`)",
    "CREATE INDEX IF NOT EXISTS `idx_execution_create_time_since_epoch`  ON `Execution`(`create_time_since_epoch`)",
    "CREATE INDEX IF NOT EXISTS `idx_execution_last_update_time_since_epoch`  ON `Execution`(`last_update_time_since_epoch`)",
    "CREATE INDEX IF NOT EXISTS `idx_context_create_time_since_epoch`  ON `Context`(`create_time_since_epoch`)",
    "CREATE INDEX IF NOT EXISTS `idx_context_last_update_time_since_epoch`  ON `Context`(`last_update_time_since_epoch`)",
    "CREATE INDEX IF NOT EXISTS `idx_eventpath_event_id`  ON `EventPath`(`event_id`)",
    "CREATE INDEX IF NOT EXISTS `idx_artifact_property_int`  ON `ArtifactProperty`(`name`, `is_custom_property`, `int_value`)  WHERE `int_value` IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS `idx_artifact_property_double`  ON `ArtifactProperty`(`name`, `is_custom_property`, `double_value`)  WHERE `double_value` IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS `idx_artifact_property_string`  ON `ArtifactProperty`(`name`, `is_custom_property`, `string_value`)  WHERE `string_value` IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS `idx_execution_property_int`  ON `ExecutionProperty`(`name`, `is_custom_property`, `int_value`)  WHERE `int_value` IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS `idx_execution_property_double`  ON `ExecutionProperty`(`name`, `is_custom_property`, `double_value`)  WHERE `double_value` IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS `idx_execution_property_string`  ON `ExecutionProperty`(`name`, `is_custom_property`, `string_value`)  WHERE `string_value` IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS `idx_context_property_int`  ON `ContextProperty`(`name`, `is_custom_property`, `int_value`)  WHERE `int_value` IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS `idx_context_property_double`  ON `ContextProperty`(`name`, `is_custom_property`, `double_value`)  WHERE `double_value` IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS `idx_context_property_string`  ON `ContextProperty`(`name`, `is_custom_property`, `string_value`)  WHERE `string_value` IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS `idx_type_external_id`  ON `Type`(`external_id`)",
    "CREATE INDEX IF NOT EXISTS `idx_artifact_external_id`  ON `Artifact`(`external_id`)",
    "CREATE INDEX IF NOT EXISTS `idx_execution_external_id`  ON `Execution`(`external_id`)",
    "CREATE INDEX IF NOT EXISTS `idx_context_external_id`  ON `Context`(`external_id`)",
)

#: Per node kind: (table, property table, id column of the property table, link table to contexts).
_NODE = {
    "artifact": ("Artifact", "ArtifactProperty", "artifact_id", "Attribution"),
    "execution": ("Execution", "ExecutionProperty", "execution_id", "Association"),
    "context": ("Context", "ContextProperty", "context_id", ""),
}
_PROP_COLS = "`name`, `is_custom_property`, `int_value`, `double_value`, `string_value`, `bool_value`"
#: A property row's value on SQLite, as :func:`_read_value` decodes the four value columns.
_SQLITE_VALUE = (
    "CASE WHEN `int_value` IS NOT NULL THEN CAST(`int_value` AS INTEGER) "
    "WHEN `double_value` IS NOT NULL THEN CAST(`double_value` AS REAL) "
    "WHEN `string_value` IS NOT NULL THEN CAST(`string_value` AS TEXT) "
    "WHEN `bool_value` IS NOT NULL THEN CAST(`bool_value` AS INTEGER) ELSE '' END"
)


def _now_ms() -> int:
    return int(time.time() * 1000)


def connect(loc: StoreLocation, *, create: bool = True, read_only: bool = False) -> "SqlStore":
    """Open the store at ``loc`` with plain SQL (see :func:`cmfrun.store.connect`)."""
    if loc.backend == "sqlite":
        assert loc.path is not None
        read_only = check_sqlite_file(loc.path, create=create, read_only=read_only)
        try:
            if read_only:
                conn: Any = sqlite3.connect(
                    loc.path.as_uri() + "?mode=ro", uri=True, isolation_level=None, timeout=30, check_same_thread=False
                )
            else:
                conn = sqlite3.connect(str(loc.path), isolation_level=None, timeout=30, check_same_thread=False)
            store = SqlStore(conn, loc, read_only=read_only)
            store.prepare_schema()
        except sqlite3.DatabaseError as exc:
            raise errors.CorruptStoreError(f"cannot open store {loc}: {exc}") from None
    else:
        store = SqlStore(_connect_server(loc), loc)
        store.prepare_schema()
    if not read_only:
        store.ensure_schema_version()
    return store


_DB_NAME = re.compile(r"^[A-Za-z0-9_$-]{1,63}$")


def _connect_server(loc: StoreLocation) -> Any:
    """A connection to a PostgreSQL or MySQL store, creating its database if missing (as MLMD does)."""
    if not _DB_NAME.match(loc.database):
        raise errors.StoreURIError(f"store {loc}: database name {loc.database!r} is not a plain name")
    try:
        if loc.backend == "postgresql":
            import psycopg

            args = dict(host=loc.host, port=loc.port, user=loc.user or None, password=loc.password or None, connect_timeout=10)
            try:
                return psycopg.connect(dbname=loc.database, autocommit=True, **args)  # type: ignore[arg-type]
            except psycopg.OperationalError as exc:
                if "does not exist" not in str(exc):
                    raise
            with psycopg.connect(dbname="postgres", autocommit=True, **args) as admin:  # type: ignore[arg-type]
                # Two processes creating it at once: the loser sees DuplicateDatabase or a
                # unique violation in the catalog; either way the database now exists.
                with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                    admin.execute(f'CREATE DATABASE "{loc.database}"'.encode())  # name checked above
            return psycopg.connect(dbname=loc.database, autocommit=True, **args)  # type: ignore[arg-type]
        import pymysql

        conn = pymysql.connect(host=loc.host, port=loc.port, user=loc.user or "root", password=loc.password,
                               autocommit=True, connect_timeout=10, charset="utf8mb4")
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{loc.database}`")  # name checked above
            cur.execute(f"USE `{loc.database}`")
        return conn
    except errors.CmfrunError:
        raise
    except Exception as exc:  # noqa: BLE001 - every driver failure to connect is "unreachable"
        text = str(exc).strip()
        if loc.password:
            text = text.replace(loc.password, "***")
        first = text.splitlines()[0] if text else type(exc).__name__
        raise errors.StoreUnavailableError(f"cannot reach store {loc}: {first}") from None


def _value_columns(value: Value, kind: str = "") -> Tuple[Optional[int], Optional[float], Optional[str]]:
    """(int, double, string) columns for ``value``; a declared ``kind`` wins. Undeclared ints
    beyond 32 bits become doubles (exact to 2**53), as the mlmd engine stores them."""
    if kind == "DOUBLE" and isinstance(value, (int, float)):
        return None, float(value), None
    if kind == "INT" and isinstance(value, (int, float)):
        return int(value), None, None
    if kind == "STRING":
        return None, None, str(value)
    if isinstance(value, bool):
        return int(value), None, None
    if isinstance(value, int):
        if _INT32[0] <= value <= _INT32[1]:
            return value, None, None
        return None, float(value), None
    if isinstance(value, float):
        return None, value, None
    return None, None, str(value)


def _prop_rows(node_id: int, props: Props, custom: Props, declared: Mapping[str, str]) -> List[Tuple[Any, ...]]:
    rows: List[Tuple[Any, ...]] = []
    for is_custom, values in ((0, props), (1, custom)):
        for key, value in values.items():
            if value is None:
                continue
            i, d, s = _value_columns(value, "" if is_custom else declared.get(key, ""))
            rows.append((node_id, key, bool(is_custom), i, d, s, None))
    return rows


def _is_driver_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from a DB-API driver (sqlite3, psycopg, PyMySQL)."""
    return isinstance(exc, sqlite3.Error) or type(exc).__module__.split(".")[0] in ("psycopg", "pymysql")


def _read_value(row: Sequence[Any]) -> Value:
    i, d, s, b = row
    if i is not None:
        return int(i)
    if d is not None:
        return float(d)
    if s is not None:
        return str(s)
    if b is not None:
        return int(b)
    return ""


_new = object.__new__
_set_attr = object.__setattr__


def _record(cls: Any, fields: Dict[str, Any]) -> Any:
    """A frozen record of ``cls`` holding ``fields`` (every field, by name) without running the
    dataclass ``__init__`` (eight frozen setattrs): half the cost when a read builds thousands
    of records. Only for plain field values read from the store; ``tests/test_store_engine.py``
    checks the result equals the normal constructor's for every record class."""
    obj = _new(cls)
    _set_attr(obj, "__dict__", fields)
    return obj


class SqlStore(Store):
    """A :class:`~cmfrun.store.Store` writing MLMD's tables with plain SQL."""

    engine = "sql"
    #: Write lineage and links in bulk (:mod:`cmfrun.store.sqlbulk`); ``False`` writes record
    #: by record (the reference the bulk path is tested against).
    bulk_writes = True

    def __init__(self, conn: Any, location: StoreLocation, *, read_only: bool = False):
        super().__init__(location, read_only=read_only)
        self._conn: Any = conn
        self._backend = location.backend
        # A web server uses one store from its worker threads: one statement or one
        # transaction at a time on the connection.
        self._mutex = threading.RLock()
        self._in_tx = False
        self._type_ids: Dict[Tuple[str, str], int] = {}
        self._type_names: Dict[Tuple[str, int], str] = {}

    # -- plumbing ----------------------------------------------------------------------------
    def _sql(self, sql: str) -> str:
        """SQLite's text in this backend's dialect: ``%s`` placeholders; PostgreSQL's MLMD
        tables are unquoted lower-case names, so the backquotes go."""
        if self._backend == "sqlite":
            return sql
        if self._backend == "postgresql":
            sql = sql.replace("`", "")
        return sql.replace("?", "%s")

    def _q(self, sql: str, params: Sequence[Any] = ()) -> List[Tuple[Any, ...]]:
        with self._mutex:
            return self._q_locked(sql, params)

    def _q_locked(self, sql: str, params: Sequence[Any]) -> List[Tuple[Any, ...]]:
        cur = self._conn.cursor()
        try:
            cur.execute(self._sql(sql), tuple(params))
            rows = cur.fetchall()
            # sqlite3 rows are tuples already (no row factory is set): no copy of big results.
            return rows if self._backend == "sqlite" else [tuple(r) for r in rows]
        finally:
            cur.close()

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self._mutex:
            self._exec_locked(sql, params)

    def _exec_locked(self, sql: str, params: Sequence[Any]) -> None:
        cur = self._conn.cursor()
        try:
            cur.execute(self._sql(sql), tuple(params))
        finally:
            cur.close()

    def _insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run an INSERT into a table with an ``id`` column; returns the new id."""
        with self._mutex:
            return self._insert_locked(sql, params)

    def _insert_locked(self, sql: str, params: Sequence[Any]) -> int:
        cur = self._conn.cursor()
        try:
            if self._backend == "postgresql":
                cur.execute(self._sql(sql) + " RETURNING id", tuple(params))
                return int(cur.fetchone()[0])
            cur.execute(self._sql(sql), tuple(params))
            return int(cur.lastrowid or 0)
        finally:
            cur.close()

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with self._mutex:
                self._many_locked(sql, rows)

    def _many_locked(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            cur = self._conn.cursor()
            try:
                cur.executemany(self._sql(sql), [tuple(r) for r in rows])
            finally:
                cur.close()

    def _insert_ignore(self, table: str, cols: Tuple[str, str], rows: Sequence[Tuple[int, int]]) -> None:
        """Insert link rows, keeping existing ones (MLMD's links are idempotent)."""
        names = f"(`{cols[0]}`, `{cols[1]}`) VALUES (?, ?)"
        if self._backend == "sqlite":
            self._many(f"INSERT OR IGNORE INTO `{table}` {names}", rows)
        elif self._backend == "mysql":
            self._many(f"INSERT IGNORE INTO `{table}` {names}", rows)
        else:
            self._many(f"INSERT INTO `{table}` {names} ON CONFLICT DO NOTHING", rows)

    def _tables(self) -> set:  # type: ignore[type-arg]
        if self._backend == "sqlite":
            rows = self._q("SELECT name FROM sqlite_master WHERE type = 'table'")
        elif self._backend == "postgresql":
            rows = self._q("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
        else:
            rows = self._q("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()")
        return {str(r[0]).lower() for r in rows}

    def _ddl(self) -> Sequence[str]:
        return {"sqlite": SQLITE_DDL, "postgresql": POSTGRESQL_DDL, "mysql": MYSQL_DDL}[self._backend]

    def prepare_schema(self) -> None:
        """Create MLMD's tables in an empty store; check the schema version of an existing one."""
        tables = self._tables()
        if "mlmdenv" not in tables:
            if tables - {"sqlite_sequence"}:
                raise errors.CorruptStoreError(f"store {self.location} holds other tables but is not an MLMD store")
            if self.read_only:
                raise errors.CorruptStoreError(f"store {self.location} is an empty file, not an MLMD store")
            try:
                with self.write_lock(), self._tx():
                    # Writers starting together on a new store: the first one (under the lock) creates it.
                    if "mlmdenv" not in self._tables():
                        for stmt in self._ddl():
                            self._exec(stmt)
                        self._exec("INSERT INTO `MLMDEnv` (`schema_version`) VALUES (?)", (MLMD_SCHEMA_VERSION,))
                        self._many("INSERT INTO `Type` (`name`, `type_kind`) VALUES (?, ?)", SIMPLE_TYPES)
            except errors.StoreError:
                if "mlmdenv" not in self._tables():
                    raise
                # a server store another process created at the same moment: use theirs
        rows = self._q("SELECT schema_version FROM `MLMDEnv`")
        version = max((int(r[0]) for r in rows), default=0)
        if version > MLMD_SCHEMA_VERSION:
            raise errors.StoreError(
                f"store {self.location} has MLMD schema version {version}, newer than this cmfrun knows "
                f"({MLMD_SCHEMA_VERSION}): upgrade cmfrun"
            )
        if version < MLMD_SCHEMA_VERSION:
            raise errors.StoreError(
                f"store {self.location} has the old MLMD schema version {version}: open it once with "
                f"ml-metadata >= 1.15 to migrate it (this engine needs version {MLMD_SCHEMA_VERSION})"
            )

    @contextlib.contextmanager
    def _tx(self) -> Iterator[None]:
        with self._mutex:
            with self._tx_locked():
                yield

    @contextlib.contextmanager
    def _tx_locked(self) -> Iterator[None]:
        if self._in_tx:
            yield
            return
        begin = {"sqlite": "BEGIN IMMEDIATE", "postgresql": "BEGIN", "mysql": "START TRANSACTION"}[self._backend]
        try:
            self._exec(begin)
        except Exception as exc:  # noqa: BLE001 - a driver error (locked, gone) becomes a store error
            raise self._translate(exc) from None
        self._in_tx = True
        try:
            yield
        except BaseException as exc:
            self._in_tx = False
            with contextlib.suppress(Exception):
                self._exec("ROLLBACK")
            self._forget_types()  # a type created in the rolled-back transaction is gone
            if isinstance(exc, Exception) and not isinstance(exc, errors.CmfrunError) and _is_driver_error(exc):
                raise self._translate(exc) from None
            raise
        else:
            self._in_tx = False
            try:
                self._exec("COMMIT")
            except Exception as exc:  # noqa: BLE001
                with contextlib.suppress(Exception):
                    self._exec("ROLLBACK")
                raise self._translate(exc) from None

    def _forget_types(self) -> None:
        self._type_ids.clear()
        self._type_names.clear()

    def _translate(self, exc: BaseException) -> Exception:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if any(m in str(exc) for m in _UNIQUE_VIOLATION):
            return AlreadyExistsError(f"store {self.location}: {msg}")
        if any(m in str(exc) for m in _WRITE_CONFLICT):
            return WriteConflictError(f"store {self.location}: write failed: {msg}")
        low = msg.lower()
        if "readonly" in low or "read-only" in low:
            return errors.ReadOnlyStoreError(f"store {self.location} is read-only: {msg}")
        if "locked" in low or "busy" in low:
            return errors.StoreUnavailableError(f"store {self.location} is locked: {msg}")
        return errors.StoreError(f"store {self.location}: write failed: {msg}")

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        with self.write_lock(), self._tx():
            yield

    # -- types -------------------------------------------------------------------------------
    def _find_type(self, kind: str, name: str) -> Optional[Tuple[int, Dict[str, int]]]:
        return self._find_types(kind, [name]).get(name)

    def _find_types(self, kind: str, names: Sequence[str]) -> Dict[str, Tuple[int, Dict[str, int]]]:
        """``{name: (type id, {property: data type})}`` of the (unversioned) types of ``kind``
        named one of ``names`` (the oldest of duplicates, as MLMD picks): two queries a chunk."""
        found: Dict[str, Tuple[int, Dict[str, int]]] = {}
        for chunk in chunks(sorted(set(names))):
            for tid, name in self._q(
                f"SELECT `id`, `name` FROM `Type` WHERE `type_kind` = ? AND `version` IS NULL AND `name` IN "
                f"({','.join('?' * len(chunk))}) ORDER BY `id`",
                [TYPE_KIND[kind], *chunk],
            ):
                if name not in found:
                    found[name] = (int(tid), {})
        by_id = {tid: props for tid, props in found.values()}
        for chunk in chunks(sorted(by_id)):
            for tid, prop, data_type in self._q(
                f"SELECT `type_id`, `name`, `data_type` FROM `TypeProperty` WHERE `type_id` IN ({','.join('?' * len(chunk))})",
                chunk,
            ):
                by_id[int(tid)][str(prop)] = int(data_type)
        return found

    def _put_type(self, kind: str, name: str, properties: Mapping[str, str]) -> int:
        return self._put_types(kind, [name], properties)[name]

    def _put_types(self, kind: str, names: Sequence[str], properties: Mapping[str, str]) -> Dict[str, int]:
        """Create the missing types of ``names`` and add missing ``properties`` to all of them
        (inside a transaction); every property row in one batched insert. Returns the ids."""
        found = self._find_types(kind, names)
        ids: Dict[str, int] = {}
        rows: List[Tuple[int, str, int]] = []
        for name in dict.fromkeys(names):
            if name in found:
                tid, have = found[name]
            else:
                tid = self._insert(
                    "INSERT INTO `Type` (`name`, `type_kind`, `external_id`) VALUES (?, ?, ?)",
                    (name, TYPE_KIND[kind], type_external_id(kind, name)),
                )
                have = {}
            for prop, pkind in properties.items():
                if prop in have:
                    if have[prop] != DATA_TYPE[pkind]:
                        raise errors.StoreError(
                            f"store {self.location}: type {name!r} has property {prop!r} of another data type"
                        )
                    continue
                rows.append((tid, prop, DATA_TYPE[pkind]))
            ids[name] = tid
        self._many("INSERT INTO `TypeProperty` (`type_id`, `name`, `data_type`) VALUES (?, ?, ?)", rows)
        return ids

    def ensure_type(self, kind: str, name: str, properties: Mapping[str, str]) -> int:
        """Get or create an ``artifact``/``execution``/``context`` type with at least ``properties``."""
        key = (kind, name)
        if key in self._type_ids:
            return self._type_ids[key]
        for attempt in range(20):
            found = self._find_type(kind, name)
            if found is not None and all(p in found[1] for p in properties):
                type_id = found[0]
                break
            if self.read_only:
                raise errors.ReadOnlyStoreError(f"store {self.location} is open read-only")
            try:
                with self._writing():
                    type_id = self._put_type(kind, name, properties)
                break
            except AlreadyExistsError:
                # A concurrent writer created the type first (its external id is unique):
                # read theirs, unless we are inside a larger transaction that must fail whole.
                if self._in_tx:
                    raise
                time.sleep(0.01 * attempt)
        else:
            raise errors.StoreError(f"store {self.location}: could not create type {name!r}")
        self._type_ids[key] = type_id
        self._type_names[(kind, type_id)] = name
        return type_id

    def ensure_execution_types(self, names: Iterable[str]) -> None:
        """Register many execution types (CMF properties) at once, in one transaction."""
        wanted = [n for n in dict.fromkeys(names) if ("execution", n) not in self._type_ids]
        if not wanted:
            return
        props = schema.EXECUTION_PROPERTIES
        # Batched: one lookup for all names, one insert per new type, one for all properties.
        existing = {n: f[0] for n, f in self._find_types("execution", wanted).items() if all(p in f[1] for p in props)}
        missing = [n for n in wanted if n not in existing]
        if missing:
            self._require_writable()
            with self._writing():
                existing.update(self._put_types("execution", missing, props))
        for n in wanted:
            self._type_ids[("execution", n)] = existing[n]
            self._type_names[("execution", existing[n])] = n

    def _type_name(self, kind: str, type_id: int) -> str:
        key = (kind, type_id)
        if key not in self._type_names:
            for tid, name in self._q("SELECT `id`, `name` FROM `Type` WHERE `type_kind` = ?", (TYPE_KIND[kind],)):
                self._type_names[(kind, int(tid))] = str(name)
        return self._type_names.get(key, "")

    def type_names(self, kind: str) -> List[str]:
        """Names of all ``artifact``/``execution``/``context`` types in the store
        (without MLMD's pre-registered ``mlmd.*`` simple types, as ml-metadata lists them)."""
        rows = self._q("SELECT `name` FROM `Type` WHERE `type_kind` = ? ORDER BY `id`", (TYPE_KIND[kind],))
        return [str(r[0]) for r in rows if str(r[0]) not in _SIMPLE_NAMES]

    def _type_id_of(self, kind: str, name: str) -> Optional[int]:
        found = self._find_type(kind, name)
        return found[0] if found else None

    # -- node reads --------------------------------------------------------------------------
    def _props_of(self, kind: str, ids: Sequence[int]) -> Dict[int, Tuple[Dict[str, Value], Dict[str, Value]]]:
        """``{id: (properties, custom properties)}`` of these nodes, one query per chunk of ids.

        This loop is the hot part of big reads (a lineage walk loads thousands of property
        rows). On SQLite the typed value is picked in SQL (int, double, string, bool: the
        first set, cast as MLMD reads that column): four columns a row instead of seven."""
        _, ptable, idcol, _ = _NODE[kind]
        out: Dict[int, Tuple[Dict[str, Value], Dict[str, Value]]] = {i: ({}, {}) for i in ids}
        sqlite = self._backend == "sqlite"
        # SQLite: 0/1 flag (an index into the pair) and one value column; elsewhere the raw
        # columns (PostgreSQL's flag is a boolean).
        cols = (
            f"`is_custom_property` <> 0, {_SQLITE_VALUE}" if sqlite
            else "`is_custom_property`, `int_value`, `double_value`, `string_value`, `bool_value`"
        )
        for chunk in chunks(list(ids)):
            rows = self._q(
                f"SELECT `{idcol}`, `name`, {cols} "
                f"FROM `{ptable}` WHERE `{idcol}` IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            if sqlite:
                for node_id, name, is_custom, value in rows:
                    out[node_id][is_custom][name] = value
                continue
            for node_id, name, is_custom, i, d, s, b in rows:
                out[int(node_id)][1 if is_custom else 0][str(name)] = (
                    int(i) if i is not None else float(d) if d is not None else str(s) if s is not None
                    else int(b) if b is not None else ""
                )
        return out

    def _type_names_of(self, kind: str, type_ids: Iterable[int]) -> Dict[int, str]:
        """``{type id: name}`` for these ids (cached; unknown ids map to ``""``)."""
        return {t: self._type_name(kind, t) for t in set(type_ids)}

    # The node readers below select NULL-free columns (COALESCE) and take the drivers'
    # ints and strings as they come (sqlite3, psycopg and PyMySQL all return int and str
    # for these columns): no per-field conversion on thousands of rows.
    def _contexts(self, where: str, params: Sequence[Any] = (), order: str = "c.`id`") -> List[Context]:
        rows = self._q(
            "SELECT c.`id`, c.`type_id`, c.`name`, c.`create_time_since_epoch`, c.`last_update_time_since_epoch` "
            f"FROM `Context` c {where} ORDER BY {order}",
            params,
        )
        props = self._props_of("context", [r[0] for r in rows])
        types = self._type_names_of("context", (r[1] for r in rows))
        out: List[Context] = []
        for i, t, name, created, updated in rows:
            p, c = props[i]
            out.append(_record(Context, {"type": types[t], "name": name, "properties": p, "custom": c, "id": i,
                                         "create_ms": created, "update_ms": updated}))
        return out

    def _artifacts(self, where: str, params: Sequence[Any] = (), order: str = "a.`id`", distinct: bool = False) -> List[Artifact]:
        rows = self._q(
            f"SELECT {'DISTINCT ' if distinct else ''}a.`id`, a.`type_id`, COALESCE(a.`name`, ''), COALESCE(a.`uri`, ''), "
            f"a.`create_time_since_epoch`, a.`last_update_time_since_epoch` FROM `Artifact` a {where} ORDER BY {order}",
            params,
        )
        props = self._props_of("artifact", [r[0] for r in rows])
        types = self._type_names_of("artifact", (r[1] for r in rows))
        out: List[Artifact] = []
        for i, t, name, uri, created, updated in rows:
            p, c = props[i]
            out.append(_record(Artifact, {"type": types[t], "name": name, "uri": uri, "properties": p, "custom": c,
                                          "id": i, "create_ms": created, "update_ms": updated}))
        return out

    def _executions(self, where: str, params: Sequence[Any] = (), order: str = "e.`id`", distinct: bool = False) -> List[Execution]:
        rows = self._q(
            f"SELECT {'DISTINCT ' if distinct else ''}e.`id`, e.`type_id`, COALESCE(e.`name`, ''), "
            f"COALESCE(e.`last_known_state`, 0), e.`create_time_since_epoch`, e.`last_update_time_since_epoch` "
            f"FROM `Execution` e {where} ORDER BY {order}",
            params,
        )
        props = self._props_of("execution", [r[0] for r in rows])
        types = self._type_names_of("execution", (r[1] for r in rows))
        out: List[Execution] = []
        for i, t, name, state, created, updated in rows:
            p, c = props[i]
            out.append(_record(Execution, {"type": types[t], "name": name, "properties": p, "custom": c,
                                           "state": _STATE_NAME.get(state, "UNKNOWN"), "id": i,
                                           "create_ms": created, "update_ms": updated}))
        return out

    def _by_ids(self, kind: str, ids: Iterable[int]) -> List[Any]:
        out: List[Any] = []
        alias = kind[0]
        for chunk in chunks(sorted({int(i) for i in ids})):
            where = f"WHERE {alias}.`id` IN ({','.join('?' * len(chunk))})"
            readers: Dict[str, Callable[..., List[Any]]] = {
                "artifact": self._artifacts,
                "execution": self._executions,
                "context": self._contexts,
            }
            reader = readers[kind]
            out.extend(reader(where, chunk))
        return out

    # -- reads: contexts ---------------------------------------------------------------------
    def contexts_by_type(self, type_name: str) -> List[Context]:
        """All contexts of one type (``Parent_Context`` = pipelines)."""
        tid = self._type_id_of("context", type_name)
        return [] if tid is None else self._contexts("WHERE c.`type_id` = ?", (tid,))

    def context(self, type_name: str, name: str) -> Optional[Context]:
        """The context of this type and name, or ``None``."""
        tid = self._type_id_of("context", type_name)
        if tid is None:
            return None
        found = self._contexts("WHERE c.`type_id` = ? AND c.`name` = ?", (tid, name))
        return found[0] if found else None

    def contexts_by_id(self, ids: Iterable[int]) -> List[Context]:
        """Contexts by id (missing ids are skipped)."""
        return list(self._by_ids("context", ids))

    def parent_contexts(self, context_id: int) -> List[Context]:
        """Parents of a context (a stage's pipeline)."""
        return self._contexts(
            "JOIN `ParentContext` p ON p.`parent_context_id` = c.`id` WHERE p.`context_id` = ?", (context_id,)
        )

    def child_contexts(self, context_id: int) -> List[Context]:
        """Children of a context (a pipeline's stages)."""
        return self._contexts("JOIN `ParentContext` p ON p.`context_id` = c.`id` WHERE p.`parent_context_id` = ?", (context_id,))

    def contexts_by_execution(self, execution_id: int) -> List[Context]:
        """Contexts an execution is associated with."""
        return self._contexts("JOIN `Association` x ON x.`context_id` = c.`id` WHERE x.`execution_id` = ?", (execution_id,))

    def contexts_by_artifact(self, artifact_id: int) -> List[Context]:
        """Contexts an artifact is attributed to."""
        return self._contexts("JOIN `Attribution` x ON x.`context_id` = c.`id` WHERE x.`artifact_id` = ?", (artifact_id,))

    # -- reads: executions -------------------------------------------------------------------
    def executions_by_id(self, ids: Iterable[int]) -> List[Execution]:
        """Executions by id, batched."""
        return list(self._by_ids("execution", ids))

    def executions_by_context(self, context_id: int) -> List[Execution]:
        """Executions associated with a context, oldest first."""
        return self._executions("JOIN `Association` x ON x.`execution_id` = e.`id` WHERE x.`context_id` = ?", (context_id,))

    def executions_by_type(self, type_name: str) -> List[Execution]:
        """All executions of one type."""
        tid = self._type_id_of("execution", type_name)
        return [] if tid is None else self._executions("WHERE e.`type_id` = ?", (tid,))

    def execution_by_type_and_name(self, type_name: str, name: str) -> Optional[Execution]:
        """The execution of this type and (non-empty) name, or ``None``."""
        tid = self._type_id_of("execution", type_name)
        if tid is None or not name:
            return None
        found = self._executions("WHERE e.`type_id` = ? AND e.`name` = ?", (tid, name))
        return found[0] if found else None

    def executions(self, filter_query: str = "") -> List[Execution]:
        """All executions, optionally narrowed by an MLMD filter query (the forms cmfrun uses)."""
        if not filter_query:
            return self._executions("")
        join, where, params = compile_filter(filter_query, "execution", "e")
        return self._executions(f"{join} WHERE {where}", params, distinct=bool(join))

    def newest_executions(self, filter_query: str = "", limit: int = 100) -> List[Execution]:
        """The ``limit`` newest executions (highest ids first) matching an MLMD filter query."""
        if filter_query:
            join, where, params = compile_filter(filter_query, "execution", "e")
            return self._executions(f"{join} WHERE {where}", params, order=f"e.`id` DESC LIMIT {int(limit)}", distinct=bool(join))
        return self._executions("", order=f"e.`id` DESC LIMIT {int(limit)}")

    # -- reads: artifacts --------------------------------------------------------------------
    def artifacts_by_id(self, ids: Iterable[int]) -> List[Artifact]:
        """Artifacts by id, batched."""
        return list(self._by_ids("artifact", ids))

    def artifacts_by_uri(self, uris: Iterable[str]) -> List[Artifact]:
        """Artifacts whose uri (content hash) is in ``uris``, ordered by id."""
        out: List[Artifact] = []
        for chunk in chunks(sorted(set(uris))):
            out.extend(self._artifacts(f"WHERE a.`uri` IN ({','.join('?' * len(chunk))})", chunk))
        return sorted(out, key=lambda a: a.id or 0)

    def artifact_by_type_and_name(self, type_name: str, name: str) -> Optional[Artifact]:
        """The artifact of this type and name, or ``None``."""
        tid = self._type_id_of("artifact", type_name)
        if tid is None:
            return None
        found = self._artifacts("WHERE a.`type_id` = ? AND a.`name` = ?", (tid, name))
        return found[0] if found else None

    def artifacts_by_context(self, context_id: int) -> List[Artifact]:
        """Artifacts attributed to a context."""
        return self._artifacts("JOIN `Attribution` x ON x.`artifact_id` = a.`id` WHERE x.`context_id` = ?", (context_id,))

    def artifacts_by_type(self, type_name: str) -> List[Artifact]:
        """All artifacts of one type."""
        tid = self._type_id_of("artifact", type_name)
        return [] if tid is None else self._artifacts("WHERE a.`type_id` = ?", (tid,))

    def artifacts(self, filter_query: str = "") -> List[Artifact]:
        """All artifacts, optionally narrowed by an MLMD filter query (the forms cmfrun uses)."""
        if not filter_query:
            return self._artifacts("")
        join, where, params = compile_filter(filter_query, "artifact", "a")
        return self._artifacts(f"{join} WHERE {where}", params, distinct=bool(join))

    # -- reads: by name, batched (the merge's identity lookups) ------------------------------
    def _named(self, kind: str, names: Sequence[str]) -> List[Any]:
        """Records of ``kind`` named one of ``names``: bound parameters, and the kind's type ids
        in the condition so the ``(type_id, name)`` unique index serves the lookup."""
        wanted = sorted({n for n in names if n})
        tids = [int(r[0]) for r in self._q("SELECT `id` FROM `Type` WHERE `type_kind` = ?", (TYPE_KIND[kind],))]
        if not wanted or not tids:
            return []
        alias = kind[0]
        reader: Callable[..., List[Any]] = self._executions if kind == "execution" else self._artifacts
        out: List[Any] = []
        if self._backend == "postgresql":
            # Two array parameters: one short statement per 5,000 names (no 500-placeholder texts to build and parse).
            for chunk in chunks(wanted, 5000):
                out.extend(reader(f"WHERE {alias}.`type_id` = ANY(?) AND {alias}.`name` = ANY(?)", [tids, chunk]))
        else:
            for chunk in chunks(wanted):
                out.extend(reader(
                    f"WHERE {alias}.`type_id` IN ({','.join('?' * len(tids))}) AND {alias}.`name` IN ({','.join('?' * len(chunk))})",
                    [*tids, *chunk],
                ))
        return sorted(out, key=lambda r: int(r.id or 0))  # id order, as a filter query answers

    def executions_by_names(self, names: Sequence[str]) -> Optional[List[Execution]]:
        """Executions (of any type) named one of ``names``, by bound parameters."""
        return list(self._named("execution", names))

    def artifacts_by_names(self, names: Sequence[str]) -> Optional[List[Artifact]]:
        """Artifacts (of any type) named one of ``names``, by bound parameters."""
        return list(self._named("artifact", names))

    def associated(self, stage_of: Mapping[int, int]) -> Set[int]:
        """Those executions of ``{execution id: context id}`` associated with that context:
        point lookups on the ``(context_id, execution_id)`` unique index, ids only."""
        pairs = {(int(c), int(e)) for e, c in stage_of.items()}
        out: Set[int] = set()
        for chunk in chunks(sorted(pairs)):
            ctxs = sorted({c for c, _ in chunk})
            rows = self._q(
                f"SELECT `context_id`, `execution_id` FROM `Association` WHERE `context_id` IN ({','.join('?' * len(ctxs))}) "
                f"AND `execution_id` IN ({','.join('?' * len(chunk))})",
                [*ctxs, *(e for _, e in chunk)],
            )
            out.update(int(e) for c, e in rows if (int(c), int(e)) in pairs)
        return out

    # -- reads: events -----------------------------------------------------------------------
    def _events(self, column: str, ids: Iterable[int]) -> List[Event]:
        out: List[Event] = []
        for chunk in chunks(sorted({int(i) for i in ids})):
            rows = self._q(
                "SELECT v.`id`, v.`artifact_id`, v.`execution_id`, v.`type`, v.`milliseconds_since_epoch` FROM `Event` v "
                f"WHERE v.`{column}` IN ({','.join('?' * len(chunk))}) ORDER BY v.`id`",
                chunk,
            )
            paths: Dict[int, List[str]] = {}
            for sub in chunks([int(r[0]) for r in rows]):
                for eid, key in self._q(
                    "SELECT `event_id`, `step_key` FROM `EventPath` WHERE `is_index_step` = ? AND "
                    f"`event_id` IN ({','.join('?' * len(sub))})",
                    [False, *sub],
                ):
                    paths.setdefault(int(eid), []).append(str(key))
            out.extend(
                Event(
                    artifact_id=int(r[1]),
                    execution_id=int(r[2]),
                    kind=_EVENT_NAME.get(int(r[3]), "UNKNOWN"),
                    path=tuple(paths.get(int(r[0]), ())),
                    ms=int(r[4] or 0),
                )
                for r in rows
            )
        return out

    def events_by_execution(self, ids: Iterable[int]) -> List[Event]:
        """Events of these executions, batched."""
        return self._events("execution_id", ids)

    def events_by_artifact(self, ids: Iterable[int]) -> List[Event]:
        """Events of these artifacts, batched."""
        return self._events("artifact_id", ids)

    # -- lineage -----------------------------------------------------------------------------
    def walk_lineage(
        self, direction: str, artifact_ids: Sequence[int], execution_ids: Sequence[int], depth: Optional[int]
    ) -> LineageWalk:
        """One recursive query per walk (see :meth:`Store.walk_lineage`).

        The query finds every execution the walk can reach (``UNION`` drops repeats, so a
        cycle ends it; with ``depth`` a generation bound ends it) and returns the events of
        those executions, which hold every edge the walk looks at. The generic
        :func:`walk_levels` then walks them in memory: same rules, same answer as the
        level-by-level walk, one round trip.
        """
        arts = list(dict.fromkeys(int(a) for a in artifact_ids))
        execs = list(dict.fromkeys(int(e) for e in execution_ids))
        if len(arts) + len(execs) > IN_CLAUSE_CHUNK:
            return super().walk_lineage(direction, arts, execs, depth)
        to_exec_kind, to_art_kind = ("OUTPUT", "INPUT") if direction == "up" else ("INPUT", "OUTPUT")
        to_exec_type, to_art_type = EVENT_TYPE[to_exec_kind], EVENT_TYPE[to_art_kind]
        by_art: Dict[int, List[Tuple[int, int]]] = {}
        by_exec: Dict[int, List[Tuple[int, int]]] = {}
        if arts or execs:
            for e, a, t in self._q(*self._walk_query(arts, execs, depth, to_exec_type, to_art_type)):
                (by_art.setdefault(a, []) if t == to_exec_type else by_exec.setdefault(e, [])).append((e, a))

        def to_exec(ids: Sequence[int]) -> List[Tuple[int, int]]:
            return [pair for a in ids for pair in by_art.get(a, ())]

        def to_art(ids: Sequence[int]) -> List[Tuple[int, int]]:
            return [pair for e in ids for pair in by_exec.get(e, ())]

        return walk_levels(direction, arts, execs, depth, to_exec, to_art)

    def _walk_query(
        self, arts: Sequence[int], execs: Sequence[int], depth: Optional[int], to_exec: int, to_art: int
    ) -> Tuple[str, List[Any]]:
        """The recursive query of :meth:`walk_lineage`: ``(execution id, artifact id, type)`` of
        the ``to_exec``/``to_art`` events of every execution the walk may reach.

        Executions are the recursion's rows: from one, its ``to_art`` events lead to
        artifacts and their ``to_exec`` events to the next executions (two indexed joins).
        With ``depth`` the rows carry a generation, bounded one past ``depth`` so that the
        events telling whether the limit cut the walk short are there too.
        """
        bounded = depth is not None
        seeds: List[str] = []
        params: List[Any] = []
        if arts:
            seeds.append(
                f"SELECT v.`execution_id` AS id{', 1 AS lvl' if bounded else ''} FROM `Event` v "
                f"WHERE v.`type` = ? AND v.`artifact_id` IN ({','.join('?' * len(arts))})"
            )
            params += [to_exec, *arts]
        if execs:
            seeds.append(
                f"SELECT x.`id` AS id{', 0 AS lvl' if bounded else ''} FROM `Execution` x "
                f"WHERE x.`id` IN ({','.join('?' * len(execs))})"
            )
            params += list(execs)
        step = (
            f"SELECT o.`execution_id`{', w.lvl + 1' if bounded else ''} FROM walk w "
            "JOIN `Event` i ON i.`execution_id` = w.id AND i.`type` = ? "
            "JOIN `Event` o ON o.`artifact_id` = i.`artifact_id` AND o.`type` = ?"
        )
        params += [to_art, to_exec]
        if bounded:
            step += " WHERE w.lvl <= ?"
            params.append(depth)
            # Events to artifacts are needed up to the limit; past it, only whether an
            # execution leads on (truncation).
            # (Each execution once, at its first generation; written so that planners loop
            # over the walk, not over the Event table.)
            final = (
                "SELECT v.`execution_id`, v.`artifact_id`, v.`type` FROM (SELECT id, MIN(lvl) AS lvl FROM walk "
                "GROUP BY id) w JOIN `Event` v ON v.`execution_id` = w.id WHERE v.`type` IN (?, ?) "
                "AND (v.`type` = ? OR w.lvl <= ?)"
            )
            params += [to_exec, to_art, to_exec, depth]
        else:
            final = (
                "SELECT v.`execution_id`, v.`artifact_id`, v.`type` FROM walk w "
                "JOIN `Event` v ON v.`execution_id` = w.id WHERE v.`type` IN (?, ?)"
            )
            params += [to_exec, to_art]
        cols = "id, lvl" if bounded else "id"
        sql = (
            f"WITH RECURSIVE walk({cols}) AS (SELECT s.{cols.replace(', ', ', s.')} FROM ({' UNION '.join(seeds)}) s "
            f"UNION {step}) {final}"
        )
        return sql, params

    # -- node writes (inside a transaction) --------------------------------------------------
    def _write_props(self, kind: str, node_id: int, props: Props, custom: Props, declared: Mapping[str, str]) -> None:
        _, ptable, idcol, _ = _NODE[kind]
        self._exec(f"DELETE FROM `{ptable}` WHERE `{idcol}` = ?", (node_id,))
        self._many(
            f"INSERT INTO `{ptable}` (`{idcol}`, {_PROP_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            _prop_rows(node_id, props, custom, declared),
        )

    def _current_props(self, kind: str, node_id: int) -> Tuple[Dict[str, Value], Dict[str, Value]]:
        return self._props_of(kind, [node_id])[node_id]

    @staticmethod
    def _stored(props: Props) -> Dict[str, Value]:
        return {k: v for k, v in props.items() if v is not None}

    def _write_artifact(self, a: Artifact, now: int) -> int:
        declared = schema.ARTIFACT_PROPERTIES.get(a.type, {})
        tid = self.ensure_type("artifact", a.type, declared)
        if a.id is None:
            aid = self._insert(
                "INSERT INTO `Artifact` (`type_id`, `uri`, `name`, `create_time_since_epoch`, `last_update_time_since_epoch`) "
                "VALUES (?, ?, ?, ?, ?)",
                (tid, a.uri, a.name or None, now, now),
            )
            self._write_props("artifact", aid, a.properties, a.custom, declared)
            return aid
        old = self._q("SELECT `uri`, `name`, `type_id` FROM `Artifact` WHERE `id` = ?", (a.id,))
        if not old:
            raise errors.StoreError(f"store {self.location}: no artifact with id {a.id} to update")
        if (old[0][0] or "", old[0][1] or "", int(old[0][2])) == (a.uri, a.name, tid) and self._current_props(
            "artifact", a.id
        ) == self._roundtrip(a.properties, a.custom, declared):
            return a.id  # unchanged: MLMD leaves last_update_time alone too
        self._exec(
            "UPDATE `Artifact` SET `uri` = ?, `name` = ?, `last_update_time_since_epoch` = ? WHERE `id` = ?",
            (a.uri, a.name or None, now, a.id),
        )
        self._write_props("artifact", a.id, a.properties, a.custom, declared)
        return a.id

    def _write_execution(self, e: Execution, now: int) -> int:
        declared = schema.EXECUTION_PROPERTIES
        tid = self.ensure_type("execution", e.type, declared)
        state = EXECUTION_STATE[e.state]
        if e.id is None:
            eid = self._insert(
                "INSERT INTO `Execution` (`type_id`, `last_known_state`, `name`, `create_time_since_epoch`, "
                "`last_update_time_since_epoch`) VALUES (?, ?, ?, ?, ?)",
                (tid, state, e.name or None, now, now),
            )
            self._write_props("execution", eid, e.properties, e.custom, declared)
            return eid
        old = self._q("SELECT `last_known_state`, `name`, `type_id` FROM `Execution` WHERE `id` = ?", (e.id,))
        if not old:
            raise errors.StoreError(f"store {self.location}: no execution with id {e.id} to update")
        if (int(old[0][0] or 0), old[0][1] or "", int(old[0][2])) == (state, e.name, tid) and self._current_props(
            "execution", e.id
        ) == self._roundtrip(e.properties, e.custom, declared):
            return e.id
        self._exec(
            "UPDATE `Execution` SET `last_known_state` = ?, `name` = ?, `last_update_time_since_epoch` = ? WHERE `id` = ?",
            (state, e.name or None, now, e.id),
        )
        self._write_props("execution", e.id, e.properties, e.custom, declared)
        return e.id

    def _write_context(self, c: Context, now: int) -> int:
        declared = schema.CONTEXT_PROPERTIES.get(c.type, {})
        tid = self.ensure_type("context", c.type, declared)
        if c.id is None:
            cid = self._insert(
                "INSERT INTO `Context` (`type_id`, `name`, `create_time_since_epoch`, `last_update_time_since_epoch`) "
                "VALUES (?, ?, ?, ?)",
                (tid, c.name, now, now),
            )
            self._write_props("context", cid, c.properties, c.custom, declared)
            return cid
        old = self._q("SELECT `name` FROM `Context` WHERE `id` = ?", (c.id,))
        if not old:
            raise errors.StoreError(f"store {self.location}: no context with id {c.id} to update")
        if old[0][0] == c.name and self._current_props("context", c.id) == self._roundtrip(c.properties, c.custom, declared):
            return c.id
        self._exec("UPDATE `Context` SET `name` = ?, `last_update_time_since_epoch` = ? WHERE `id` = ?", (c.name, now, c.id))
        self._write_props("context", c.id, c.properties, c.custom, declared)
        return c.id

    @staticmethod
    def _roundtrip(props: Props, custom: Props, declared: Mapping[str, str]) -> Tuple[Dict[str, Value], Dict[str, Value]]:
        """What reading back ``props``/``custom`` would give (to spot no-op updates)."""
        out: Tuple[Dict[str, Value], Dict[str, Value]] = ({}, {})
        for row in _prop_rows(0, props, custom, declared):
            out[row[2]][row[1]] = _read_value((row[3], row[4], row[5], None))
        return out

    def _write_event(self, execution_id: int, artifact_id: int, kind: str, path_key: Optional[str], now: int) -> None:
        ev = self._insert(
            "INSERT INTO `Event` (`artifact_id`, `execution_id`, `type`, `milliseconds_since_epoch`) VALUES (?, ?, ?, ?)",
            (artifact_id, execution_id, EVENT_TYPE[kind], now),
        )
        if path_key:
            self._exec(
                "INSERT INTO `EventPath` (`event_id`, `is_index_step`, `step_index`, `step_key`) VALUES (?, ?, NULL, ?)",
                (ev, False, path_key),
            )

    def _link_rows(self, associations: Iterable[Tuple[int, int]], attributions: Iterable[Tuple[int, int]]) -> None:
        # Existing links are kept, as MLMD's PutAttributionsAndAssociations does.
        self._insert_ignore("Association", ("context_id", "execution_id"), list(dict.fromkeys(associations)))
        self._insert_ignore("Attribution", ("context_id", "artifact_id"), list(dict.fromkeys(attributions)))

    def _parent_link(self, child_id: int, parent_id: int) -> None:
        self._insert_ignore("ParentContext", ("context_id", "parent_context_id"), [(child_id, parent_id)])

    # -- writes ------------------------------------------------------------------------------
    def put_context(self, context: Context, parent_id: Optional[int] = None) -> int:
        """Create or update a context (and link it under ``parent_id``); returns its id."""
        self._prepare_types(contexts=[context])
        with self._writing():
            cid = self._write_context(context, _now_ms())
            if parent_id is not None:
                self._parent_link(cid, parent_id)
        return cid

    def _ensure_parent_link(self, child_id: int, parent_id: int) -> None:
        with self._writing():
            self._parent_link(child_id, parent_id)

    def _prepare_types(self, executions: Iterable[Execution] = (), artifacts: Iterable[Artifact] = (),
                       contexts: Iterable[Context] = ()) -> None:
        """Create missing types first, each in its own short transaction, so a record write
        never fails whole because a concurrent writer registered the same type."""
        for e in executions:
            self.ensure_type("execution", e.type, schema.EXECUTION_PROPERTIES)
        for a in artifacts:
            self.ensure_type("artifact", a.type, schema.ARTIFACT_PROPERTIES.get(a.type, {}))
        for c in contexts:
            self.ensure_type("context", c.type, schema.CONTEXT_PROPERTIES.get(c.type, {}))

    def put_execution(self, execution: Execution, links: Sequence[Link], context_ids: Sequence[int]) -> Tuple[int, List[int]]:
        """Write an execution, its artifacts and events and its context links in one transaction."""
        self._prepare_types([execution], [link.artifact for link in links])
        with self._writing():
            now = _now_ms()
            eid = self._write_execution(execution, now)
            aids = [self._write_artifact(link.artifact, now) for link in links]
            for link, aid in zip(links, aids):
                self._write_event(eid, aid, link.kind, link.path_key, now)
            self._link_rows([(c, eid) for c in context_ids], [(c, a) for c in context_ids for a in aids])
        return eid, aids

    def put_lineage(
        self,
        executions: Sequence[Execution],
        artifacts: Sequence[Artifact],
        edges: Sequence[Tuple[int, int, str, Optional[str]]],
        context_ids: Sequence[int],
    ) -> Tuple[List[int], List[int]]:
        """Bulk write in one transaction (ingest)."""
        if self.bulk_writes:
            return self.put_lineage_linked(
                executions, artifacts, edges, [(c, i) for c in context_ids for i in range(len(executions))],
                [(c, i) for c in context_ids for i in range(len(artifacts))],
            )
        self._prepare_types(executions, artifacts)
        with self._writing():
            now = _now_ms()
            eids = [self._write_execution(e, now) for e in executions]
            aids = [self._write_artifact(a, now) for a in artifacts]
            for e, a, kind, key in edges:
                self._write_event(eids[e], aids[a], kind, key, now)
            self._link_rows([(c, e) for c in context_ids for e in eids], [(c, a) for c in context_ids for a in aids])
        return eids, aids

    def put_lineage_linked(
        self,
        executions: Sequence[Execution],
        artifacts: Sequence[Artifact],
        edges: Sequence[Tuple[int, int, str, Optional[str]]],
        associations: Sequence[Tuple[int, int]],
        attributions: Sequence[Tuple[int, int]],
    ) -> Tuple[List[int], List[int]]:
        """Records, events and per-record context links in ONE transaction, written in bulk
        (:mod:`cmfrun.store.sqlbulk`); with ``bulk_writes`` off, the record-by-record path."""
        if not self.bulk_writes:
            return super().put_lineage_linked(executions, artifacts, edges, associations, attributions)
        self._prepare_types(executions, artifacts)
        with self._writing():
            return sqlbulk.write_lineage(self, executions, artifacts, edges, associations, attributions, _now_ms())

    def put_events(self, events: Sequence[Tuple[int, int, str, Optional[str]]]) -> None:
        """Add ``(execution id, artifact id, kind, path key)`` events to existing records."""
        with self._writing():
            now = _now_ms()
            for e, a, kind, key in events:
                self._write_event(e, a, kind, key, now)

    def link(self, context_id: int, execution_ids: Sequence[int] = (), artifact_ids: Sequence[int] = ()) -> None:
        """Associate executions and attribute artifacts to a context (existing links are kept)."""
        with self._writing():
            self._link_rows([(context_id, e) for e in execution_ids], [(context_id, a) for a in artifact_ids])

    def put_contexts(self, contexts: Sequence[Context], parent_id: Optional[int] = None) -> List[int]:
        """Create several contexts at once (each linked under ``parent_id``); returns their ids."""
        if not contexts:
            return []
        self._prepare_types(contexts=contexts)
        with self._writing():
            now = _now_ms()
            # New contexts (ingest creates one per stage): their property rows and parent links
            # go in one batched insert each, not three statements per context.
            cids: List[int] = []
            fresh: List[int] = []
            rows: List[Tuple[Any, ...]] = []
            for c in contexts:
                if c.id is not None:
                    cids.append(self._write_context(c, now))
                    continue
                declared = schema.CONTEXT_PROPERTIES.get(c.type, {})
                cid = self._insert(
                    "INSERT INTO `Context` (`type_id`, `name`, `create_time_since_epoch`, `last_update_time_since_epoch`) "
                    "VALUES (?, ?, ?, ?)",
                    (self.ensure_type("context", c.type, declared), c.name, now, now),
                )
                cids.append(cid)
                fresh.append(cid)
                rows.extend(_prop_rows(cid, c.properties, c.custom, declared))
            for chunk in chunks(fresh):  # as _write_props does: no stale rows under a new id
                self._exec(f"DELETE FROM `ContextProperty` WHERE `context_id` IN ({','.join('?' * len(chunk))})", chunk)
            self._many(f"INSERT INTO `ContextProperty` (`context_id`, {_PROP_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            if parent_id is not None:
                self._insert_ignore("ParentContext", ("context_id", "parent_context_id"), [(cid, parent_id) for cid in cids])
        return cids

    def put_links(self, associations: Sequence[Tuple[int, int]] = (), attributions: Sequence[Tuple[int, int]] = ()) -> None:
        """Add ``(context id, execution id)`` associations and ``(context id, artifact id)`` attributions."""
        if not associations and not attributions:
            return
        with self._writing():
            if self.bulk_writes:
                sqlbulk.insert_links(self, associations, attributions)
            else:
                self._link_rows(associations, attributions)

    def update_execution(self, execution: Execution) -> int:
        """Write an execution record (create when ``id`` is unset); returns its id."""
        self._prepare_types([execution])
        with self._writing():
            return self._write_execution(execution, _now_ms())

    def update_artifact(self, artifact: Artifact) -> int:
        """Write an artifact record (create when ``id`` is unset); returns its id."""
        self._prepare_types(artifacts=[artifact])
        with self._writing():
            return self._write_artifact(artifact, _now_ms())

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
        self._conn = None


__all__ = ["SqlStore", "connect", "MLMD_SCHEMA_VERSION", "SQLITE_DDL"]
