"""Score the model on the test set: a metrics file and an ROC plot file.

    python src/evaluate.py model.pkl data/features metrics.json eval/roc.json
"""
import json
import os
import pickle
import sys

from sklearn import metrics

from common import features_and_labels


def main(model_path: str, features_dir: str, metrics_path: str, plot_path: str) -> None:
    with open(model_path, "rb") as fh:
        model = pickle.load(fh)
    x, y = features_and_labels(os.path.join(features_dir, "test.csv"))
    proba = model.predict_proba(x)[:, 1]
    predicted = (proba >= 0.5).astype(int)
    scores = {
        "accuracy": round(float(metrics.accuracy_score(y, predicted)), 6),
        "f1": round(float(metrics.f1_score(y, predicted)), 6),
        "roc_auc": round(float(metrics.roc_auc_score(y, proba)), 6),
    }
    with open(metrics_path, "w") as fh:
        json.dump(scores, fh, indent=2)
        fh.write("\n")
    fpr, tpr, thresholds = metrics.roc_curve(y, proba)
    os.makedirs(os.path.dirname(plot_path) or ".", exist_ok=True)
    with open(plot_path, "w") as fh:
        points = [
            {"fpr": round(float(f), 6), "tpr": round(float(t), 6), "threshold": round(float(min(th, 1.0)), 6)}
            for f, t, th in zip(fpr, tpr, thresholds)
        ]
        json.dump({"roc": points}, fh, indent=2)
        fh.write("\n")
    print("evaluate: " + ", ".join(f"{k}={v}" for k, v in scores.items()))


if __name__ == "__main__":
    main(*sys.argv[1:5])
