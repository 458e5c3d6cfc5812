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
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

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


def build_store(path: Path, n: int = 10_000, *, seed: int = 7) -> Dict[str, Any]:
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


if __name__ == "__main__":  # pragma: no cover
    t0 = time.perf_counter()
    print(build_store(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 10_000))
    print(f"{time.perf_counter() - t0:.1f} s")
