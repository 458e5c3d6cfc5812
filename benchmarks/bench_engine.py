"""Store engines side by side: ml-metadata (``mlmd``) against plain SQL (``sql``), in one run.

Both engines are measured in the same process run on the same machine, interleaved
where the work allows it, so machine load hits both alike:

- ``log_dataset`` of a new 1 KiB file (``cmfrun.Cmf``, SQLite store, a git project):
  goal sql <= 0.5x mlmd; interleaved with it, the floor: one one-row write transaction
  with SQLite's default durability (what every record write commits);
- ``cmf dvc ingest`` of the generated 1,000-stage lock of ``bench_ingest`` into a fresh
  store: goal sql <= 0.5x mlmd; the engine-independent lock reading is shown apart;
- all ancestors of the artifact 100 steps deep in ``bench_query``'s 100,000-artifact
  store (one store, opened by each engine; this size in quick runs too): goal sql <= 5 ms;
  a bare recursive CTE over the Event table through ``sqlite3`` is shown as the floor;
- ``cmfrun -- true`` and ``cmfrun --sync -- true`` (the merge inline) per engine;
- import time of each engine module in a fresh interpreter (``cmfrun.store`` already loaded).

On a Python without ml-metadata only the sql column is filled.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

from benchmarks import bench_ingest, bench_query, bench_wrapper
from cmfrun.store import ENV_ENGINE, connect, mlmd_installed

ENGINES = (["mlmd"] if mlmd_installed() else []) + ["sql"]


def _ms(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000.0


def _median(xs: List[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _with_engine(engine: str) -> None:
    os.environ[ENV_ENGINE] = engine


def log_dataset(base: Path, nfiles: int) -> Dict[str, float]:
    """Median ms of ``log_dataset`` of a new 1 KiB file per engine (calls interleaved)."""
    from cmfrun.api import Cmf

    cmfs = {}
    for engine in ENGINES:
        root = _project(base / engine, nfiles)
        _with_engine(engine)
        cmf = Cmf(filepath=str(root / "mlmd"), pipeline_name="bench", root=root)
        assert cmf.store.engine == engine
        cmf.create_context("train")
        cmf.create_execution("Train")
        cmf.log_dataset(str(root / "data" / "f00000.bin"), "input")  # warm: imports, env scan
        cmfs[engine] = (cmf, root)
    times: Dict[str, List[float]] = {e: [] for e in [*ENGINES, "floor"]}
    floor = _commit_floor(base / "floor.sqlite")
    for i in range(1, nfiles):
        for engine, (cmf, root) in cmfs.items():
            p = root / "data" / f"f{i:05d}.bin"
            times[engine].append(_ms(lambda: cmf.log_dataset(str(p), "input")))
        times["floor"].append(_ms(floor))
    for cmf, _ in cmfs.values():
        cmf.close()
    return {e: _median(t) for e, t in times.items()}


def _commit_floor(path: Path) -> Callable[[], None]:
    """One write transaction as both engines commit a record: a one-row UPDATE with SQLite's
    defaults (rollback journal DELETE, synchronous FULL, as ml-metadata opens its stores),
    in the same file system. No engine can write a record faster on this disk."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)")
    conn.execute("INSERT INTO t (v) VALUES (0)")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"

    def commit() -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE t SET v = v + 1 WHERE id = 1")
        conn.execute("COMMIT")

    return commit


def _project(root: Path, nfiles: int) -> Path:
    """A git project with ``nfiles`` random 1 KiB files under data/."""
    (root / "data").mkdir(parents=True)
    for i in range(nfiles):
        (root / "data" / f"f{i:05d}.bin").write_bytes(os.urandom(1024))
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@x"}
    (root / ".gitignore").write_text("data/\nmlmd*\n")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "init"]):
        subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)
    return root


