"""ArangoML-style entities on MLMD: registration, runs, deployments, serving performance,
lookups and the four questions, on real stores (SQLite, PostgreSQL, MariaDB), through the
API and the CLI; records readable by the ordinary commands with no special cases."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import cli_runner

from cmfrun import schema
from cmfrun.api import Cmf
from cmfrun.cli import cmf
from cmfrun.errors import NotFoundError, UsageError
from cmfrun.integrations.arango import ArangoPipe
from cmfrun.store import connect


def _flow(ml: ArangoPipe) -> None:
    ml.register_project({"name": "housing", "owner": "ds-team"})
    ds = ml.register_dataset({"name": "cal-housing", "source": "census 1990"})
    ml.register_dataset("holdout")
    fs = ml.register_featureset({"name": "log-features", "technique": "log transform"}, "cal-housing")
    ml.register_featureset({"name": "poly-features", "technique": "polynomial features"}, ds)
    lasso = ml.register_model({"name": "lasso", "technique": "lasso regression", "task": "regression"})
    ml.register_model({"name": "gbm", "model_type": "GradientBoostingRegressor"})
    ml.log_run(ds, fs, lasso, {"alpha": 0.1, "max_iter": 500}, {"rmse": 0.52, "r2": 0.61}, "lasso-v1", deployment_tag="prod")
    ml.log_run("cal-housing", "poly-features", "gbm", {"n_estimators": 200}, {"rmse": 0.47}, "gbm-v1")
    ml.register_deployment("prod", status="active")
    ml.log_serving_perf("prod", {"rmse": 0.55}, period="2026-W48")
    ml.log_serving_perf("prod", {"rmse": 0.58}, period="2026-W49")


def test_entities_and_the_four_questions(store_uri: str) -> None:
    store = connect(store_uri)
    ml = ArangoPipe(store)
    _flow(ml)

    # 1. models derived from a dataset; 2. deployments serving a model trained on it.
    assert sorted(a.path for a in ml.models_from_dataset("cal-housing")) == ["gbm", "lasso"]
    assert ml.models_from_dataset("holdout") == []
    assert [a.path for a in ml.deployments_from_dataset("cal-housing")] == ["prod"]
    assert [a.path for a in ml.deployments_from_dataset("log-features")] == ["prod"]
    assert ml.deployments_from_dataset("poly-features") == []
    # 3. development vs serving performance of the deployment.
    perf = ml.performance("prod")
    assert perf.model.startswith("lasso:")
    assert perf.development == (("run", {"rmse": 0.52, "r2": 0.61}),)
    assert perf.serving == ({"rmse": 0.55}, {"rmse": 0.58})
    # 4. feature-engineering and modelling techniques of the project.
    tech = ml.techniques()
    assert set(tech.feature_engineering) == {"log transform", "polynomial features"}
    assert set(tech.modelling) == {"lasso regression", "GradientBoostingRegressor"}

    # Lookups, find_entity.
    assert ml.lookup_dataset("cal-housing").attributes["source"] == "census 1990"
    assert ml.lookup_featureset("log-features").type == schema.DATASET
    assert ml.lookup_model("gbm").properties["model_type"] == "GradientBoostingRegressor"
    assert ml.lookup_modelparams("lasso-v1") == {"alpha": 0.1, "max_iter": 500}
    assert ml.lookup_modelperf("gbm-v1") == {"rmse": 0.47}
    assert [e.name for e in ml.find_entity("technique", "lasso regression")] == ["lasso"]
    assert [e.name for e in ml.find_entity("kind", "deployment")] == ["prod"]
    assert {e.name for e in ml.find_entity("kind", "run")} == {"lasso-v1", "gbm-v1"}
    assert ml.find_entity("technique", "no such thing") == []


def test_records_follow_the_cmf_contract(sqlite_uri: str) -> None:
    store = connect(sqlite_uri)
    _flow(ArangoPipe(store))
    pipe = store.context(schema.PIPELINE_CONTEXT, "housing")
    assert pipe is not None and pipe.properties["Pipeline"] == "housing"
    stages = {c.name for c in store.child_contexts(int(pipe.id or 0))}
    assert stages == {f"housing/{s}" for s in ("register", "featureset", "run", "deploy", "serve")}
    for ex in store.executions():
        assert set(schema.CMF_EXECUTION_PROPERTIES) <= set(ex.properties), ex
        [ctx] = store.contexts_by_execution(int(ex.id or 0))
        assert ctx.name == ex.properties["Context_Type"] == f"housing/{ex.type}"
        assert ex.state == "COMPLETE" and ex.name == ex.properties["Execution_uuid"]
    for art in store.artifacts():
        assert store.contexts_by_artifact(int(art.id or 0)), art  # attributed to a project stage
        assert art.name.split(":", 1)[1].startswith(art.uri), art  # <path>:<uri>[:<creator>]
    dep = store.artifacts_by_type("Deployment")
    assert [a.path for a in dep] == ["prod"]
    # The ordinary commands show them with no special cases.
    runner = cli_runner()
    res = runner.invoke(cmf, ["execution", "list", "-p", "housing", "-f", sqlite_uri, "--json"])
    assert res.exit_code == 0, res.output
    assert [e["stage"] for e in json.loads(res.output)] == ["featureset", "featureset", "run", "run", "deploy", "serve", "serve"]
    res = runner.invoke(cmf, ["lineage", "prod", "--up", "-f", sqlite_uri])
    assert res.exit_code == 0 and "cal-housing" in res.output and "lasso" in res.output, res.output


def test_idempotent_registration_and_links(sqlite_uri: str) -> None:
    store = connect(sqlite_uri)
    ml = ArangoPipe(store)
    _flow(ml)
    n_exec, n_art = len(store.executions()), len(store.artifacts())
    assert ml.register_dataset({"name": "cal-housing", "source": "census 1990"}).id == ml.lookup_dataset("cal-housing").id
    assert ml.register_featureset("log-features", "cal-housing").id == ml.lookup_featureset("log-features").id
    assert ml.register_deployment("prod").id == ml.lookup_deployment("prod").id
    assert (len(store.executions()), len(store.artifacts())) == (n_exec, n_art)
    # link_entities: an edge the other calls do not make, visible to lineage.
    ml.link_entities("cal-housing", "holdout", relation="split")
    assert [a.path for a in ml.models_from_dataset("holdout")] == []
    from cmfrun import lineage

    down = lineage.descendants(store, artifact_ids=[ml.lookup_dataset("cal-housing").id])
    assert "holdout" in {a.path for a in down.related_artifacts()}
    assert [e.kind for e in ml.find_entity("relation", "split")] == ["link"]


def test_bad_input(sqlite_uri: str) -> None:
    store = connect(sqlite_uri)
    ml = ArangoPipe(store)
    with pytest.raises(UsageError, match="no project"):
        ml.register_dataset("x")
    _flow(ml)
    with pytest.raises(NotFoundError, match="no dataset 'nope'"):
        ml.register_featureset("f", "nope")
    with pytest.raises(NotFoundError, match="neither a file nor an artifact"):
        ml.register_model({"name": "m", "path": "does/not/exist.pkl"})
    with pytest.raises(NotFoundError, match="no run was logged"):
        ml.register_deployment("staging")
    with pytest.raises(UsageError, match="not a Model"):
        ml.register_deployment("staging", model="cal-housing")
    with pytest.raises(UsageError, match="at least one metric"):
        ml.log_serving_perf("prod", {})
    with pytest.raises(UsageError, match="without ':'"):
        ml.register_dataset("a:b")
    with pytest.raises(NotFoundError, match="no run tagged"):
        ml.lookup_modelparams("nope")


@pytest.fixture
def cmf_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A model logged with the CMF API (its training metrics too), outside any project."""
    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    (root / "data" / "train.csv").write_text("x,y\n1,2\n3,4\n")
    (root / "model.pkl").write_bytes(b"\x80\x04 a pickled model")
    monkeypatch.chdir(root)
    store_path = str(root / "mlmd")
    c = Cmf(filepath=store_path, pipeline_name="training", root=root)
    c.create_context(pipeline_stage="train")
    c.create_execution(execution_type="Train", custom_properties={"lr": 0.01})
    c.log_dataset("data/train.csv", "input")
    model = c.log_model("model.pkl", "output", model_framework="sklearn")
    c.log_execution_metrics("training_metrics", {"auc": 0.91})
    c.finalize()
    return root, store_path, model


