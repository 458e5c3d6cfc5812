"""Train a random forest on the feature matrices.

    python src/train.py data/features model.pkl
"""
import os
import pickle
import sys

from sklearn.ensemble import RandomForestClassifier

from common import features_and_labels, params


def main(features_dir: str, model_path: str) -> None:
    p = params("train")
    x, y = features_and_labels(os.path.join(features_dir, "train.csv"))
    model = RandomForestClassifier(
        n_estimators=p["n_estimators"], max_depth=p["max_depth"], random_state=p["seed"], n_jobs=1
    )
    model.fit(x, y)
    with open(model_path, "wb") as fh:
        pickle.dump(model, fh)
    print(f"train: {p['n_estimators']} trees, training accuracy {model.score(x, y):.3f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
