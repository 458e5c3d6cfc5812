"""Helpers for the `cmf server` tests: the server as a real process on a free 127.0.0.1 port,
and a dump of a store's whole content to show that a refused request changed nothing."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional

CMF = str(Path(sys.executable).parent / "cmf")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """`cmf server` in a subprocess; ``url`` once started. Use as a context manager."""

    def __init__(self, store: str, data: Path, *args: str, env: Optional[Dict[str, str]] = None) -> None:
        self.store = store
        self.data = data
        self.args = list(args)
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data.parent / f"server-{self.port}.log"
        self.proc: Optional[subprocess.Popen] = None  # type: ignore[type-arg]

    def start(self) -> "ServerProcess":
        self.data.mkdir(parents=True, exist_ok=True)
        argv = [CMF, "server", "--port", str(self.port), "--mlmd", self.store, "--data", str(self.data), *self.args]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"cmf server exited with {self.proc.returncode}:\n{self.read_log()}")
            try:
                with urllib.request.urlopen(self.url + "/openapi.json", timeout=2):
                    return self
            except urllib.error.HTTPError:
                return self  # it answers (401 with a token): it is up
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"cmf server did not answer within 60 s:\n{self.read_log()}")

    def read_log(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def store_dump(uri: str) -> Dict[str, List[Any]]:
    """Everything in a store, comparable: contexts, executions, artifacts, events, links."""
    from cmfrun.store import connect

    store = connect(uri, create=False)
    try:
        contexts = []
        for t in sorted(store.type_names("context")):
            for c in store.contexts_by_type(t):
                parents = sorted(p.name for p in store.parent_contexts(int(c.id or 0)))
                contexts.append((c.type, c.name, json.dumps(dict(c.properties), sort_keys=True), json.dumps(dict(c.custom), sort_keys=True), parents))
        execs = store.executions()
        arts = store.artifacts()
        events = store.events_by_execution([int(e.id or 0) for e in execs])
        return {
            "contexts": sorted(contexts),
            "executions": sorted(
                (e.id, e.type, e.name, e.state, json.dumps(dict(e.properties), sort_keys=True), json.dumps(dict(e.custom), sort_keys=True))
                for e in execs
            ),
            "artifacts": sorted(
                (a.id, a.type, a.name, a.uri, json.dumps(dict(a.properties), sort_keys=True), json.dumps(dict(a.custom), sort_keys=True))
                for a in arts
            ),
            "events": sorted((ev.execution_id, ev.artifact_id, ev.kind) for ev in events),
            "associations": sorted(
                (int(e.id or 0), c.name) for e in execs for c in store.contexts_by_execution(int(e.id or 0))
            ),
        }
    finally:
        store.close()


def tree(folder: Path) -> List[str]:
    """Every file under ``folder`` (relative), to show nothing was written."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
