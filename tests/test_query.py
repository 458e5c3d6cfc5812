"""CmfQuery (CMF-compatible) on real stores: names and frame shapes as cmflib, Q14/Q15/Q17 fixed."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from cmfrun import CmfQuery, errors, schema
from cmfrun.records import Execution
from cmfrun.recorder import FileRef, RunRecord, new_uuid, record_run
from cmfrun.store import connect
from test_query_store import H, build


@pytest.fixture
def q(sqlite_uri: str):
    ids = build(sqlite_uri)
    return CmfQuery(sqlite_uri), ids


def name_of(query: CmfQuery, key: str) -> str:
    [a] = query.store.artifacts_by_uri([H[key]])
    return a.name


def test_every_backend_reads_pipelines_and_stages(store_uri: str) -> None:
    build(store_uri)
    query = CmfQuery(store_uri)
    assert sorted(query.get_pipeline_names()) == ["demo", "other"]
    assert query.get_pipeline_id("demo") > 0 and query.get_pipeline_id("nope") == -1
    assert sorted(query.get_pipeline_stages("demo")) == sorted(
        ["demo/split", "demo/feat_a", "demo/feat_b", "demo/train", "demo/evaluate"])
    parents = query.get_all_parent_artifacts(name_of(query, "model"))
    assert sorted(parents["name"].str.split(":").str[0]) == [
        "data/a.csv", "data/b.csv", "data/raw.csv", "feat/fa.csv", "feat/fb.csv"]


def test_missing_store_is_an_error_not_a_new_file(tmp_path: Path) -> None:
    with pytest.raises(errors.NotFoundError, match="does not exist"):
        CmfQuery(str(tmp_path / "nope"))
    assert not (tmp_path / "nope").exists()


def test_executions_in_stage_frame_shape(q) -> None:
    query, ids = q
    exes = query.get_all_exe_in_stage("demo/train")
    assert [e.id for e in exes] == [ids["train"], ids["failed"], ids["train2"]]
    assert all(isinstance(e, Execution) for e in exes)
    assert query.get_all_exe_in_stage("train") == []  # full stage names only, as CMF
    df = query.get_all_executions_in_stage("demo/train")
    assert list(df.columns) == sorted(df.columns)
    for col in ("id", "name", "Execution", "Execution_uuid", "Context_Type", "Pipeline_Type", "Git_Start_Commit",
                "custom_properties_train.lr"):
        assert col in df.columns
    assert list(df["custom_properties_train.lr"]) == [0.1, 9.0, 0.2]
    assert list(df.index) == [0, 1, 2]
    assert query.get_all_executions_in_stage("nope").empty


def test_artifacts_for_execution_and_executions_for_artifact(q) -> None:
    query, ids = q
    df = query.get_all_artifacts_for_execution(ids["train"])
    assert sorted(zip(df["event"], df["name"].str.split(":").str[0])) == [
        ("INPUT", "feat/fa.csv"), ("INPUT", "feat/fb.csv"), ("OUTPUT", "model.pkl")]
    for col in ("id", "type", "uri", "name", "create_time_since_epoch", "last_update_time_since_epoch", "url", "Commit"):
        assert col in df.columns
    ex = query.get_all_executions_for_artifact(name_of(query, "raw"))
    assert list(ex.columns) == sorted(["Type", "execution_id", "execution_name", "execution_type_name", "stage", "pipeline"])
    assert sorted(ex["pipeline"]) == ["demo", "other"]
    assert all(isinstance(v, str) for v in ex["execution_type_name"])  # Q14 fixed
    assert set(ex["execution_type_name"]) == {"demo/split", "other/report"}
    assert query.get_all_executions_for_artifact("nope").empty


def test_artifact_lookups(q) -> None:
    query, _ = q
    names = query.get_all_artifacts()
    assert len(names) == 9 and name_of(query, "raw") in names
    df = query.get_artifact(name_of(query, "raw"))
    assert df.shape[0] == 1 and df["uri"][0] == H["raw"] and df["type"][0] == "Dataset"
    assert query.get_artifact("nope") is None
    assert "Model" in query.get_all_artifact_types()
    by_ctx = query.get_all_artifacts_by_context("other")
    # Attribution to the stages that logged it: the shared raw.csv is attributed to other/report too.
    assert sorted(by_ctx["name"].str.split(":").str[0]) == ["data/raw.csv", "report.txt"]


def test_one_hop_and_all_lineage(q) -> None:
    query, ids = q
    model = name_of(query, "model")
    parents = query.get_one_hop_parent_artifacts(model)
    assert sorted(parents["uri"]) == sorted([H["fa"], H["fb"]])
    children = query.get_one_hop_child_artifacts(name_of(query, "fa"))
    assert sorted(children["uri"]) == sorted([H["model"], H["model2"]])
    only_other = query.get_one_hop_child_artifacts(name_of(query, "raw"), pipeline_id=query.get_pipeline_id("other"))
    assert list(only_other["uri"]) == [H["report"]]
    kids = query.get_all_child_artifacts(name_of(query, "raw"))
    assert H["metrics"] in set(kids["uri"]) and H["report"] in set(kids["uri"])
    assert kids["id"].is_unique
    producer = query.find_producer_execution(model)
    assert producer is not None and producer.id == ids["train"]
    assert query.find_producer_execution(name_of(query, "raw")) is None
    assert query.find_producer_execution("nope") is None
    pe = query.get_all_parent_executions(model)
    assert sorted(pe["id"]) == sorted([ids["split"], ids["feat_a"], ids["feat_b"]])
    assert query.get_all_parent_artifacts("nope").empty


def test_dumptojson_matches_cmf_shape(q) -> None:
    query, ids = q
    data = json.loads(query.dumptojson("demo"))
    [pipe] = data["Pipeline"]
    assert pipe["name"] == "demo" and pipe["properties"] == {"Pipeline": "demo"}
    assert [s["name"] for s in pipe["stages"]] == query.get_pipeline_stages("demo")
    train = next(s for s in pipe["stages"] if s["name"] == "demo/train")
    first = train["executions"][0]
    assert first["type"] == "train" and first["properties"]["Execution"] == "python train.py --lr 0.1"
    assert {"Context_Type", "Execution", "Execution_uuid"} <= set(first["properties"])
    kinds = sorted((ev["type"], ev["artifact"]["type"]) for ev in first["events"])
    assert kinds == [(3, "Dataset"), (3, "Dataset"), (4, "Model")]
    art = first["events"][0]["artifact"]
    assert {"id", "name", "uri", "type", "properties", "custom_properties", "create_time_since_epoch"} <= set(art)
    one = json.loads(query.dumptojson("demo", ids["train"]))
    assert sum(len(s["executions"]) for s in one["Pipeline"][0]["stages"]) == 1
    assert json.loads(query.dumptojson("nope")) == {"Pipeline": []}


def test_get_metrics_reads_the_step_metrics_parquet(tmp_path: Path) -> None:
    uri = str(tmp_path / "mlmd")
    store = connect(uri)
    u = new_uuid()
    rel = f"cmf_artifacts/{u}/metrics/training_metrics"
    frame = pd.DataFrame({"loss": [0.9, 0.5, 0.2]}, index=pd.Index([1, 2, 3], name="SequenceNumber"))
    (tmp_path / rel).parent.mkdir(parents=True)
    frame.to_parquet(tmp_path / rel)
    record_run(store, RunRecord("p", "train", "python t.py", u, outputs=[FileRef(rel, "e" * 32, type=schema.STEP_METRICS)]))
    query = CmfQuery(uri)
    [art] = store.artifacts_by_type(schema.STEP_METRICS)
    for ref in (art.name, rel, "training_metrics"):
        df = query.get_metrics(ref)
        assert df is not None and list(df["loss"]) == [0.9, 0.5, 0.2] and df.index.name == "SequenceNumber"
    assert query.get_metrics("nope") is None
    (tmp_path / rel).unlink()
    with pytest.raises(errors.NotFoundError, match="training_metrics"):
        query.get_metrics(art.name)
    (tmp_path / "slice").parent.mkdir(exist_ok=True)
    pd.DataFrame({"hash": ["h1"]}, index=pd.Index(["data/x/a.csv"], name="Path")).to_parquet(tmp_path / "slice")
    assert list(CmfQuery.read_dataslice(str(tmp_path / "slice"))["hash"]) == ["h1"]
    with pytest.raises(errors.NotFoundError):
        CmfQuery.read_dataslice(str(tmp_path / "no-slice"))


def test_without_pandas_dataframe_methods_fail_clearly(q, monkeypatch) -> None:
    query, _ = q
    monkeypatch.setitem(sys.modules, "pandas", None)  # what an install without the extra looks like
    assert query.get_pipeline_names()  # list methods still work
    with pytest.raises(errors.UsageError, match=r"cmfrun\[query\]"):
        query.get_all_executions_in_stage("demo/train")
