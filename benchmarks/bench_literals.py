"""What the filter-literal rule and the ml-metadata/PostgreSQL backslash guard cost.

- guard: ``Store.put_lineage`` of ingest's batch (200 executions, 200 artifacts, 200 events)
  on PostgreSQL with the ``mlmd`` engine, through the guard vs. the unguarded ml-metadata
  object, interleaved in one run; medians and their ratio;
- in_filters: splitting 10,000 ordinary names into ``IN (...)`` queries of 200.
"""
from __future__ import annotations

import datetime
import os
import statistics
import subprocess
import time
import uuid
from typing import Any, Callable, List

PG = "postgresql://postgres@127.0.0.1:5432/"


def _ms(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def _drop(db: str) -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc",
                    f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'], capture_output=True)


def guard(rounds: int) -> tuple:
    from cmfrun import schema
    from cmfrun.records import Artifact, Execution
    from cmfrun.store import connect

    db = f"cmfrun_bench_lit_{uuid.uuid4().hex[:8]}"
    try:
        store: Any = connect(PG + db, engine="mlmd")
        ctx = store.get_or_create_context(schema.PIPELINE_CONTEXT, "bench", {}, {})
        guarded, raw = store._mlmd, store._mlmd._mlmd
        times = {"guarded": [], "raw": []}  # type: ignore[var-annotated]
        for r in range(rounds):
            for label, target in (("guarded", guarded), ("raw", raw)) if r % 2 == 0 else (("raw", raw), ("guarded", guarded)):
                store._mlmd = target
                tag = f"{label}{r}"
                execs = [Execution("train", f"{tag}-{i}", {"Execution": f"python train.py --n {i}"}, {"lr": 0.1}, "COMPLETE")
                         for i in range(200)]
                arts = [Artifact(schema.DATASET, f"data/{tag}/{i}.csv:{uuid.uuid4().hex}", uuid.uuid4().hex,
                                 custom={"size": i}) for i in range(200)]
                edges = [(i, i, "OUTPUT", None) for i in range(200)]
                times[label].append(_ms(lambda: store.put_lineage(execs, arts, edges, [int(ctx.id or 0)])))
        store._mlmd = guarded
        from cmfrun.store.mlmd import _backslashed

        protos = [[store._execution_proto(e) for e in execs], [store._artifact_proto(a) for a in arts], [],
                  [(e, a, store._event_proto(kind, key)) for e, a, kind, key in edges]]
        alone = statistics.median(_ms(lambda: _backslashed(protos)) for _ in range(20))
        store.close()
    finally:
        _drop(db)
    g, r_ = statistics.median(times["guarded"]), statistics.median(times["raw"])
    return g, r_, alone


def split() -> float:
    from cmfrun.store.literals import in_filters

    names = [f"demo/train:{uuid.uuid4().hex}" for _ in range(10_000)]
    return statistics.median(_ms(lambda: in_filters("name", names)) for _ in range(5))


def main(quick: bool = False) -> str:
    load_before = os.getloadavg()[0]
    g, r, alone = guard(6 if quick else 20)
    per_10k = split()
    load_after = os.getloadavg()[0]
    day = datetime.date.today().isoformat()
    return "\n".join([
        "## Filter literals and the ml-metadata/PostgreSQL backslash guard",
        "",
        f"{day}{', --quick sizes' if quick else ''}. See `benchmarks/bench_literals.py`; PostgreSQL 127.0.0.1, `mlmd` engine.",
        "",
        "| measure | ms | ratio |",
        "|---|---:|---:|",
        f"| `put_lineage`, 200 executions + 200 artifacts, unguarded ml-metadata (median) | {r:.1f} | 1.00 |",
        f"| the same through the backslash guard (median, interleaved) | {g:.1f} | {g / r:.2f}x |",
        f"| the guard alone on that batch's arguments (no database) | {alone:.2f} | {alone / r:.3f}x |",
        f"| `in_filters`: 10,000 names into `IN` queries of 200 | {per_10k:.2f} | |",
        "",
        f"Load average (1 min) {load_before:.1f} before, {load_after:.1f} after, on {os.cpu_count()} cores "
        "(shared with other jobs): the interleaved medians differ by about the noise of a loaded machine; "
        "the guard's own cost is the no-database row.",
        "",
    ])


if __name__ == "__main__":
    import sys

    print(main("--quick" in sys.argv))