def ingest(base: Path, stages: int, reps: int) -> Dict[str, float]:
    """Median seconds of a fresh ingest of a ``stages``-stage lock per engine."""
    from cmfrun.ingest import ingest_locks
    from cmfrun.ingest.merge import read_locks

    lock = base / "dvc.lock"
    lock.write_text(bench_ingest.make_lock(stages))
    times: Dict[str, List[float]] = {e: [] for e in ENGINES}
    for engine in ENGINES:  # warm-up: imports and module state
        ingest_locks(connect(base / f"warm-{engine}", engine=engine), [lock], pipeline="warm", root=base)
    shared: List[float] = []
    for r in range(reps):
        for engine in ENGINES:
            store = connect(base / f"mlmd-{engine}-{r}", engine=engine)
            t = time.perf_counter()
            summary = ingest_locks(store, [lock], pipeline="bench", root=base)
            times[engine].append(time.perf_counter() - t)
            assert summary.executions_created == stages, (engine, summary)
            store.close()
        t = time.perf_counter()
        read_locks([lock], base)  # the part of every ingest that does not depend on the engine
        shared.append(time.perf_counter() - t)
    return {**{e: _median(t) for e, t in times.items()}, "shared": _median(shared)}


def _cte_ancestors(path: Path, artifact_id: int) -> List[int]:
    """The floor: ids of all ancestors with one recursive query over MLMD's Event table."""
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "WITH RECURSIVE up(aid) AS (SELECT ? UNION "
            "SELECT i.artifact_id FROM up JOIN Event o ON o.artifact_id = up.aid AND o.type = 4 "
            "JOIN Event i ON i.execution_id = o.execution_id AND i.type = 3) SELECT aid FROM up",
            (artifact_id,),
        ).fetchall()
        return [int(r[0]) for r in rows]
    finally:
        conn.close()


def ancestors(repeat: int) -> Dict[str, float]:
    """Median ms of ``lineage.ancestors`` 100 steps deep per engine, the bare CTE, and the SQL
    engine's own statements replayed alone (rows fetched, no records built), on the
    100,000-artifact store the goal names (even in a quick run: it is built once, cached)."""
    from cmfrun import lineage

    path = bench_query.cached_store(quick=False)
    stores = {e: connect(path, create=False, read_only=True, engine=e) for e in ENGINES}
    any_store = next(iter(stores.values()))
    aid = max(ev.artifact_id for ev in any_store.events_by_execution([bench_query.CHAIN]) if ev.kind == "OUTPUT")
    graphs = {e: lineage.ancestors(store, artifact_ids=[aid]) for e, store in stores.items()}
    for g in graphs.values():
        assert max(g.execution_depth.values()) == bench_query.CHAIN
        assert set(g.artifacts) == set(_cte_ancestors(path, aid))
    first = next(iter(graphs.values()))
    assert all(g == first for g in graphs.values()), "the engines read different records"
    # The SQL engine's statements for one walk, as SQLite ran them (values inlined).
    conn = stores["sql"]._conn  # type: ignore[attr-defined]
    statements: List[str] = []
    conn.set_trace_callback(statements.append)
    lineage.ancestors(stores["sql"], artifact_ids=[aid])
    conn.set_trace_callback(None)

    def replay() -> None:
        for sql in statements:
            conn.execute(sql).fetchall()

    times: Dict[str, List[float]] = {e: [] for e in [*ENGINES, "cte", "statements", "ids"]}
    for _ in range(repeat):
        for engine, store in stores.items():
            times[engine].append(_ms(lambda: lineage.ancestors(store, artifact_ids=[aid])))
        times["cte"].append(_ms(lambda: _cte_ancestors(path, aid)))
        times["statements"].append(_ms(replay))
        times["ids"].append(_ms(lambda: lineage.ancestors(stores["sql"], artifact_ids=[aid], fetch=False)))
    for store in stores.values():
        store.close()
    out = {e: _median(t) for e, t in times.items()}
    out.update({f"{e}_min": min(t) for e, t in times.items()})  # the machine's best, no waiting for a core
    out["repeat"] = float(repeat)
    out["artifacts"] = float(len(graphs["sql"].artifacts))
    sql_graph = graphs["sql"]
    props = [len(a.properties) + len(a.custom) for a in sql_graph.artifacts.values()]
    props += [len(e.properties) + len(e.custom) for e in sql_graph.executions.values()]
    out["properties"] = float(sum(props))
    out["executions"] = float(len(graphs["sql"].executions))
    out["n_statements"] = float(len(statements))
    return out


