"""`cmf metadata push` against a real sync server process (uvicorn + cmfrun.sync.api).

- bulk: a site store (SQLite) holding one pipeline of 10,000 executions and 50,000
  artifacts (each execution reads the previous one's first output and writes 5 files)
  pushed to an empty server store, on PostgreSQL (the goal) and on SQLite;
- incremental: one new execution pushed when the server already holds the 10,000;
- concurrency: 32 sites pushing at once (16 to their own pipelines, 16 to one shared
  pipeline whose runs read the same input artifact); afterwards every execution is on the
  server exactly once.

The server is a uvicorn process on 127.0.0.1 serving the sync router over the store;
the client is cmfrun's (`cmfrun.commands.metadata.push`), measured end to end.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Set, Tuple
from cmfrun.store import mlmd_installed

GOAL_BULK_S = 10.0
GOAL_SIZE = 10_000
GOAL_INCREMENTAL_S = 0.5
PG = "postgresql://postgres@127.0.0.1:5432/"

APP = '''
import os
from fastapi import FastAPI
from cmfrun.store import connect
from cmfrun.sync.api import create_router
STORE = os.environ["SYNC_BENCH_STORE"]
app = FastAPI()
app.include_router(create_router(lambda: connect(STORE)))
'''


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def make_bundle(pipeline: str, n: int, *, per: int = 5, stages: int = 10, seed: str = "site", start: int = 0,
                shared_input: str = "") -> Dict[str, Any]:
    """A bundle of ``n`` executions (CMF dumptojson shape, as ``cmf metadata export`` writes)."""
    ns = uuid.uuid5(uuid.NAMESPACE_URL, seed)
    st: List[Dict[str, Any]] = [{"name": f"{pipeline}/stage{k}", "properties": {"Pipeline_Stage": f"{pipeline}/stage{k}"},
           "custom_properties": {}, "executions": []} for k in range(stages)]
    for i in range(start, start + n):
        k = i % stages
        u = str(uuid.uuid5(ns, str(i)))
        events: List[Dict[str, Any]] = []
        if shared_input:
            events.append({"type": 3, "artifact": {"type": "Dataset", "name": f"raw.csv:{_md5(shared_input)}",
                                                   "uri": _md5(shared_input), "properties": {}, "custom_properties": {}}})
        if i:
            h = _md5(f"{seed}{i - 1}_0")
            events.append({"type": 3, "artifact": {"type": "Dataset", "name": f"{seed}/out/{i - 1}/0.csv:{h}", "uri": h,
                                                   "properties": {}, "custom_properties": {"size": 100}}})
        for j in range(per):
            h = _md5(f"{seed}{i}_{j}")
            events.append({"type": 4, "artifact": {"type": "Dataset", "name": f"{seed}/out/{i}/{j}.csv:{h}", "uri": h,
                                                   "properties": {"url": f"{pipeline}:/remote/{h}"},
                                                   "custom_properties": {"size": 100}}})
        st[k]["executions"].append({
            "type": f"stage{k}", "name": u, "last_known_state": "COMPLETE",
            "properties": {"Execution_uuid": u, "Execution": f"python step.py --i {i}", "Context_Type": f"{pipeline}/stage{k}",
                           "Pipeline_Type": pipeline, "Execution_type_name": f"stage{k}", "Git_Start_Commit": "abc",
                           "Host": seed, "Start_Time_ms": 1.7e12 + i, "Exit_Code": 0},
            "custom_properties": {"lr": 0.1, "i": i}, "events": events,
        })
    return {"Pipeline": [{"name": pipeline, "properties": {"Pipeline": pipeline}, "custom_properties": {}, "stages": st}]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, store: str, folder: Path, engine: str = "") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "sync_bench_app.py").write_text(APP)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "sync_bench_app:app", "--app-dir", str(folder), "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning"],
            env={**os.environ, "SYNC_BENCH_STORE": store, **({"CMFRUN_ENGINE": engine} if engine else {})},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for _ in range(600):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def _pg_db(tag: str) -> Tuple[str, str]:
    name = f"cmfrun_bench_{tag}_{uuid.uuid4().hex[:8]}"
    return PG + name, name


def _drop_pg(name: str) -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
                   capture_output=True)


def _pg_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


#: The engine the first columns run on: ml-metadata where installed (the reference), else the default.
_REFERENCE = "mlmd" if mlmd_installed() else None


def bulk_and_incremental(work: Path, n: int, backend: str, site: Path, reps_inc: int, engine: str = "",
                         client_engine: str = "") -> Dict[str, Any]:
    from cmfrun.commands.metadata import push
    from cmfrun.store import connect
    from cmfrun.sync.merge import merge_bundle

    if backend == "postgresql":
        uri, dbname = _pg_db("bulk")
    else:
        uri, dbname = str(work / f"server-{backend}.mlmd"), ""
    connect(uri).close()  # create the empty store (MLMD tables) before the clock starts
    srv = Server(uri, work / f"srv-{backend}{engine}{client_engine}", engine)
    label = {"sqlite": "server on SQLite", "postgresql": "server on PostgreSQL"}[backend]
    label += f" ({engine} engine)" if engine else " (default engine)"
    if client_engine:
        label += f", site read with the {client_engine} engine"
    out: Dict[str, Any] = {"backend": backend, "label": label, "engine": engine, "client_engine": client_engine,
                           "load_before": _load()}
    try:
        store = connect(str(site), engine=client_engine or _REFERENCE)
        t0 = time.perf_counter()
        res = push(store, "big", server=srv.url, site="site-a", full=True)
        out["bulk_s"] = time.perf_counter() - t0
        out["bulk_sent"] = res.executions_sent
        out["bulk_bytes"] = res.bytes_sent
        out["bulk_report"] = res.report.to_json()
        times: List[float] = []
        sent: List[int] = []
        byts: List[int] = []
        for r in range(reps_inc):
            # new runs of the site, numbered apart for each server measured (the site keeps them all)
            extra = make_bundle("big", 1, start=n + 100 * len(list(work.glob("srv-*"))) + r)
            merge_bundle(store, extra)  # a new run recorded at the site
            t0 = time.perf_counter()
            res = push(store, "big", server=srv.url, site="site-a")
            times.append(time.perf_counter() - t0)
            sent.append(res.executions_sent)
            byts.append(res.bytes_sent)
        out["inc_median_s"] = statistics.median(times)
        out["inc_sent"] = sent
        out["inc_bytes"] = statistics.median(byts)
        t0 = time.perf_counter()
        res = push(store, "big", server=srv.url, site="site-a")
        out["noop_s"] = time.perf_counter() - t0
        out["noop_bytes"] = res.bytes_sent
        server_store = connect(uri)
        out["server_executions"] = len(server_store.executions())
        out["load_after"] = _load()
    finally:
        srv.stop()
        if dbname:
            _drop_pg(dbname)
    return out


def concurrent_sites(work: Path, backend: str, sites: int = 32, per_site: int = 20) -> Dict[str, Any]:
    from cmfrun.sync.bundle import execution_uuids, parse_bundle
    from cmfrun.sync.client import SyncClient
    from cmfrun.store import connect

    if backend == "postgresql":
        uri, dbname = _pg_db("conc")
    else:
        uri, dbname = str(work / f"conc-{backend}.mlmd"), ""
    connect(uri).close()
    srv = Server(uri, work / f"srv-conc-{backend}")
    bundles = []
    for s in range(sites):
        pipeline = f"own{s}" if s % 2 == 0 else "shared"
        bundles.append((pipeline, make_bundle(pipeline, per_site, seed=f"site{s}", shared_input="raw")))
    expected: Dict[str, Set[str]] = {}
    for pipeline, b in bundles:
        expected.setdefault(pipeline, set()).update(e.uuid for p in parse_bundle(b).pipelines for e in p.executions)
    clients = [SyncClient(srv.url) for _ in bundles]
    barrier = threading.Barrier(sites)

    def one(i: int) -> None:
        pipeline, b = bundles[i]
        barrier.wait()
        clients[i].digests(pipeline)
        clients[i].push(pipeline, b, site=f"site{i}")

    try:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(sites) as pool:
            list(pool.map(one, range(sites)))
        wall = time.perf_counter() - t0
        store = connect(uri)
        got: Dict[str, List[str]] = {}
        for ex in store.executions():
            got.setdefault(str(ex.properties.get("Pipeline_Type")), []).append(",".join(execution_uuids(ex)))
        lost = sum(len(expected[p] - set(got.get(p, []))) for p in expected)
        doubled = sum(len(v) - len(set(v)) for v in got.values())
        names = [a.name for a in store.artifacts()]
        raw = [a for a in store.artifacts() if a.name.startswith("raw.csv:")]
        requests = sum(c.requests for c in clients)
        return {
            "backend": backend, "sites": sites, "wall_s": wall, "requests": requests, "rps": requests / wall,
            "executions": sum(len(v) for v in got.values()), "expected": sum(len(v) for v in expected.values()),
            "lost": lost, "doubled": doubled, "dup_artifacts": len(names) - len(set(names)), "raw_artifacts": len(raw),
            "bytes": sum(c.bytes_sent for c in clients),
        }
    finally:
        srv.stop()
        if dbname:
            _drop_pg(dbname)


def write_share(n: int, engine: str) -> Dict[str, Any]:
    """Where a merge's time goes on PostgreSQL: ``merge_bundle`` of ``n`` executions into an
    empty store with ``engine``, the time inside the engine's write calls (Store.put_*) apart."""
    from cmfrun.store import connect
    from cmfrun.sync.merge import merge_bundle

    uri, dbname = _pg_db("share")
    spent = {"write_s": 0.0}
    depth = [0]
    store = connect(uri, engine=engine)
    engine_cls = type(store)  # the engine's class: its write methods are the ones that run
    names = ("put_lineage_linked", "put_lineage", "put_links", "put_contexts")
    originals = {name: getattr(engine_cls, name) for name in names}

    def timed(fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            depth[0] += 1  # put_lineage_linked may call put_lineage and put_links: count once
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    spent["write_s"] += time.perf_counter() - t
        return wrapper

    try:
        bundle = make_bundle("share", n)
        for name, fn in originals.items():
            setattr(engine_cls, name, timed(fn))
        t0 = time.perf_counter()
        merge_bundle(store, bundle)
        total = time.perf_counter() - t0
    finally:
        for name, fn in originals.items():
            setattr(engine_cls, name, fn)
        store.close()
        _drop_pg(dbname)
    return {"n": n, "merge_s": total, "engine": engine, "cls": engine_cls.__name__, "load": _load(), **spent}


def cmflib_comparison(work: Path, site: Path, n_merge: int) -> Dict[str, Any]:
    """cmflib 0.1.0 on the same data: its client's dumptojson of the site store, and its
    server-side merge (``cmf_merger.parse_json_to_mlmd``) of the first ``n_merge`` executions."""
    py = os.environ.get("CMFRUN_CMFLIB_PYTHON") or str(Path(__file__).resolve().parent.parent / ".venv-cmflib" / "bin" / "python")
    if not Path(py).exists():
        return {"skipped": "no cmflib virtualenv"}
    script = r'''
import json, sys, time, os
from cmflib.cmfquery import CmfQuery
t = time.perf_counter(); payload = CmfQuery(sys.argv[1]).dumptojson("big"); dump_s = time.perf_counter() - t
data = json.loads(payload)["Pipeline"][0]
n = int(sys.argv[3]); kept = 0
for s in data["stages"]:
    s["executions"] = s["executions"][: max(0, n - kept)]; kept += len(s["executions"])
os.chdir(sys.argv[2])
from cmflib.cmf_merger import parse_json_to_mlmd
t = time.perf_counter(); status = parse_json_to_mlmd(json.dumps(data), os.path.join(sys.argv[2], "mlmd"), "pull", None); merge_s = time.perf_counter() - t
print(json.dumps({"dump_s": dump_s, "payload_bytes": len(payload), "merge_s": merge_s, "merged": kept, "status": status}))
'''
    folder = work / "cmflib"
    folder.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=folder, check=True)
    subprocess.run(["git", "remote", "add", "origin", "https://example.com/x.git"], cwd=folder, check=True)
    env = {**os.environ, "PATH": str(Path(py).parent) + os.pathsep + os.environ.get("PATH", "")}
    init = subprocess.run([str(Path(py).parent / "cmf"), "init", "local", "--path", str(folder / "remote"),
                           "--git-remote-url", "https://example.com/x.git"], cwd=folder, env=env, capture_output=True, text=True)
    if init.returncode != 0:
        return {"skipped": "cmflib's cmf init failed: " + " ".join(init.stderr.split())[-200:]}
    proc = subprocess.run([py, "-c", script, str(site), str(folder), str(n_merge)], capture_output=True, text=True, cwd=folder,
                          env=env)
    if proc.returncode != 0:
        return {"skipped": "cmflib failed: " + " ".join(proc.stderr.split())[-300:]}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main(quick: bool = False) -> str:
    from cmfrun.store import connect
    from cmfrun.sync.merge import merge_bundle

    n = 1000 if quick else GOAL_SIZE
    work = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    try:
        site = work / "site.mlmd"
        t0 = time.perf_counter()
        merge_bundle(connect(str(site)), make_bundle("big", n))
        site_s = time.perf_counter() - t0
        from cmfrun.sync.bundle import export_bundle

        t0 = time.perf_counter()
        export_bundle(connect(str(site)), "big")
        export_s = time.perf_counter() - t0
        time.sleep(1.5)  # past the push mark's margin
        backends = ["sqlite"] + (["postgresql"] if _pg_up() else [])
        # ml-metadata (where installed) is the first column, as before the default became sql.
        results = [bulk_and_incremental(work, n, b, site, 3 if quick else 5, engine=_REFERENCE or "") for b in backends]
        if "postgresql" in backends:
            results.append(bulk_and_incremental(work, n, "postgresql", site, 3 if quick else 5, engine="sql"))
            results.append(bulk_and_incremental(work, n, "postgresql", site, 3 if quick else 5, engine="sql",
                                                client_engine="sql"))
        conc = [concurrent_sites(work, b, sites=32, per_site=10 if quick else 20) for b in backends]
        cmflib = cmflib_comparison(work, site, 20 if quick else 100)
        from cmfrun.store import mlmd_installed

        share = ([write_share(200 if quick else 1000, "mlmd")] if _pg_up() and mlmd_installed() else []) + (
            [write_share(n, "sql")] if _pg_up() else [])
        cmflib["ours_export_s"] = export_s
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return render(n, site_s, results, conc, cmflib, share)