def test_cli_deployment_of_a_recorded_model(cmf_model: Any) -> None:
    root, store_path, model = cmf_model
    runner = cli_runner()
    base = ["-f", store_path]
    res = runner.invoke(cmf, ["deployment", "register", "prod", "-p", "shop", "--model", model.uri[:12], "-a", "status=active", *base])
    assert res.exit_code == 2 and "no model" in res.stderr, res.output  # a hash prefix is no reference
    res = runner.invoke(cmf, ["deployment", "register", "prod", "-p", "shop", "--model", model.uri, "-a", "status=active", *base])
    assert res.exit_code == 0, res.output + res.stderr
    assert "deployment 'prod' of model model.pkl:" in res.output
    res = runner.invoke(cmf, ["deployment", "register", "canary", "-p", "shop", "--model", "model.pkl", *base])
    assert res.exit_code == 0, res.output + res.stderr
    res = runner.invoke(cmf, ["serving-perf", "log", "prod", "auc=0.88", "latency_ms=9", "-a", "period=w49", *base])
    assert res.exit_code == 0, res.output + res.stderr
    res = runner.invoke(cmf, ["deployment", "list", *base, "--json"])
    assert res.exit_code == 0
    listed = json.loads(res.output)
    assert [(d["project"], d["tag"], d["serving_records"]) for d in listed] == [("shop", "prod", 1), ("shop", "canary", 0)]
    assert listed[0]["model_hash"] == model.uri and listed[0]["attributes"] == {"status": "active"}
    res = runner.invoke(cmf, ["deployment", "show", "prod", *base, "--json"])
    assert res.exit_code == 0, res.output
    shown = json.loads(res.output)
    assert shown["datasets"] == ["data/train.csv"]
    assert shown["development"] == [["train", {"auc": 0.91}]]
    assert shown["serving"] == [{"auc": 0.88, "latency_ms": 9}]
    res = runner.invoke(cmf, ["deployment", "show", "prod", *base])
    assert res.exit_code == 0 and "serving performance:\n  auc=0.88, latency_ms=9" in res.output
    # Bad input: one line, exit 2, nothing written.
    n = len(connect(store_path).executions())
    for args, text in (
        (["deployment", "show", "nope"], "no deployment 'nope'"),
        (["serving-perf", "log", "prod", "auc"], "must be KEY=VALUE"),
        (["deployment", "register", "x", "-p", "shop", "--model", "no/such/model.pkl"], "no model 'no/such/model.pkl'"),
        (["deployment", "list", "-p", "nope"], "no project 'nope'"),
    ):
        res = runner.invoke(cmf, [*args, *base])
        assert res.exit_code == 2, (args, res.output)
        assert text in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert len(connect(store_path).executions()) == n
    # A path names the bytes on disk: changed bytes were never recorded, so they are no model;
    # once the file is gone, the path names its newest recorded version.
    (root / "model.pkl").write_bytes(b"retrained, not recorded")
    res = runner.invoke(cmf, ["deployment", "register", "late", "-p", "shop", "--model", "model.pkl", *base])
    assert res.exit_code == 2 and "no model 'model.pkl'" in res.stderr, res.output
    (root / "model.pkl").unlink()
    res = runner.invoke(cmf, ["deployment", "register", "late", "-p", "shop", "--model", "model.pkl", *base, "--json"])
    assert res.exit_code == 0, res.output + res.stderr
    assert json.loads(res.output)["model_hash"] == model.uri


