"""Run every benchmark: ``make bench`` (or ``python -m benchmarks.run [names...]``).

Each ``benchmarks/bench_<area>.py`` has ``main(quick: bool) -> str`` returning a
Markdown section (machine-independent facts + medians and ratios); this runner
writes each to ``benchmarks/results/<area>.md`` and assembles ``benchmarks/RESULTS.md``.
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).parent
AREAS = ["api", "wrapper", "ingest", "query", "engine", "openlineage", "ui", "graph", "sync", "server", "artifacts", "literals"]


def machine() -> str:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.node()} ({cpu or platform.processor()}, {os.cpu_count()} cores), Python {platform.python_version()}"


def assemble() -> None:
    parts = [
        "# Benchmark results\n",
        "Produced by `make bench` (`python -m benchmarks.run`); each section says when and where it ran.\n",
    ]
    for area in AREAS:
        f = HERE / "results" / f"{area}.md"
        if f.exists():
            parts.append(f.read_text().rstrip() + "\n")
    (HERE / "RESULTS.md").write_text("\n".join(parts))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("areas", nargs="*", default=AREAS)
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = ap.parse_args()
    stamp = f"_{datetime.date.today().isoformat()} on {machine()}_"
    for area in args.areas:
        mod = importlib.import_module(f"benchmarks.bench_{area}")
        print(f"== {area}", file=sys.stderr, flush=True)
        section = mod.main(quick=args.quick)
        (HERE / "results").mkdir(exist_ok=True)
        (HERE / "results" / f"{area}.md").write_text(section.rstrip() + "\n\n" + stamp + "\n")
        print(section)
    assemble()
    return 0


if __name__ == "__main__":
    sys.exit(main())
