"""End to end: the example pipeline from a clean copy, recorded with no code changes.

Real git, real ``dvc repro`` with every stage wrapped in ``cmfrun --``, real
``cmf dvc ingest``, the CMF-style explicit-API script, and the demo script the
README starts with. Results are checked by reading the MLMD store directly.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Set

import pytest
import yaml

from cmfrun.records import INPUT, OUTPUT, Artifact, Execution
from cmfrun.store import Store, connect

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "example-get-started"
PIPELINE = "get-started"
STAGES = ("prepare", "featurize", "train", "evaluate")
EXPLICIT_STAGE = "train-explicit"
BIN = Path(sys.executable).parent

pytest.importorskip("sklearn", reason="the example needs scikit-learn (example-get-started/requirements.txt)")


def child_env(cache: Path) -> Dict[str, str]:
    """Environment for the children: this venv first, a fixed git identity, no stray settings."""
    env = dict(os.environ)
    env["PATH"] = str(BIN) + os.pathsep + env.get("PATH", "")
    for var in ("CMFRUN_MLMD", "CMFRUN_PIPELINE", "CMFRUN_STAGE", "DVC_STAGE", "DVC_ROOT"):
        env.pop(var, None)
    for role in ("AUTHOR", "COMMITTER"):
        env[f"GIT_{role}_NAME"] = "t"
        env[f"GIT_{role}_EMAIL"] = "t@example.com"
    env["XDG_CACHE_HOME"] = str(cache)
    env["DVC_NO_ANALYTICS"] = "1"
    return env


class Runner:
    def __init__(self, root: Path, env: Dict[str, str]) -> None:
        self.root, self.env = root, env

    def __call__(self, *argv: str) -> str:
        proc = subprocess.run(list(argv), cwd=self.root, env=self.env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout + proc.stderr


def copy_example(dest: Path) -> None:
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("demo.py", "__pycache__", "mlmd", ".cmfrun"))


# -- reading the store ---------------------------------------------------------
def stage_executions(store: Store, stage: str) -> List[Execution]:
    ctx = store.context("Pipeline_Stage", f"{PIPELINE}/{stage}")
    assert ctx is not None and ctx.id is not None, f"no stage context {PIPELINE}/{stage}"
    return sorted(store.executions_by_context(ctx.id), key=lambda e: e.id or 0)


def linked(store: Store, execution: Execution, kind: str) -> List[Artifact]:
    assert execution.id is not None
    ids = [ev.artifact_id for ev in store.events_by_execution([execution.id]) if ev.kind == kind]
    return store.artifacts_by_id(ids)


def by_path(artifacts: Iterable[Artifact], path: str) -> Artifact:
    found = [a for a in artifacts if a.path == path]
    assert len(found) == 1, f"expected one artifact at {path}, got {[a.name for a in artifacts]}"
    return found[0]


def ancestors(store: Store, artifact: Artifact) -> Set[str]:
    """Names of every artifact upstream of ``artifact`` (producers' inputs, transitively)."""
    seen: Set[int] = set()
    names: Set[str] = set()
    assert artifact.id is not None
    frontier: List[int] = [artifact.id]
    while frontier:
        producers = {ev.execution_id for ev in store.events_by_artifact(frontier) if ev.kind == OUTPUT}
        inputs = {ev.artifact_id for ev in store.events_by_execution(producers) if ev.kind == INPUT}
        frontier = [i for i in inputs if i not in seen]
        seen.update(frontier)
        names.update(a.name for a in store.artifacts_by_id(frontier))
    return names


def lock_md5(lock: dict, stage: str, path: str, section: str = "outs") -> str:
    for entry in lock["stages"][stage][section]:
        if entry["path"] == path:
            return str(entry["md5"])
    raise AssertionError(f"{path} not in dvc.lock {stage}.{section}")


def number(value: object) -> float:
    return float(value)  # type: ignore[arg-type]  # CMF keeps some floats as strings (Q4)


# -- the pipeline, run once for the module ---------------------------------------
@dataclass
class PipelineRun:
    root: Path
    run: Runner
    first_lock: dict
    first_counts: Dict[str, int]
    first_metrics: dict
    repro_output: str

    @property
    def store_path(self) -> Path:
        return self.root / "mlmd"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    base = tmp_path_factory.mktemp("e2e")
    root = base / "get-started"
    copy_example(root)
    run = Runner(root, child_env(base / "cache"))
    run("git", "init", "-q", "-b", "main")
    run("dvc", "init", "-q")
    run(sys.executable, "src/get_data.py", "data/raw.csv")
    run("dvc", "add", "-q", "data/raw.csv")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "example")

    repro_output = run("dvc", "repro")
    run("cmf", "dvc", "ingest")
    run(sys.executable, "src/train_explicit.py", "data/features", "models/explicit.pkl")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "first run")
    first_lock = yaml.safe_load((root / "dvc.lock").read_text())
    first_metrics = json.loads((root / "metrics.json").read_text())
    store = connect(root / "mlmd", create=False)
    try:
        first_counts = {s: len(stage_executions(store, s)) for s in (*STAGES, EXPLICIT_STAGE)}
    finally:
        store.close()

    params = root / "params.yaml"
    text = params.read_text()
    assert "  n_estimators: 50" in text
    params.write_text(text.replace("  n_estimators: 50", "  n_estimators: 120", 1))
    run("dvc", "repro")
    run("cmf", "dvc", "ingest")
    return PipelineRun(root, run, first_lock, first_counts, first_metrics, repro_output)


