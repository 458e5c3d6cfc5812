"""Web UI benchmarks (issue 11): server time of the executions and execution pages, and the
time until a 200-node lineage graph is drawn in headless Chromium.

The store is generated with :func:`build_store` (also used by the browser tests): one
pipeline of ``n`` executions spread over three stages, each with params, an input
dataset, an output model and an output Metrics artifact whose values vary, written
with ``Store.put_lineage`` in bulk (seconds for 10,000 executions).
"""
from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from cmfrun import schema
from cmfrun.records import Artifact, Execution
from cmfrun.recorder import ensure_contexts
from cmfrun.store import connect

PIPELINE = "big"
STAGES = ("prepare", "train", "evaluate")
#: Start times are spread over this many days before DAY0_MS.
DAYS = 30
DAY0_MS = 1_780_000_000_000
BATCH = 500


def build_store(path: Union[str, Path], n: int = 10_000, *, seed: int = 7) -> Dict[str, Any]:
    """Write ``n`` executions into a new SQLite store at ``path``; returns facts tests check.

    Execution ``i`` is in stage ``STAGES[i % 3]``, FAILED when ``i % 17 == 0`` (else
    COMPLETE), has params ``lr``, ``n_estimators`` (``i % 50``) and ``seed``, reads one of
    ten shared datasets, writes a model and a Metrics artifact (``accuracy``, ``loss``).
    ``Start_Time_ms`` walks evenly back over ``DAYS`` days.
    """
    rng = random.Random(seed)
    store = connect(path)
    pipe, _ = ensure_contexts(store, PIPELINE, STAGES[0])
    stage_ctx = {s: ensure_contexts(store, PIPELINE, s)[1] for s in STAGES}
    datasets = [
        Artifact(schema.DATASET, f"data/shard{k}.csv:{k:032x}", f"{k:032x}", {"Commit": f"{k:032x}", "url": f"{PIPELINE}:{k:032x}"})
        for k in range(10)
    ]
    _, dataset_ids = store.put_lineage([], datasets, [], [int(c.id or 0) for c in stage_ctx.values()])
    facts: Dict[str, Any] = {"n": n, "failed": 0, "by_stage": {s: 0 for s in STAGES}, "n_estimators_7": 0}
    span_ms = DAYS * 86_400_000
    for start in range(0, n, BATCH):
        per_stage: Dict[str, Tuple[List[Execution], List[Artifact], List[Tuple[int, int, str, Optional[str]]]]] = {
            s: ([], [], []) for s in STAGES
        }
        for i in range(start, min(n, start + BATCH)):
            stage = STAGES[i % len(STAGES)]
            execs, arts, edges = per_stage[stage]
            ctx = stage_ctx[stage]
            failed = i % 17 == 0
            facts["failed"] += failed
            facts["by_stage"][stage] += 1
            facts["n_estimators_7"] += i % 50 == 7
            begin = DAY0_MS - span_ms + span_ms * i // n
            uid = f"{i:08d}-0000-4000-8000-{i:012d}"
            execs.append(
                Execution(
                    stage,
                    name=uid,
                    properties={
                        "Context_Type": ctx.name,
                        "Execution_type_name": ctx.name,
                        "Pipeline_Type": PIPELINE,
                        "Pipeline_id": int(pipe.id or 0),
                        "Context_ID": int(ctx.id or 0),
                        "Execution": f"python src/{stage}.py --run {i}",
                        "Execution_uuid": uid,
                        "Stage": stage,
                        "Git_Start_Commit": f"{i:040x}",
                        "Git_End_Commit": f"{i:040x}",
                        "Git_Dirty": i % 2,
                        "Start_Time_ms": float(begin),
                        "End_Time_ms": float(begin + 1000 + i % 7000),
                        "Duration_s": (1000 + i % 7000) / 1000,
                        "Exit_Code": 1 if failed else 0,
                        "Peak_RSS_KiB": 50_000 + i % 1000,
                    },
                    custom={"lr": round(0.001 * (1 + i % 10), 4), "n_estimators": i % 50, "seed": i % 3},
                    state="FAILED" if failed else "COMPLETE",
                )
            )
            e = len(execs) - 1
            md5 = f"{i + 1_000_000:032x}"
            arts.append(
                Artifact(
                    schema.MODEL,
                    f"models/m{i}.pkl:{md5}:{uid}",
                    md5,
                    {"Commit": md5, "url": f"{PIPELINE}:{md5}", "model_framework": "sklearn", "model_type": "RF", "model_name": f"m{i}"},
                )
            )
            edges.append((e, len(arts) - 1, "OUTPUT", None))
            mmd5 = f"{i + 2_000_000:032x}"
            accuracy = round(rng.uniform(0.5, 1.0), 6)
            arts.append(
                Artifact(
                    schema.METRICS,
                    f"metrics/m{i}.json:{mmd5}:{uid}",
                    mmd5,
                    {"metrics_name": f"metrics/m{i}.json"},
                    {"accuracy": accuracy, "loss": round(1 - accuracy, 6)},
                )
            )
            edges.append((e, len(arts) - 1, "OUTPUT", None))
            edges.append((e, _dataset_index(arts, dataset_ids[i % 10], datasets[i % 10]), "INPUT", None))
        for stage, (execs, arts, edges) in per_stage.items():
            store.put_lineage(execs, arts, edges, [int(stage_ctx[stage].id or 0)])
    store.close()
    return facts


