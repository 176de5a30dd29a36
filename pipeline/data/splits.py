"""Train, validation and test rows: stratified and seeded, or ordered by time."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from pipeline.project.config import SplitParams
from pipeline.runtime.errors import DataError


def split_indices(labels: np.ndarray, params: SplitParams, seed: int,
                  times: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Row indices of train/val/test: stratified and seeded, or ordered by time."""
    n = labels.size
    f_train, f_val, _ = params.fractions
    if params.method == "time":
        if times is None:
            raise DataError(f"prepare.split.time_column '{params.time_column}' not found; "
                            "set it to a numeric time column or use prepare.split.method: stratified")
        order = np.argsort(times, kind="stable")
        cut1, cut2 = round(n * f_train), round(n * (f_train + f_val))
        parts = {"train": order[:cut1], "val": order[cut1:cut2], "test": order[cut2:]}
    else:
        total = int(labels.sum())
        if total < 3 * params.min_positives:
            raise DataError(f"only {total} positives in the data, fewer than 3 splits x "
                            f"prepare.split.min_positives={params.min_positives}; use more data "
                            "or lower prepare.split.min_positives")
        every = np.arange(n)
        rest, test = train_test_split(every, test_size=params.fractions[2], stratify=labels,
                                      random_state=seed)
        train, val = train_test_split(rest, test_size=f_val / (f_train + f_val),
                                      stratify=labels[rest], random_state=seed)
        parts = {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}
    for name, rows in parts.items():
        positives = int(labels[rows].sum())
        if positives < params.min_positives:
            raise DataError(f"split '{name}' holds {positives} positives, fewer than "
                            f"prepare.split.min_positives={params.min_positives}; use more data, lower "
                            "prepare.split.min_positives or change prepare.split.fractions")
        if positives == rows.size:
            raise DataError(f"split '{name}' holds no negatives; change prepare.split.fractions")
    return parts
