"""Wrapper benchmarks: ``cmfrun -- true`` overhead, ``dvc repro -f`` of 20 stages with and
without the prefix, 16 concurrent wrapped commands on one SQLite store."""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Sequence

BIN = Path(sys.executable).parent
CMFRUN = str(BIN / "cmfrun")
DVC = str(BIN / "dvc")


_PYCACHE = tempfile.mkdtemp(prefix="cmfrun-bench-pycache-")


def _env(**extra: str) -> dict:
    # Run as a stage of the root dvc.yaml, this process inherits DVC_STAGE/DVC_ROOT and
    # CMFRUN_*: the wrapped children must not resolve that outer stage or write its store.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "CMFRUN_"))}
    # Measure an installed package: byte-code cached (this sandbox sets PYTHONDONTWRITEBYTECODE,
    # which makes every start recompile cmfrun); the cache goes to a temp folder, not the repo.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = _PYCACHE
    env["PATH"] = str(BIN) + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


def _time(argv: Sequence[str], cwd: Path, env: dict) -> float:
    t = time.perf_counter()
    subprocess.run(list(argv), cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def _git_project(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    env = _env(GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@x", GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@x")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    (root / "README").write_text("bench\n")
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=root, check=True, env=env)


def _wait_merged(store: Path, count: int, timeout: float = 120) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from cmfrun.commands import open_store

    deadline = time.time() + timeout
    n = 0
    while time.time() < deadline:
        if store.exists():
            n = len(open_store(store).executions())
            if n >= count:
                return n
        time.sleep(0.2)
    return n


def overhead(tmp: Path, n: int) -> str:
    root = tmp / "overhead"
    _git_project(root)
    env = _env()
    for _ in range(3):  # warm caches (env snapshot, page cache)
        _time([CMFRUN, "--", "true"], root, env)
    bare: List[float] = []
    wrapped: List[float] = []
    fast: List[float] = []
    synced: List[float] = []
    fast_argv = [sys.executable, "-c", "import sys; from cmfrun.__main__ import main; sys.exit(main())", "--", "true"]
    for _ in range(n):  # interleaved, so load from elsewhere hits every variant alike
        bare.append(_time(["true"], root, env))
        wrapped.append(_time([CMFRUN, "--", "true"], root, env))
        fast.append(_time(fast_argv, root, env))
    for _ in range(max(3, n // 4)):
        synced.append(_time([CMFRUN, "--sync", "--", "true"], root, env))
    mb, mw, mf, ms = (statistics.median(x) * 1000 for x in (bare, wrapped, fast, synced))
    lb, lw = min(bare) * 1000, min(wrapped) * 1000
    py = statistics.median(_time([sys.executable, "-c", "pass"], root, env) for _ in range(n)) * 1000
    _wait_merged(root / "mlmd", 3 + 2 * n + max(3, n // 4))
    ok = "met" if mw - mb <= 100 else "NOT met"
    return (
        "### Overhead of `cmfrun -- true`\n\n"
        f"| command | median of {n} |\n|---|---|\n"
        f"| `true` | {mb:.1f} ms |\n"
        f"| `python -c pass` (interpreter start) | {py:.1f} ms |\n"
        f"| `cmfrun -- true` (console script `cmfrun.__main__:main`) | {mw:.1f} ms |\n"
        f"| `cmfrun -- true` through `python -c` + `cmfrun.__main__:main` | {mf:.1f} ms |\n"
        f"| `cmfrun --sync -- true` (merge inline, imports ml_metadata) | {ms:.1f} ms |\n\n"
        f"Added by the wrapper: **{mw - mb:.1f} ms** median, {lw - lb:.1f} ms best case; "
        f"{mf - mb:.1f} ms median through `python -c` "
        f"(goal <= 100 ms median: {ok}). Load average at start: {os.getloadavg()[0]:.2f} on "
        f"{os.cpu_count()} cores (other work on the machine inflates every figure here).\n\n"
        "Where the time goes (profiled, unloaded): interpreter start ~25 ms (`python -c pass`, which "
        "here includes ~15 ms of the editable-install path finder), click and the `cmf` command group are not imported on the plain path (the console script's own parser; `--help` and errors go to click), "
        "dataclasses/logging/json/uuid imports ~15 ms, cmfrun's own modules ~10 ms, one `git status` "
        "~5 ms, two journal writes, starting the detached merger ~1 ms (it is started once per burst: "
        "a live merger picks up later journals). `ml_metadata` is not imported (`--sync` shows its cost).\n"
    )


def _dvc_project(root: Path, stages: int, prefix: str) -> None:
    _git_project(root)
    subprocess.run([DVC, "init", "-q"], cwd=root, check=True, env=_env())
    lines = ["stages:"]
    for i in range(stages):
        dep = "data.txt" if i == 0 else f"s{i - 1}.txt"
        lines += [
            f"  s{i}:",
            f"    cmd: {prefix}python -c \"open('s{i}.txt','w').write(open('{dep}').read() + '{i}')\"",
            f"    deps: [{dep}]",
            f"    outs: [s{i}.txt]",
        ]
    (root / "dvc.yaml").write_text("\n".join(lines) + "\n")
    (root / "data.txt").write_text("x\n")


def dvc_repro(tmp: Path, stages: int, reps: int) -> str:
    plain = tmp / "dvc-plain"
    wrapped = tmp / "dvc-wrapped"
    fastw = tmp / "dvc-wrapped-fast"
    _dvc_project(plain, stages, "")
    _dvc_project(wrapped, stages, "cmfrun -- ")
    _dvc_project(fastw, stages, f"{sys.executable} -m cmfrun -- ")
    env = _env()
    for p in (plain, wrapped, fastw):
        _time([DVC, "repro", "-q"], p, env)
    tp: List[float] = []
    tw: List[float] = []
    tf: List[float] = []
    for _ in range(reps):
        tp.append(_time([DVC, "repro", "-f", "-q"], plain, env))
        tw.append(_time([DVC, "repro", "-f", "-q"], wrapped, env))
        tf.append(_time([DVC, "repro", "-f", "-q"], fastw, env))
    mp, mw, mf = statistics.median(tp), statistics.median(tw), statistics.median(tf)
    n = _wait_merged(wrapped / "mlmd", stages * (reps + 1))
    ratio = mw / mp
    ok = "met" if ratio <= 1.25 else "NOT met"
    return (
        f"### `dvc repro -f` of {stages} trivial stages\n\n"
        f"| pipeline | median of {reps} |\n|---|---|\n"
        f"| plain stages | {mp:.2f} s |\n"
        f"| every stage `cmfrun -- ...` (console script) | {mw:.2f} s |\n"
        f"| every stage `python -m cmfrun -- ...` (runpy start-up) | {mf:.2f} s ({mf / mp:.2f}x) |\n\n"
        f"Ratio **{ratio:.2f}x** (goal <= 1.25x: {ok}); executions recorded: {n} "
        f"(expected {stages * (reps + 1)}). Added per stage: {(mw - mp) / stages * 1000:.0f} ms "
        f"against DVC's own {mp / stages * 1000:.0f} ms per trivial stage.\n\n"
        "Why the goal is out of reach for these stages: a trivial stage costs DVC ~120 ms, so 1.25x "
        "leaves 30 ms per stage, about one bare Python interpreter start. Each wrapped stage pays the "
        "wrapper's start (see above) plus reading dvc.yaml (PyYAML; DVC's resolver only for templated "
        "files), params and hashing deps/outs (hashlib for small files, no dvc-data import), and the "
        "background merger (niced) shares the 2 cores. For stages doing real work the added ~0.1-0.15 s "
        "per stage is constant.\n"
    )


def concurrent(tmp: Path, n: int) -> str:
    root = tmp / "concurrent"
    _git_project(root)
    env = _env()
    t = time.perf_counter()
    procs = [
        subprocess.Popen([CMFRUN, "-s", f"job{i}", "--", "sh", "-c", f"echo {i} > out{i}.txt"], cwd=root, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for i in range(n)
    ]
    errs = [p.communicate()[1] for p in procs]
    wall = time.perf_counter() - t
    count = _wait_merged(root / "mlmd", n)
    merged = time.perf_counter() - t
    locked = sum(b"locked" in e for e in errs)
    return (
        f"### {n} concurrent wrapped commands, one SQLite store\n\n"
        f"| measure | value |\n|---|---|\n"
        f"| wall time until all {n} commands exited | {wall:.2f} s |\n"
        f"| wall time until all executions are in the store | {merged:.2f} s |\n"
        f"| executions recorded | {count} (expected {n}) |\n"
        f"| 'database is locked' errors | {locked} |\n"
    )


def main(quick: bool = False) -> str:
    tmp = Path(tempfile.mkdtemp(prefix="cmfrun-bench-"))
    try:
        parts = [
            "## Wrapper (`cmfrun -- CMD`)\n",
            overhead(tmp, 10 if quick else 30),
            dvc_repro(tmp, 20, 1 if quick else 3),
            concurrent(tmp, 16),
        ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return "\n".join(parts)


if __name__ == "__main__":
    print(main(quick="--quick" in sys.argv))
