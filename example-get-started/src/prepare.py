"""Shuffle the raw data and split it into a training and a test set.

    python src/prepare.py data/raw.csv data/prepared
writes data/prepared/train.csv and data/prepared/test.csv.
"""
import os
import sys

import numpy as np

from common import params, read_table, write_table


def main(raw_path: str, out_dir: str) -> None:
    p = params("prepare")
    header, matrix = read_table(raw_path)
    order = np.random.default_rng(p["seed"]).permutation(len(matrix))
    n_test = int(round(len(matrix) * p["split"]))
    test, train = matrix[order[:n_test]], matrix[order[n_test:]]
    os.makedirs(out_dir, exist_ok=True)
    write_table(os.path.join(out_dir, "train.csv"), header, train)
    write_table(os.path.join(out_dir, "test.csv"), header, test)
    print(f"prepare: {len(train)} training rows, {len(test)} test rows")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
