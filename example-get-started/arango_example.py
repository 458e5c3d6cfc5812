#!/usr/bin/env python3
"""ArangoML-style entities on a real pipeline: from raw data to a deployment and its serving numbers.

    python example-get-started/arango_example.py FOLDER [--json]

In FOLDER (created; it must be empty or absent) this copies the example's
``src/`` and ``params.yaml``, makes a git repository, and runs the five steps
of the example pipeline through ``cmfrun --`` (no code changes, no DVC needed:
``--in``/``--out``/``--model``/``--metrics`` say what goes in and out). Then,
with :class:`cmfrun.integrations.arango.ArangoPipe` on the same store, it
registers a project, the raw dataset, the featureset and the model the
``train`` stage wrote (by path), registers a deployment of that model, logs
two weeks of serving performance, and answers the four questions of the
ArangoML seed:

1. which models derive from the raw dataset;
2. which deployments serve a model trained on it;
3. development vs serving performance of the deployment;
4. the feature-engineering and modelling techniques used in the project.

``--json`` prints the answers as one JSON document (the test reads it).
Afterwards try ``cmf deployment show prod`` or ``cmf lineage data/raw.csv --down``
in FOLDER.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
PIPELINE = "get-started"
PROJECT = "breast-cancer"

#: The pipeline, each step run as `cmfrun [what goes in and out] -- command`.
STEPS: List[List[str]] = [
    ["-s", "get_data", "--out", "data/raw.csv", "--", "python", "src/get_data.py", "data/raw.csv"],
    ["-s", "prepare", "--in", "data/raw.csv", "--out", "data/prepared", "--",
     "python", "src/prepare.py", "data/raw.csv", "data/prepared"],
    ["-s", "featurize", "--in", "data/prepared", "--out", "data/features", "--",
     "python", "src/featurize.py", "data/prepared", "data/features"],
    ["-s", "train", "--in", "data/features", "--model", "model.pkl", "--",
     "python", "src/train.py", "data/features", "model.pkl"],
    ["-s", "evaluate", "--in", "model.pkl", "data/features", "--metrics", "metrics.json", "--out", "eval/roc.json", "--",
     "python", "src/evaluate.py", "model.pkl", "data/features", "metrics.json", "eval/roc.json"],
]


def _env(dest: Path) -> Dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(BIN) + os.pathsep + env.get("PATH", "")
    for var in ("CMFRUN_STAGE", "DVC_STAGE", "DVC_ROOT", "GIT_DIR", "GIT_WORK_TREE"):
        env.pop(var, None)
    env.update(
        {
            "CMFRUN_MLMD": str(dest / "mlmd"),
            "CMFRUN_PIPELINE": PIPELINE,
            "GIT_AUTHOR_NAME": "example",
            "GIT_AUTHOR_EMAIL": "example@example.com",
            "GIT_COMMITTER_NAME": "example",
            "GIT_COMMITTER_EMAIL": "example@example.com",
        }
    )
    return env


def _run(argv: List[str], dest: Path, env: Dict[str, str], quiet: bool) -> None:
    if not quiet:
        print("$ " + " ".join(argv), flush=True)
    proc = subprocess.run(argv, cwd=dest, env=env, capture_output=quiet, text=True)
    if proc.returncode != 0:
        detail = (proc.stderr or "").strip() if quiet else ""
        raise SystemExit(f"arango_example: {' '.join(argv)} failed with exit code {proc.returncode}\n{detail}")


def run_pipeline(dest: Path, quiet: bool) -> None:
    """Copy the example into ``dest`` and run its steps through ``cmfrun --``."""
    if dest.exists() and any(dest.iterdir()):
        raise SystemExit(f"arango_example: {dest} is not empty")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(HERE / "src", dest / "src")
    shutil.copy2(HERE / "params.yaml", dest / "params.yaml")
    env = _env(dest)
    _run(["git", "init", "-q", "-b", "main"], dest, env, quiet)
    _run(["git", "add", "-A"], dest, env, quiet)
    _run(["git", "commit", "-qm", "example"], dest, env, quiet)
    for step in STEPS:
        argv = [str(BIN / "cmfrun"), "--sync"] + [sys.executable if w == "python" else w for w in step]
        _run(argv, dest, env, quiet)


def track(dest: Path) -> Dict[str, Any]:
    """Register the ArangoML entities and answer the four questions."""
    from cmfrun.integrations.arango import ArangoPipe
    from cmfrun.store import connect

    store = connect(str(dest / "mlmd"), create=False)
    ml = ArangoPipe(store, root=dest)
    ml.register_project({"name": PROJECT, "task": "classify tumours as malignant or benign"})
    ml.register_dataset({"name": "breast-cancer-raw", "path": str(dest / "data/raw.csv"), "source": "scikit-learn"})
    ml.register_featureset(
        {"name": "standardised-features", "path": str(dest / "data/features"), "technique": "standardisation"},
        "breast-cancer-raw",
    )
    ml.register_model(
        {
            "name": "tumour-classifier",
            "path": str(dest / "model.pkl"),
            "model_framework": "scikit-learn",
            "model_type": "RandomForestClassifier",
            "technique": "random forest",
        }
    )
    ml.register_deployment("prod", model="tumour-classifier", status="active", endpoint="/predict")
    ml.log_serving_perf("prod", {"accuracy": 0.951, "latency_ms": 11.8}, period="2026-W48")
    ml.log_serving_perf("prod", {"accuracy": 0.937, "latency_ms": 12.4}, period="2026-W49")

    perf = ml.performance("prod")
    tech = ml.techniques()
    return {
        "models_from_raw": [a.path for a in ml.models_from_dataset("breast-cancer-raw")],
        "deployments_from_raw": [a.path for a in ml.deployments_from_dataset("breast-cancer-raw")],
        "performance": {
            "deployment": perf.deployment,
            "model": perf.model,
            "development": [{"stage": s, "metrics": dict(m)} for s, m in perf.development],
            "serving": [dict(m) for m in perf.serving],
        },
        "techniques": {"feature_engineering": list(tech.feature_engineering), "modelling": list(tech.modelling)},
    }


def main(argv: List[str]) -> int:
    args = [a for a in argv if a != "--json"]
    as_json = "--json" in argv
    if len(args) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    dest = Path(args[0]).absolute()
    run_pipeline(dest, quiet=as_json)
    answers = track(dest)
    if as_json:
        print(json.dumps(answers, indent=2))
        return 0
    print()
    print("1. models derived from data/raw.csv:", ", ".join(answers["models_from_raw"]))
    print("2. deployments serving a model trained on it:", ", ".join(answers["deployments_from_raw"]))
    p = answers["performance"]
    print(f"3. performance of deployment {p['deployment']!r} (model {p['model']}):")
    for dev in p["development"]:
        print(f"   development ({dev['stage']}): {dev['metrics']}")
    for serving in p["serving"]:
        print(f"   serving: {serving}")
    t = answers["techniques"]
    print(f"4. techniques in project {PROJECT!r}: feature engineering {t['feature_engineering']}, modelling {t['modelling']}")
    print(f"\nstore: {dest / 'mlmd'}; try: cd {dest} && cmf deployment show prod && cmf lineage data/raw.csv --down")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
