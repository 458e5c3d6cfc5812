"""Many wrapped commands at once on one SQLite store: every run recorded exactly once."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cmfrun.commands import open_store
from tests.conftest import Project, cli_env

N = 16


@pytest.mark.parametrize("sync", ["0", "1"])
def test_sixteen_wrapped_commands_at_once(project: Project, sync: str) -> None:
    project.git_init()
    project.commit()
    for i in range(N):
        project.write(f"in/{i}.txt", f"input {i}\n")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "cmfrun", "-s", f"job{i}", "--in", f"in/{i}.txt", "--out", f"out/{i}.txt", "--",
             sys.executable, "-c", f"import os; os.makedirs('out', exist_ok=True); open('out/{i}.txt','w').write('{i}')"],
            cwd=project.root,
            env=cli_env(CMFRUN_SYNC=sync),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(N)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * N
    for out, err in results:
        assert err == "", err  # no "database is locked", no warning
    store = open_store(project.root / "mlmd")  # merges whatever a background merger left
    execs = store.executions()
    assert len(execs) == N
    assert sorted(str(e.properties["Stage"]) for e in execs) == sorted(f"job{i}" for i in range(N))
    assert len({e.properties["Execution_uuid"] for e in execs}) == N
    assert len(store.artifacts_by_type("Environment")) == 1
    assert len(store.artifacts_by_type("Dataset")) == 2 * N
    assert not list((project.root / ".cmfrun-journal").glob("*.json*"))
