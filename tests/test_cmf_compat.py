"""CMF's own reader (cmflib 0.1.0's CmfQuery) reads stores that cmfrun wrote.

cmflib pins ml-metadata 1.15 and many heavy packages, so it lives in its own
virtualenv (`make test` builds `.venv-cmflib`); CMFRUN_CMFLIB_PYTHON names its
python. Without it the test skips, except in CI where it must run.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from cmfrun import schema
from cmfrun.recorder import FileRef, RunRecord, new_uuid, record_run
from cmfrun.store import connect

CMFLIB_PYTHON = os.environ.get("CMFRUN_CMFLIB_PYTHON", "")
READER = Path(__file__).parent / "compat" / "cmflib_reader.py"


@pytest.fixture
def cmflib_python() -> str:
    if CMFLIB_PYTHON and Path(CMFLIB_PYTHON).exists():
        return CMFLIB_PYTHON
    if os.environ.get("CMFRUN_REQUIRE_SERVICES") == "1":
        pytest.fail("CMFRUN_CMFLIB_PYTHON is not set: CI must run the cmflib compatibility test")
    pytest.skip("no cmflib virtualenv (set CMFRUN_CMFLIB_PYTHON; `make test` builds one)")


def _read(cmflib_python: str, store: Path, pipeline: str) -> dict:
    proc = subprocess.run([cmflib_python, str(READER), str(store), pipeline], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_cmflib_reads_recorded_runs(tmp_path: Path, cmflib_python: str) -> None:
    path = tmp_path / "mlmd"
    store = connect(path)
    raw, train, model = "a" * 32, "b" * 32, "c" * 32
    record_run(store, RunRecord("p", "prepare", "python prep.py", new_uuid(), execution_name="u1",
                                inputs=[FileRef("raw.csv", raw)], outputs=[FileRef("data/train.csv", train)]))
    run = RunRecord("p", "train", "python train.py --lr 0.1", new_uuid(), execution_name="u2",
                    inputs=[FileRef("data/train.csv", train)],
                    outputs=[FileRef("model.pkl", model, type=schema.MODEL)], custom={"lr": 0.1})
    res = record_run(store, run)
    seen = _read(cmflib_python, path, "p")
    assert seen["pipelines"] == ["p"]
    assert seen["stages"] == ["p/prepare", "p/train"]
    [ex] = seen["executions"]["p/train"]
    assert ex["Execution"] == "python train.py --lr 0.1" and ex["custom_properties_lr"] == 0.1
    arts = {a["name"]: a["event"] for a in seen["artifacts_by_execution"][str(res.execution_id)]}
    model_name = f"model.pkl:{model}:{run.uuid}"
    assert arts == {f"data/train.csv:{train}": "INPUT", model_name: "OUTPUT"}
    # Q14 in CMF: the reader needs Execution_type_name on every execution and a parent context per stage.
    [row] = seen["executions_for_artifact"][model_name]
    assert row["pipeline"] == "p" and row["stage"] == "p/train"
    assert seen["parents"][model_name] == sorted([f"data/train.csv:{train}", f"raw.csv:{raw}"])
    assert seen["children"][f"raw.csv:{raw}"] == [f"data/train.csv:{train}"]
    stage_names = [s["name"] for s in seen["dump"]["Pipeline"][0]["stages"]]
    assert stage_names == ["p/prepare", "p/train"]


def test_cmflib_reads_a_wrapped_dvc_pipeline(project, cmflib_python: str) -> None:  # type: ignore[no-untyped-def]
    """Real `dvc repro` with every stage `cmfrun --`, then `cmf dvc ingest`: CMF's reader sees
    both stages, their executions with the commands, and the lineage from raw data to model.
    `prepare` is a plain copy: its output is the same artifact as its input (same bytes), which
    must not become its own parent (cmflib's recursive reader would never return)."""
    import sys

    project.git_init()
    project.dvc_init()
    wrap = f"{sys.executable} -m cmfrun --"
    project.write("raw.txt", "raw data\n")
    project.write("cp_file.py", "import shutil, sys\nshutil.copy(sys.argv[1], sys.argv[2])\n")
    project.write("upper.py", "import sys\nopen(sys.argv[2], 'w').write(open(sys.argv[1]).read().upper())\n")
    project.write("dvc.yaml", f"""
stages:
  prepare:
    cmd: {wrap} python cp_file.py raw.txt prepared.txt
    deps: [cp_file.py, raw.txt]
    outs: [prepared.txt]
  train:
    cmd: {wrap} python upper.py prepared.txt model.pkl
    deps: [upper.py, prepared.txt]
    outs: [model.pkl]
""")
    project.write(".cmfconfig", "[cmfrun]\npipeline = p\n")
    project.commit()
    project.dvc("repro")
    cmf = str(Path(sys.executable).parent / "cmf")
    proc = subprocess.run([cmf, "dvc", "ingest"], cwd=project.root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    seen = _read(cmflib_python, project.root / "mlmd", "p")
    assert seen["stages"] == ["p/prepare", "p/train"]
    [train] = seen["executions"]["p/train"]
    assert train["Execution"].endswith("python upper.py prepared.txt model.pkl")
    model = next(n for n in seen["artifacts"] if n.startswith("model.pkl:"))
    assert any(n.startswith("raw.txt:") for n in seen["parents"][model])
    assert [r["stage"] for r in seen["executions_for_artifact"][model]] == ["p/train"]