@pytest.fixture
def store(pipeline: PipelineRun) -> Iterable[Store]:
    s = connect(pipeline.store_path, create=False)
    yield s
    s.close()


def test_every_stage_ran_wrapped(pipeline: PipelineRun) -> None:
    for stage in STAGES:
        assert f"Running stage '{stage}'" in pipeline.repro_output
    assert "> cmfrun -- python src/train.py" in pipeline.repro_output


def test_first_run_records_four_stages_plus_explicit(pipeline: PipelineRun) -> None:
    assert pipeline.first_counts == {**{s: 1 for s in STAGES}, EXPLICIT_STAGE: 1}


def test_executions_carry_command_and_params(store: Store) -> None:
    (train,) = stage_executions(store, "train")[:1]
    assert "python src/train.py data/features model.pkl" in str(train.properties.get("Execution"))
    assert train.properties.get("Pipeline_Type") == PIPELINE
    assert train.properties.get("Context_Type") == f"{PIPELINE}/train"
    assert any("n_estimators" in k and number(v) == 50 for k, v in train.custom.items()), train.custom


def test_artifact_hashes_match_dvc_lock(pipeline: PipelineRun, store: Store) -> None:
    lock = pipeline.first_lock
    prepare = stage_executions(store, "prepare")[0]
    assert by_path(linked(store, prepare, INPUT), "data/raw.csv").uri == lock_md5(lock, "prepare", "data/raw.csv", "deps")
    assert by_path(linked(store, prepare, OUTPUT), "data/prepared").uri == lock_md5(lock, "prepare", "data/prepared")
    train = stage_executions(store, "train")[0]
    model = by_path(linked(store, train, OUTPUT), "model.pkl")
    assert model.type == "Model"
    assert model.uri == lock_md5(lock, "train", "model.pkl")


def test_model_lineage_reaches_the_raw_data(pipeline: PipelineRun, store: Store) -> None:
    raw_md5 = lock_md5(pipeline.first_lock, "prepare", "data/raw.csv", "deps")
    for stage, path in (("train", "model.pkl"), (EXPLICIT_STAGE, "models/explicit.pkl")):
        execution = stage_executions(store, stage)[0]
        model = by_path(linked(store, execution, OUTPUT), path)
        names = ancestors(store, model)
        assert f"data/raw.csv:{raw_md5}" in names, (stage, sorted(names))
        assert any(n.startswith("data/features:") for n in names)


def test_metrics_values_are_recorded(pipeline: PipelineRun, store: Store) -> None:
    evaluate = stage_executions(store, "evaluate")[0]
    outputs = linked(store, evaluate, OUTPUT)
    recorded = [a for a in outputs if "accuracy" in a.custom]
    assert recorded, [(a.type, a.name, dict(a.custom)) for a in outputs]
    for key, value in pipeline.first_metrics.items():
        assert number(recorded[0].custom[key]) == pytest.approx(value)

    explicit = stage_executions(store, EXPLICIT_STAGE)[0]
    kinds = {a.type for a in linked(store, explicit, OUTPUT)}
    assert {"Model", "Metrics", "Step_Metrics"} <= kinds, kinds
    metrics = [a for a in linked(store, explicit, OUTPUT) if a.type == "Metrics"][0]
    assert 0.5 < number(metrics.custom["test_accuracy"]) <= 1.0