def _dataset_index(arts: List[Artifact], dataset_id: int, dataset: Artifact) -> int:
    """Index of the shared dataset in this batch's artifact list, added once (with its id,
    so put_lineage links the existing artifact instead of creating a copy)."""
    for k, a in enumerate(arts):
        if a.id == dataset_id:
            return k
    arts.append(replace(dataset, id=dataset_id))
    return len(arts) - 1


def cached_store(n: int) -> Tuple[Path, Dict[str, Any]]:
    """The generated store under /tmp (built once per size)."""
    path = Path(tempfile.gettempdir()) / f"cmfrun-bench-ui-{n}.mlmd"
    facts_path = path.with_suffix(".json")
    if not path.exists() or not facts_path.exists():
        tmp = path.with_suffix(".tmp")
        if tmp.exists():
            tmp.unlink()
        t = time.perf_counter()
        facts = build_store(tmp, n)
        tmp.rename(path)
        facts_path.write_text(json.dumps(facts))
        print(f"built {path} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return path, json.loads(facts_path.read_text())


def build_chain(path: Path, steps: int = 100) -> int:
    """A chain of ``steps`` executions, each reading the previous one's output: a lineage
    graph of ``2 * steps + 1`` nodes up from the last artifact, whose id is returned."""
    store = connect(path)
    _, stage = ensure_contexts(store, "chain", "step")
    arts = [Artifact(schema.DATASET, f"data/step{k}.csv:{k:032x}", f"{k:032x}", {"Commit": f"{k:032x}"}) for k in range(steps + 1)]
    execs = [
        Execution("step", name=f"chain-{k}", properties={"Pipeline_Type": "chain", "Stage": "step", "Context_Type": stage.name,
                                                         "Execution": f"python step.py {k}"}, state="COMPLETE")
        for k in range(steps)
    ]
    edges: List[Tuple[int, int, str, Optional[str]]] = []
    for k in range(steps):
        edges += [(k, k, "INPUT", None), (k, k + 1, "OUTPUT", None)]
    _, aids = store.put_lineage(execs, arts, edges, [int(stage.id or 0)])
    store.close()
    return aids[-1]


class _Server:
    """`cmf ui` on a free port in a child process."""

    def __init__(self, store: Path) -> None:
        exe = Path(sys.executable).parent / "cmf"
        self.proc = subprocess.Popen([str(exe), "ui", "-f", str(store), "--port", "0"], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.url = line.split(" at ", 1)[1].split()[0]

    def get(self, path: str) -> Tuple[float, float]:
        """(server time from the Server-Timing header, round trip), both in ms."""
        t = time.perf_counter()
        with urllib.request.urlopen(self.url + path, timeout=120) as resp:
            resp.read()
            timing = resp.headers.get("Server-Timing", "app;dur=nan")
        return float(timing.split("dur=")[1]), (time.perf_counter() - t) * 1000

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _write_one(path: Path, k: int) -> None:
    """One more train execution with a Metrics output, written as another process would."""
    store = connect(path)
    _, stage = ensure_contexts(store, PIPELINE, "train")
    ex = Execution("train", name=f"late-{k}", properties={"Pipeline_Type": PIPELINE, "Stage": "train", "Context_Type": stage.name,
                                                          "Execution": "python src/train.py --late"},
                   custom={"lr": 0.5, "n_estimators": 99}, state="COMPLETE")
    md5 = f"{k + 9_000_000:032x}"
    metrics = Artifact(schema.METRICS, f"metrics/late{k}.json:{md5}:late", md5, {"metrics_name": "late"}, {"accuracy": 0.99})
    store.put_lineage([ex], [metrics], [(0, 0, "OUTPUT", None)], [int(stage.id or 0)])
    store.close()


def _median_ms(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def _browser(profile: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile}", "--window-size=1400,1000"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def _drawn_ms(driver: Any, url: str) -> float:
    """Milliseconds from navigation start until the lineage SVG was painted (ui.js marks it)."""
    driver.get("about:blank")
    driver.get(url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        value = driver.execute_script("var s = document.getElementById('lineage'); return s && s.getAttribute('data-drawn-ms');")
        if value:
            return float(value)
        time.sleep(0.01)
    raise RuntimeError(f"the graph at {url} was never drawn")


def _loaded_ms(driver: Any, url: str) -> float:
    """Milliseconds from navigation start to the load event's end (a page without a graph)."""
    driver.get("about:blank")
    driver.get(url)
    return float(driver.execute_script("var t = performance.getEntriesByType('navigation')[0]; return t.loadEventEnd;"))


def main(quick: bool = False) -> str:
    from cmfrun.commands import inspect
    from cmfrun.commands.browse import BrowseCache, ExecutionQuery, executions_page

    load_before = os.getloadavg()[0]
    n = 2_000 if quick else 10_000
    repeat = 11 if quick else 31
    path, facts = cached_store(n)
    store = connect(path, create=False, read_only=True)
    # Baselines, in this process: what the CLI's reads cost for the same data.
    base_list = _median_ms(lambda: inspect.list_executions(store, pipeline=PIPELINE), 3)
    fresh_page = _median_ms(lambda: executions_page(store, BrowseCache(), ExecutionQuery(PIPELINE, sort="metric:accuracy")), 3)
    ids = [1 + (k * 7919) % n for k in range(repeat)]
    base_show = statistics.median(_median_ms(lambda: inspect.show(store, f"execution:{i}"), 1) for i in ids)
    store.close()

    # The server gets a copy: the benchmark writes into it (the cached store stays as built).
    work = Path(tempfile.mkdtemp(prefix="cmfrun-bench-ui-")) / "mlmd"
    shutil.copyfile(path, work)
    server = _Server(work)
    try:
        cold_server, cold_trip = server.get(f"executions?pipeline={PIPELINE}&sort=metric:accuracy")
        warm = [server.get(f"executions?pipeline={PIPELINE}&sort=metric:accuracy") for _ in range(repeat)]
        sorts = ["metric:accuracy&order=asc", "metric:loss", "param:lr", "param:n_estimators&order=asc", "start", "duration"]
        # Each of these sort orders is asked for the first time since the cache was built: a full sort.
        first_sorts = [server.get(f"executions?pipeline={PIPELINE}&sort={x}") for x in sorts]
        varied = [server.get(f"executions?pipeline={PIPELINE}&sort={sorts[k % len(sorts)]}&page={1 + k % 5}") for k in range(repeat)]
        filtered = [server.get(f"executions?pipeline={PIPELINE}&state=FAILED&stage=train&sort=metric:accuracy") for _ in range(repeat)]
        one = [server.get(f"executions/{i}") for i in ids]
        after_write = []
        for k in range(5):
            _write_one(work, k)
            after_write.append(server.get(f"executions?pipeline={PIPELINE}&sort=metric:accuracy"))
    finally:
        server.stop()

    chain_path = Path(tempfile.mkdtemp(prefix="cmfrun-bench-ui-chain-")) / "mlmd"
    last = build_chain(chain_path, 100)
    chain = _Server(chain_path)
    rows_browser: List[str] = []
    try:
        lineage_url = f"lineage?node=artifact:{last}&dir=up&depth=100"
        layout_server = [chain.get(lineage_url)[0] for _ in range(5)]
        if os.path.exists("/usr/bin/chromium") and os.path.exists("/usr/bin/chromedriver"):
            driver = _browser(Path(tempfile.mkdtemp(prefix="cmfrun-bench-chromium-")))
            try:
                _drawn_ms(driver, chain.url + lineage_url)  # warm the browser and the server's cache
                drawn = [_drawn_ms(driver, chain.url + lineage_url) for _ in range(repeat // 3 + 1)]
                nodes = driver.execute_script("return document.querySelectorAll('#lineage a.node').length;")
                plain = [_loaded_ms(driver, chain.url) for _ in range(repeat // 3 + 1)]
            finally:
                driver.quit()
            d, p = statistics.median(drawn), statistics.median(plain)
            rows_browser = [
                f"| lineage graph of {nodes} nodes drawn in headless Chromium (navigation start -> painted) | {d:.0f} ms | pipelines page loaded: {p:.0f} ms | {d / p:.1f}x | <= 1000 ms: {'met' if d <= 1000 else 'NOT met'} |",
            ]
        else:
            rows_browser = ["| lineage graph in headless Chromium | not measured: /usr/bin/chromium missing | | | |"]
    finally:
        chain.stop()

    def med(xs: List[Tuple[float, float]], k: int) -> float:
        return statistics.median(x[k] for x in xs)

    warm_s = med(warm, 0)
    one_s = med(one, 0)
    out = [
        "## Web UI (issue 11)",
        "",
        f"Store: one pipeline of {n:,} executions (3 stages; params, a model and a Metrics artifact each; "
        f"{facts['failed']} failed), written by `benchmarks/bench_ui.py` with `Store.put_lineage`. `cmf ui` in a child process; "
        f"server time is the handler's own `Server-Timing` (store reads + rendering), round trip adds HTTP on 127.0.0.1. "
        f"Medians of {repeat} requests.",
        "",
        "| measure | median | baseline (same run) | ratio | goal |",
        "|---|---|---|---|---|",
        f"| executions page, first page sorted by a metric (server time, cache warm) | {warm_s:.1f} ms (round trip {med(warm, 1):.1f} ms) "
        f"| `inspect.list_executions` of the pipeline, no metrics: {base_list:.0f} ms | {warm_s / base_list:.3f}x | <= 150 ms: {'met' if warm_s <= 150 else 'NOT met'} |",
        f"| same, a sort order not asked for since the last write (sorts all {n:,} rows) | {med(first_sorts, 0):.1f} ms | | | |",
        f"| same, six sort orders and five pages in turn | {med(varied, 0):.1f} ms | | | |",
        f"| same, filtered (stage + state) | {med(filtered, 0):.1f} ms | | | |",
        f"| executions page, first request right after the server started (reads the pipeline whole, or waits for the warm-up doing it) | {cold_server:.0f} ms (round trip {cold_trip:.0f} ms) "
        f"| in-process, fresh cache: {fresh_page:.0f} ms | | (none) |",
        f"| executions page, first request after another process wrote one execution (patched in, then sorted) | {med(after_write, 0):.0f} ms "
        f"| the first request after start: {cold_server:.0f} ms | {med(after_write, 0) / cold_server:.3f}x | (none) |",
        f"| one execution's page (server time) | {one_s:.1f} ms (round trip {med(one, 1):.1f} ms) | `inspect.show` of it: {base_show:.1f} ms "
        f"| {one_s / base_show:.1f}x | <= 50 ms: {'met' if one_s <= 50 else 'NOT met'} |",
        f"| lineage page of a 201-node chain: server time (walk + grandalf layout + SVG) | {statistics.median(layout_server):.0f} ms | | | |",
        *rows_browser,
        "",
        f"Load average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores: "
        "other work on the machine inflates every figure.",
    ]
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    t0 = time.perf_counter()
    print(build_store(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 10_000))
    print(f"{time.perf_counter() - t0:.1f} s")
