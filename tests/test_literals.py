"""Names holding quotes, backslashes and SQL on every backend and store engine: stored
exactly, found exactly, and never able to change a query (cmfrun.store.literals).

ml-metadata 1.17 copies filter-query literals into SQL without escaping them on
PostgreSQL, and on PostgreSQL it cannot quote any text holding a backslash at all (its
writes and per-name lookups break out of the quotes too: the ``mlmd`` engine makes such
calls with the sql engine). These tests run the real writers and lookups against real
SQLite, PostgreSQL and MariaDB databases that also hold a ``sentinel`` table, which the
hostile names try to drop.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from tests.conftest import installed_engines, make_store_uri

from cmfrun import errors, schema
from cmfrun.commands import browse, inspect
from cmfrun.ingest import ingest_locks
from cmfrun.ingest.lockfile import read_lock
from cmfrun.integrations import arango
from cmfrun.query import CmfQuery
from cmfrun.recorder import FileRef, RunRecord, new_uuid, record_run
from cmfrun.records import Artifact, Context, Execution, Link
from cmfrun.store import Store, connect, parse_location
from cmfrun.store import literals
from cmfrun.sync.merge import execution_digests, export_bundle, merge_bundle

#: What the brief names, and what broke ml-metadata here: quotes, backslashes, SQL.
HOSTILE = [
    "'",
    "''",
    "\\",
    "\\'",
    ";",
    "%",
    "--",
    '); DROP TABLE "Artifact"; --',
    "x')); DROP TABLE sentinel; --",  # drops the table through a filter query on PostgreSQL
    ", NULL, NULL, NULL, 0, 0); DROP TABLE sentinel; -- \\",  # ... through ml-metadata's writes there
    "it's \"odd\" `tick` _x_ 100%",
    "tab\there",
]


def _diverted(store: Store) -> bool:
    """Whether the ml-metadata engine handed calls to the sql engine (backslashes on PostgreSQL)."""
    return getattr(store, "_twin", None) is not None


# -- raw access to the database, beside the store ----------------------------------------------
def _raw(uri: str, sql: str) -> List[Tuple[Any, ...]]:
    loc = parse_location(uri)
    if loc.backend == "sqlite":
        with sqlite3.connect(str(loc.path)) as conn:
            return [tuple(r) for r in conn.execute(sql).fetchall()]
    if loc.backend == "postgresql":
        import psycopg

        with psycopg.connect(host=loc.host, port=loc.port, user=loc.user, dbname=loc.database, autocommit=True) as pg:
            cur = pg.execute(sql.encode())
            return [tuple(r) for r in cur.fetchall()] if cur.description else []
    import pymysql

    my = pymysql.connect(host=loc.host, port=loc.port, user=loc.user or "root", database=loc.database, autocommit=True)
    try:
        with my.cursor() as cur:
            cur.execute(sql)
            return [tuple(r) for r in cur.fetchall()]
    finally:
        my.close()


def _tables(uri: str) -> Dict[str, int]:
    """Every table of the database and its row count."""
    backend = parse_location(uri).backend
    if backend == "sqlite":
        names = [r[0] for r in _raw(uri, "SELECT name FROM sqlite_master WHERE type = 'table'")]
    elif backend == "postgresql":
        names = [r[0] for r in _raw(uri, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    else:
        names = [r[0] for r in _raw(uri, "SHOW TABLES")]
    quote = "`" if backend == "mysql" else '"'
    return {n: int(_raw(uri, f"SELECT COUNT(*) FROM {quote}{n}{quote}")[0][0]) for n in sorted(names)}


@pytest.fixture(params=installed_engines())
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CMFRUN_ENGINE", request.param)
    return str(request.param)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres), pytest.param("mysql", marks=pytest.mark.mysql)])
def uri(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store of each backend on the engine in use, with a ``sentinel`` table holding one row."""
    location = make_store_uri(request.param, tmp_path, request)
    connect(location).close()
    _raw(location, "CREATE TABLE sentinel (x INTEGER)")
    _raw(location, "INSERT INTO sentinel (x) VALUES (42)")
    yield location
    assert _raw(location, "SELECT x FROM sentinel") == [(42,)], "the sentinel table was changed"


