"""The SQL engine's bulk write path (cmfrun.store.sqlbulk) against its record-by-record path.

Two stores of the same backend take the same merges, one with ``bulk_writes`` on, one off;
afterwards every MLMD table must hold the same rows (record ids included; times and the
link rows' own ids left out). The bundles cover what a merge writes: new named and unnamed records,
every property encoding, updates (state forward, new outputs, url entries of another
pipeline), conflicts, quotes in names, a stage shared with another pipeline, a second
merge that changes nothing. Real SQLite, PostgreSQL and MariaDB stores.
"""
from __future__ import annotations

import copy
import threading
from typing import Any, Dict, List, Tuple

import pytest

from cmfrun import errors, schema
from cmfrun.records import Artifact, Execution
from cmfrun.store import connect
from cmfrun.store.sql import SqlStore
from cmfrun.sync.merge import merge_bundle

#: MLMD's tables and the columns not compared: the clock's, and the row ids of links (MLMD's
#: API never shows them; the bulk path numbers the links of new records first).
_TABLES = {
    "Type": (), "TypeProperty": (), "Context": ("create_time_since_epoch", "last_update_time_since_epoch"),
    "ContextProperty": (), "ParentContext": (),
    "Execution": ("create_time_since_epoch", "last_update_time_since_epoch"), "ExecutionProperty": (),
    "Artifact": ("create_time_since_epoch", "last_update_time_since_epoch"), "ArtifactProperty": (),
    "Event": ("milliseconds_since_epoch",), "EventPath": (), "Association": ("id",), "Attribution": ("id",),
}


def _open(uri: str, *, bulk: bool) -> SqlStore:
    store = connect(uri, engine="sql")
    assert isinstance(store, SqlStore)
    store.bulk_writes = bulk
    return store


def _dump(store: SqlStore) -> Dict[str, List[Tuple[Any, ...]]]:
    """Every row of every MLMD table, in a stable order, without clock columns."""
    out: Dict[str, List[Tuple[Any, ...]]] = {}
    for table, clock in _TABLES.items():
        cols = [c for c in _columns(store, table) if c not in clock]
        rows = store._q(f"SELECT {', '.join(f'`{c}`' for c in cols)} FROM `{table}`")
        out[table] = sorted((tuple(_plain(v) for v in r) for r in rows), key=repr)
    return out


