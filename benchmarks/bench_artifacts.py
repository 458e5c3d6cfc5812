"""Benchmark moving artifact bytes (issue 9): `cmf artifact push/pull` against `dvc push/pull`.

* push and pull of 1,000 small (1 KiB) files plus one 256 MiB file (100 files and 16 MiB
  with ``--quick``) to a local-folder remote and to an S3 remote (moto's server on
  127.0.0.1), against ``dvc push``/``dvc pull`` of the same files (tracked with
  ``dvc add``) in the same run, both as console commands: goal <= 1.1x;
* a second ``cmf artifact push`` with nothing new, 1,000 artifacts, local remote: goal <= 2 s;
* ``Cmf.log_dataset`` of a new 1 KiB file in a git + DVC repository (bytes copied into the
  DVC cache) against a git repository without DVC: goal <= 1.25x; and the cache step's share.

Each push goes to a fresh, empty remote folder/prefix (so DVC's remote index does not
help either side); each pull starts from no workspace files and an empty cache.

Run: ``python -m benchmarks.run artifacts`` (add ``--quick`` for a smoke run).
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

BIN = Path(sys.executable).parent


def _env() -> Dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x",
            "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@x", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def _sh(cwd: Path, *argv: str) -> float:
    """Run a command; return its wall time in s (it must succeed)."""
    t = time.perf_counter()
    proc = subprocess.run(list(argv), cwd=cwd, env=_env(), capture_output=True, text=True)
    took = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} failed: {proc.stdout[-500:]} {proc.stderr[-1000:]}")
    return took


def _project(base: Path, nsmall: int, big_mib: int) -> Path:
    root = base / "proj"
    (root / "data" / "small").mkdir(parents=True)
    for i in range(nsmall):
        (root / "data" / "small" / f"f{i:05d}.bin").write_bytes(os.urandom(1024))
    with open(root / "data" / "big.bin", "wb") as fh:
        for _ in range(big_mib):
            fh.write(os.urandom(1 << 20))
    _sh(root, "git", "init", "-q")
    _sh(root, "dvc", "init", "-q")
    _sh(root, "dvc", "config", "core.autostage", "false")
    # DVC's baseline tracks the same files (one folder output plus the big file) ...
    _sh(root, "dvc", "add", "-q", "data/small", "data/big.bin")
    # ... and cmfrun records each file as its own artifact (the bytes go into the same cache).
    code = (
        "import sys, os; from cmfrun.api import Cmf\n"
        "c = Cmf(filepath='mlmd', pipeline_name='bench'); c.create_context('make'); c.create_execution('Make')\n"
        "for n in sorted(os.listdir('data/small')): c.log_dataset('data/small/' + n, 'output')\n"
        "c.log_dataset('data/big.bin', 'output'); c.finalize()\n"
    )
    _sh(root, sys.executable, "-c", code)
    return root


def _clear(root: Path) -> None:
    shutil.rmtree(root / "data")
    shutil.rmtree(root / ".dvc" / "cache")
    (root / "data").mkdir()
    # the .dvc files of DVC's baseline stay, as after a `git clone`
    for f in ("small.dvc", "big.bin.dvc"):
        src = root / ".bench-dvc-files" / f
        shutil.copy(src, root / "data" / f)


def _keep_dvc_files(root: Path) -> None:
    (root / ".bench-dvc-files").mkdir(exist_ok=True)
    for f in ("small.dvc", "big.bin.dvc"):
        shutil.copy(root / "data" / f, root / ".bench-dvc-files" / f)


def _round(root: Path, set_remote: Callable[[str, str], None], remote_url: Callable[[str], str], reps: int) -> Dict[str, List[float]]:
    """Time push (fresh remote each time) and pull (empty cache and workspace) for both tools."""
    times: Dict[str, List[float]] = {"cmf push": [], "dvc push": [], "cmf pull": [], "dvc pull": [], "cmf push again": []}
    for rep in range(reps):
        # alternate which tool goes first, so page-cache warmth favours neither
        order = ["cmf", "dvc"] if rep % 2 == 0 else ["dvc", "cmf"]
        urls = {tool: remote_url(f"{tool}-{rep}") for tool in order}
        for tool in order:
            set_remote(tool, urls[tool])
            if tool == "cmf":
                times["cmf push"].append(_sh(root, "cmf", "artifact", "push", "-p", "bench"))
                times["cmf push again"].append(_sh(root, "cmf", "artifact", "push", "-p", "bench"))
            else:
                times["dvc push"].append(_sh(root, "dvc", "push", "-q", "-r", "bench-dvc"))
        for tool in order:
            set_remote(tool, urls[tool])
            saved = root / ".bench-cache-keep"
            shutil.copytree(root / ".dvc" / "cache", saved)  # restore after, for the next push round
            _clear(root)
            if tool == "cmf":
                times["cmf pull"].append(_sh(root, "cmf", "artifact", "pull", "-p", "bench"))
            else:
                times["dvc pull"].append(_sh(root, "dvc", "pull", "-q", "-r", "bench-dvc"))
            shutil.rmtree(root / ".dvc" / "cache")
            shutil.move(str(saved), root / ".dvc" / "cache")
            # the workspace must be complete again for the other tool's pull check
            _sh(root, "dvc", "checkout", "-q", "-f")
    return times


def _local(root: Path, base: Path, reps: int) -> Dict[str, List[float]]:
    def set_remote(tool: str, url: str) -> None:
        if tool == "cmf":
            _sh(root, "cmf", "init", "local", "--path", url)
        else:
            _sh(root, "dvc", "remote", "add", "-f", "bench-dvc", url)

    return _round(root, set_remote, lambda name: str(base / "remotes" / name), reps)


def _s3(root: Path, reps: int) -> Dict[str, List[float]]:
    import boto3
    from moto.server import ThreadedMotoServer

    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                 region_name="us-east-1").create_bucket(Bucket="bench")
    try:
        def set_remote(tool: str, url: str) -> None:
            if tool == "cmf":
                _sh(root, "cmf", "init", "minioS3", "--url", url, "--endpoint-url", endpoint, "--access-key-id", "testing", "--secret-key", "testing")
            else:
                _sh(root, "dvc", "remote", "add", "-f", "bench-dvc", url)
                _sh(root, "dvc", "remote", "modify", "bench-dvc", "endpointurl", endpoint)

        return _round(root, set_remote, lambda name: f"s3://bench/{name}", reps)
    finally:
        server.stop()


def _log_dataset(base: Path, n: int) -> Dict[str, float]:
    """Median ms of log_dataset of a new 1 KiB file, git-only vs git + DVC, interleaved."""
    from cmfrun.api import Cmf
    from cmfrun.remotes import cache

    cmfs = {}
    for kind in ("git", "dvc"):
        root = base / f"log-{kind}"
        (root / "d").mkdir(parents=True)
        _sh(root, "git", "init", "-q")
        if kind == "dvc":
            _sh(root, "dvc", "init", "-q")
        for i in range(n):
            (root / "d" / f"{i}.bin").write_bytes(os.urandom(1024))
        c = Cmf(filepath=str(root / "mlmd"), pipeline_name="bench", root=root)
        c.create_context("s")
        c.create_execution("S")
        c.log_dataset(str(root / "d" / "0.bin"), "input")  # warm-up: imports, DVC state, environment
        cmfs[kind] = (c, root)
    times: Dict[str, List[float]] = {"git": [], "dvc": [], "cache step": []}
    for i in range(1, n):
        # alternate which goes first: a store write's disk flush can land on the next call
        for kind in ("git", "dvc") if i % 2 else ("dvc", "git"):
            c, root = cmfs[kind]
            t = time.perf_counter()
            c.log_dataset(str(root / "d" / f"{i}.bin"), "input")
            times[kind].append((time.perf_counter() - t) * 1000)
    # the cache step alone (what the DVC repository adds): fresh 1 KiB files into a fresh cache
    probe = base / "probe"
    probe.mkdir()
    for i in range(n):
        f = probe / f"{i}.bin"
        f.write_bytes(os.urandom(1024))
        t = time.perf_counter()
        cache.save_file(base / "probe-cache", f)
        times["cache step"].append((time.perf_counter() - t) * 1000)
    return {k: statistics.median(v) for k, v in times.items()}


def main(quick: bool = False) -> str:
    nsmall, big, reps = (100, 16, 1) if quick else (1000, 256, 5)
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-artifacts-") as tmp:
        base = Path(tmp)
        root = _project(base, nsmall, big)
        _keep_dvc_files(root)
        local = _local(root, base, reps)
        # The floor of any `cmf artifact push`: starting Python and importing what it needs.
        imports = statistics.median(
            _sh(root, sys.executable, "-c", "import cmfrun.cli.artifacts, cmfrun.commands.artifacts, cmfrun.store, dvc.repo, "
                "dvc_data.hashfile.transfer, ml_metadata") for _ in range(3)
        )
        s3 = _s3(root, reps)
        logs = _log_dataset(base, 200 if quick else 1000)
    load1 = os.getloadavg()[0]
    raw = {"local": local, "S3": s3}
    med = {("local", k): statistics.median(v) for k, v in local.items()}
    med.update({("S3", k): statistics.median(v) for k, v in s3.items()})

    def verdict(ratio: float, goal: float) -> str:
        return "met" if ratio <= goal else "NOT met"

    lines = [
        "## Artifact push/pull (issue 9)",
        "",
        f"{nsmall} files of 1 KiB plus one {big} MiB file; cmfrun records each file as an artifact, DVC tracks the same "
        "bytes with `dvc add data/small data/big.bin`. Console commands (`cmf artifact push/pull -p bench` vs "
        "`dvc push/pull -r ...`), each push to a fresh empty remote, each pull from an empty cache and workspace; "
        f"medians of {reps} runs per remote in s, the tools alternating which goes first. S3 is moto's "
        "server in the benchmark process on 127.0.0.1. Every run's ratio is listed too: under load they spread.",
        "",
        "| remote | step | cmf | dvc | ratio | ratio per run | goal |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for remote in ("local", "S3"):
        for step in ("push", "pull"):
            c, d = med[(remote, f"cmf {step}")], med[(remote, f"dvc {step}")]
            runs = ", ".join(f"{a / b:.2f}" for a, b in zip(raw[remote][f"cmf {step}"], raw[remote][f"dvc {step}"]))
            lines.append(f"| {remote} | {step} | {c:.2f} | {d:.2f} | {c / d:.2f}x | {runs} | <= 1.1x: {verdict(c / d, 1.1)} |")
    again = med[("local", "cmf push again")]
    lines += [
        "",
        f"Second `cmf artifact push` with nothing new ({nsmall + 1} artifacts, local remote): {again:.2f} s "
        f"(goal <= 2 s: {'met' if again <= 2 else 'NOT met'}); S3: {med[('S3', 'cmf push again')]:.2f} s. "
        f"Of that, {imports:.2f} s is the floor of any such command: starting Python and importing click, "
        "ml_metadata, dvc and dvc-data (measured alone, median of 3).",
        "",
        "`Cmf.log_dataset` of a new 1 KiB file (median ms; interleaved, alternating which goes first, one execution each):",
        "",
        "| measure | ms | ratio | goal |",
        "|---|---:|---:|---|",
        f"| git repository (no DVC) | {logs['git']:.2f} | 1.00 | |",
        f"| git + DVC repository (bytes into .dvc/cache) | {logs['dvc']:.2f} | {logs['dvc'] / logs['git']:.2f}x | <= 1.25x: "
        f"{verdict(logs['dvc'] / logs['git'], 1.25)} |",
        f"| the cache step alone (`cmfrun.remotes.cache.save_file`) | {logs['cache step']:.3f} | "
        f"{logs['cache step'] / logs['dvc']:.2f} of log_dataset | <= 0.25: {verdict(logs['cache step'] / logs['dvc'], 0.25)} |",
        "",
        f"Load average (1 min) {load0:.1f} before, {load1:.1f} after, on {os.cpu_count()} cores.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main(quick="--quick" in sys.argv))
