"""The SQL engine's bulk writes: a whole lineage (executions, artifacts, events, context
links) in one transaction with a handful of statements instead of one per row.

A merge of 10,000 executions and 50,000 artifacts writes ~450,000 rows (records, property
rows, events, links); row by row that is as many round trips to PostgreSQL. Here:

- ids of new records are taken in bulk before inserting (PostgreSQL: one ``nextval`` over
  ``generate_series`` on the table's own sequence, safe with concurrent writers; SQLite:
  the next ids after the table's highest, the transaction being ``BEGIN IMMEDIATE`` so no
  other writer runs; MySQL/MariaDB have no safe way to reserve ids, so their new records
  are still inserted one by one, and only the rest is batched);
- rows go in with ``COPY`` (PostgreSQL) or ``executemany`` (SQLite; PyMySQL turns it into
  multi-row ``INSERT``s);
- links of new records go in like the rest; links of existing records keep MLMD's
  "existing links are kept" rule (PostgreSQL: copied into a temporary table, then inserted
  with ``ON CONFLICT DO NOTHING``).

The rows written are exactly the record-by-record path's (:meth:`SqlStore._write_execution`
and friends): same columns, same property encoding (:func:`_prop_rows`), same ids in the
same order, same timestamps within one call. Records that already exist (``id`` set) are
written by that path, one by one (an update compares before it writes).
``tests/test_sync_bulk.py`` checks both paths give the same store.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional, Sequence, Tuple

from cmfrun import schema
from cmfrun.records import Artifact, Execution

if TYPE_CHECKING:  # pragma: no cover - typing only (sql imports this module)
    from cmfrun.store.sql import SqlStore

#: Rows per ``executemany`` call (bounds the memory of one batch).
BATCH = 5000

_PROP_COLUMNS = ("name", "is_custom_property", "int_value", "double_value", "string_value", "bool_value")


def _allocate_ids(store: "SqlStore", table: str, count: int) -> Optional[List[int]]:
    """``count`` fresh ids for ``table`` (ascending), or ``None`` where the backend cannot
    reserve them (MySQL): the caller then inserts those rows one by one."""
    if count == 0:
        return []
    if store._backend == "postgresql":
        rows = store._q("SELECT nextval(pg_get_serial_sequence(?, 'id')) FROM generate_series(1, ?)", (table.lower(), count))
        return sorted(int(r[0]) for r in rows)
    if store._backend == "sqlite":
        # AUTOINCREMENT never reuses an id: start after both the highest row and the sequence.
        high = int(store._q(f"SELECT COALESCE(MAX(`id`), 0) FROM `{table}`")[0][0])
        seq = store._q("SELECT `seq` FROM sqlite_sequence WHERE `name` = ?", (table,))
        start = max(high, int(seq[0][0]) if seq else 0) + 1
        return list(range(start, start + count))
    return None


def _insert_rows(store: "SqlStore", table: str, columns: Sequence[str], rows: Sequence[Tuple[Any, ...]]) -> None:
    """Append ``rows`` to ``table`` (a duplicate key fails the transaction, as a row insert does)."""
    if not rows:
        return
    if store._backend == "postgresql":
        cur = store._conn.cursor()
        try:
            # Identifiers are this module's constants; the values travel as COPY data.
            with cur.copy(f"COPY {table.lower()} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        finally:
            cur.close()
        return
    cols = ", ".join(f"`{c}`" for c in columns)
    marks = ", ".join("?" * len(columns))
    for i in range(0, len(rows), BATCH):
        store._many(f"INSERT INTO `{table}` ({cols}) VALUES ({marks})", rows[i : i + BATCH])


def _insert_links(store: "SqlStore", table: str, columns: Tuple[str, str], rows: Sequence[Tuple[int, int]]) -> None:
    """Add link rows, keeping existing ones (MLMD's links are idempotent)."""
    rows = list(dict.fromkeys(rows))
    if not rows:
        return
    if store._backend != "postgresql":
        for i in range(0, len(rows), BATCH):
            store._insert_ignore(table, columns, rows[i : i + BATCH])
        return
    store._exec("CREATE TEMPORARY TABLE IF NOT EXISTS cmfrun_bulk_links (a integer, b integer) ON COMMIT DELETE ROWS")
    store._exec("DELETE FROM cmfrun_bulk_links")  # the other link table's rows of this transaction
    _insert_rows(store, "cmfrun_bulk_links", ("a", "b"), rows)
    store._exec(
        f"INSERT INTO {table.lower()} ({columns[0]}, {columns[1]}) SELECT a, b FROM cmfrun_bulk_links ON CONFLICT DO NOTHING"
    )


def _new_executions(store: "SqlStore", records: Sequence[Tuple[int, Execution]], now: int, ids: List[Optional[int]]) -> None:
    """Insert new executions (``(position, record)``), filling ``ids`` at their positions."""
    from cmfrun.store.sql import EXECUTION_STATE, _prop_rows

    declared = schema.EXECUTION_PROPERTIES
    fresh = _allocate_ids(store, "Execution", len(records))
    rows: List[Tuple[Any, ...]] = []
    props: List[Tuple[Any, ...]] = []
    for n, (pos, e) in enumerate(records):
        tid = store.ensure_type("execution", e.type, declared)
        values = (tid, EXECUTION_STATE[e.state], e.name or None, now, now)
        if fresh is None:
            eid = store._insert(
                "INSERT INTO `Execution` (`type_id`, `last_known_state`, `name`, `create_time_since_epoch`, "
                "`last_update_time_since_epoch`) VALUES (?, ?, ?, ?, ?)",
                values,
            )
        else:
            eid = fresh[n]
            rows.append((eid, *values))
        ids[pos] = eid
        props.extend(_prop_rows(eid, e.properties, e.custom, declared))
    _insert_rows(store, "Execution", ("id", "type_id", "last_known_state", "name", "create_time_since_epoch",
                                      "last_update_time_since_epoch"), rows)
    _insert_rows(store, "ExecutionProperty", ("execution_id", *_PROP_COLUMNS), props)


def _new_artifacts(store: "SqlStore", records: Sequence[Tuple[int, Artifact]], now: int, ids: List[Optional[int]]) -> None:
    """Insert new artifacts (``(position, record)``), filling ``ids`` at their positions."""
    from cmfrun.store.sql import _prop_rows

    fresh = _allocate_ids(store, "Artifact", len(records))
    rows: List[Tuple[Any, ...]] = []
    props: List[Tuple[Any, ...]] = []
    for n, (pos, a) in enumerate(records):
        declared = schema.ARTIFACT_PROPERTIES.get(a.type, {})
        tid = store.ensure_type("artifact", a.type, declared)
        values = (tid, a.uri, a.name or None, now, now)
        if fresh is None:
            aid = store._insert(
                "INSERT INTO `Artifact` (`type_id`, `uri`, `name`, `create_time_since_epoch`, `last_update_time_since_epoch`) "
                "VALUES (?, ?, ?, ?, ?)",
                values,
            )
        else:
            aid = fresh[n]
            rows.append((aid, *values))
        ids[pos] = aid
        props.extend(_prop_rows(aid, a.properties, a.custom, declared))
    _insert_rows(store, "Artifact", ("id", "type_id", "uri", "name", "create_time_since_epoch",
                                     "last_update_time_since_epoch"), rows)
    _insert_rows(store, "ArtifactProperty", ("artifact_id", *_PROP_COLUMNS), props)


def _events(store: "SqlStore", events: Sequence[Tuple[int, int, str, Optional[str]]], now: int) -> None:
    """Insert ``(execution id, artifact id, kind, path key)`` events and their paths."""
    from cmfrun.store.sql import EVENT_TYPE

    if not any(key for _, _, _, key in events):  # no paths: the ids are not needed back
        plain = [(a, e, EVENT_TYPE[kind], now) for e, a, kind, _ in events]
        _insert_rows(store, "Event", ("artifact_id", "execution_id", "type", "milliseconds_since_epoch"), plain)
        return
    fresh = _allocate_ids(store, "Event", len(events))
    if fresh is None:  # MySQL: a path needs its event's id, which only a row insert gives back
        for e, a, kind, key in events:
            store._write_event(e, a, kind, key, now)
        return
    rows = [(i, a, e, EVENT_TYPE[kind], now) for i, (e, a, kind, _) in zip(fresh, events)]
    _insert_rows(store, "Event", ("id", "artifact_id", "execution_id", "type", "milliseconds_since_epoch"), rows)
    paths = [(i, False, None, key) for i, (_, _, _, key) in zip(fresh, events) if key]
    _insert_rows(store, "EventPath", ("event_id", "is_index_step", "step_index", "step_key"), paths)


def write_lineage(
    store: "SqlStore",
    executions: Sequence[Execution],
    artifacts: Sequence[Artifact],
    edges: Sequence[Tuple[int, int, str, Optional[str]]],
    associations: Sequence[Tuple[int, int]],
    attributions: Sequence[Tuple[int, int]],
    now: int,
) -> Tuple[List[int], List[int]]:
    """Write records, events (``(execution index, artifact index, kind, path key)``) and
    links (``(context id, execution index)``, ``(context id, artifact index)``); the caller
    holds the transaction. Returns the execution and artifact ids in list order."""
    eids: List[Optional[int]] = [None] * len(executions)
    aids: List[Optional[int]] = [None] * len(artifacts)
    new_execs: List[Tuple[int, Execution]] = []
    for i, e in enumerate(executions):
        if e.id is None:
            new_execs.append((i, e))
        else:
            eids[i] = store._write_execution(e, now)
    new_arts: List[Tuple[int, Artifact]] = []
    for i, a in enumerate(artifacts):
        if a.id is None:
            new_arts.append((i, a))
        else:
            aids[i] = store._write_artifact(a, now)
    _new_executions(store, new_execs, now, eids)
    _new_artifacts(store, new_arts, now, aids)
    exec_ids = [int(x or 0) for x in eids]
    art_ids = [int(x or 0) for x in aids]
    _events(store, [(exec_ids[e], art_ids[a], kind, key) for e, a, kind, key in edges], now)
    # A link to a record created just now cannot exist yet (ids are never reused): those go
    # in plainly; links to existing records keep MLMD's "existing links are kept" rule.
    new_e = {i for i, _ in new_execs}
    new_a = {i for i, _ in new_arts}
    _insert_rows(store, "Association", ("context_id", "execution_id"),
                 list(dict.fromkeys((c, exec_ids[i]) for c, i in associations if i in new_e)))
    _insert_rows(store, "Attribution", ("context_id", "artifact_id"),
                 list(dict.fromkeys((c, art_ids[i]) for c, i in attributions if i in new_a)))
    insert_links(store, [(c, exec_ids[i]) for c, i in associations if i not in new_e],
                 [(c, art_ids[i]) for c, i in attributions if i not in new_a])
    return exec_ids, art_ids


def insert_links(store: "SqlStore", associations: Sequence[Tuple[int, int]], attributions: Sequence[Tuple[int, int]]) -> None:
    """Add ``(context id, execution id)`` associations and ``(context id, artifact id)``
    attributions, keeping existing ones; the caller holds the transaction."""
    _insert_links(store, "Association", ("context_id", "execution_id"), associations)
    _insert_links(store, "Attribution", ("context_id", "artifact_id"), attributions)


__all__ = ["write_lineage", "insert_links", "BATCH"]
