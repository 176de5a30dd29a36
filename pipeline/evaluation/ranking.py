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

    The sum over distinct thresholds of (recall gained) x (precision there), as in sklearn. Only the
    thresholds whose tie group holds a positive gain recall, so the rows are summed once, in segments
    that end where such a group ends; the rest works on one column per positive group.
    """
    ranked = np.asarray(y, dtype=bool)[order]
    ends = np.r_[starts[1:], ranked.size]
    holds = np.add.reduceat(ranked.astype(np.int64), starts) > 0
    cuts = ends[holds]  # where each positive-holding group ends
    if cuts.size == 0:  # no positive: recall, and so AP, is undefined
        return np.full(weights.shape[0], np.nan)
    w = weights[:, order].astype(np.float64)
    predicted = np.cumsum(np.add.reduceat(w[:, : cuts[-1]], np.r_[0, cuts[:-1]], axis=1), axis=1)
    positives = np.flatnonzero(ranked)
    group_starts = np.flatnonzero(np.r_[True, np.diff(np.searchsorted(cuts, positives, side="right")) > 0])
    gained = np.add.reduceat(w[:, positives], group_starts, axis=1)
    tp = np.cumsum(gained, axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    return (gained / tp[:, -1:] * precision).sum(axis=1)


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
