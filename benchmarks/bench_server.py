"""`cmf server` benchmarks (issue 10, server half): 32 sites pushing at once with CMF's protocol.

Each site sends what cmflib's `cmf metadata push` sends: ``POST /api/mlmd_push`` with
``{exec_uuid: null, json_payload: <dumptojson string>, pipeline_name}``. Two bursts, each
against a fresh server store:

- *different pipelines*: site k pushes pipeline ``site-k`` (``EXECS`` executions, each reading
  one shared raw dataset and writing its own output);
- *same pipeline*: every site pushes its own executions of pipeline ``shared``, plus
  ``COMMON`` executions that every site holds (same uuids: they must land once).

All 32 requests are sent at once from 32 threads; the burst's wall time gives requests per
second. Baseline, same run: the same 32 pushes one after another from one thread. After
each burst the store is checked: every execution present exactly once (by uuid), no artifact
doubled (by name), every push answered 200. PostgreSQL (127.0.0.1:5432, a fresh database per
burst) and SQLite.
"""
from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid as _uuid
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from cmfrun import schema
from cmfrun.commands import inspect
from cmfrun.recorder import FileRef, RunRecord, new_uuid, record_run
from cmfrun.store import connect

SITES = 32
EXECS = 10
COMMON = 2
CMF = str(Path(sys.executable).parent / "cmf")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def _fresh_store(backend: str, tmp: Path) -> Tuple[str, Optional[str]]:
    if backend == "sqlite":
        return str(tmp / f"server-{_uuid.uuid4().hex[:8]}.mlmd"), None
    db = f"cmfrun_bench_{_uuid.uuid4().hex[:10]}"
    return f"postgresql://postgres@127.0.0.1:5432/{db}", db


def _drop(db: Optional[str]) -> None:
    if db:
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc", f'DROP DATABASE IF EXISTS "{db}"'],
                       capture_output=True)


