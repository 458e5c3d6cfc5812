"""Small helpers shared by the example's scripts (plain numpy + PyYAML)."""
import csv
import os
from typing import List, Tuple

import numpy as np
import yaml


def params(section: str) -> dict:
    """One section of params.yaml (the scripts run from the project root, as DVC runs them)."""
    with open("params.yaml") as fh:
        return yaml.safe_load(fh)[section]


def read_table(path: str) -> Tuple[List[str], np.ndarray]:
    """A CSV with a header row -> (column names, float matrix)."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], np.array(rows[1:], dtype=float)


def write_table(path: str, header: List[str], matrix: np.ndarray) -> None:
    """Write a float matrix with a header row, deterministically (same data, same bytes)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for row in matrix:
            writer.writerow([f"{v:.10g}" for v in row])


def features_and_labels(path: str) -> Tuple[np.ndarray, np.ndarray]:
    """Split a feature table into X (all but the last column) and y (the last column)."""
    _, matrix = read_table(path)
    return matrix[:, :-1], matrix[:, -1].astype(int)
