"""Train, validation and test rows: stratified and seeded, or ordered by time.

A time split is one of ``folds`` consecutive windows of the rows ordered by time (prequential
evaluation: each window moved on by one test block). Within a window: the earliest rows train, then
a gap of ``delay`` (labels of the last transactions before a model goes live are not known yet: those
rows are left out), then validation, then test, the latest.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from pipeline.project.params import SplitParams
from pipeline.runtime.errors import DataError


def split_indices(
    labels: np.ndarray, params: SplitParams, seed: int, times: np.ndarray | None = None, fold: int = 0
) -> dict[str, np.ndarray]:
    """Row indices of train/val/test (and, for a time split, the gap it left out): stratified and
    seeded, or window ``fold`` of a time split."""
    if params.method == "time":
        if times is None:
            raise DataError(
                f"prepare.split.time_column '{params.time_column}' not found; "
                "set it to a numeric or date-time column or use prepare.split.method: stratified"
            )
        parts = time_parts(times, params, fold)
    else:
        parts = _stratified(labels, params, seed)
    for name in ("train", "val", "test"):
        positives = int(labels[parts[name]].sum())
        if positives < params.min_positives:
            where = f" (time window {fold})" if params.method == "time" else ""
            raise DataError(
                f"split '{name}'{where} holds {positives} positives, fewer than "
                f"prepare.split.min_positives={params.min_positives}; use more data, lower "
                "prepare.split.min_positives, fewer prepare.split.folds, a shorter delay or other "
                "prepare.split.fractions"
            )
        if positives == parts[name].size:
            raise DataError(f"split '{name}' holds no negatives; change prepare.split.fractions")
    return parts


def _stratified(labels: np.ndarray, params: SplitParams, seed: int) -> dict[str, np.ndarray]:
    f_train, f_val, f_test = params.fractions
    total = int(labels.sum())
    if total < 3 * params.min_positives:
        raise DataError(
            f"only {total} positives in the data, fewer than 3 splits x "
            f"prepare.split.min_positives={params.min_positives}; use more data "
            "or lower prepare.split.min_positives"
        )
    rest, test = train_test_split(np.arange(labels.size), test_size=f_test, stratify=labels, random_state=seed)
    train, val = train_test_split(rest, test_size=f_val / (f_train + f_val), stratify=labels[rest], random_state=seed)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def time_parts(times: np.ndarray, params: SplitParams, fold: int) -> dict[str, np.ndarray]:
    """Window ``fold`` of ``params.folds``: its rows in time order, the first ``fractions[0]`` train,
    those within ``delay`` after the last training row form the gap, the rest divide into validation
    and test in the ratio of their fractions. Windows hold W rows, W = n / (1 + (folds - 1) x
    fractions[2]), and start fractions[2] x W rows apart, so the test blocks follow one another."""
    f_train, f_val, f_test = params.fractions
    order = np.argsort(times, kind="stable")
    n = order.size
    width = n / (1 + (params.folds - 1) * f_test)
    start = round(fold % params.folds * f_test * width)
    window = order[start : start + round(width)]
    train = window[: round(window.size * f_train)]
    later = window[train.size :]
    last = times[train[-1]] if train.size else -np.inf
    gap = later[times[later] <= last + params.delay_seconds] if params.delay_seconds > 0 else later[:0]
    rest = later[gap.size :]
    cut = round(rest.size * f_val / (f_val + f_test))
    if min(train.size, cut, rest.size - cut) == 0:
        raise DataError(
            f"time window {fold} leaves an empty part (delay {params.delay} holds {gap.size} of its "
            f"{window.size} rows); use a shorter prepare.split.delay or fewer prepare.split.folds"
        )
    return {"train": np.sort(train), "val": np.sort(rest[:cut]), "test": np.sort(rest[cut:]), "gap": np.sort(gap)}
