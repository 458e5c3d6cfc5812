"""A store written by the `Cmf` API is read back correctly by cmfrun's own readers
(CmfQuery, the typed lineage API and the `cmf` CLI) on every backend."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cmfrun import lineage
from cmfrun.api import Cmf
from cmfrun.cli import cmf as cmf_cli
from cmfrun.query import CmfQuery
from cmfrun.store import connect
from tests.conftest import Project, cli_runner


def _write(project: Project, store_uri: str) -> dict:
    project.git_init()
    project.write("raw.csv", "a,b\n1,2\n")
    project.write("slices/one.csv", "1\n")
    project.commit()
    w = Cmf(filepath=store_uri, pipeline_name="api")
    w.create_context("prepare")
    w.create_execution("Prepare", {"split": 0.2}, cmd="python prep.py")
    w.log_dataset("raw.csv", "input")
    project.write("train.csv", "a,b\n1,2\n3,4\n")
    w.log_dataset("train.csv", "output")
    w.finalize()
    w.create_context("train")
    ex = w.create_execution("Train", {"lr": 0.1}, cmd="python train.py")
    w.log_dataset("train.csv", "input")
    project.write("model.pkl", "weights")
    model = w.log_model("model.pkl", "output", model_framework="sklearn")
    for step in range(3):
        w.log_metric("loss", {"loss": 1.0 / (step + 1)})
    w.commit_metrics("loss")
    ds = w.create_dataslice("slice-a")
    ds.add_data(str(project.root / "slices/one.csv"), {"k": 1})
    ds.commit()
    w.finalize()
    return {"model": model.name, "train_exec": ex.id}


def test_api_store_read_by_cmfrun_readers(
    project: Project, store_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project.root)
    if "://" not in store_uri:
        store_uri = str(project.root / "mlmd")
    names = _write(project, store_uri)

    q = CmfQuery(store_uri)
    assert q.get_pipeline_names() == ["api"]
    assert q.get_pipeline_stages("api") == ["api/prepare", "api/train"]
    [train] = q.get_all_exe_in_stage("api/train")
    assert train.properties["Execution"] == "python train.py" and train.state == "COMPLETE"
    arts = q.get_all_artifacts_for_execution(int(names["train_exec"]))
    assert set(arts["event"]) == {"INPUT", "OUTPUT"}
    parents = set(q.get_all_parent_artifacts(names["model"])["name"])
    assert any(n.startswith("raw.csv:") for n in parents) and any(n.startswith("train.csv:") for n in parents)
    metrics = q.get_metrics("loss")  # Q15: CMF's own get_metrics returns None here
    assert metrics is not None and list(metrics["loss"]) == [1.0, 0.5, pytest.approx(1 / 3)]

    store = connect(store_uri, create=False)
    [model] = [a for a in store.artifacts_by_type("Model")]
    graph = lineage.ancestors(store, artifact_ids=[int(model.id or 0)])
    assert {a.path for a in graph.artifacts.values()} >= {"raw.csv", "train.csv"}

    out = cli_runner().invoke(cmf_cli, ["lineage", "model.pkl", "--up", "--format", "json", "-f", store_uri])
    assert out.exit_code == 0, out.output
    assert "raw.csv" in json.dumps(json.loads(out.output))
