"""OpenLineage export benchmark: 10,000 executions to a file (goal <= 10 s).

The store holds one pipeline of ``N_EXEC`` executions over ``STAGES`` stages; each
execution reads two artifacts (the previous output and a side input) and writes
one, with params, git fields and times as the wrapper records them. It is
written with ``Store.put_lineage`` bulk calls and cached under /tmp.

Measured, medians of ``repeat`` runs in this process (store already open):

- ``export_openlineage(store, "bench", file=...)``: 2 events per execution through
  the openlineage-python file transport (what ``cmf openlineage export -o`` does);
- its parts: reading the records and building the events (no emission), and
  the baseline: the same event dicts written with ``json.dumps`` to a file by a
  plain loop (no client, no transport); the ratio shows what the client costs;
- the whole command ``cmf openlineage export -p bench -o FILE`` in a new process.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

from cmfrun import schema
from cmfrun.commands.openlineage import export_openlineage
from cmfrun.integrations import openlineage as ol
from cmfrun.records import Artifact, Execution
from cmfrun.recorder import ensure_contexts
from cmfrun.store import Store, connect

STAGES = 10
PIPELINE = "bench"


def sizes(quick: bool) -> int:
    return 1_000 if quick else 10_000


def build(path: Path, n_exec: int) -> None:
    store = connect(path)
    per_stage = n_exec // STAGES
    art_no = 0
    now = time.time() * 1000.0
    for s in range(STAGES):
        pipe, stage = ensure_contexts(store, PIPELINE, f"stage{s}")
        execs: List[Execution] = []
        arts: List[Artifact] = []
        edges: List[Tuple[int, int, str, Any]] = []

        def new_art(kind: str = schema.DATASET) -> int:
            nonlocal art_no
            art_no += 1
            h = f"{art_no:032x}"
            arts.append(Artifact(kind, f"data/s{s}/f{art_no}.csv:{h}", h, {"Commit": h, "url": f"{PIPELINE}:{h}"}))
            return len(arts) - 1

        prev = new_art()
        for i in range(per_stage):
            execs.append(
                Execution(
                    f"stage{s}",
                    name=str(uuid.uuid1()),
                    properties={
                        "Context_Type": stage.name,
                        "Execution_type_name": stage.name,
                        "Pipeline_Type": pipe.name,
                        "Pipeline_id": int(pipe.id or 0),
                        "Context_ID": int(stage.id or 0),
                        "Execution": f"python src/stage{s}.py {i}",
                        "Execution_uuid": str(uuid.uuid1()),
                        "Git_Repo": "https://git.example.com/org/repo.git",
                        "Git_Start_Commit": "a" * 40,
                        "Git_End_Commit": "a" * 40,
                        "Git_Dirty": 0,
                        "Stage": f"stage{s}",
                        "Exit_Code": 0 if i % 50 else 1,
                        "Start_Time_ms": now + i,
                        "End_Time_ms": now + i + 500,
                    },
                    custom={"lr": 0.01, "epochs": 10, "seed": i},
                    state="COMPLETE" if i % 50 else "FAILED",
                )
            )
            e = len(execs) - 1
            edges.append((e, prev, "INPUT", None))
            edges.append((e, new_art(), "INPUT", None))
            out = new_art()
            edges.append((e, out, "OUTPUT", None))
            prev = out
        store.put_lineage(execs, arts, edges, [int(stage.id or 0)])


def cached_store(n_exec: int) -> Path:
    path = Path(f"/tmp/cmfrun-bench-openlineage-{n_exec}-{STAGES}.mlmd")
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        if tmp.exists():
            tmp.unlink()
        t = time.perf_counter()
        build(tmp, n_exec)
        tmp.rename(path)
        print(f"built {path} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return path


def median_s(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(quick: bool = False) -> str:
    n_exec = sizes(quick)
    path = cached_store(n_exec)
    store: Store = connect(path, create=False, read_only=True)
    repeat = 3 if quick else 5
    tmp = Path(tempfile.mkdtemp(prefix="cmfrun-bench-ol-"))
    out = tmp / "events.jsonl"

    res = export_openlineage(store, PIPELINE, file=str(out))
    assert res.executions == n_exec and res.events == 2 * n_exec, res
    lines = out.read_text().splitlines()
    assert len(lines) == 2 * n_exec and json.loads(lines[-1])["eventType"] in ("COMPLETE", "FAIL")

    export = median_s(lambda: export_openlineage(store, PIPELINE, file=str(out)), repeat)

    def build_only() -> int:
        return sum(len(evs) for _, evs in ol.build_events(store, PIPELINE))

    building = median_s(build_only, repeat)
    dicts: List[Dict[str, Any]] = list(ol.event_dicts(ol.build_events(store, PIPELINE)))

    def baseline() -> None:
        with open(tmp / "plain.jsonl", "w", encoding="utf-8") as fh:
            for d in dicts:
                fh.write(json.dumps(d, sort_keys=True) + "\n")

    plain = median_s(baseline, repeat)
    exe = str(Path(sys.executable).parent / "cmf")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "cmfrun.cli"]
    cli = median_s(
        lambda: subprocess.run(
            [*cmd, "openlineage", "export", "-p", PIPELINE, "-f", str(path), "-o", str(tmp / "cli.jsonl")],
            check=True,
            stdout=subprocess.DEVNULL,
        ),
        max(1, repeat - 2),
    )
    size_mb = out.stat().st_size / 1e6
    load = os.getloadavg()[0]
    goal = "met" if export <= 10.0 else "NOT met"
    rows = [
        "## OpenLineage export (issue 13)",
        "",
        f"Store: {n_exec:,} executions of one pipeline ({STAGES} stages; 2 inputs, 1 output, 3 params each; "
        f"1 in 50 failed), SQLite, cached in /tmp. {2 * n_exec:,} RunEvents, {size_mb:.1f} MB of JSON lines. "
        f"Medians of {repeat} runs (whole command: {max(1, repeat - 2)}). Load average (1 min) {load:.1f} on {os.cpu_count()} cores.",
        "",
        "| measure | seconds | per event | ratio | goal |",
        "|---|---:|---:|---:|---|",
        f"| `export_openlineage(..., file=)`: read, build, emit through the client's file transport | {export:.2f} | "
        f"{export / (2 * n_exec) * 1e6:.0f} us | {export / plain:.1f}x baseline | <= 10 s: {goal} |",
        f"| reading the records and building the events (no emission) | {building:.2f} | "
        f"{building / (2 * n_exec) * 1e6:.0f} us | {building / plain:.1f}x baseline | |",
        f"| baseline: the same event dicts, `json.dumps` per line to a file, plain loop | {plain:.2f} | "
        f"{plain / (2 * n_exec) * 1e6:.0f} us | 1.0x | |",
        f"| whole command `cmf openlineage export -p bench -o FILE` (new process) | {cli:.2f} | | | <= 10 s: "
        f"{'met' if cli <= 10.0 else 'NOT met'} |",
    ]
    store.close()
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover
    print(main(quick="--quick" in sys.argv))
