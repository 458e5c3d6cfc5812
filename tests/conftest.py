"""Shared fixtures: real stores (SQLite, PostgreSQL, MariaDB), real git/DVC project trees.

PostgreSQL and MariaDB run on this machine (127.0.0.1, trust auth / root with no
password). Elsewhere their tests skip with a reason; in CI (CMFRUN_REQUIRE_SERVICES=1)
a missing service makes them fail instead.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Iterator, Optional

import pytest

if TYPE_CHECKING:
    from click.testing import CliRunner

REQUIRE_SERVICES = os.environ.get("CMFRUN_REQUIRE_SERVICES") == "1"
PG_HOST, PG_PORT = "127.0.0.1", 5432
MY_HOST, MY_PORT = "127.0.0.1", 3306


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _need(host: str, port: int, what: str) -> None:
    if _reachable(host, port):
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} at {host}:{port} is not running (CI requires it)")
    pytest.skip(f"{what} at {host}:{port} is not running")


def _drop_pg(db: str) -> None:
    # FORCE ends the test's own still-open sessions; without it PostgreSQL waits 5 s for them,
    # then refuses, and the database is left behind.
    subprocess.run(
        ["psql", "-h", PG_HOST, "-U", "postgres", "-d", "postgres", "-qc", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'],
        capture_output=True,
    )


def _drop_my(db: str) -> None:
    subprocess.run(["mariadb", "-h", MY_HOST, "-uroot", "-e", f"DROP DATABASE IF EXISTS `{db}`"], capture_output=True)


def _need_engine_backend(backend: str) -> None:
    """Skip when the store engine in use (CMFRUN_ENGINE, else the default) lacks ``backend``."""
    from cmfrun.store import choose_engine

    if choose_engine() == "sql":
        from cmfrun.store import sql

        if backend not in sql.BACKENDS:
            pytest.skip(f"the sql store engine does not support {backend} yet")


#: Store/API-level suites that run on every engine of the pass (see :func:`installed_engines`).
#: The other suites run on the pass's engine: `.ci/run` runs the whole suite once on the default
#: engine (sql) and once more with ``CMFRUN_ENGINE=mlmd`` (child processes inherit it), so on Python 3.11
#: every test runs on both engines (test_store.py has its own parameter).
BOTH_ENGINES_MODULES = {"test_api", "test_api_query", "test_ingest", "test_query"}


def installed_engines() -> list:
    """The store engines the parametrised suites run on: the one ``CMFRUN_ENGINE`` names when it
    is set (a pass of the whole suite on that engine, so nothing runs twice), else ``mlmd``
    where ml-metadata is installed, and ``sql``."""
    from cmfrun.store import ENV_ENGINE, choose_engine, mlmd_installed

    if os.environ.get(ENV_ENGINE, "").strip():
        return [choose_engine()]
    return (["mlmd"] if mlmd_installed() else []) + ["sql"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_engine" in metafunc.fixturenames and metafunc.module.__name__.rsplit(".", 1)[-1] in BOTH_ENGINES_MODULES:
        metafunc.parametrize("store_engine", installed_engines(), indirect=True)


def pytest_report_header(config: pytest.Config) -> str:
    from cmfrun.store import ENV_ENGINE, choose_engine

    chosen = os.environ.get(ENV_ENGINE, "").strip()
    return f"cmfrun store engine: {choose_engine()} ({ENV_ENGINE}={chosen!r}); parametrised suites: {', '.join(installed_engines())}"


@pytest.fixture(autouse=True)
def store_engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Optional[str]:
    """The engine a test runs on: set through CMFRUN_ENGINE (child processes inherit it) in the
    suites of :data:`BOTH_ENGINES_MODULES`; elsewhere ``None`` (the pass's engine)."""
    engine = getattr(request, "param", None)
    if engine:
        monkeypatch.setenv("CMFRUN_ENGINE", engine)
    return engine


#: Every backend, for suites that take a backend parameter (servers, sync, stores).
ALL_BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgres),
    pytest.param("mysql", marks=pytest.mark.mysql),
]


def make_store_uri(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh, empty store location of ``backend``; server databases are dropped afterwards."""
    if backend == "sqlite":
        return str(tmp_path / "mlmd")
    _need_engine_backend(backend)
    db = f"cmfrun_t_{uuid.uuid4().hex[:12]}"
    if backend == "postgresql":
        _need(PG_HOST, PG_PORT, "PostgreSQL")
        request.addfinalizer(lambda: _drop_pg(db))
        return f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{db}"
    _need(MY_HOST, MY_PORT, "MariaDB/MySQL")
    request.addfinalizer(lambda: _drop_my(db))
    return f"mysql://root@{MY_HOST}:{MY_PORT}/{db}"


@pytest.fixture(params=ALL_BACKENDS)
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store location, once per backend."""
    return make_store_uri(request.param, tmp_path, request)


@pytest.fixture
def sqlite_uri(tmp_path: Path) -> str:
    """A fresh SQLite store path."""
    return str(tmp_path / "mlmd")


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` (with a fixed identity) and return stdout."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    out = subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip()


class Project:
    """A real project folder: files, git, DVC. Made by the ``project`` fixture."""

    def __init__(self, root: Path):
        self.root = root

    def write(self, rel: str, content: str = "", *, binary: Optional[bytes] = None) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if binary is not None:
            path.write_bytes(binary)
        else:
            path.write_text(content)
        return path

    def git_init(self, remote: Optional[str] = None) -> "Project":
        git(self.root, "init", "-q", "-b", "main")
        if remote:
            git(self.root, "remote", "add", "origin", remote)
        return self

    def commit(self, message: str = "commit") -> str:
        git(self.root, "add", "-A")
        git(self.root, "commit", "-qm", message, "--allow-empty")
        return git(self.root, "rev-parse", "HEAD")

    def dvc_init(self) -> "Project":
        self.dvc("init", "-q")
        self.dvc("config", "core.autostage", "false")
        return self

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        dvc = shutil.which("dvc") or str(Path(sys.executable).parent / "dvc")
        proc = subprocess.run([dvc, *args], cwd=self.root, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise AssertionError(f"dvc {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """An empty project folder (call ``git_init``/``dvc_init`` as needed)."""
    root = tmp_path / "proj"
    root.mkdir()
    return Project(root)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep cmfrun's private hash cache and settings away from the real home folder."""
    cache = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    for var in ("CMFRUN_MLMD", "CMFRUN_PIPELINE", "CMFRUN_STAGE", "DVC_STAGE", "DVC_ROOT"):
        monkeypatch.delenv(var, raising=False)


def cli_env(**extra: str) -> Dict[str, str]:
    """Environment for running the console scripts in a child process."""
    env = dict(os.environ)
    env.update(extra)
    return env


def cli_runner() -> "CliRunner":
    """A click test runner with stderr kept apart from stdout (click 8.1 mixes them unless
    told not to; 8.2, which needs Python >= 3.10, always keeps them apart)."""
    from click.testing import CliRunner

    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:
        return CliRunner()
