"""End to end: a real `dvc repro` in a git+DVC project, then `cmf dvc ingest`."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, Tuple

import pytest

from tests.conftest import cli_runner

from cmfrun.cli import cmf
from cmfrun.ingest.lockfile import read_lock
from cmfrun.store import connect

pytestmark = pytest.mark.e2e

PY = sys.executable
DVC_YAML = f"""\
stages:
  prepare:
    cmd: {PY} prepare.py raw.csv "data dir/clean.csv"
    deps: [raw.csv, prepare.py]
    params: [prepare.n]
    outs: ["data dir/clean.csv"]
  features:
    foreach: [a, b]
    do:
      cmd: {PY} make.py ${{item}}
      deps: ["data dir/clean.csv", make.py]
      outs: ["feat/${{item}}"]
  train:
    cmd: {PY} train.py
    deps: [feat/a, feat/b, train.py]
    params:
    - train
    - extra.json:
    outs: [model.pkl]
    metrics: [{{metrics.json: {{cache: false}}}}]
"""
PREPARE = """import sys, os, yaml
n = yaml.safe_load(open('params.yaml'))['prepare']['n']
os.makedirs('data dir', exist_ok=True)
open(sys.argv[2], 'w').write(open(sys.argv[1]).read() * n)
"""
MAKE = """import sys, os
os.makedirs(f'feat/{sys.argv[1]}', exist_ok=True)
for i in range(2):
    open(f'feat/{sys.argv[1]}/part{i}.txt', 'w').write(sys.argv[1] * (i + 1) + open('data dir/clean.csv').read())
"""
TRAIN = """import json
text = open('params.yaml').read()
open('model.pkl', 'w').write('model ' + text)
json.dump({'acc': len(text) / 100}, open('metrics.json', 'w'))
"""


def lock_view(root: Path) -> Dict[str, Dict[Tuple[str, str], str]]:
    lock = read_lock(root / "dvc.lock", root)
    out = {}
    for st in lock.stages:
        view = {(e.path, "INPUT"): e.md5 for e in st.deps}
        view.update({(e.path, "OUTPUT"): e.md5 for e in st.outs})
        out[st.name] = view
    return out


def store_view(store) -> Dict[str, Dict[Tuple[str, str], str]]:  # type: ignore[no-untyped-def]
    out = {}
    for e in store.executions():
        events = store.events_by_execution([e.id])
        arts = {a.id: a for a in store.artifacts_by_id([ev.artifact_id for ev in events])}
        out.setdefault(str(e.properties["Stage"]), []).append(
            {(arts[ev.artifact_id].path, ev.kind): arts[ev.artifact_id].uri for ev in events})
    return out  # type: ignore[return-value]


def test_dvc_repro_then_ingest_then_rerun(project, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    p = project.git_init().dvc_init()
    p.write("params.yaml", "prepare:\n  n: 3\ntrain:\n  lr: 1e-05\n  depth: 2\n")
    p.write("extra.json", '{"opt": {"name": "adam", "betas": [0.9, 0.99]}}')
    p.write("raw.csv", "a,b\n1,2\n")
    p.write("prepare.py", PREPARE)
    p.write("make.py", MAKE)
    p.write("train.py", TRAIN)
    p.write("dvc.yaml", DVC_YAML)
    p.commit("pipeline")
    p.dvc("repro", "-q")
    monkeypatch.chdir(p.root)
    store_path = str(p.root / "mlmd")
    runner = cli_runner()
    res = runner.invoke(cmf, ["dvc", "ingest", "-f", store_path, "-p", "e2e"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "executions 0 merged, 4 created" in res.stdout

    store = connect(store_path)
    lock = lock_view(p.root)
    recorded = store_view(store)
    assert set(recorded) == set(lock) == {"prepare", "features@a", "features@b", "train"}
    for name, expected in lock.items():
        assert recorded[name] == [expected]
    # Types from dvc.yaml: the model is a Model, the metrics file Metrics, the directory outs Datasets.
    types = {a.path: a.type for a in store.artifacts()}
    assert types["model.pkl"] == "Model" and types["metrics.json"] == "Metrics" and types["feat/a"] == "Dataset"
    train = [e for e in store.executions() if e.properties["Stage"] == "train"][0]
    assert train.custom["train.lr"] == 1e-05 and train.custom["train.depth"] == 2
    assert train.custom["extra.json:opt.name"] == "adam" and train.custom["extra.json:opt.betas"] == "[0.9, 0.99]"
    n_exec, n_art = len(store.executions()), len(store.artifacts())

    # Change one stage's params: only train re-runs, ingest adds exactly its execution.
    p.write("params.yaml", "prepare:\n  n: 3\ntrain:\n  lr: 0.0001\n  depth: 2\n")
    p.dvc("repro", "-q")
    res = runner.invoke(cmf, ["dvc", "ingest", "-f", store_path, "-p", "e2e", "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    store = connect(store_path)
    assert len(store.executions()) == n_exec + 1
    assert len(store.artifacts()) == n_art + 2  # new model.pkl and metrics.json contents
    recorded = store_view(store)
    assert len(recorded["train"]) == 2 and lock_view(p.root)["train"] in recorded["train"]
    assert all(len(recorded[s]) == 1 for s in ("prepare", "features@a", "features@b"))
    res = runner.invoke(cmf, ["dvc", "ingest", "-f", store_path, "-p", "e2e"], catch_exceptions=False)
    assert "0 created, 4 unchanged" in res.stdout


def test_ingest_merges_into_what_cmfrun_recorded_under_dvc(project, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Stages run through `cmfrun --` inside dvc.yaml: ingest merges, never duplicates."""
    import shutil as _shutil

    cmfrun_exe = _shutil.which("cmfrun") or str(Path(sys.executable).parent / "cmfrun")
    p = project.git_init().dvc_init()
    p.write("raw.csv", "a\n")
    p.write("params.yaml", "train:\n  lr: 0.1\n")
    p.write("dvc.yaml", f"""\
stages:
  prep:
    cmd: {cmfrun_exe} -- {PY} -c "open('clean.csv','w').write(open('raw.csv').read()*2)"
    deps: [raw.csv]
    outs: [clean.csv]
  train:
    cmd: {cmfrun_exe} -- {PY} -c "open('model.pkl','w').write(open('clean.csv').read()+'m')"
    deps: [clean.csv]
    params: [train.lr]
    outs: [model.pkl]
""")
    p.commit("pipeline")
    p.dvc("repro", "-q")
    monkeypatch.chdir(p.root)
    res = cli_runner().invoke(cmf, ["dvc", "ingest", "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    import json

    data = json.loads(res.stdout)
    assert data["executions_created"] == 0 and data["executions_merged"] == 2
    assert {s["matched_by"] for s in data["plan"]} == {"stage"}
    store = connect(p.root / "mlmd")
    assert len(store.executions()) == 2
    recorded = store_view(store)
    for name, expected in lock_view(p.root).items():
        [view] = recorded[name]
        assert {k: v for k, v in view.items() if not k[0].startswith("cmf_artifacts/")} == expected
    again = cli_runner().invoke(cmf, ["dvc", "ingest"], catch_exceptions=False)
    assert "0 merged, 0 created, 2 unchanged" in again.stdout