def test_cmflib_reads_the_entities(sqlite_uri: str) -> None:
    """CMF's own reader (cmflib 0.1.0's CmfQuery, in its own venv) sees the project as a
    pipeline, its executions per stage, and lineage from the dataset to the serving numbers."""
    import os
    import subprocess

    python = os.environ.get("CMFRUN_CMFLIB_PYTHON", "")
    if not (python and Path(python).exists()):
        if os.environ.get("CMFRUN_REQUIRE_SERVICES") == "1":
            pytest.fail("CMFRUN_CMFLIB_PYTHON is not set: CI must run the cmflib compatibility test")
        pytest.skip("no cmflib virtualenv (set CMFRUN_CMFLIB_PYTHON; `make test` builds one)")
    store = connect(sqlite_uri)
    ml = ArangoPipe(store)
    _flow(ml)
    reader = Path(__file__).parent / "compat" / "cmflib_reader.py"
    proc = subprocess.run([python, str(reader), sqlite_uri, "housing"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["pipelines"] == ["housing"]
    assert set(seen["stages"]) == {f"housing/{s}" for s in ("register", "featureset", "run", "deploy", "serve")}
    assert [e["Execution"] for e in seen["executions"]["housing/deploy"]] == ["register_deployment prod lasso"]
    assert len(seen["executions"]["housing/serve"]) == 2
    dep = ml.lookup_deployment("prod")
    dep_name = store.artifacts_by_id([dep.id])[0].name
    rows = seen["executions_for_artifact"][dep_name]  # made by deploy, read by each serve
    assert sorted(r["stage"] for r in rows) == ["housing/deploy", "housing/serve", "housing/serve"]
    assert {r["pipeline"] for r in rows} == {"housing"}
    serving = [a for a in seen["artifacts"] if a.startswith("serving_perf:")]
    assert len(serving) == 2
    for name in serving:
        parents = seen["parents"][name]
        assert dep_name in parents and any(p.startswith("lasso:") for p in parents)
        assert any(p.startswith("cal-housing:") for p in parents), parents
    stages = {s["name"] for s in seen["dump"]["Pipeline"][0]["stages"]}
    assert "housing/deploy" in stages
