"""Ranking metrics in numpy alone: average precision (also weighted, many resamples at once) and
the per-epoch validation metrics.

The training processes import this instead of scikit-learn (about a second per process, and the
default pipeline starts 20 of them). Every function here equals scikit-learn's definition; the
tests compare them with sklearn.metrics on data with ties.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def tie_groups(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row order by descending score, and where each run of equal scores starts in that order."""
    order = np.argsort(-p, kind="stable")
    ordered = p[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    return order, starts


def weighted_ap(y: np.ndarray, weights: np.ndarray, order: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Average precision of one ranking under each row of ``weights`` (rows: resamples).

    The sum over distinct thresholds of (recall gained) x (precision there), as in sklearn.
    """
    w = weights[:, order].astype(np.float64)
    tp = np.cumsum(np.add.reduceat(w * y[order], starts, axis=1), axis=1)
    predicted = np.cumsum(np.add.reduceat(w, starts, axis=1), axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall_gain = np.diff(tp, axis=1, prepend=0.0) / tp[:, -1:]
    return (recall_gain * precision).sum(axis=1)


def average_precision(y: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of one ranking (sklearn's average_precision_score)."""
    y = np.asarray(y).astype(bool)
    order, starts = tie_groups(np.asarray(scores, dtype=np.float64))
    return float(weighted_ap(y, np.ones((1, y.size)), order, starts)[0])


def epoch_metrics(y_true: Any, logits: Any) -> dict[str, float]:
    """Validation metrics tracked every epoch: accuracy, precision and recall at p=0.5, and AP.

    Takes arrays or CPU tensors of labels and logits (sigmoid(logit) > 0.5 is logit > 0).
    """
    y = np.asarray(y_true).astype(bool)
    logits = np.asarray(logits, dtype=np.float64)
    pred = logits > 0
    tp, fp, fn = int(np.sum(y & pred)), int(np.sum(~y & pred)), int(np.sum(y & ~pred))
    return {
        "val_accuracy": float(np.mean(y == pred)),
        "val_precision": tp / (tp + fp) if tp + fp else 0.0,
        "val_recall": tp / (tp + fn) if tp + fn else 0.0,
        "val_ap": average_precision(y, logits),
    }
