"""Write scikit-learn's bundled breast cancer data set to a CSV file.

Nothing is downloaded: the data ships inside scikit-learn. The demo runs this
once and then `dvc add`s the file, as DVC's own get-started does with its data.

    python src/get_data.py data/raw.csv
"""
import csv
import os
import sys

from sklearn.datasets import load_breast_cancer


def main(out_path: str) -> None:
    data = load_breast_cancer()
    os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
    with open(out_path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([name.replace(" ", "_") for name in data.feature_names] + ["malignant"])
        for row, target in zip(data.data, data.target):
            # In scikit-learn's encoding 0 is malignant; the CSV says what it means.
            writer.writerow([repr(float(v)) for v in row] + [int(target == 0)])
    print(f"wrote {len(data.target)} rows x {len(data.feature_names)} features to {out_path}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "data/raw.csv")
