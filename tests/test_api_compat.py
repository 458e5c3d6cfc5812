"""CMF's own reader (cmflib 0.1.0's CmfQuery, in its own virtualenv) reads a store the API wrote.

Skips without a cmflib virtualenv (CMFRUN_CMFLIB_PYTHON), like tests/test_cmf_compat.py.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from cmfrun.api import Cmf
from tests.conftest import Project
from tests.test_cmf_compat import _read, cmflib_python  # noqa: F401  (fixture)


def test_cmflib_reads_an_api_store(project: Project, monkeypatch: pytest.MonkeyPatch, cmflib_python: str) -> None:  # noqa: F811
    project.git_init(remote="https://example.com/r.git")
    project.write("raw.csv", "a\n1\n")
    project.write("labels.csv", "l\n")
    project.write("model.pkl", "w")
    project.commit()
    monkeypatch.chdir(project.root)
    store = project.root / "mlmd"
    cmf = Cmf(filepath=str(store), pipeline_name="p")
    cmf.create_context("prepare")
    cmf.create_execution("Prepare", {"split": 0.2}, cmd="python prep.py")
    raw = cmf.log_dataset("raw.csv", "input", label="labels.csv")
    project.write("train.csv", "a\n1\n2\n")
    train = cmf.log_dataset("train.csv", "output")
    cmf.finalize()
    cmf.create_context("train")
    ex = cmf.create_execution("Train", {"lr": 0.1}, cmd="python train.py --lr 0.1")
    cmf.log_dataset("train.csv", "input")
    model = cmf.log_model("model.pkl", "output")
    metrics = cmf.log_execution_metrics("eval", {"auc": 0.9})
    for i in range(3):
        cmf.log_metric("loss", {"loss": 1.0 / (i + 1)})
    step = cmf.commit_metrics("loss")
    cmf.finalize()

    seen = _read(cmflib_python, Path(store), "p")
    assert seen["pipelines"] == ["p"] and seen["stages"] == ["p/prepare", "p/train"]
    [row] = seen["executions"]["p/train"]
    assert row["Execution"] == "python train.py --lr 0.1" and row["custom_properties_lr"] == 0.1
    arts = {a["name"]: a["event"] for a in seen["artifacts_by_execution"][str(ex.id)]}
    assert arts[train.name] == "INPUT" and arts[model.name] == "OUTPUT"
    assert arts[metrics.name] == "OUTPUT" and arts[step.name] == "OUTPUT"
    [producer] = [r for r in seen["executions_for_artifact"][model.name]]
    assert producer["pipeline"] == "p" and producer["stage"] == "p/train"
    assert raw.name in seen["parents"][model.name] and train.name in seen["parents"][model.name]
    assert train.name in seen["children"][raw.name]
    assert [s["name"] for s in seen["dump"]["Pipeline"][0]["stages"]] == ["p/prepare", "p/train"]
