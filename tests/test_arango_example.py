"""The ArangoML-style example runs end to end: a real `cmfrun --` pipeline (scikit-learn),
then project, dataset, featureset, model (by path), deployment and serving performance,
and the example's answers to the four questions come from the store."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import cli_runner

from cmfrun.cli import cmf

EXAMPLE = Path(__file__).resolve().parent.parent / "example-get-started" / "arango_example.py"

pytestmark = pytest.mark.e2e


def test_arango_example(tmp_path: Path) -> None:
    pytest.importorskip("sklearn", reason="the example needs scikit-learn (example-get-started/requirements.txt)")
    dest = tmp_path / "arango"
    proc = subprocess.run([sys.executable, str(EXAMPLE), str(dest), "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    answers = json.loads(proc.stdout)
    assert answers["models_from_raw"] == ["model.pkl"]
    assert answers["deployments_from_raw"] == ["prod"]
    perf = answers["performance"]
    assert perf["model"].startswith("model.pkl:")
    # Development numbers are the evaluate stage's metrics.json, as the stage wrote it.
    metrics = json.loads((dest / "metrics.json").read_text())
    [dev] = perf["development"]
    assert dev["stage"] == "evaluate" and dev["metrics"] == metrics
    assert perf["serving"] == [{"accuracy": 0.951, "latency_ms": 11.8}, {"accuracy": 0.937, "latency_ms": 12.4}]
    assert answers["techniques"] == {
        "feature_engineering": ["standardisation"],
        "modelling": ["random forest", "RandomForestClassifier"],
    }
    # The same facts through the CLI, and lineage from the raw data to the serving numbers.
    store = str(dest / "mlmd")
    runner = cli_runner()
    res = runner.invoke(cmf, ["deployment", "show", "prod", "-f", store, "--json"])
    assert res.exit_code == 0, res.output
    shown = json.loads(res.output)
    assert shown["datasets"] == ["data/features", "data/prepared", "data/raw.csv"]
    assert shown["deployment"]["attributes"] == {"endpoint": "/predict", "status": "active"}
    res = runner.invoke(cmf, ["lineage", str(dest / "data" / "raw.csv"), "--down", "--format", "json", "-f", store])
    assert res.exit_code == 0, res.output
    down = json.loads(res.output)
    text = json.dumps(down)
    for name in ("model.pkl", "prod", "serving_perf", "metrics.json"):
        assert name in text, name
