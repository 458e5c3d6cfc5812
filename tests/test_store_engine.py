"""The plain-SQL store engine: MLMD's exact schema, interchangeable both ways with
ml-metadata (on Pythons where it installs), safe SQL, the same refusals.

The schema fixtures (tests/fixtures/mlmd_schema/) are dumps of stores ml-metadata
1.17 created here; the interchange tests write with one engine and read with the other.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any, Dict, List

import pytest

from cmfrun import errors, schema
from cmfrun.recorder import FileRef, RunRecord, new_uuid, record_run
from cmfrun.records import Artifact, Context, Execution, Link
from cmfrun.store import Store, choose_engine, connect, is_already_exists, mlmd_installed, parse_location
from tests.conftest import make_store_uri

FIXTURES = Path(__file__).parent / "fixtures" / "mlmd_schema"
needs_mlmd = pytest.mark.skipif(not mlmd_installed(), reason="ml-metadata is not installed on this Python (<= 3.11 only)")
READER = Path(__file__).parent / "compat" / "cmflib_reader.py"


def _ddl(conn: sqlite3.Connection) -> List[str]:
    rows = conn.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid").fetchall()
    return [_norm(r[0]) for r in rows]


def _norm(stmt: str) -> str:
    stmt = re.sub(r" AUTO_INCREMENT=\d+", "", stmt.replace("IF NOT EXISTS ", ""))  # a counter, not schema
    return re.sub(r"\s+", " ", stmt).strip().rstrip(";").strip()


def _fixture_ddl(name: str) -> List[str]:
    lines = [ln for ln in (FIXTURES / name).read_text().splitlines() if not ln.startswith("/*")]
    return [_norm(s) for s in "\n".join(lines).split(";\n") if s.strip()]


def test_sql_engine_creates_mlmds_sqlite_schema(tmp_path: Path) -> None:
    path = tmp_path / "mlmd"
    connect(path, engine="sql").close()
    conn = sqlite3.connect(path)
    assert _ddl(conn) == _fixture_ddl("sqlite.sql")
    assert conn.execute("SELECT schema_version FROM MLMDEnv").fetchall() == [(10,)]
    simple = conn.execute("SELECT id, name, type_kind, version, external_id FROM Type WHERE name LIKE 'mlmd.%' ORDER BY id").fetchall()
    assert [r[1] for r in simple][:4] == ["mlmd.Dataset", "mlmd.Model", "mlmd.Metrics", "mlmd.Statistics"]
    assert [r[0] for r in simple] == list(range(1, 10)) and all(r[3] is None and r[4] is None for r in simple)


def _dump(uri: str) -> List[str]:
    loc = parse_location(uri)
    if loc.backend == "postgresql":
        argv = ["pg_dump", "-h", loc.host, "-p", str(loc.port), "-U", loc.user, "--schema-only", "--no-owner",
                "--no-privileges", loc.database]
    else:
        argv = ["mariadb-dump", "-h", loc.host, "-P", str(loc.port), f"-u{loc.user}", "--no-data", "--skip-comments",
                "--compact", loc.database]
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed")
    text = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    lines = [ln for ln in text.splitlines() if not re.match(r"^(--|SET |SELECT pg_catalog|\\restrict|\\unrestrict|/\*)", ln) and ln.strip()]
    return [_norm(s) for s in "\n".join(lines).split(";\n") if s.strip()]


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres),
                                     pytest.param("mysql", marks=pytest.mark.mysql)])
def test_sql_engine_creates_mlmds_server_schema(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    uri = make_store_uri(backend, tmp_path, request)
    connect(uri, engine="sql").close()
    ours, theirs = _dump(uri), _fixture_ddl(f"{backend}.sql")
    if backend == "mysql":  # MariaDB prints the unique keys of a table in an order of its own
        ours, theirs = [_lines(s) for s in ours], [_lines(s) for s in theirs]
    assert ours == theirs


def _lines(stmt: str) -> List[str]:
    return sorted(part.strip() for part in re.split(r",\s*(?=(?:UNIQUE |PRIMARY )?KEY )", stmt))


@needs_mlmd
def test_same_schema_and_seed_rows_as_ml_metadata(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "sql", tmp_path / "mlmd"
    connect(ours, engine="sql").close()
    connect(theirs, engine="mlmd").close()
    a, b = sqlite3.connect(ours), sqlite3.connect(theirs)
    assert _ddl(a) == _ddl(b)
    for table in ("MLMDEnv", "Type", "TypeProperty", "Context", "ContextProperty", "ParentContext"):
        cols = "*" if table != "Context" else "id, type_id, name, external_id"
        assert a.execute(f"SELECT {cols} FROM {table}").fetchall() == b.execute(f"SELECT {cols} FROM {table}").fetchall(), table


def _populate(store: Store, pipeline: str = "p") -> None:
    """Every kind of record cmfrun writes: contexts under a parent, runs with inputs and
    outputs, an ingest-style bulk write, relinks with an event path, updates."""
    raw, train, model = "a" * 32, "b" * 32, "c" * 32
    record_run(store, RunRecord(pipeline, "prepare", "python prep.py", new_uuid(), execution_name=f"{pipeline}-u1",
                                inputs=[FileRef("raw.csv", raw)], outputs=[FileRef("data/train.csv", train)]))
    run = RunRecord(pipeline, "train", "python train.py --lr 0.1", new_uuid(), execution_name=f"{pipeline}-u2",
                    inputs=[FileRef("data/train.csv", train)], outputs=[FileRef("model.pkl", model, type=schema.MODEL)],
                    custom={"lr": 0.1, "epochs": 3, "big": 2**40, "note": "it's; 100%"})
    res = record_run(store, run)
    stage = store.get_or_create_context(schema.STAGE_CONTEXT, f"{pipeline}/eval", {}, {"k": 1},
                                        parent_id=store.context(schema.PIPELINE_CONTEXT, pipeline).id)  # type: ignore[union-attr]
    [metrics] = store.artifacts_by_uri([model])
    eid, [aid] = store.put_execution(
        Execution("eval", f"{pipeline}-u3", properties={"Execution": "eval"}, state="RUNNING"),
        [Link(metrics, "INPUT", path_key="model_in")],
        [int(stage.id or 0)],
    )
    ex = store.executions_by_id([eid])[0]
    store.update_execution(Execution(ex.type, ex.name, ex.properties, {**ex.custom, "acc": 0.9}, "COMPLETE", id=eid))
    eids, aids = store.put_lineage(
        [Execution("ingest", f"{pipeline}-u4", {"Execution": "dvc repro"}, state="COMPLETE")],
        [Artifact(schema.DATASET, f"{pipeline}/out.csv:{'d' * 32}", "d" * 32, custom={"size": 7})],
        [(0, 0, "OUTPUT", None)],
        [int(stage.id or 0)],
    )
    store.put_events([(eids[0], aid, "INPUT", "relinked")])
    assert res.execution_id


def _snapshot(store: Store) -> Dict[str, Any]:
    """Everything readable, in id order (ml-metadata leaves the order of its lists unspecified on servers)."""
    execs = sorted(store.executions(), key=lambda e: e.id or 0)
    arts = sorted(store.artifacts(), key=lambda a: a.id or 0)
    ctxs = sorted((c for t in store.type_names("context") for c in store.contexts_by_type(t)), key=lambda c: c.id or 0)

    def ids(records: Any) -> List[int]:
        return sorted(int(r.id or 0) for r in records)

    return {
        "executions": execs,
        "artifacts": arts,
        "contexts": ctxs,
        "events": sorted(store.events_by_execution([e.id or 0 for e in execs]), key=lambda v: (v.execution_id, v.artifact_id, v.kind)),
        "parents": {c.id: ids(store.parent_contexts(c.id or 0)) for c in ctxs},
        "exec_contexts": {e.id: ids(store.contexts_by_execution(e.id or 0)) for e in execs},
        "art_contexts": {a.id: ids(store.contexts_by_artifact(a.id or 0)) for a in arts},
        "types": {k: sorted(store.type_names(k)) for k in ("artifact", "execution", "context")},
        "filtered": ids(store.executions(f"contexts_a.type = '{schema.STAGE_CONTEXT}' AND contexts_a.name LIKE 'p/%'")),
        "newest": [e.id for e in store.newest_executions("last_known_state = COMPLETE", 2)],
    }


@needs_mlmd
def test_sql_store_reads_back_identically_in_ml_metadata(store_uri: str) -> None:
    path = store_uri
    store = connect(path, engine="sql")
    _populate(store)
    ours = _snapshot(store)
    store.close()
    theirs = _snapshot(connect(path, engine="mlmd", read_only=True))
    assert ours == theirs
    assert len(ours["executions"]) == 4 and ours["filtered"] and ours["events"]


@needs_mlmd
def test_ml_metadata_store_is_read_and_extended_by_sql(store_uri: str) -> None:
    path = store_uri
    mlmd_store = connect(path, engine="mlmd")
    _populate(mlmd_store)
    before = _snapshot(mlmd_store)
    mlmd_store.close()
    sql_store = connect(path, engine="sql")
    assert _snapshot(sql_store) == before
    _populate(sql_store, "q")  # same artifacts (hashes), new pipeline: updates and new rows
    after = _snapshot(sql_store)
    sql_store.close()
    assert _snapshot(connect(path, engine="mlmd", read_only=True)) == after
    assert len(after["executions"]) == 8


def test_cmflib_reads_sql_engine_store(tmp_path: Path) -> None:
    cmflib_python = os.environ.get("CMFRUN_CMFLIB_PYTHON", "")
    if not cmflib_python or not Path(cmflib_python).exists():
        if os.environ.get("CMFRUN_REQUIRE_SERVICES") == "1":
            pytest.fail("CMFRUN_CMFLIB_PYTHON is not set: CI must run the cmflib compatibility test")
        pytest.skip("no cmflib virtualenv (set CMFRUN_CMFLIB_PYTHON; `make test` builds one)")
    path = tmp_path / "mlmd"
    _populate(connect(path, engine="sql"))
    proc = subprocess.run([cmflib_python, str(READER), str(path), "p"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["pipelines"] == ["p"]
    assert seen["stages"] == ["p/prepare", "p/train", "p/eval"]
    [ex] = seen["executions"]["p/train"]
    assert ex["Execution"] == "python train.py --lr 0.1" and ex["custom_properties_lr"] == 0.1
    model_name = next(n for n in seen["parents"] if n.startswith("model.pkl:"))
    assert seen["parents"][model_name] == sorted([f"data/train.csv:{'b' * 32}", f"raw.csv:{'a' * 32}"])


NASTY = "it's \"odd\"; DROP TABLE Artifact; -- 100% _x_ \\ end"


def test_hostile_text_in_every_field_is_stored_verbatim(tmp_path: Path) -> None:
    store = connect(tmp_path / "mlmd", engine="sql")
    ctx = store.get_or_create_context(schema.PIPELINE_CONTEXT, NASTY, {}, {NASTY: NASTY})
    eid, [aid] = store.put_execution(
        Execution(NASTY, NASTY, {"Execution": NASTY}, {NASTY: NASTY}, state="COMPLETE"),
        [Link(Artifact(NASTY, NASTY, NASTY, custom={NASTY: NASTY}), "OUTPUT", path_key=NASTY)],
        [int(ctx.id or 0)],
    )
    [art] = store.artifacts_by_id([aid])
    assert (art.type, art.name, art.uri, dict(art.custom)) == (NASTY, NASTY, NASTY, {NASTY: NASTY})
    [ex] = store.executions_by_id([eid])
    assert (ex.type, ex.name, ex.properties["Execution"], dict(ex.custom)) == (NASTY, NASTY, NASTY, {NASTY: NASTY})
    assert store.context(schema.PIPELINE_CONTEXT, NASTY) == ctx and dict(ctx.custom) == {NASTY: NASTY}
    [ev] = store.events_by_artifact([aid])
    assert ev.path == (NASTY,)
    quoted = "'" + NASTY.replace("'", "''") + "'"
    assert [a.id for a in store.artifacts(f"name = {quoted}")] == [aid]
    assert [a.id for a in store.artifacts(f"uri IN ({quoted}, 'x')")] == [aid]
    assert [e.id for e in store.executions(f"contexts_a.name = {quoted} AND name LIKE 'it%'")] == [eid]
    assert store.artifacts("name LIKE '100%'") == []  # % is a pattern, not an injection
    assert store.type_names("artifact") == [NASTY] and len(store.artifacts()) == 1  # nothing dropped


def test_unsupported_filter_is_refused_clearly(tmp_path: Path) -> None:
    store = connect(tmp_path / "mlmd", engine="sql")
    for bad in ("properties.lr.double_value > 1", "name = 'a'; DROP TABLE Type", "uri = 1 AND", "name ~ 'x'"):
        with pytest.raises(errors.UsageError, match="filter query"):
            store.executions(bad) if "uri" not in bad else store.artifacts(bad)
    assert store.executions("id > 0 AND (name = 'a' OR NOT name IS NULL)") == []


def test_same_refusals_as_the_mlmd_engine(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_text("not a database at all, just text\n" * 10)
    with pytest.raises(errors.CorruptStoreError):
        connect(junk, engine="sql")
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)")
    with pytest.raises(errors.CorruptStoreError, match="not an MLMD store"):
        connect(other, engine="sql")
    newer = tmp_path / "newer"
    connect(newer, engine="sql").close()
    with sqlite3.connect(newer) as conn:
        conn.execute("UPDATE MLMDEnv SET schema_version = 11")
    with pytest.raises(errors.StoreError, match="newer"):
        connect(newer, engine="sql")
    with pytest.raises(errors.NotFoundError):
        connect(tmp_path / "missing", engine="sql", create=False)
    ro = connect(tmp_path / "mlmd", engine="sql")
    _populate(ro)
    reader = connect(tmp_path / "mlmd", engine="sql", read_only=True)
    assert len(reader.executions()) == 4
    with pytest.raises(errors.ReadOnlyStoreError):
        reader.update_execution(reader.executions()[0])


def test_duplicate_names_raise_already_exists(tmp_path: Path) -> None:
    store = connect(tmp_path / "mlmd", engine="sql")
    store.put_context(Context(schema.PIPELINE_CONTEXT, "dup"))
    with pytest.raises(errors.StoreError) as info:
        store.put_context(Context(schema.PIPELINE_CONTEXT, "dup"))
    assert is_already_exists(info.value)
    assert len(store.contexts_by_type(schema.PIPELINE_CONTEXT)) == 1  # the failed write left nothing


def test_engine_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CMFRUN_ENGINE", "sql")
    assert connect(tmp_path / "a").engine == "sql"
    monkeypatch.setenv("CMFRUN_ENGINE", "oracle")
    with pytest.raises(errors.UsageError, match="unknown store engine"):
        connect(tmp_path / "b")
    monkeypatch.delenv("CMFRUN_ENGINE")
    (tmp_path / ".cmfconfig").write_text("[cmfrun]\nengine = sql\n")
    assert choose_engine() == "sql"
    (tmp_path / ".cmfconfig").write_text("[cmfrun]\n")
    assert choose_engine() == "sql"  # the default on every Python (ml-metadata only when asked)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres),
                                     pytest.param("mysql", marks=pytest.mark.mysql)])
def test_recursive_lineage_query_matches_level_by_level_walk(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The SQL engine's one-query walk gives exactly the generic walk's answer: depths,
    edges, truncation, on a random graph with diamonds and a cycle, every root and depth."""
    import random

    store = connect(make_store_uri(backend, tmp_path, request), engine="sql")
    rng = random.Random(7)
    arts = [Artifact(schema.DATASET, f"f{i}:{i:032x}", f"{i:032x}") for i in range(14)]
    execs = [Execution("step", f"x{j}", {"Execution": f"step {j}"}, state="COMPLETE") for j in range(10)]
    edges = []
    for j in range(10):
        for i in rng.sample(range(14), 2):
            edges.append((j, i, "INPUT", None))
        for i in rng.sample(range(14), 2):
            if (j, i, "INPUT", None) not in edges:
                edges.append((j, i, "OUTPUT", None))
    eids, aids = store.put_lineage(execs, arts, edges, [])
    generic = Store.walk_lineage
    for direction in ("up", "down"):
        for depth in (None, 0, 1, 2, 3):
            for root in aids[:8]:
                assert store.walk_lineage(direction, [root], [], depth) == generic(store, direction, [root], [], depth)
            for root in eids[:5]:
                assert store.walk_lineage(direction, [], [root], depth) == generic(store, direction, [], [root], depth)
            assert store.walk_lineage(direction, aids[:3], [], depth) == generic(store, direction, aids[:3], [], depth)
            # Roots of both kinds at once (the generic walk numbers generations its own way).
            assert store.walk_lineage(direction, aids[:2], eids[:2], depth) == generic(store, direction, aids[:2], eids[:2], depth)