def wrapper(tmp: Path, n: int) -> Dict[str, Dict[str, float]]:
    """Median ms of ``cmfrun -- true`` and ``cmfrun --sync -- true`` per engine, and of ``true``."""
    root = tmp / "wrapper"
    bench_wrapper._git_project(root)
    envs = {e: bench_wrapper._env(**{ENV_ENGINE: e}) for e in ENGINES}
    for env in envs.values():
        for _ in range(2):
            bench_wrapper._time([bench_wrapper.CMFRUN, "--sync", "--", "true"], root, env)
    res: Dict[str, Dict[str, List[float]]] = {e: {"plain": [], "sync": []} for e in ENGINES}
    bare: List[float] = []
    for _ in range(n):
        bare.append(bench_wrapper._time(["true"], root, envs[ENGINES[0]]) * 1000)
        for engine, env in envs.items():
            res[engine]["plain"].append(bench_wrapper._time([bench_wrapper.CMFRUN, "--", "true"], root, env) * 1000)
            res[engine]["sync"].append(bench_wrapper._time([bench_wrapper.CMFRUN, "--sync", "--", "true"], root, env) * 1000)
    out = {e: {k: _median(v) for k, v in r.items()} for e, r in res.items()}
    out["true"] = {"plain": _median(bare), "sync": _median(bare)}
    return out


def import_ms(n: int) -> Dict[str, float]:
    """Median ms to import each engine module in a fresh interpreter (after ``cmfrun.store``)."""
    code = (
        "import time, importlib, cmfrun.store\n"
        "t = time.perf_counter(); importlib.import_module('cmfrun.store.{mod}')\n"
        "print((time.perf_counter() - t) * 1000)\n"
    )
    env = bench_wrapper._env()
    out: Dict[str, float] = {}
    for engine in ENGINES:
        args = [sys.executable, "-c", code.format(mod=engine)]
        subprocess.run(args, env=env, check=True, capture_output=True)  # byte-code cache
        out[engine] = _median(
            [float(subprocess.run(args, env=env, check=True, capture_output=True, text=True).stdout) for _ in range(n)]
        )
    return out


def _cell(value: Optional[float], fmt: str) -> str:
    return "-" if value is None or value != value else format(value, fmt)


def _ratio(res: Dict[str, float]) -> str:
    if "mlmd" not in res:
        return "-"
    return f"{res['sql'] / res['mlmd']:.2f}x"


