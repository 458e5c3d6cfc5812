"""HPE's own client (cmflib 0.1.0, in its own virtualenv) against `cmf server` on a real port,
over SQLite and PostgreSQL: `cmf metadata push` of a pipeline recorded with cmflib's API lands
in our store, `cmf metadata pull` brings back a pipeline our side pushed, and cmflib's
CmfQuery reads it."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator

import pytest
import requests

from tests.conftest import git, make_store_uri
from tests.server_helpers import ServerProcess, store_dump
from tests.test_server_api import seed

CMFLIB_PYTHON = os.environ.get("CMFRUN_CMFLIB_PYTHON", "")
OUR_CMF = str(Path(sys.executable).parent / "cmf")

RECORD = '''
from cmflib import cmf
w = cmf.Cmf(filepath="mlmd", pipeline_name="cmflib-pipe")
w.create_context(pipeline_stage="prepare")
w.create_execution(execution_type="Prepare", custom_properties={"split": 0.2})
w.log_dataset("data/raw.csv", "input")
open("data/train.csv", "w").write("a,b\\n1,2\\n")
w.log_dataset("data/train.csv", "output")
w.create_context(pipeline_stage="train")
w.create_execution(execution_type="Train", custom_properties={"lr": 0.1})
w.log_dataset("data/train.csv", "input")
open("model.pkl", "w").write("model")
w.log_model("model.pkl", "output", model_framework="sklearn", model_type="rf", model_name="rf")
'''

READ = '''
import json, sys
from cmflib.cmfquery import CmfQuery
q = CmfQuery("mlmd")
pipe = sys.argv[1]
df = q.get_all_executions_in_pipeline(pipe)
arts = q.get_all_artifacts_by_context(pipe)
print(json.dumps({"pipelines": q.get_pipeline_names(), "stages": q.get_pipeline_stages(pipe),
                  "executions": sorted(df["Execution_uuid"]) if not df.empty else [],
                  "artifacts": sorted(arts["name"]) if not arts.empty else []}))
'''


@pytest.fixture(scope="module")
def cmflib_bin() -> Path:
    if CMFLIB_PYTHON and Path(CMFLIB_PYTHON).exists():
        return Path(CMFLIB_PYTHON).parent
    if os.environ.get("CMFRUN_REQUIRE_SERVICES") == "1":
        pytest.fail("CMFRUN_CMFLIB_PYTHON is not set: CI must run the cmflib server test")
    pytest.skip("no cmflib virtualenv (set CMFRUN_CMFLIB_PYTHON; `make test` builds one)")


def _env(cmflib_bin: Path) -> Dict[str, str]:
    # cmflib runs `dvc` and `git` itself: its own venv first on PATH.
    return {**os.environ, "PATH": f"{cmflib_bin}:{os.environ['PATH']}", "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}


def _run(cmflib_bin: Path, cwd: Path, *argv: str) -> str:
    proc = subprocess.run(list(argv), cwd=cwd, env=_env(cmflib_bin), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{argv} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def _cmflib_project(cmflib_bin: Path, root: Path, server_url: str) -> Path:
    proj, bare = root / "proj", root / "git-remote.git"
    proj.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    git(proj, "init", "-q", "-b", "main")
    git(proj, "remote", "add", "origin", str(bare))
    (proj / "README").write_text("cmflib project\n")
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "init")
    _run(cmflib_bin, proj, str(cmflib_bin / "cmf"), "init", "local", "--path", str(root / "dvc-remote"),
         "--git-remote-url", str(bare), "--cmf-server-url", server_url)
    return proj


def _point_at(proj: Path, server_url: str) -> None:
    """A recorded project, copied, is pushed to another server: rewrite its server url."""
    cfg = proj / ".cmfconfig"
    lines = [f"server-url = {server_url}" if ln.startswith("server-url") else ln for ln in cfg.read_text().splitlines()]
    cfg.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def recorded(cmflib_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cmflib project with pipeline `cmflib-pipe` recorded by cmflib's own API (once per module)."""
    root = tmp_path_factory.mktemp("cmflib")
    proj = _cmflib_project(cmflib_bin, root, "http://127.0.0.1:1")
    (proj / "data").mkdir()
    (proj / "data" / "raw.csv").write_text("a,b\n")
    (proj / "record.py").write_text(RECORD)
    _run(cmflib_bin, proj, str(cmflib_bin / "python"), "record.py")
    return proj