def _chains(store: Store, chains: int, steps: int, side: int) -> int:
    """``bench_query``'s shape, small: chains of ``steps`` executions, each reading the previous
    artifact and ``side`` side inputs; returns the last artifact of the first chain."""
    arts: List[Artifact] = []
    edges = []
    execs = []
    for c in range(chains):
        arts.append(Artifact(schema.DATASET, f"c{c}/0:{len(arts):032x}", f"{len(arts):032x}", {"Commit": "x", "url": f"u{c}"}))
        for step in range(steps):
            execs.append(Execution("step", f"c{c}-{step}", {"Execution": f"step {step}", "Pipeline_id": c},
                                   {"lr": 0.25 * step, "big": 2**40 + step, "tag": "it's"}, state="COMPLETE"))
            edges.append((len(execs) - 1, len(arts) - 1, "INPUT", None))
            for k in range(side):
                arts.append(Artifact(schema.DATASET, f"c{c}/s{step}-{k}:{len(arts):032x}", f"{len(arts):032x}", custom={"k": k}))
                edges.append((len(execs) - 1, len(arts) - 1, "INPUT", None))
            arts.append(Artifact(schema.MODEL, f"c{c}/{step + 1}:{len(arts):032x}", f"{len(arts):032x}", {"Commit": "y"}))
            edges.append((len(execs) - 1, len(arts) - 1, "OUTPUT", None))
    _, aids = store.put_lineage(execs, arts, edges, [])
    return aids[len(arts) // chains - 1]


def test_lineage_records_match_a_bare_recursive_query(tmp_path: Path) -> None:
    """All ancestors through the SQL engine: the artifacts a bare recursive query over MLMD's
    Event table finds, each record equal to the one read on its own (the benchmark's check)."""
    from cmfrun import lineage

    path = tmp_path / "mlmd"
    store = connect(path, engine="sql")
    last = _chains(store, chains=3, steps=12, side=2)
    g = lineage.ancestors(store, artifact_ids=[last])
    conn = sqlite3.connect(path)
    bare = {r[0] for r in conn.execute(
        "WITH RECURSIVE up(aid) AS (SELECT ? UNION SELECT i.artifact_id FROM up JOIN Event o ON o.artifact_id = up.aid "
        "AND o.type = 4 JOIN Event i ON i.execution_id = o.execution_id AND i.type = 3) SELECT aid FROM up", (last,))}
    assert set(g.artifacts) == bare and len(bare) == 1 + 12 * 3
    assert max(g.execution_depth.values()) == 12 and len(g.edges) == 12 * 4 and not g.truncated
    for aid, art in g.artifacts.items():
        assert [art] == store.artifacts_by_id([aid])
    for eid, ex in g.executions.items():
        assert [ex] == store.executions_by_id([eid])
        assert isinstance(ex.custom["lr"], float) and ex.custom["big"] == 2**40 + int(ex.name.split("-")[1])
    if mlmd_installed():
        theirs = lineage.ancestors(connect(path, engine="mlmd", read_only=True), artifact_ids=[last])
        assert theirs == g


def test_records_are_built_like_their_constructor(tmp_path: Path) -> None:
    """The SQL engine builds records without running ``__init__`` (speed): every field set,
    values of the stored types, equal to the constructor's records; NULL names, uris and
    states written by other tools read as the defaults."""
    import dataclasses

    store = connect(tmp_path / "mlmd", engine="sql")
    _populate(store)
    conn = sqlite3.connect(tmp_path / "mlmd")
    with conn:
        conn.execute("UPDATE Artifact SET name = NULL, uri = NULL WHERE id = (SELECT MIN(id) FROM Artifact)")
        conn.execute("UPDATE Execution SET name = NULL, last_known_state = NULL WHERE id = (SELECT MIN(id) FROM Execution)")
    records: List[Any] = [*store.artifacts(), *store.executions(), *store.contexts_by_type(schema.STAGE_CONTEXT)]
    assert {type(r) for r in records} == {Artifact, Execution, Context}
    for r in records:
        assert set(vars(r)) == {f.name for f in dataclasses.fields(r)}
        assert r == dataclasses.replace(r) and hash(repr(r)) == hash(repr(dataclasses.replace(r)))
        with pytest.raises(dataclasses.FrozenInstanceError):
            r.name = "x"
    first_art = min(store.artifacts(), key=lambda a: a.id or 0)
    first_ex = min(store.executions(), key=lambda e: e.id or 0)
    assert (first_art.name, first_art.uri) == ("", "") and (first_ex.name, first_ex.state) == ("", "UNKNOWN")
    [train] = [e for e in store.executions() if e.custom.get("epochs") == 3]
    assert [type(train.custom[k]) for k in ("lr", "epochs", "big", "note")] == [float, int, float, str]


def test_execution_types_registered_in_one_batch(tmp_path: Path) -> None:
    """``ensure_execution_types`` (ingest registers a type per stage): new types get every CMF
    property, existing ones keep their id and gain the missing ones, in one transaction; a
    property of another data type is refused; ml-metadata reads the same types."""
    path = tmp_path / "mlmd"
    old = connect(path, engine="sql").ensure_type("execution", "s1", {"Execution": "STRING"})
    store = connect(path, engine="sql")
    conn = sqlite3.connect(path)
    store.ensure_execution_types([f"s{i}" for i in range(300)] + ["s1", "s2"])
    props = set(schema.EXECUTION_PROPERTIES)
    rows = conn.execute("SELECT t.id, t.name, p.name FROM Type t JOIN TypeProperty p ON p.type_id = t.id WHERE t.type_kind = 0 "
                        "AND t.name LIKE 's%'").fetchall()
    by_name: Dict[str, set] = {}
    for tid, name, prop in rows:
        by_name.setdefault(name, set()).add(prop)
    assert len(by_name) == 300 and all(p == props for p in by_name.values())
    assert {r[0] for r in rows if r[1] == "s1"} == {old} and store.ensure_type("execution", "s1", {}) == old
    other = connect(path, engine="sql")
    with other._writing():  # a type whose property has another data type than CMF's
        tid = other._insert("INSERT INTO `Type` (`name`, `type_kind`) VALUES (?, 0)", ("bad",))
        other._exec("INSERT INTO `TypeProperty` (`type_id`, `name`, `data_type`) VALUES (?, 'Execution', 1)", (tid,))
    with pytest.raises(errors.StoreError, match="another data type"):
        store.ensure_execution_types(["fine", "bad"])
    assert "fine" not in store.type_names("execution")  # the failed batch left nothing
    if mlmd_installed():
        names = connect(path, engine="mlmd", read_only=True).type_names("execution")
        assert {f"s{i}" for i in range(300)} <= set(names)


def test_put_contexts_batch_equals_one_by_one(tmp_path: Path) -> None:
    """``put_contexts`` (ingest's stage contexts, batched) stores what ``put_context`` one by one
    stores: same records, properties and parent links; an existing context in the batch is
    updated in place; ml-metadata reads the batch back the same."""
    def write(store: Store, batch: bool) -> List[Context]:
        pipe = store.put_context(Context(schema.PIPELINE_CONTEXT, "p", {"Pipeline": "p"}))
        old = store.put_context(Context(schema.STAGE_CONTEXT, "p/old", {"Pipeline_Stage": "p/old"}))
        ctxs = [Context(schema.STAGE_CONTEXT, f"p/s{i}", {"Pipeline_Stage": f"p/s{i}"}, {"n": i, "x": 0.5, "t": NASTY})
                for i in range(40)]
        ctxs.append(Context(schema.STAGE_CONTEXT, "p/old", {"Pipeline_Stage": "p/renamed"}, {"k": 1}, id=old))
        if batch:
            ids = store.put_contexts(ctxs, pipe)
        else:
            ids = [store.put_context(c, pipe) for c in ctxs]
        assert ids[-1] == old
        return [*store.child_contexts(pipe)]

    def key(c: Context) -> Any:
        return (c.type, c.name, dict(c.properties), dict(c.custom))

    one = write(connect(tmp_path / "one", engine="sql"), batch=False)
    path = tmp_path / "batch"
    batch = write(connect(path, engine="sql"), batch=True)
    assert sorted(map(key, batch)) == sorted(map(key, one)) and len(batch) == 41
    if mlmd_installed():
        theirs = connect(path, engine="mlmd", read_only=True)
        pipe = theirs.context(schema.PIPELINE_CONTEXT, "p")
        assert sorted(map(key, theirs.child_contexts(int(pipe.id or 0)))) == sorted(map(key, batch))  # type: ignore[union-attr]
