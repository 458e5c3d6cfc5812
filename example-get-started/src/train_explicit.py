"""The same training step, logged explicitly with the CMF Python API.

This is how HPE CMF's own example-get-started logs a stage: the script creates
the logger, a stage context and an execution, and logs its inputs, model and
metrics itself. With cmfrun the code stays as it is; only the import changes
(``from cmflib import cmf`` -> ``import cmfrun as cmf``). It is not a DVC
stage: run it directly, after `dvc repro`:

    python src/train_explicit.py data/features models/explicit.pkl
"""
import os
import pickle
import sys

from sklearn.ensemble import RandomForestClassifier

import cmfrun as cmf
from common import features_and_labels, params


def train(features_dir: str, model_path: str) -> None:
    p = params("train")
    metawriter = cmf.Cmf(filepath="mlmd", pipeline_name="get-started")
    _ = metawriter.create_context(pipeline_stage="train-explicit")
    _ = metawriter.create_execution(execution_type="Train-explicit", custom_properties=p)

    # The whole feature directory: the same content hash as featurize's output,
    # so this model's lineage joins the DVC pipeline's and reaches data/raw.csv.
    _ = metawriter.log_dataset(features_dir, "input")
    x, y = features_and_labels(os.path.join(features_dir, "train.csv"))
    x_test, y_test = features_and_labels(os.path.join(features_dir, "test.csv"))

    # Grow the forest ten trees at a time and log a step metric each time.
    model = RandomForestClassifier(
        n_estimators=10, max_depth=p["max_depth"], random_state=p["seed"], warm_start=True, n_jobs=1
    )
    for n_trees in range(10, p["n_estimators"] + 1, 10):
        model.set_params(n_estimators=n_trees)
        model.fit(x, y)
        metawriter.log_metric(
            "training_metrics", {"n_trees": n_trees, "train_accuracy": model.score(x, y)}
        )
    metawriter.commit_metrics("training_metrics")

    os.makedirs(os.path.dirname(model_path) or ".", exist_ok=True)
    with open(model_path, "wb") as fd:
        pickle.dump(model, fd)
    _ = metawriter.log_model(
        path=model_path,
        event="output",
        model_framework="SKlearn",
        model_type="RandomForestClassifier",
        model_name="RandomForestClassifier:warm_start",
    )
    exec_metrics = {"test_accuracy": float(model.score(x_test, y_test)), "n_trees": int(model.n_estimators)}
    _ = metawriter.log_execution_metrics("metrics", exec_metrics)
    metawriter.finalize()
    print("train-explicit: " + ", ".join(f"{k}={v}" for k, v in exec_metrics.items()))


if __name__ == "__main__":
    train(
        sys.argv[1] if len(sys.argv) > 1 else "data/features",
        sys.argv[2] if len(sys.argv) > 2 else "models/explicit.pkl",
    )