def _read_with_cmflib(cmflib_bin: Path, proj: Path, pipeline: str) -> Dict[str, object]:
    (proj / "read.py").write_text(READ)
    out = _run(cmflib_bin, proj, str(cmflib_bin / "python"), "read.py", pipeline)
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def server_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return make_store_uri(request.param, tmp_path, request)


def test_cmflib_pull_reads_our_pipeline(cmflib_bin: Path, tmp_path: Path, server_store: str) -> None:
    seeded = seed(server_store)
    with ServerProcess(server_store, tmp_path / "data") as server:
        proj = _cmflib_project(cmflib_bin, tmp_path / "site", server.url)
        out = _run(cmflib_bin, proj, str(cmflib_bin / "cmf"), "metadata", "pull", "-p", "p")
        assert "successfully pulled" in out, out
    seen = _read_with_cmflib(cmflib_bin, proj, "p")
    assert seen["pipelines"] == ["p"]
    assert sorted(seen["stages"]) == ["p/prepare", "p/train"]  # type: ignore[arg-type]
    assert seen["executions"] == sorted(seeded["uuids"][:2])
    assert {str(a).split(":")[0] for a in seen["artifacts"]} == {"raw.csv", "data/train.csv", "model.pkl"}  # type: ignore[attr-defined]


def test_cmflib_push_lands_in_our_store(cmflib_bin: Path, recorded: Path, tmp_path: Path, server_store: str) -> None:
    proj = tmp_path / "proj"
    shutil.copytree(recorded, proj, symlinks=True)
    local = _read_with_cmflib(cmflib_bin, proj, "cmflib-pipe")
    with ServerProcess(server_store, tmp_path / "data") as server:
        _point_at(proj, server.url)
        out = _run(cmflib_bin, proj, str(cmflib_bin / "cmf"), "metadata", "push", "-p", "cmflib-pipe")
        assert "successfully pushed" in out, out
        listed = subprocess.run([OUR_CMF, "execution", "list", "-f", server_store, "-p", "cmflib-pipe", "--json"],
                                capture_output=True, text=True)
        assert listed.returncode == 0, listed.stderr
        rows = json.loads(listed.stdout)
        assert sorted(r["uuid"] for r in rows) == local["executions"]
        assert sorted(r["stage"] for r in rows) == ["prepare", "train"]
        before = store_dump(server_store)
        again = _run(cmflib_bin, proj, str(cmflib_bin / "cmf"), "metadata", "push", "-p", "cmflib-pipe")
        assert "already exists" in again.lower(), again
        assert store_dump(server_store) == before
        # The python environment file cmflib uploads after a push is kept on the server.
        env_files = list((tmp_path / "data" / "index" / "python-env").glob("*.json"))
        assert env_files


def test_our_push_then_cmflib_pull(cmflib_bin: Path, tmp_path: Path, server_store: str) -> None:
    ours = str(tmp_path / "ours-mlmd")
    seeded = seed(ours)
    exported = subprocess.run([OUR_CMF, "metadata", "export", "-f", ours, "-p", "p", "-j", "-"], capture_output=True, text=True)
    assert exported.returncode == 0, exported.stderr
    with ServerProcess(server_store, tmp_path / "data") as server:
        body = {"exec_uuid": None, "json_payload": exported.stdout, "pipeline_name": "p"}
        r = requests.post(server.url + "/api/mlmd_push", json=body)
        assert r.status_code == 200 and r.json()["status"] == "success", r.text
        assert requests.post(server.url + "/api/mlmd_push", json=body).json()["status"] == "exists"
        proj = _cmflib_project(cmflib_bin, tmp_path / "site", server.url)
        out = _run(cmflib_bin, proj, str(cmflib_bin / "cmf"), "metadata", "pull", "-p", "p")
        assert "successfully pulled" in out, out
    seen = _read_with_cmflib(cmflib_bin, proj, "p")
    assert seen["executions"] == sorted(seeded["uuids"][:2])