# -- the helper itself -------------------------------------------------------------------------
def test_literal_rules() -> None:
    assert literals.filter_literal("data/train.csv:0a1b") == "'data/train.csv:0a1b'"
    assert literals.filter_literal("100% é ; -- $1 ?") == "'100% é ; -- $1 ?'"
    for bad in ("'", '"', "\\", "`", "a\nb", "\x7f", "\x00"):
        assert literals.filter_literal("a" + bad) is None and not literals.filter_safe(bad)
    assert literals.like_prefix("data/it's.csv:") == "'data/it%'"
    assert literals.like_prefix("'x") == "'%'"
    queries, others = literals.in_filters("name", ["a", "b'", "a", "c"], chunk=1)
    assert (queries, others) == (["name IN ('a')", "name IN ('c')"], ["b'"])
    with pytest.raises(ValueError):
        literals.safe_literal("b'")
    for bad in ('name = "x"', "name = 'a\\'b'", "name = '''x'''", "custom_properties.`a` = 1"):
        with pytest.raises(errors.UsageError, match="filter query"):
            literals.check_filter_query(bad)
    literals.check_filter_query("name IN ('a', 'b') AND id > 3")


def test_ml_metadata_is_never_handed_a_quoting_filter(uri: str, engine: str) -> None:
    store = connect(uri)
    if engine != "mlmd":
        pytest.skip("the sql engine binds filter literals as parameters")
    for bad in ('name = "x\')); DROP TABLE sentinel; --"', "name = 'x\\')); DROP TABLE sentinel; --'"):
        with pytest.raises(errors.UsageError, match="filter query"):
            store.artifacts(bad)
        with pytest.raises(errors.UsageError, match="filter query"):
            store.newest_executions(bad, 1)


# -- every text field -----------------------------------------------------------------------
def test_hostile_text_in_every_field_round_trips(uri: str) -> None:
    """Issue 12: every text field (type, name, uri, properties, custom properties, context
    names, event paths) holds quotes, semicolons, % and backslashes verbatim."""
    store = connect(uri)
    before = _tables(uri)
    stored = 0
    for i, text in enumerate(HOSTILE):
        name = f"{i}{text}"
        ctx = store.get_or_create_context(schema.PIPELINE_CONTEXT, name, {}, {text: text})
        store.ensure_type("artifact", f"A{name}", {"url": "STRING", text: "STRING"})
        eid, [aid] = store.put_execution(
            Execution(f"T{name}", name, {"Execution": text}, {text: text}, state="COMPLETE"),
            [Link(Artifact(f"A{name}", name, text, properties={"url": text, text: text}, custom={text: text}), "OUTPUT", path_key=text)],
            [int(ctx.id or 0)],
        )
        stored += 1
        [art] = store.artifacts_by_id([aid])
        assert (art.type, art.name, art.uri, dict(art.custom), dict(art.properties)) == (
            f"A{name}", name, text, {text: text}, {"url": text, text: text})
        [ex] = store.executions_by_id([eid])
        assert (ex.type, ex.name, ex.properties["Execution"], dict(ex.custom)) == (f"T{name}", name, text, {text: text})
        found = store.context(schema.PIPELINE_CONTEXT, name)
        assert found is not None and found.id == ctx.id and dict(found.custom) == {text: text}
        assert [ev.path for ev in store.events_by_artifact([aid])] == [(text,)]
        assert [a.id for a in store.artifacts_by_uri([text])] == [aid]
        assert store.artifact_by_type_and_name(f"A{name}", name) == art
        assert store.execution_by_type_and_name(f"T{name}", name) == ex
        assert [a.id for a in literals.artifacts_named(store, [name])] == [aid]
        assert [e.id for e in literals.executions_named(store, [name])] == [eid]
    after = _tables(uri)
    assert set(after) == set(before)  # no table dropped or added
    assert len(store.artifacts()) == len(store.executions()) == stored
    assert stored == len(HOSTILE)
    assert _diverted(store) == (store.engine == "mlmd" and parse_location(uri).backend == "postgresql")