def _columns(store: SqlStore, table: str) -> List[str]:
    if store._backend == "sqlite":
        return [str(r[1]) for r in store._q(f"PRAGMA table_info(`{table}`)")]
    if store._backend == "postgresql":
        rows = store._q("SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                        "AND table_schema = current_schema() ORDER BY ordinal_position", (table.lower(),))
    else:
        rows = store._q("SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                        "AND table_schema = DATABASE() ORDER BY ordinal_position", (table,))
    return [str(r[0]).lower() for r in rows]


def _plain(v: Any) -> Any:
    return int(v) if isinstance(v, bool) else v  # MySQL/SQLite give 0/1 where PostgreSQL gives a bool


def _art(name: str, uri: str, *, url: str = "", typ: str = "Dataset", **custom: Any) -> Dict[str, Any]:
    return {"type": typ, "name": name, "uri": uri, "properties": {"url": url} if url else {}, "custom_properties": custom}


def _exec(u: str, stage: int, events: List[Tuple[int, Dict[str, Any]]], *, named: bool = True, state: str = "COMPLETE",
          cmd: str = "python s.py", host: str = "", **custom: Any) -> Dict[str, Any]:
    props: Dict[str, Any] = {"Execution_uuid": u, "Execution": cmd, "Context_Type": f"P/s{stage}", "Pipeline_Type": "P",
                             "Start_Time_ms": 1.7e12, "Exit_Code": 0, "Git_Start_Commit": "abc"}
    if host:
        props["Host"] = host
    return {"type": f"s{stage}", **({"name": u} if named else {}), "last_known_state": state, "properties": props,
            "custom_properties": custom, "events": [{"type": t, "artifact": a} for t, a in events]}


def _bundle(execs: List[Dict[str, Any]], pipeline: str = "P", stages: int = 3) -> Dict[str, Any]:
    st = [{"name": f"{pipeline}/s{k}", "properties": {"Pipeline_Stage": f"{pipeline}/s{k}"}, "custom_properties": {},
           "executions": [e for e in execs if e["type"] == f"s{k}"]} for k in range(stages)]
    return {"Pipeline": [{"name": pipeline, "properties": {}, "custom_properties": {"team": "x"}, "stages": st}]}


def _first() -> Dict[str, Any]:
    raw = _art("raw.csv:h0", "h0", url="P:/r/h0", size=10)
    execs = [
        _exec("u1", 0, [(3, raw), (4, _art("a.csv:h1", "h1", url="P:/r/h1", size=1 << 40))], lr=0.1, big=1 << 40, neg=-5),
        _exec("u2", 1, [(3, _art("a.csv:h1", "h1")), (4, _art("m.pkl:h2", "h2", typ="Model", url="P:/r/h2"))],
              host="elsewhere", note="it's \"quoted\" \\ here"),
        _exec("u3", 2, [(3, _art("", "h9")), (4, _art("", "h8"))], named=False, state="RUNNING"),  # unnamed, CMF style
        _exec("u'4", 2, [(3, _art("o'dd\\name.csv:h7", "h7")), (4, _art("out.csv:h6", "h6"))], acc=0.91),
        _exec("u5", 1, [(3, raw), (3, _art("a.csv:h1", "h1")), (4, _art("r.txt:h5", "h5"))], state="RUNNING"),
    ]
    return _bundle(execs)


def _second() -> Dict[str, Any]:
    b = _first()
    execs = b["Pipeline"][0]["stages"]
    s1 = execs[1]["executions"]
    u5 = next(e for e in s1 if e["properties"]["Execution_uuid"] == "u5")
    u5["last_known_state"] = "COMPLETE"                                            # state moves forward
    u5["properties"]["Exit_Code"] = 0
    u5["events"].append({"type": 4, "artifact": _art("late.csv:h4", "h4")})        # an output logged later
    u2 = next(e for e in s1 if e["properties"]["Execution_uuid"] == "u2")
    u2["properties"]["Execution"] = "python other.py"                             # conflict: receiver keeps its own
    execs[0]["executions"].append(_exec("u6", 0, [(3, _art("m.pkl:h2", "h2", typ="Model", url="Q:/q/h2")),
                                                 (4, _art("", "h3"))], lr=0.2))
    return b


def _other_pipeline() -> Dict[str, Any]:
    """Another pipeline sharing an artifact (a new url entry) and a stage name with P."""
    b = _bundle([_exec("q1", 0, [(3, _art("a.csv:h1", "h1", url="Q:/q/h1")), (4, _art("q.csv:hq", "hq"))])], "Q", 1)
    b["Pipeline"][0]["stages"][0]["name"] = "P/s0"
    b["Pipeline"][0]["stages"][0]["executions"][0]["properties"]["Context_Type"] = "P/s0"
    return b


@pytest.fixture
def twin(store_uri: str, tmp_path: Any, request: pytest.FixtureRequest) -> Tuple[SqlStore, SqlStore]:
    """Two empty stores of the same backend: (bulk path, record-by-record path)."""
    from conftest import make_store_uri

    backend = "sqlite" if "://" not in store_uri else store_uri.split("://")[0]
    other = make_store_uri(backend, tmp_path / "row", request) if backend != "sqlite" else str(tmp_path / "row.mlmd")
    return _open(store_uri, bulk=True), _open(other, bulk=False)


def test_merges_write_the_same_rows_both_ways(twin: Tuple[SqlStore, SqlStore]) -> None:
    bulk, rows = twin
    steps = [_first(), _second(), _other_pipeline(), _second()]
    reports = []
    for step, bundle in enumerate(steps):
        pair = [merge_bundle(s, copy.deepcopy(bundle), site="site-a") for s in (bulk, rows)]
        assert pair[0] == pair[1], f"merge {step}"
        assert _dump(bulk) == _dump(rows), f"merge {step}"
        reports.append(pair[0])
    # The steps did exercise what they are meant to.
    assert reports[0].executions_added == 5 and reports[0].artifacts_added == 8 and not reports[0].conflicts
    assert (reports[1].executions_added, reports[1].executions_updated, reports[1].artifacts_added) == (1, 1, 2)
    assert [c.field for c in reports[1].conflicts] == ["Execution"]
    assert reports[2].artifacts_updated == 1 and reports[2].executions_added == 1
    assert not reports[3].changed and [c.field for c in reports[3].conflicts] == ["Execution"]
    u5 = next(e for e in bulk.executions() if e.properties.get("Execution_uuid") == "u5")
    assert u5.state == "COMPLETE"
    [a1] = [a for a in bulk.artifacts() if a.name == "a.csv:h1"]
    assert a1.properties["url"] == "P:/r/h1,Q:/q/h1" and a1.custom["size"] == float(1 << 40)


def test_put_lineage_with_paths_contexts_and_updates(twin: Tuple[SqlStore, SqlStore]) -> None:
    """The Store API directly: event paths, context links for every record, existing records updated."""
    results = []
    for store in twin:
        ctx = store.put_contexts([_ctx("P"), _ctx("P/s0")])
        old = Artifact("Dataset", "old.csv:h0", "h0", properties={"url": "P:/x"}, custom={"n": 1})
        eids, aids = store.put_lineage([Execution("s0", "e0", properties={"Execution_uuid": "e0"})], [old],
                                       [(0, 0, "OUTPUT", "out")], [ctx[1]])
        changed = Artifact("Dataset", "old.csv:h0", "h0", properties={"url": "P:/x,Q:/y"}, custom={"n": 1}, id=aids[0])
        again = Execution("s0", "e0", properties={"Execution_uuid": "e0", "Exit_Code": 3}, state="FAILED", id=eids[0])
        new = [Execution("s1", "", properties={"Execution_uuid": "e1", "Start_Time_ms": 2**40}, custom={"x": "y"}),
               Execution("s1", "e2", properties={"Execution_uuid": "e2"}, state="RUNNING")]
        arts = [changed, Artifact("Model", "m:h1", "h1", custom={"acc": 0.5}), Artifact("Dataset", "", "h2")]
        edges = [(1, 0, "INPUT", "in"), (1, 1, "OUTPUT", None), (2, 1, "INPUT", "model"), (2, 2, "OUTPUT", None),
                 (0, 2, "INPUT", None)]
        results.append(store.put_lineage([again, *new], arts, edges, ctx))
        store.put_links([(ctx[0], results[-1][0][1])], [(ctx[0], results[-1][1][2]), (ctx[1], results[-1][1][2])])
    assert results[0] == results[1]
    assert _dump(twin[0]) == _dump(twin[1])
    paths = sorted(ev.path for ev in twin[0].events_by_execution(results[0][0]))
    assert paths == [(), (), (), ("in",), ("model",), ("out",)]


def _ctx(name: str) -> Any:
    from cmfrun.records import Context

    kind = schema.PIPELINE_CONTEXT if "/" not in name else schema.STAGE_CONTEXT
    return Context(kind, name, properties={"Pipeline" if "/" not in name else "Pipeline_Stage": name})


def test_a_failing_bulk_write_leaves_nothing(store_uri: str) -> None:
    """One transaction: a unique violation at the end (the second link table) undoes the records too."""
    store = _open(store_uri, bulk=True)
    merge_bundle(store, _first(), site="s")
    before = _dump(store)
    dup = [Artifact("Dataset", "twice.csv:h", "h"), Artifact("Dataset", "twice.csv:h", "h")]
    with pytest.raises(errors.CmfrunError):
        store.put_lineage_linked([Execution("s0", "fresh", properties={"Execution_uuid": "fresh"})], dup,
                                 [(0, 0, "INPUT", None)], [], [])
    assert _dump(store) == before
    again = merge_bundle(store, _second(), site="s")  # the store still works after the rollback
    assert again.executions_added == 1


def test_concurrent_bulk_writers_get_distinct_ids(store_uri: str) -> None:
    """Two connections merging different pipelines at once: ids never collide (PostgreSQL takes
    them from the sequences, SQLite under its write lock, MariaDB row by row; an InnoDB deadlock
    victim is retried by the merge)."""
    stores = [_open(store_uri, bulk=True) for _ in range(2)]
    stores[0].prepare_schema()
    bundles = [_bundle([_exec(f"{p}{i}", i % 3, [(4, _art(f"{p}/{i}.csv:{p}{i}", f"{p}{i}"))]) for i in range(40)], p)
               for p in ("A", "B")]
    failures: List[BaseException] = []

    def one(i: int) -> None:
        try:
            merge_bundle(stores[i], bundles[i], site=f"s{i}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    check = _open(store_uri, bulk=True)
    assert len(check.executions()) == 80 and len({a.name for a in check.artifacts()}) == 80
    for p in ("A", "B"):
        ctx = check.context(schema.PIPELINE_CONTEXT, p)
        assert ctx is not None
        assert sum(len(check.executions_by_context(int(s.id or 0))) for s in check.child_contexts(int(ctx.id or 0))) == 40
