"""metadata push/pull against a real server process, store-to-store, export/import.

The server is `cmf server` (a real uvicorn process on a free 127.0.0.1 port, which serves
the sync router cmfrun.sync.api) over a real store (SQLite or PostgreSQL), with --token
where the test needs one. The sites run a real `dvc repro` pipeline whose stages are
wrapped in `cmfrun --`.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

from tests.conftest import ALL_BACKENDS, Project, make_store_uri

from cmfrun import config, schema
from cmfrun.store import Store, connect
from cmfrun.sync.bundle import execution_uuids

PY = sys.executable
CMF = [str(Path(PY).parent / "cmf")]
WRAP = f"{PY} -m cmfrun --"
TOKEN = "s3cret-token-value"



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`cmf server` (a real uvicorn process) over ``store`` on a free 127.0.0.1 port."""

    def __init__(self, store: str, folder: Path, token: str = "") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.store = store
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "server.log"
        argv = [*CMF, "server", "--mlmd", store, "--port", str(self.port), "--data", str(folder / "data")]
        env = {k: v for k, v in os.environ.items() if k != "CMFRUN_SERVER_TOKEN"}
        if token:
            argv += ["--token", token]
        self.proc = subprocess.Popen(argv, env=env, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError("server did not start within 60 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def cmf(*args: str, cwd: Optional[Path] = None, code: int = 0, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([*CMF, *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    assert proc.returncode == code, (args, proc.returncode, proc.stdout, proc.stderr)
    return proc


PIPELINE_YAML = f"""
stages:
  prepare:
    cmd: {WRAP} python copy.py data/raw.txt out/prep.txt prep
    deps: [copy.py, data/raw.txt]
    outs: [out/prep.txt]
  train:
    cmd: {WRAP} python copy.py out/prep.txt model.pkl ${{train.lr}}
    deps: [copy.py, out/prep.txt]
    params: [train.lr]
    outs: [model.pkl]
"""


def make_site(root: Path, lr: float) -> Project:
    """A real DVC project that ran `dvc repro` (stages wrapped in `cmfrun --`) with ``lr``."""
    os.environ["PATH"] = str(Path(PY).parent) + os.pathsep + os.environ.get("PATH", "")
    root.mkdir(parents=True)
    site = Project(root).git_init().dvc_init()
    site.write(".cmfconfig", "[cmfrun]\npipeline = shared\n")
    site.write("data/raw.txt", "1\n2\n3\n")
    site.write("params.yaml", f"train:\n  lr: {lr}\n")
    site.write("copy.py", "import os, sys\nos.makedirs(os.path.dirname(sys.argv[2]) or '.', exist_ok=True)\nopen(sys.argv[2], 'w').write(open(sys.argv[1]).read() + ' '.join(sys.argv[3:]))\n")
    site.write("dvc.yaml", PIPELINE_YAML)
    site.commit()
    site.dvc("repro")
    return site


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Project]:
    base = tmp_path_factory.mktemp("sites")
    return {"alpha": make_site(base / "alpha", 0.1), "beta": make_site(base / "beta", 0.3)}


def pipeline_execs(store: Store, pipeline: str) -> List[Any]:
    ctx = store.context(schema.PIPELINE_CONTEXT, pipeline)
    assert ctx is not None
    return [e for s in store.child_contexts(int(ctx.id or 0)) for e in store.executions_by_context(int(s.id or 0))]


def uuids_of(store_path: Path) -> Dict[str, Any]:
    store = connect(str(store_path), create=False)
    return {execution_uuids(e)[0]: e for e in pipeline_execs(store, "shared")}


@pytest.fixture(params=ALL_BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    srv = Server(make_store_uri(request.param, tmp_path, request), tmp_path / "server")
    yield srv
    srv.stop()


def test_two_sites_push_then_pull_into_a_third(sites: Dict[str, Project], server: Server, tmp_path: Path) -> None:
    first: Dict[str, Any] = {}
    # beta finds the server in .cmfconfig (what `cmf init --cmf-server-url` writes)
    config.write_file(sites["beta"].root, {"cmf_server_url": server.url})
    for name, site in sites.items():
        where = ["--server", server.url] if name == "alpha" else []
        out = cmf("metadata", "push", "-p", "shared", *where, "--json", cwd=site.root)
        first[name] = json.loads(out.stdout)
        assert first[name]["report"]["executions_added"] == 2, out.stdout
    # prepare read and wrote the same bytes at both sites: the server merged those artifacts
    assert first["beta"]["report"]["artifacts_added"] < first["alpha"]["report"]["artifacts_added"]

    # a second push with nothing new sends nothing: nothing changed since the last push
    again = json.loads(cmf("metadata", "push", "-p", "shared", "--server", server.url, "--json", cwd=sites["alpha"].root).stdout)
    assert again["executions_sent"] == 0 and again["requests"] == 0 and again["bytes_sent"] == 0
    # --full compares every execution: one digest request, still nothing sent
    again = json.loads(cmf("metadata", "push", "-p", "shared", "--server", server.url, "--json", "--full",
                           cwd=sites["alpha"].root).stdout)
    assert again["executions_sent"] == 0 and again["requests"] == 1
    assert again["bytes_sent"] < 100 < first["alpha"]["bytes_sent"]

    third = tmp_path / "third"
    third.mkdir()
    res = json.loads(cmf("metadata", "pull", "-p", "shared", "--server", server.url, "-f", str(third / "mlmd"), "--json").stdout)
    assert res["report"]["executions_added"] == 4 and not res["report"]["conflicts"]
    pulled = uuids_of(third / "mlmd")
    expected = {**uuids_of(sites["alpha"].root / "mlmd"), **uuids_of(sites["beta"].root / "mlmd")}
    assert set(pulled) == set(expected) and len(pulled) == 4
    host = os.uname().nodename
    for u, ex in pulled.items():
        assert ex.properties["Host"] == host  # each run keeps the host it ran on
        assert ex.custom == expected[u].custom and ex.properties["Execution"] == expected[u].properties["Execution"]
    lrs = sorted(float(e.custom["train.lr"]) for e in pulled.values() if "train.lr" in e.custom)
    assert lrs == [0.1, 0.3]
    store = connect(str(third / "mlmd"))
    # one graph: the shared prep.txt (same content) is one artifact produced twice and read by both trains
    [prep] = [a for a in store.artifacts() if a.name.startswith("out/prep.txt:")]
    kinds = sorted(ev.kind for ev in store.events_by_artifact([int(prep.id or 0)]))
    assert kinds == ["INPUT", "INPUT", "OUTPUT", "OUTPUT"]
    assert len({a.name for a in store.artifacts()}) == len(store.artifacts())
    # pulling again changes nothing (recent runs may be re-sent inside the safety margin)
    res = json.loads(cmf("metadata", "pull", "-p", "shared", "--server", server.url, "-f", str(third / "mlmd"), "--json").stdout)
    assert not any(res["report"][k] for k in ("executions_added", "executions_updated", "events_added", "artifacts_added"))
    res = json.loads(cmf("metadata", "pull", "-p", "shared", "--server", server.url, "-f", str(third / "mlmd"), "--json",
                         "--full").stdout)
    assert res["executions_sent"] == 0 and res["report"]["executions_added"] == 0


def test_client_errors_are_one_line(sites: Dict[str, Project], tmp_path: Path) -> None:
    site = sites["alpha"].root
    dead = f"http://127.0.0.1:{free_port()}"
    res = cmf("metadata", "push", "-p", "shared", "--server", dead, cwd=site, code=3)
    assert res.stderr.count("\n") == 1 and "cannot reach cmf server" in res.stderr
    res = cmf("metadata", "push", "-p", "shared", "--server", "ftp://x", cwd=site, code=2)
    assert res.stderr.count("\n") == 1 and "bad cmf server URL" in res.stderr
    res = cmf("metadata", "push", "-p", "shared", cwd=site, code=2, env={"CMFRUN_SERVER": ""})
    assert "no cmf server" in res.stderr
    srv = Server(str(tmp_path / "srv.mlmd"), tmp_path / "srv", token=TOKEN)
    try:
        res = cmf("metadata", "push", "-p", "shared", "--server", srv.url, "--token", "wrong-" + TOKEN, cwd=site, code=3)
        assert res.stderr.count("\n") == 1 and "refused" in res.stderr and TOKEN not in res.stderr + res.stdout
        cmf("metadata", "push", "-p", "shared", cwd=site, env={"CMFRUN_SERVER": srv.url, "CMFRUN_SERVER_TOKEN": TOKEN})
        res = cmf("metadata", "pull", "-p", "nope", "--server", srv.url, "--token", TOKEN, "-f", str(tmp_path / "x"), code=2)
        assert res.stderr.count("\n") == 1 and "no pipeline 'nope'" in res.stderr
        # a malformed bundle is refused with a one-line 400 and changes nothing
        before = len(connect(str(tmp_path / "srv.mlmd")).executions())
        import urllib.error
        import urllib.request

        bad = {"pipeline": "shared", "bundle": {"Pipeline": [{"name": "shared", "stages": [{"name": "s", "executions": [{"type": "t"}]}]}]}}
        req = urllib.request.Request(f"{srv.url}/api/v1/sync/push", data=json.dumps(bad).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=30)
        assert info.value.code == 400 and "Execution_uuid" in json.loads(info.value.read())["detail"]
        assert len(connect(str(tmp_path / "srv.mlmd")).executions()) == before == 2
    finally:
        srv.stop()


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_store_to_store(sites: Dict[str, Project], backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    team = make_store_uri(backend, tmp_path, request)
    for site in sites.values():
        out = json.loads(cmf("metadata", "push", "-p", "shared", "--to", team, "--json", cwd=site.root).stdout)
        assert out["report"]["executions_added"] == 2
    again = json.loads(cmf("metadata", "push", "-p", "shared", "--to", team, "--json", cwd=sites["beta"].root).stdout)
    assert again["executions_sent"] == 0
    local = tmp_path / "local.mlmd"
    out = json.loads(cmf("metadata", "pull", "-p", "shared", "--from", team, "-f", str(local), "--json").stdout)
    assert out["report"]["executions_added"] == 4
    assert len(uuids_of(local)) == 4


def test_export_import_offline(sites: Dict[str, Project], tmp_path: Path) -> None:
    bundle = tmp_path / "shared.json"
    cmf("metadata", "export", "-p", "shared", "-j", str(bundle), cwd=sites["alpha"].root)
    data = json.loads(bundle.read_text())
    states = {e["last_known_state"] for s in data["Pipeline"][0]["stages"] for e in s["executions"]}
    assert states == {"COMPLETE"}
    air = tmp_path / "airgap.mlmd"
    out = cmf("metadata", "import", str(bundle), "-f", str(air))
    assert "added 2" in out.stdout
    out = cmf("metadata", "import", str(bundle), "-f", str(air), "--json")
    assert json.loads(out.stdout)["executions_unchanged"] == 2
    assert set(uuids_of(air)) == set(uuids_of(sites["alpha"].root / "mlmd"))
    bad = tmp_path / "bad.json"
    bad.write_text('{"Pipeline": [{"name": 3}]}')
    res = cmf("metadata", "import", str(bad), "-f", str(air), code=2)
    assert res.stderr.count("\n") == 1 and "malformed bundle" in res.stderr
    res = cmf("metadata", "import", str(tmp_path / "missing.json"), "-f", str(air), code=2)
    assert "does not exist" in res.stderr


def _bundle(pipeline: str, site: int, n: int) -> Dict[str, Any]:
    """``n`` runs of one stage at one site, each reading the shared raw.csv and writing its own file."""
    raw = {"type": "Dataset", "name": "raw.csv:" + "ab" * 16, "uri": "ab" * 16, "properties": {}, "custom_properties": {}}
    execs = []
    for i in range(n):
        u = f"00000000-0000-4000-8000-{site:04d}{i:08d}"
        h = f"{site:04d}{i:04d}" + "cd" * 12
        execs.append({"type": "s", "name": u, "last_known_state": "COMPLETE",
                      "properties": {"Execution_uuid": u, "Execution": f"python s.py {site} {i}", "Context_Type": f"{pipeline}/s"},
                      "custom_properties": {}, "events": [{"type": 3, "artifact": raw},
                                                          {"type": 4, "artifact": {"type": "Dataset", "name": f"o{site}_{i}.csv:{h}", "uri": h}}]})
    return {"Pipeline": [{"name": pipeline, "stages": [{"name": f"{pipeline}/s", "executions": execs}]}]}


def test_concurrent_pushes_all_land_once(server: Server) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from cmfrun.sync.client import SyncClient

    jobs = [("shared" if s % 2 else f"own{s}", s) for s in range(8)]

    def push(job: Any) -> Dict[str, Any]:
        pipeline, s = job
        return SyncClient(server.url).push(pipeline, _bundle(pipeline, s, 5), site=f"site{s}")

    with ThreadPoolExecutor(len(jobs)) as pool:
        reports = list(pool.map(push, jobs))
    assert sum(r["executions_added"] for r in reports) == 40 and not any(r["conflicts"] for r in reports)
    store = connect(server.store)
    uuids = [execution_uuids(e)[0] for e in store.executions()]
    assert len(uuids) == len(set(uuids)) == 40
    assert len(store.artifacts_by_uri(["ab" * 16])) == 1  # the shared input: one artifact
    assert len(pipeline_execs(store, "shared")) == 20
    hosts = {e.properties["Host"] for e in pipeline_execs(store, "shared")}
    assert hosts == {"site1", "site3", "site5", "site7"}
