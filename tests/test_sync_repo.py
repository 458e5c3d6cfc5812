"""`cmf repo push/pull`: real git remotes (bare repositories), a real DVC remote folder, a real
sync server process; steps run in order and the first failing one is named."""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import Project, git
from test_sync_server import Server, cmf, make_site

from cmfrun.store import connect

HAVE_ARTIFACTS = importlib.util.find_spec("cmfrun.commands.artifacts") is not None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(str(tmp_path / "server.mlmd"), tmp_path / "server")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_site(tmp_path_factory.mktemp("template") / "site", 0.2).root


@pytest.fixture
def site(template: Path, tmp_path: Path) -> Project:
    shutil.copytree(template, tmp_path / "site", symlinks=True)
    s = Project(tmp_path / "site")
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(tmp_path / "origin.git")], check=True)
    git(s.root, "remote", "add", "origin", str(tmp_path / "origin.git"))
    s.dvc("remote", "add", "-d", "store", str(tmp_path / "dvc-remote"))
    return s


def test_repo_push_runs_steps_in_order(site: Project, server: Server, tmp_path: Path) -> None:
    site.commit("after repro")
    head = git(site.root, "rev-parse", "HEAD")
    if HAVE_ARTIFACTS:
        out = cmf("repo", "push", "-p", "shared", "--server", server.url, cwd=site.root)
        assert [line.split(" ", 2)[1] for line in out.stdout.splitlines()[:3]] == ["1", "2", "3"]
        assert len(connect(str(tmp_path / "server.mlmd")).executions()) == 2
    else:
        # Without the artifacts commands, step 2 fails: git is pushed, metadata is not.
        res = cmf("repo", "push", "-p", "shared", "--server", server.url, cwd=site.root, code=2)
        assert res.stderr.count("\n") == 1 and "stopped at step 2 (artifacts)" in res.stderr
        assert connect(str(tmp_path / "server.mlmd")).executions() == []
    assert git(tmp_path / "origin.git", "rev-parse", "refs/heads/main") == head


def test_repo_push_stops_at_git(site: Project, server: Server, tmp_path: Path) -> None:
    git(site.root, "remote", "set-url", "origin", str(tmp_path / "no-such-remote.git"))
    res = cmf("repo", "push", "-p", "shared", "--server", server.url, cwd=site.root, code=1)
    assert res.stderr.count("\n") == 1 and "stopped at step 1 (git)" in res.stderr
    assert connect(str(tmp_path / "server.mlmd")).executions() == []


def test_repo_pull_git_then_metadata_then_artifacts(site: Project, server: Server, tmp_path: Path) -> None:
    site.commit("after repro")
    if HAVE_ARTIFACTS:
        cmf("repo", "push", "-p", "shared", "--server", server.url, cwd=site.root)
        assert any((tmp_path / "dvc-remote").rglob("*"))  # step 2 uploaded the outputs
    else:
        git(site.root, "push", "-q", "origin", "HEAD:refs/heads/main")
        cmf("metadata", "push", "-p", "shared", "--server", server.url, cwd=site.root)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(tmp_path / "origin.git"), str(clone)], check=True)
    site.write("more.txt", "x")
    site.commit("more")
    git(site.root, "push", "-q", "origin", "HEAD:refs/heads/main")
    if HAVE_ARTIFACTS:
        out = cmf("repo", "pull", "-p", "shared", "--server", server.url, cwd=clone)
        assert "step 3 (artifacts)" in out.stdout
        # step 3 fetched what the pulled metadata names: the model, byte for byte
        assert (clone / "model.pkl").read_bytes() == (site.root / "model.pkl").read_bytes()
    else:
        res = cmf("repo", "pull", "-p", "shared", "--server", server.url, cwd=clone, code=2)
        assert "stopped at step 3 (artifacts)" in res.stderr
    assert (clone / "more.txt").read_text() == "x"  # step 1: git pulled
    assert len(connect(str(clone / "mlmd")).executions()) == 2  # step 2: metadata pulled
    res = json.loads(cmf("metadata", "pull", "-p", "shared", "--server", server.url, "--json", cwd=clone).stdout)
    assert res["report"]["executions_added"] == 0 and res["report"]["executions_updated"] == 0
