"""Standardise the features with the training set's statistics.

    python src/featurize.py data/prepared data/features
writes the feature matrices data/features/train.csv and data/features/test.csv
(last column: the label).
"""
import os
import sys

from common import params, read_table, write_table


def main(in_dir: str, out_dir: str) -> None:
    p = params("featurize")
    header, train = read_table(os.path.join(in_dir, "train.csv"))
    _, test = read_table(os.path.join(in_dir, "test.csv"))
    if p["scale"]:
        mean = train[:, :-1].mean(axis=0)
        std = train[:, :-1].std(axis=0)
        std[std == 0] = 1.0
        train[:, :-1] = (train[:, :-1] - mean) / std
        test[:, :-1] = (test[:, :-1] - mean) / std
    os.makedirs(out_dir, exist_ok=True)
    write_table(os.path.join(out_dir, "train.csv"), header, train)
    write_table(os.path.join(out_dir, "test.csv"), header, test)
    print(f"featurize: {train.shape[1] - 1} features, scaled={p['scale']}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