class Server:
    def __init__(self, store: str, data: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(data.parent / f"server-{self.port}.log", "wb")
        self.proc = subprocess.Popen([CMF, "server", "--port", str(self.port), "--mlmd", store, "--data", str(data)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=2).read()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        raise RuntimeError(f"cmf server did not start (see {self.log.name})")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def _post(url: str, body: bytes) -> Tuple[int, Dict[str, Any]]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=600) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {"detail": exc.read().decode(errors="replace")}


def build_payloads(tmp: Path, execs: int) -> Dict[str, List[Tuple[str, bytes]]]:
    """The 32 request bodies of each burst, recorded with cmfrun and exported as dumptojson."""
    raw = FileRef("data/raw.csv", "f" * 32)
    different: List[Tuple[str, bytes]] = []
    src = connect(tmp / "sites.mlmd")
    for k in range(SITES):
        pipe = f"site-{k:02d}"
        for i in range(execs):
            u = new_uuid()
            record_run(src, RunRecord(pipe, "train", f"python train.py --seed {i}", u, execution_name=u,
                                      inputs=[raw], outputs=[FileRef(f"model-{k}-{i}.pkl", f"{k:04x}{i:04x}".ljust(32, "0"), type=schema.MODEL)],
                                      custom={"seed": i}))
        data = inspect.export_metadata(src, pipe).data
        different.append((pipe, json.dumps({"pipeline_name": pipe, "exec_uuid": None, "json_payload": json.dumps(data)}).encode()))
    # Same pipeline: one store per site (so each export holds only that site's runs), COMMON runs everywhere.
    common = [new_uuid() for _ in range(COMMON)]
    same: List[Tuple[str, bytes]] = []
    for k in range(SITES):
        site = connect(tmp / f"same-{k}.mlmd")
        for i, u in enumerate(common):
            record_run(site, RunRecord("shared", "prepare", "python prep.py", u, execution_name=u, inputs=[raw],
                                       outputs=[FileRef("data/prep.csv", "e" * 32)], properties={"Host": "site-00"}))
        for i in range(execs):
            u = new_uuid()
            record_run(site, RunRecord("shared", "train", f"python train.py --site {k} --seed {i}", u, execution_name=u,
                                       inputs=[FileRef("data/prep.csv", "e" * 32)],
                                       outputs=[FileRef(f"model-{k}-{i}.pkl", f"{k:04x}{i:04x}".ljust(32, "1"), type=schema.MODEL)],
                                       properties={"Host": f"site-{k:02d}"}))
        data = inspect.export_metadata(site, "shared").data
        same.append(("shared", json.dumps({"pipeline_name": "shared", "exec_uuid": None, "json_payload": json.dumps(data)}).encode()))
        site.close()
    return {"different pipelines": different, "same pipeline": same}


def _burst(url: str, payloads: List[Tuple[str, bytes]], concurrent: bool) -> Tuple[float, List[int]]:
    statuses: List[int] = [0] * len(payloads)
    start = threading.Barrier(len(payloads) + 1) if concurrent else None

    def push(i: int) -> None:
        if start is not None:
            start.wait()
        statuses[i], _ = _post(url + "/api/mlmd_push", payloads[i][1])

    t0 = time.perf_counter()
    if concurrent:
        threads = [threading.Thread(target=push, args=(i,)) for i in range(len(payloads))]
        for t in threads:
            t.start()
        assert start is not None
        start.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
    else:
        for i in range(len(payloads)):
            push(i)
    return time.perf_counter() - t0, statuses


def _check(store_uri: str, payloads: List[Tuple[str, bytes]], execs: int) -> str:
    """Every pushed execution exactly once, no artifact doubled; '' when all is well."""
    expected = Counter()
    for _, body in payloads:
        data = json.loads(json.loads(body)["json_payload"])
        for p in data["Pipeline"]:
            for s in p["stages"]:
                for e in s["executions"]:
                    expected[e["properties"]["Execution_uuid"]] += 1
    store = connect(store_uri, create=False)
    try:
        got = Counter(str(e.properties.get("Execution_uuid", "")) for e in store.executions())
        names = Counter(a.name for a in store.artifacts())
    finally:
        store.close()
    problems = []
    missing = set(expected) - set(got)
    doubled = [u for u, n in got.items() if n > 1]
    if missing:
        problems.append(f"{len(missing)} executions missing")
    if doubled:
        problems.append(f"{len(doubled)} executions doubled")
    if any(n > 1 for n in names.values()):
        problems.append(f"{sum(1 for n in names.values() if n > 1)} artifacts doubled")
    if len(got) != len(expected):
        problems.append(f"{len(got)} executions stored, {len(expected)} pushed")
    return "; ".join(problems)


def _executions(body: bytes) -> List[str]:
    data = json.loads(json.loads(body)["json_payload"])
    return [e["properties"]["Execution_uuid"] for p in data["Pipeline"] for s in p["stages"] for e in s["executions"]]


def _uuids(body: bytes) -> int:
    return len(_executions(body))


def _unique(bodies: List[Tuple[str, bytes]]) -> int:
    return len({u for _, b in bodies for u in _executions(b)})


def run_bursts(backend: str, tmp: Path, payloads: Dict[str, List[Tuple[str, bytes]]], execs: int, repeats: int) -> List[Dict[str, Any]]:
    rows = []
    for name, bodies in payloads.items():
        conc, seq, problems, bad_status = [], [], [], 0
        for _ in range(repeats):
            for concurrent, times in ((True, conc), (False, seq)):
                store, db = _fresh_store(backend, tmp)
                data = tmp / f"data-{_uuid.uuid4().hex[:6]}"
                try:
                    server = Server(store, data)
                    try:
                        wall, statuses = _burst(server.url, bodies, concurrent)
                    finally:
                        server.stop()
                    times.append(wall)
                    bad_status += sum(1 for s in statuses if s != 200)
                    problem = _check(store, bodies, execs)
                    if problem:
                        problems.append(problem)
                finally:
                    _drop(db)
        rows.append({"backend": backend, "burst": name, "concurrent_s": statistics.median(conc),
                     "sequential_s": statistics.median(seq), "bad_status": bad_status, "problems": problems,
                     "sent": sum(_uuids(b) for _, b in bodies), "unique": _unique(bodies)})
    return rows


def _get_ms(url: str) -> float:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as resp:
        resp.read()
    return (time.perf_counter() - t0) * 1000


def read_bench(tmp: Path, n: int) -> List[str]:
    """`GET /api/v1/executions` on a store of ``n`` executions (bench_ui's generator)."""
    from benchmarks.bench_ui import PIPELINE, build_store

    path = tmp / "big.mlmd"
    build_store(path, n)
    store = connect(path, create=False)
    t0 = time.perf_counter()
    inspect.list_executions(store, pipeline=PIPELINE)
    baseline_ms = (time.perf_counter() - t0) * 1000
    store.close()
    server = Server(str(path), tmp / "big-data")
    try:
        q = server.url + f"/api/v1/executions?pipeline={PIPELINE}&limit=20"
        first = _get_ms(q)  # waits for the warm-up the server started
        warm = statistics.median(_get_ms(q + f"&offset={20 * i}&sort={'-id' if i % 2 else 'stage'}") for i in range(21))
        one_uuid = json.loads(urllib.request.urlopen(q, timeout=60).read())["items"][0]["uuid"]
        show = statistics.median(_get_ms(server.url + f"/api/v1/executions/{one_uuid}") for _ in range(11))
        start = threading.Barrier(33)

        def reader(k: int) -> None:
            start.wait()
            for i in range(5):
                _get_ms(q + f"&offset={(k * 5 + i) * 20}")

        threads = [threading.Thread(target=reader, args=(k,)) for k in range(32)]
        for t in threads:
            t.start()
        start.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        rps = 32 * 5 / (time.perf_counter() - t0)
    finally:
        server.stop()
    return [
        "",
        f"Reads: `GET /api/v1/executions?pipeline=...&limit=20` on a store of {n} executions (bench_ui's generator), "
        "`cmf server` in a child process; the server fills its executions cache in the background when it starts.",
        "",
        "| measure | median | baseline (same run) | ratio |",
        "|---|---|---|---|",
        f"| one page, cache warm (21 pages, two sort orders) | {warm:.1f} ms | `inspect.list_executions` of the pipeline (what a page cost before the cache): {baseline_ms:.0f} ms | {warm / baseline_ms:.3f}x |",
        f"| first page right after the server started (waits for the warm-up) | {first:.0f} ms | | |",
        f"| one execution by uuid (`/api/v1/executions/UUID`) | {show:.1f} ms | | |",
        f"| 32 clients x 5 pages at once | {rps:.0f} requests/s | | |",
    ]


def main(quick: bool = False) -> str:
    execs = 4 if quick else EXECS
    repeats = 1 if quick else 3
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-server-") as d:
        tmp = Path(d)
        payloads = build_payloads(tmp, execs)
        rows: List[Dict[str, Any]] = []
        for backend in ("postgresql", "sqlite"):
            if backend == "postgresql" and not _pg_up():
                continue
            rows += run_bursts(backend, tmp, payloads, execs, repeats)
        reads = read_bench(tmp, 1000 if quick else 10_000)
    load_after = os.getloadavg()[0]
    lines = [
        "## cmf server (issue 10, server half): 32 sites pushing at once",
        "",
        f"{SITES} sites each send cmflib's `POST /api/mlmd_push` (`json_payload` = a `dumptojson` string) at the same "
        f"moment, to `cmf server` in a child process on a fresh store. *Different pipelines*: site k pushes pipeline "
        f"`site-k`, {execs} executions (one shared input, one output each). *Same pipeline*: every site pushes its own "
        f"{execs} executions of `shared` plus {COMMON} executions all sites hold (same uuids, must land once). "
        f"Baseline: the same 32 pushes one after another. Medians of {repeats} bursts, each on a new store; after every "
        "burst the store is checked (each execution exactly once by uuid, no artifact name twice, every answer 200). "
        "Merges take turns in the server (one at a time), so concurrency buys overlap of HTTP and JSON work only.",
        "",
        "| store | burst | executions sent (distinct) | 32 at once: wall | requests/s | one after another: wall | ratio | all landed, none doubled |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ok = "yes" if not r["problems"] and not r["bad_status"] else f"NO: {r['bad_status']} non-200; {'; '.join(r['problems'][:2])}"
        lines.append(
            f"| {r['backend']} | {r['burst']} | {r['sent']} ({r['unique']}) | {r['concurrent_s']:.2f} s | {SITES / r['concurrent_s']:.1f} | "
            f"{r['sequential_s']:.2f} s | {r['concurrent_s'] / r['sequential_s']:.2f}x | {ok} |"
        )
    lines += reads
    lines += ["", f"Load average (1 min) {load_before:.1f} before, {load_after:.1f} after, on {os.cpu_count()} cores."]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(main(quick="--quick" in sys.argv))
