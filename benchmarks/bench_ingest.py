"""`cmf dvc ingest` on generated locks of 10, 100 and 1,000 stages.

Each stage has 3 deps (the previous stage's first out plus two own inputs), params
from two files and 3 outs (every third stage's first out is a directory). Measured
through :func:`cmfrun.ingest.ingest_locks` on a fresh SQLite store (fresh ingest) and
again on the same store (re-ingest of an unchanged lock), plus the lock parse alone.
"""
from __future__ import annotations

import hashlib
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, List

GOAL_FRESH_1000_S = 3.0
GOAL_REINGEST_1000_S = 1.0


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def make_lock(n: int) -> str:
    lines = ["schema: '2.0'", "stages:"]
    for i in range(n):
        name = f"stage_{i:04d}" if i % 10 else f"fe@k{i:04d}"
        lines += [f"  {name}:", f"    cmd: python step.py --stage {i} --out 'out {i}'", "    deps:"]
        deps = [(f"in/{i}/a.csv", _md5(f"a{i}"), ""), (f"in/{i}/b.csv", _md5(f"b{i}"), "")]
        if i:
            prev_dir = (i - 1) % 3 == 0
            deps.append((f"out/{i - 1}/o0" + ("" if prev_dir else ".csv"), _md5(f"o{i - 1}_0") + (".dir" if prev_dir else ""), ""))
        for path, md5, _ in deps:
            lines += [f"    - path: {path}", "      hash: md5", f"      md5: {md5}", "      size: 1234"]
        lines += ["    params:", "      params.yaml:", f"        train.lr: 1e-0{1 + i % 5}", f"        train.seed: {i}",
                  "      cfg/extra.json:", f"        opt.name: adam{i % 3}"]
        lines.append("    outs:")
        for j in range(3):
            is_dir = j == 0 and i % 3 == 0
            path = f"out/{i}/o{j}" + ("" if is_dir else ".csv")
            md5 = _md5(f"o{i}_{j}") + (".dir" if is_dir else "")
            lines += [f"    - path: {path}", "      hash: md5", f"      md5: {md5}", f"      size: {5_000_000_000 if j == 2 else 4321}"]
            if is_dir:
                lines.append("      nfiles: 12")
    return "\n".join(lines) + "\n"


def _median(fn: Callable[[], float], reps: int) -> float:
    return statistics.median(fn() for _ in range(reps))


def main(quick: bool = False) -> str:
    from cmfrun.ingest import ingest_locks
    from cmfrun.ingest.lockfile import read_lock
    from cmfrun.store import connect

    # Warm up (imports, DVC/MLMD module state) so the smallest size measures ingest only.
    warm = Path(tempfile.mkdtemp(prefix="bench-ingest-warm-"))
    (warm / "dvc.lock").write_text(make_lock(3))
    ingest_locks(connect(warm / "mlmd"), [warm / "dvc.lock"], pipeline="warm", root=warm)
    shutil.rmtree(warm, ignore_errors=True)
    sizes = [10, 100] if quick else [10, 100, 1000]
    reps = 3
    rows: List[str] = []
    results = {}
    for n in sizes:
        work = Path(tempfile.mkdtemp(prefix=f"bench-ingest-{n}-"))
        try:
            lock = work / "dvc.lock"
            lock.write_text(make_lock(n))

            def parse() -> float:
                t0 = time.perf_counter()
                read_lock(lock, work)
                return time.perf_counter() - t0

            fresh_times: List[float] = []
            re_times: List[float] = []
            for r in range(reps):
                store_path = work / f"mlmd{r}"
                store = connect(store_path)
                t0 = time.perf_counter()
                s1 = ingest_locks(store, [lock], pipeline="bench", root=work)
                fresh_times.append(time.perf_counter() - t0)
                assert s1.executions_created == n
                t0 = time.perf_counter()
                s2 = ingest_locks(store, [lock], pipeline="bench", root=work)
                re_times.append(time.perf_counter() - t0)
                assert s2.executions_unchanged == n and s2.artifacts_created == 0
                store.close()
            results[n] = (_median(parse, reps), statistics.median(fresh_times), statistics.median(re_times),
                          s1.artifacts_created)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        p, f, r, arts = results[n]
        rows.append(f"| {n:,} | {arts:,} | {p * 1000:.0f} ms | {f * 1000:.0f} ms | {r * 1000:.0f} ms |")
    out = [
        "## `cmf dvc ingest`",
        "",
        "Generated `dvc.lock` (schema 2.0): per stage 3 deps (one is the previous stage's out), params from",
        "two files, 3 outs (every third stage's first out a directory, one out above 2^32 bytes). Fresh ingest",
        "into an empty SQLite store, then re-ingest of the unchanged lock; medians of 3 runs.",
        "",
        "| stages | artifacts | parse lock | fresh ingest | re-ingest (unchanged) |",
        "|---:|---:|---:|---:|---:|",
        *rows,
        "",
    ]
    if 1000 in results and 100 in results:
        _, f1000, r1000, _ = results[1000]
        _, f100, r100, _ = results[100]
        out += [
            f"- Goal: 1,000 stages fresh <= {GOAL_FRESH_1000_S:.0f} s: **{f1000:.2f} s** "
            f"({'met' if f1000 <= GOAL_FRESH_1000_S else 'NOT met'}).",
            f"- Goal: re-ingest of 1,000 unchanged stages <= {GOAL_REINGEST_1000_S:.0f} s: **{r1000:.2f} s** "
            f"({'met' if r1000 <= GOAL_REINGEST_1000_S else 'NOT met'}).",
            f"- Growth 100 -> 1,000 stages (10x): fresh x{f1000 / f100:.1f}, re-ingest x{r1000 / r100:.1f} "
            "(linear = x10).",
        ]
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    print(main())