def test_param_change_gives_a_second_train_with_new_model_same_data(store: Store) -> None:
    first, second = stage_executions(store, "train")
    assert len(stage_executions(store, "evaluate")) == 2
    # Unchanged stages were skipped by DVC and not duplicated by ingest.
    assert len(stage_executions(store, "prepare")) == 1
    assert len(stage_executions(store, "featurize")) == 1

    assert any("n_estimators" in k and number(v) == 120 for k, v in second.custom.items()), second.custom
    model_1 = by_path(linked(store, first, OUTPUT), "model.pkl")
    model_2 = by_path(linked(store, second, OUTPUT), "model.pkl")
    assert model_1.uri != model_2.uri
    data_1 = by_path(linked(store, first, INPUT), "data/features")
    data_2 = by_path(linked(store, second, INPUT), "data/features")
    assert data_1.uri == data_2.uri
    assert data_1.id == data_2.id  # the same artifact, not a copy


def test_ingest_again_changes_nothing(pipeline: PipelineRun, store: Store) -> None:
    before = {s: len(stage_executions(store, s)) for s in STAGES}
    n_artifacts = len(store.artifacts())
    pipeline.run("cmf", "dvc", "ingest")
    after_store = connect(pipeline.store_path, create=False)
    try:
        assert {s: len(stage_executions(after_store, s)) for s in STAGES} == before
        assert len(after_store.artifacts()) == n_artifacts
    finally:
        after_store.close()


def test_demo_prints_lineage_and_diff(tmp_path: Path) -> None:
    """The README's first command (`make demo` runs exactly this script)."""
    dest = tmp_path / "demo"
    env = child_env(tmp_path / "cache")
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE / "demo.py"), str(dest)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    out = proc.stdout
    assert proc.returncode == 0, f"demo failed ({proc.returncode}):\n{out}\n{proc.stderr}"
    for stage in STAGES:
        assert f"Running stage '{stage}'" in out
    lineage = out.split("lineage back to the raw data", 1)[1].split("==>", 1)[0]
    assert "model.pkl" in lineage and "data/raw.csv" in lineage, lineage
    diff = out.split("What changed between the two `train` executions", 1)[1].split("Done in", 1)[0]
    assert "n_estimators" in diff and "120" in diff, diff
    assert "Same inputs in both" in diff and "data/features" in diff, diff  # same data hash, named
    assert str(dest / "mlmd") in out
    assert (dest / "mlmd").is_file()
    # The demo folder is reusable: a second run wipes it (it carries the demo's marker).
    assert (dest / ".cmfrun-demo").is_file()


def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    dest = tmp_path / "precious"
    dest.mkdir()
    (dest / "thesis.tex").write_text("do not delete")
    proc = subprocess.run([sys.executable, str(EXAMPLE / "demo.py"), str(dest)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "was not made by the demo" in proc.stderr
    assert (dest / "thesis.tex").read_text() == "do not delete"


def test_demo_refuses_a_file_as_folder(tmp_path: Path) -> None:
    target = tmp_path / "a-file"
    target.write_text("x")
    proc = subprocess.run([sys.executable, str(EXAMPLE / "demo.py"), str(target)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "is a file" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("dvc_yaml", [EXAMPLE / "dvc.yaml", REPO / "dvc.yaml"], ids=["example", "root"])
def test_every_stage_command_is_wrapped(dvc_yaml: Path) -> None:
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    assert stages
    for name, stage in stages.items():
        cmd = (stage.get("do") or stage)["cmd"]
        assert str(cmd).startswith("cmfrun "), (name, cmd)
        assert " -- " in str(cmd), (name, cmd)


def test_example_scripts_know_nothing_about_cmfrun() -> None:
    """Only the explicit-API flavour imports cmfrun; the DVC stages' scripts are plain."""
    scripts = sorted((EXAMPLE / "src").glob("*.py"))
    assert len(scripts) >= 6
    for script in scripts:
        uses = "import cmfrun" in script.read_text()
        assert uses == (script.name == "train_explicit.py"), script.name