def test_ml_metadata_write_quoting_cannot_drop_a_table(uri: str) -> None:
    """Given to ml-metadata on PostgreSQL as is, this uri drops the sentinel table (the
    fixture checks it is still there)."""
    store = connect(uri)
    text = HOSTILE[9]
    aid = store.update_artifact(Artifact(schema.DATASET, "n", text))
    assert [(a.id, a.uri) for a in store.artifacts_by_uri([text])] == [(aid, text)]
    assert [(a.id, a.uri) for a in store.artifacts()] == [(aid, text)]
    raw = getattr(store, "_mlmd", None)
    if store.engine == "mlmd" and parse_location(uri).backend == "postgresql":
        from cmfrun.store.mlmd import _Backslash, pb

        with pytest.raises(_Backslash):  # the guard itself: ml-metadata never gets the call
            raw.put_artifacts([pb.Artifact(type_id=1, uri=text)])  # type: ignore[union-attr]


# -- the writers and lookups users reach ----------------------------------------------------------
def _run(store: Store, i: int, text: str, md5: str, uuid: str = "") -> RunRecord:
    return RunRecord(
        f"p{i}{text}", f"s{text}", f"echo {text}", uuid or new_uuid(), execution_name=f"run{i}{text}{uuid}",
        inputs=[FileRef(f"data/{text}{i}.csv", md5)], outputs=[FileRef(f"out{text}/{i}.pkl", md5[::-1], type=schema.MODEL)],
        custom={text: text},
    )


def test_logged_names_and_paths_are_found_exactly(uri: str) -> None:
    store = connect(uri)
    logged: List[Tuple[int, str, int, RunRecord]] = []
    for i, text in enumerate(HOSTILE):
        run = _run(store, i, text, f"{i + 1:032x}")
        res = record_run(store, run)
        logged.append((i, text, res.execution_id, run))
    assert len(logged) == len(HOSTILE)
    query = CmfQuery(uri)
    cache = browse.BrowseCache()
    for i, text, eid, run in logged:
        [ex] = store.executions_by_id([eid])
        assert ex.name == run.execution_name and ex.custom == {text: text} and ex.properties["Execution"] == f"echo {text}"
        infos = inspect.list_executions(store, pipeline=run.pipeline)
        assert [x.id for x in infos] == [eid]
        assert [x.id for x in inspect.list_executions(store, pipeline=run.pipeline, stage=run.stage)] == [eid]
        assert [x.id for x in inspect.list_executions(store, pipeline=run.pipeline, limit=5)] == [eid]
        assert [x.id for x in inspect.list_executions(store, stage=run.stage)] == [eid]
        assert [r.id for r in cache.execution_rows(store, run.pipeline)] == [eid]
        path = run.inputs[0].path
        [art] = inspect.find_artifacts(store, path)
        assert (art.path, art.uri) == (path, run.inputs[0].md5)
        assert [a.id for a in inspect.find_artifacts(store, art.name)] == [art.id]
        assert [a.id for a in literals.artifacts_named(store, [art.name])] == [art.id]
        frame = query.get_artifact(art.name)
        assert frame is not None and list(frame["id"]) == [art.id]
        found = arango.find_artifact(store, path)
        assert found is not None and found.id == art.id
        assert [v.id for v in browse.artifact_detail(store, int(art.id or 0)).versions] == [art.id]
        assert [e.id for e in inspect.find_executions(store, ex.name)] == ([eid] if len(ex.name) >= 8 else [])
        # A second run of the same stage: the detail view finds the first as its previous one.
        again = record_run(store, _run(store, i, text, f"{i + 1:032x}", uuid=f"second{i}"))
        assert browse.execution_detail(store, again.execution_id).previous_id == eid
    # Batched lookups of every logged name at once (the ingest/merge fast path plus the others).
    arts = [a for a in store.artifacts() if a.type == schema.DATASET]
    uris = [a.uri for a in arts] + [f"{n:032x}" for n in range(900, 930)]
    assert sorted(a.id for a in store.artifacts_by_uri(uris)) == sorted(a.id for a in arts)
    assert sorted(a.id for a in literals.artifacts_named(store, [a.name for a in arts] + ["nope"])) == sorted(a.id for a in arts)
    names = [run.execution_name for _, _, _, run in logged]
    assert sorted(e.name for e in literals.executions_named(store, names)) == sorted(names)


