"""Each collected subnet's accuracy on the two halves of the validation images, kept beside
``acc_dataset.csv`` in ``acc_halves.csv`` for the split-half noise ceiling
(:func:`supernet.predict.noise.noise_ceiling`).

A separate file keeps ``acc_dataset.csv``'s layout (and every csv already collected) as it is;
rows collected before this file existed simply have no halves.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

__all__ = ["HALVES_COLUMNS", "HALVES_FILE", "halves_path", "halves_row", "read_halves"]

HALVES_FILE = "acc_halves.csv"
HALVES_COLUMNS = ("index", "val_accuracy_even", "val_accuracy_odd")


def halves_path(dataset_path: str | Path) -> Path:
    """The halves file beside an ``acc_dataset.csv``."""
    return Path(dataset_path).with_name(HALVES_FILE)


def halves_row(index: int, even: float, odd: float) -> dict[str, object]:
    """One row: accuracies (points) on the even- and odd-indexed validation images."""
    return {"index": index, "val_accuracy_even": round(even, 6), "val_accuracy_odd": round(odd, 6)}


def read_halves(dataset_path: str | Path, n: int) -> np.ndarray:
    """Half accuracies of the dataset's ``n`` subnets: float64 [n, 2] (even, odd), NaN where a
    row has none. A missing or malformed file, or a row out of range or not in [0, 100], leaves
    NaN (the halves only inform the noise ceiling; they never block reading the dataset)."""
    out = np.full((n, 2), np.nan)
    path = halves_path(dataset_path)
    if not path.is_file():
        return out
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != HALVES_COLUMNS:
                return out
            for row in reader:
                try:
                    i = int(row["index"])
                    pair = (float(row["val_accuracy_even"]), float(row["val_accuracy_odd"]))
                except (TypeError, ValueError):
                    continue
                if 0 <= i < n and all(math.isfinite(v) and 0 <= v <= 100 for v in pair):
                    out[i] = pair
    except (OSError, UnicodeDecodeError, csv.Error):
        return out
    return out