def main(quick: bool = False) -> str:
    nfiles = 200 if quick else 1000
    stages = 100 if quick else 1000
    reps = 3 if quick else 5
    load_before = os.getloadavg()[0]
    saved = os.environ.get(ENV_ENGINE)
    tmp = Path(tempfile.mkdtemp(prefix="cmfrun-bench-engine-"))
    try:
        os.environ["XDG_CACHE_HOME"] = str(tmp / "cache")
        print("log_dataset", file=sys.stderr, flush=True)
        logd = log_dataset(tmp / "api", nfiles)
        print("ingest", file=sys.stderr, flush=True)
        (tmp / "ingest").mkdir()
        ing = ingest(tmp / "ingest", stages, reps)
        print("ancestors", file=sys.stderr, flush=True)
        anc = ancestors(9 if quick else 31)
        print("wrapper", file=sys.stderr, flush=True)
        wrap = wrapper(tmp, 5 if quick else 15)
        print("imports", file=sys.stderr, flush=True)
        imp = import_ms(5 if quick else 9)
    finally:
        if saved is None:
            os.environ.pop(ENV_ENGINE, None)
        else:
            os.environ[ENV_ENGINE] = saved
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = os.getloadavg()[0]

    def row(label: str, res: Dict[str, float], fmt: str, unit: str, goal: str, met: Optional[bool]) -> str:
        verdict = "" if met is None else (" (met)" if met else " (**NOT met**)")
        cells = " | ".join(f"{_cell(res.get(e), fmt)} {unit}" for e in ("mlmd", "sql"))
        return f"| {label} | {cells} | {_ratio(res)} | {goal}{verdict} |"

    has_mlmd = "mlmd" in ENGINES
    wrap_plain = {e: wrap[e]["plain"] - wrap["true"]["plain"] for e in ENGINES}
    wrap_sync = {e: wrap[e]["sync"] - wrap["true"]["sync"] for e in ENGINES}
    lines = [
        "## Store engines: ml-metadata (`mlmd`) vs plain SQL (`sql`)",
        "",
        f"Same run, SQLite stores, calls interleaved between the engines. Load average {load_before:.1f} "
        f"at start, {load_after:.1f} at the end on {os.cpu_count()} cores (other work on the machine "
        "inflates every figure; the ratios are the point).",
        "",
        "| measure | mlmd | sql | sql / mlmd | goal |",
        "|---|---|---|---|---|",
        row(f"`log_dataset`, new 1 KiB file (median of {nfiles - 1})", logd, ".2f", "ms", "sql <= 0.5x",
            logd["sql"] <= 0.5 * logd["mlmd"] if has_mlmd else None),
        f"| the floor: one one-row write transaction, journal DELETE + synchronous FULL (interleaved) | | "
        f"{logd['floor']:.2f} ms | {_ratio({'sql': logd['floor'], **({'mlmd': logd['mlmd']} if has_mlmd else {})})} | |",
        row(f"`cmf dvc ingest`, fresh, {stages:,}-stage lock (median of {reps})", ing, ".2f", "s", "sql <= 0.5x",
            ing["sql"] <= 0.5 * ing["mlmd"] if has_mlmd else None),
        f"| of which reading the lock (`read_locks`, the same for both engines) | {ing['shared']:.2f} s | "
        f"{ing['shared']:.2f} s | | |",
        row(f"all ancestors {bench_query.CHAIN} steps deep, `lineage.ancestors` ({int(anc['artifacts']):,} artifacts)",
            anc, ".2f", "ms", "sql <= 5 ms", anc["sql"] <= 5.0),
        f"| the same as one recursive CTE through `sqlite3` (ids only, the floor) | | {anc['cte']:.2f} ms | | |",
        f"| the same without the records, `fetch=False` (ids, depths, edges) | | {anc['ids']:.2f} ms | | |",
        f"| the SQL engine's {int(anc['n_statements'])} statements of that walk replayed alone (rows fetched: "
        f"{int(anc['artifacts']):,} artifacts, {int(anc['executions'])} "
        f"executions, {int(anc['properties']):,} properties; no records built) | | {anc['statements']:.2f} ms | | |",
        row("`cmfrun -- true`, added to `true`", wrap_plain, ".1f", "ms", "sql not slower",
            wrap_plain["sql"] <= wrap_plain["mlmd"] * 1.1 if has_mlmd else None),
        row("`cmfrun --sync -- true` (merge inline), added to `true`", wrap_sync, ".1f", "ms", "", None),
        row("import of the engine module (fresh interpreter)", imp, ".1f", "ms", "", None),
        "",
        "Store of the lineage rows: `bench_query`'s 100,000-artifact store (`Store.put_lineage`; the goal's size, "
        "also in a quick run), opened read-only by each engine; both walks return the same records as the CTE. "
        "The floor row of `log_dataset` is the commit every record write pays on this disk (both engines "
        "commit one transaction per record with SQLite's default rollback journal and synchronous FULL); "
        "its ratio is the best `log_dataset` ratio possible without weakening durability.",
        "",
        f"Fastest of the {int(anc['repeat'])} ancestor walks (no wait for a core): sql {anc['sql_min']:.2f} ms, "
        f"its statements alone {anc['statements_min']:.2f} ms, the CTE {anc['cte_min']:.2f} ms"
        + (f", mlmd {anc['mlmd_min']:.2f} ms." if has_mlmd else "."),
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(main(quick="--quick" in sys.argv))