def test_hostile_lookups_find_nothing_and_change_nothing(uri: str) -> None:
    store = connect(uri)
    record_run(store, _run(store, 0, "ok", "a" * 32))
    before = _tables(uri)
    for text in HOSTILE:
        assert store.artifacts_by_uri([text]) == []
        assert store.artifacts_by_uri([text] + [f"{n:032x}" for n in range(30)]) == []
        assert literals.artifacts_named(store, [text, "x"]) == []
        assert literals.executions_named(store, [text]) == []
        assert inspect.find_artifacts(store, text) == []
        assert inspect.find_executions(store, text + "-00000000") == []
        assert store.context(schema.PIPELINE_CONTEXT, text) is None
        with pytest.raises(errors.NotFoundError):
            inspect.list_executions(store, pipeline=text)
        assert inspect.list_executions(store, stage=text) == []
        assert _tables(uri) == before


def test_lock_paths_and_names_with_quotes_ingest_and_reingest(uri: str, tmp_path: Path) -> None:
    store = connect(uri)
    texts = [t for t in HOSTILE if "\t" not in t]
    stages: Dict[str, Any] = {}
    for i, text in enumerate(texts):
        stages[f"s{i}"] = {
            "cmd": f"python run.py '{text}'",
            "deps": [{"path": f"in/{text}{i}.csv", "hash": "md5", "md5": f"{i + 1:032x}", "size": 3}],
            "outs": [{"path": f"out/{text}{i}.csv", "hash": "md5", "md5": f"{i + 101:032x}", "size": 3}],
        }
    lock = tmp_path / "dvc.lock"
    lock.write_text(json.dumps({"schema": "2.0", "stages": stages}))  # JSON is YAML
    pipeline = "it's \"p\"; --"
    first = ingest_locks(store, [lock], pipeline=pipeline, root=tmp_path)
    assert first.executions_created + first.executions_merged == len(stages)
    # The lock reader reads a backslash in a path as Windows' separator.
    paths = {e.path for st in read_lock(lock, tmp_path).stages for e in (*st.deps, *st.outs)}
    assert any("'" in p for p in paths) and len(paths) == 2 * len(stages)
    assert {a.path for a in store.artifacts()} == paths
    for path in paths:
        assert [a.path for a in inspect.find_artifacts(store, path)] == [path]
    again = ingest_locks(store, [lock], pipeline=pipeline, root=tmp_path)
    assert (again.executions_created, again.executions_merged, again.executions_unchanged) == (0, 0, len(stages))
    assert len(store.executions()) == len(stages)


def test_merge_of_hostile_names_is_exact_and_idempotent(uri: str, tmp_path: Path) -> None:
    """Both push paths (cmflib's /api/mlmd_push and /api/v1/sync/push) end in merge_bundle."""
    source = connect(tmp_path / "source.mlmd", engine="sql")
    texts = [t for t in HOSTILE if "\\" not in t]
    for i, text in enumerate(texts):
        record_run(source, _run(source, 0, text, f"{i + 1:032x}"))
    bundle = export_bundle(source, f"p0{texts[0]}")
    bundle["Pipeline"] += [export_bundle(source, f"p0{t}")["Pipeline"][0] for t in texts[1:]]
    bundle = json.loads(json.dumps(bundle))
    target = connect(uri)
    first = merge_bundle(target, bundle, site="it's")
    assert first.executions_added == len(texts) and not first.conflicts
    again = merge_bundle(target, bundle, site="it's")
    assert not again.changed and again.executions_unchanged == len(texts)
    for text in texts:
        assert execution_digests(target, f"p0{text}") == execution_digests(source, f"p0{text}")
    # Backslashes too (on PostgreSQL the ml-metadata engine has the sql engine write them).
    slashed = connect(tmp_path / "slashed.mlmd", engine="sql")
    for i, text in enumerate(t for t in HOSTILE if "\\" in t):
        record_run(slashed, _run(slashed, 0, text, f"{i + 500:032x}"))
        one = json.loads(json.dumps(export_bundle(slashed, f"p0{text}")))
        assert merge_bundle(target, one).executions_added == 1
        assert not merge_bundle(target, one).changed
        assert execution_digests(target, f"p0{text}") == execution_digests(slashed, f"p0{text}")


