"""The store module against real SQLite, PostgreSQL and MariaDB stores."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cmfrun import errors, schema
from cmfrun.records import COMPLETE, INPUT, OUTPUT, Artifact, Execution, Link
from cmfrun.recorder import FileRef, RunRecord, new_uuid, record_run
from cmfrun.store import connect, parse_location
from tests.conftest import installed_engines

ENGINES = installed_engines()


@pytest.fixture(autouse=True, params=ENGINES)
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs on each store engine installed (ml-metadata and plain SQL)."""
    monkeypatch.setenv("CMFRUN_ENGINE", request.param)
    return str(request.param)


def test_round_trip_and_atomic_execution(store_uri: str) -> None:
    store = connect(store_uri)
    run = RunRecord(
        pipeline="p",
        stage="train",
        command="python train.py --lr 0.1",
        uuid=new_uuid(),
        execution_name="run-1",
        inputs=[FileRef("data/a.csv", "a" * 32, size=10)],
        outputs=[FileRef("model.pkl", "b" * 32, type=schema.MODEL)],
        custom={"lr": 0.1, "epochs": 3},
    )
    res = record_run(store, run)
    again = record_run(store, run)
    assert again.already_recorded and again.execution_id == res.execution_id
    [ex] = store.executions_by_id([res.execution_id])
    assert ex.state == COMPLETE
    assert ex.properties["Execution"] == "python train.py --lr 0.1"
    assert ex.properties["Context_Type"] == "p/train"
    assert ex.custom == {"lr": 0.1, "epochs": 3}
    events = store.events_by_execution([res.execution_id])
    assert sorted(e.kind for e in events) == [INPUT, OUTPUT]
    model = store.artifacts_by_uri(["b" * 32])[0]
    assert model.type == "Model" and model.name == f"model.pkl:{'b' * 32}:{run.uuid}"
    assert [c.name for c in store.contexts_by_type(schema.PIPELINE_CONTEXT)] == ["p"]


def test_same_hash_is_one_artifact_across_pipelines(store_uri: str) -> None:
    store = connect(store_uri)
    h = "c" * 32
    for pipe in ("p1", "p2"):
        record_run(store, RunRecord(pipe, "s", "cmd", new_uuid(), inputs=[FileRef("d.csv", h)]))
    [art] = store.artifacts_by_uri([h])
    assert art.properties["url"] == f"p1:{h},p2:{h}"
    assert len(store.events_by_artifact([art.id])) == 2


def test_bad_locations(tmp_path: Path) -> None:
    with pytest.raises(errors.StoreURIError, match="directory"):
        connect(tmp_path)
    with pytest.raises(errors.StoreURIError, match="scheme"):
        connect("ftp://host/db")
    with pytest.raises(errors.StoreURIError, match="does not exist"):
        connect(tmp_path / "missing" / "mlmd")
    bad = tmp_path / "bad"
    bad.write_text("not a database at all")
    with pytest.raises(errors.CorruptStoreError):
        connect(bad)
    with pytest.raises(errors.NotFoundError):
        connect(tmp_path / "absent", create=False)


def test_unreachable_server_is_one_clear_error(engine: str) -> None:
    if engine == "sql":
        from cmfrun.store import sql

        if "postgresql" not in sql.BACKENDS:
            pytest.skip("the sql store engine does not support postgresql yet")
    with pytest.raises(errors.StoreUnavailableError, match="cannot reach"):
        connect("postgresql://postgres@127.0.0.1:1/x")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_file(tmp_path: Path) -> None:
    path = tmp_path / "mlmd"
    connect(path)
    path.chmod(stat.S_IRUSR)
    with pytest.raises(errors.ReadOnlyStoreError):
        connect(path)


def test_read_only_open_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "mlmd"
    connect(path)
    ro = connect(path, read_only=True)
    with pytest.raises(errors.ReadOnlyStoreError):
        record_run(ro, RunRecord("p", "s", "cmd", new_uuid()))


def test_parse_location() -> None:
    loc = parse_location("postgresql://u:p%40ss@db.example:6543/meta")
    assert (loc.backend, loc.host, loc.port, loc.user, loc.password, loc.database) == (
        "postgresql", "db.example", 6543, "u", "p@ss", "meta")
    assert parse_location("mysql://root@h/db").port == 3306
    assert parse_location("x/mlmd").backend == "sqlite"


def test_large_numbers_fit_every_backend(store_uri: str) -> None:
    """MLMD's int column is 32-bit on PostgreSQL/MySQL: epoch ms and sizes > 2**31 must still write."""
    store = connect(store_uri)
    big = 2**40 + 3
    run = RunRecord(
        "p", "s", "cmd", new_uuid(),
        properties={"Start_Time_ms": 1795425259494, "End_Time_ms": 1795425259999, "Exit_Code": 0},
        inputs=[FileRef("big.bin", "d" * 32, size=big)],
    )
    res = record_run(store, run)
    [ex] = store.executions_by_id([res.execution_id])
    assert ex.properties["Start_Time_ms"] == 1795425259494
    assert ex.properties["Exit_Code"] == 0
    [art] = store.artifacts_by_uri(["d" * 32])
    assert art.custom["size"] == big


def test_unlinked_records_have_no_contexts(store_uri: str) -> None:
    """A record with no association/attribution (what a crash between a lineage write and its
    links leaves) reads as linked to nothing on both engines, not as an error (ml-metadata
    answers NotFound there), and ``associated`` tells it apart; merges rely on both to repair
    such records."""
    store = connect(store_uri)
    ex = Execution("Loop", properties={"Execution_uuid": new_uuid()})
    art = Artifact(schema.DATASET, "d.csv:abc", "abc", properties={"url": "p:abc"})
    [eid], [aid] = store.put_lineage([ex], [art], [(0, 0, OUTPUT, None)], [])
    assert store.contexts_by_execution(eid) == [] and store.contexts_by_artifact(aid) == []
    stage = store.get_or_create_context(schema.STAGE_CONTEXT, "p/s", {"Pipeline_Stage": "p/s"}, {})
    other = store.get_or_create_context(schema.STAGE_CONTEXT, "p/t", {"Pipeline_Stage": "p/t"}, {})
    [linked], _ = store.put_lineage([Execution("Loop", properties={"Execution_uuid": new_uuid()})], [], [], [int(stage.id or 0)])
    sid, oid = int(stage.id or 0), int(other.id or 0)
    assert store.associated({eid: sid, linked: sid}) == {linked}
    assert store.associated({linked: oid}) == set()  # linked, but to another context