def _met(value: float, goal: float) -> str:
    return "met" if value <= goal else "NOT met"


def render(n: int, site_s: float, results: List[Dict[str, Any]], conc: List[Dict[str, Any]], cmflib: Dict[str, Any],
           share: List[Dict[str, Any]]) -> str:
    lines = [
        "## Sync (`cmf metadata push`, issue 10)",
        "",
        f"A site store (SQLite) with one pipeline of {n:,} executions and {5 * n:,} artifacts ({6 * n - 1:,} events),"
        f" pushed by cmfrun's client to a sync server process (uvicorn, 127.0.0.1) over an empty store."
        f" Building the site store itself (`merge_bundle` into SQLite) took {site_s:.1f} s.",
        "",
        "| measure | " + " | ".join(r["label"] for r in results) + " | goal |",
        "|---|" + "---:|" * len(results) + "---|",
    ]
    pg = [r for r in results if r["backend"] == "postgresql"]
    worst_inc = max((r["inc_median_s"] for r in pg), default=None)

    def row(title: str, key: str, fmt: str, goal: str = "") -> None:
        lines.append(f"| {title} | " + " | ".join(format(r[key], fmt) for r in results) + f" | {goal} |")

    row(f"bulk push, {n:,} executions (s, one run)", "bulk_s", ".1f", f"<= {GOAL_BULK_S:.0f} s on PostgreSQL (below)")
    row("bulk push, bytes sent", "bulk_bytes", ",")
    row(f"incremental push of 1 new execution (s, median of {len(results[0]['inc_sent'])})", "inc_median_s", ".3f",
        f"<= {GOAL_INCREMENTAL_S} s: {_met(worst_inc, GOAL_INCREMENTAL_S) if worst_inc is not None else 'n/a'}")
    row("incremental push, bytes sent (median)", "inc_bytes", ",")
    row("push with nothing new (s)", "noop_s", ".3f")
    row("push with nothing new (bytes)", "noop_bytes", "d")
    row("executions on the server afterwards", "server_executions", ",")
    lines.append("")
    for r in pg:
        verdict = _met(r["bulk_s"], GOAL_BULK_S) if n == GOAL_SIZE else f"not judged (the goal is for {GOAL_SIZE:,} executions)"
        lines.append(f"- Goal (bulk push of {GOAL_SIZE:,} executions to PostgreSQL <= {GOAL_BULK_S:.0f} s), {r['label']}:"
                     f" {r['bulk_s']:.1f} s, **{verdict}** (load {r['load_before']} -> {r['load_after']}).")
    for sh in share:
        lines.append("")
        if sh["engine"] == "mlmd":
            lines.append(
                f"Where the time goes on PostgreSQL, mlmd engine: `merge_bundle` of {sh['n']:,} executions into an empty"
                f" store took {sh['merge_s']:.1f} s, of which {sh['write_s']:.1f} s"
                f" ({100 * sh['write_s'] / sh['merge_s']:.0f}%) inside MLMD's own write calls (`PutLineageSubgraph`,"
                " `PutAttributionsAndAssociations`, `PutContexts`: its PostgreSQL backend writes row by row)."
            )
        else:
            lines.append(
                f"Where the time goes on PostgreSQL, sql engine: `merge_bundle` of the same {sh['n']:,} executions"
                f" (in-process, no HTTP) took {sh['merge_s']:.1f} s (load {sh['load']}), of which {sh['write_s']:.1f} s"
                f" ({100 * sh['write_s'] / sh['merge_s']:.0f}%) in the bulk write (`put_lineage_linked`: ids reserved"
                " from the sequences, rows sent with COPY, one transaction; ~42 rows per execution with their MLMD indexes);"
                " the rest is the merge's checks and lookups. The push adds the site's read and JSON export,"
                " the transfer, and the server's JSON parse and bundle validation."
            )
    lines.append("")
    lines.append("32 sites pushing at once (16 to their own pipeline, 16 to one shared pipeline; every run reads the same"
                 " `raw.csv`): digests + push per site, all started together.")
    lines.append("")
    lines.append("| server store | wall (s) | requests/s | executions on server / expected | lost | doubled | raw.csv artifacts |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|")
    for c in conc:
        lines.append(f"| {c['backend']} | {c['wall_s']:.1f} | {c['rps']:.1f} | {c['executions']} / {c['expected']} | {c['lost']} |"
                     f" {c['doubled']} | {c['raw_artifacts']} |")
    lines.append("")
    if "skipped" in cmflib:
        lines.append(f"cmflib 0.1.0 comparison: skipped ({cmflib['skipped']}).")
    else:
        per = cmflib["merge_s"] / max(1, cmflib["merged"])
        ours = next((r["bulk_s"] for r in results if r["backend"] == "sqlite"), None)
        lines.append(
            f"cmflib 0.1.0 on the same site store: its client's `dumptojson` took {cmflib['dump_s']:.1f} s"
            f" ({cmflib['payload_bytes']:,} bytes) before sending anything (cmfrun's `export_bundle` of the same"
            f" pipeline: {cmflib['ours_export_s']:.1f} s); its server-side merge"
            f" (`cmf_merger.parse_json_to_mlmd`, SQLite) took {cmflib['merge_s']:.1f} s for the first {cmflib['merged']}"
            f" executions, {per * 1000:.0f} ms per execution, i.e. about {per * n / 60:.0f} min for all {n:,}"
            + (f" ({per * n / ours:.0f}x cmfrun's whole push to a SQLite server)." if ours else ".")
        )
    lines.append("")
    loads = ", ".join(f"{r['label']}: {r['load_before']} -> {r['load_after']}" for r in results)
    lines.append(f"Load average (1 min) around the bulk/incremental runs: {loads} (2 cores shared with other work).")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main(quick="--quick" in sys.argv))