def test_context_ids_filter_on_every_engine(uri: str) -> None:
    """The fallback for stage names no literal may hold filters on ``contexts_a.id``."""
    store = connect(uri)
    res = record_run(store, _run(store, 0, "plain", "a" * 32))
    assert [e.id for e in store.executions(f"contexts_a.id = {res.stage_context_id}")] == [res.execution_id]
    assert [e.id for e in store.newest_executions(f"contexts_a.id IN ({res.stage_context_id}, 999999)", 1)] == [res.execution_id]
    assert isinstance(store.contexts_by_id([res.stage_context_id])[0], Context)


def test_both_push_paths_and_the_read_api_take_hostile_names(uri: str, tmp_path: Path) -> None:
    """cmflib's /api/mlmd_push and the sync router's /api/v1/sync/push apply one rule (the
    merge's); the read API looks names up like any other (nothing is refused for a quote)."""
    import requests

    from tests.server_helpers import ServerProcess

    source = connect(tmp_path / "source.mlmd", engine="sql")
    text = "it's \"odd\"; -- 100% `x`"
    bundles = []
    for i, t in enumerate([text, text, "back\\slash"]):
        record_run(source, _run(source, i, t, f"{i + 1:032x}"))
        bundles.append(json.loads(json.dumps(export_bundle(source, f"p{i}{t}"))))
    with ServerProcess(uri, tmp_path / "data") as server:
        r = requests.post(server.url + "/api/mlmd_push", json={"pipeline_name": f"p0{text}", "json_payload": json.dumps(bundles[0])})
        assert r.status_code == 200 and r.json()["status"] == "success", r.text
        r = requests.post(server.url + "/api/v1/sync/push", json={"pipeline": f"p1{text}", "bundle": bundles[1]})
        assert r.status_code == 200 and r.json()["report"]["executions_added"] == 1, r.text
        r1 = requests.post(server.url + "/api/mlmd_push", json={"pipeline_name": "p2back\\slash", "json_payload": json.dumps(bundles[2])})
        r2 = requests.post(server.url + "/api/v1/sync/push", json={"pipeline": "p2back\\slash", "bundle": bundles[2]})
        assert (r1.status_code, r2.status_code) == (200, 200), (r1.text, r2.text)
        assert r1.json()["status"] == "success" and r2.json()["report"]["executions_unchanged"] == 1
        for i, text in ((0, text), (1, text), (2, "back\\slash")):
            page = requests.get(server.url + "/api/v1/executions", params={"pipeline": f"p{i}{text}"}).json()
            assert [e["pipeline"] for e in page["items"]] == [f"p{i}{text}"]
            path = f"data/{text}{i}.csv"
            page = requests.get(server.url + "/api/v1/artifacts", params={"name": path}).json()
            assert [a["path"] for a in page["items"]] == [path]
            one = requests.get(server.url + "/api/v1/artifacts/" + requests.utils.quote(path, safe="/"))
            assert one.status_code == 200 and one.json()["record"]["uri"] == f"{i + 1:032x}", one.text
        assert requests.get(server.url + "/api/v1/artifacts", params={"name": "x' OR 1=1 --"}).json()["items"] == []
    target = connect(uri)
    for i, text in ((0, text), (1, text), (2, "back\\slash")):
        assert execution_digests(target, f"p{i}{text}") == execution_digests(source, f"p{i}{text}")


@pytest.mark.postgres
def test_store_uris_cannot_smuggle_sql_into_database_creation(engine: str, tmp_path: Path) -> None:
    """ml-metadata creates a missing database with ``CREATE DATABASE <name>`` (unquoted) and
    joins PostgreSQL connection fields unquoted: such URIs are refused before it runs."""
    from tests.conftest import PG_HOST, PG_PORT, _need

    _need(PG_HOST, PG_PORT, "PostgreSQL")
    for db in ("x');DROP TABLE t;--", "a b", "x;y"):
        with pytest.raises(errors.StoreURIError, match="not a plain name"):
            connect(f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{db}")
    if engine == "mlmd":
        with pytest.raises(errors.StoreURIError, match="spaces, quotes"):
            connect(f"postgresql://postgres:pass%20word@{PG_HOST}:{PG_PORT}/cmfrun_t_never")
