"""Imbalanced-class metrics, on top of sklearn.metrics (and ``ranking`` for the vectorised bootstrap)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    confusion_matrix,
    matthews_corrcoef,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from pipeline.evaluation.ranking import tie_groups, weighted_ap

# ---------------------------------------------------------------- thresholds (validation only)

THRESHOLD_STRATEGIES = ("max_f1", "recall_at_precision", "precision_at_recall", "fixed")


def choose_threshold(y_val: np.ndarray, p_val: np.ndarray, strategy: str, target: float) -> float:
    """A probability threshold chosen on validation scores only.

    ``max_f1``: the threshold with the best F1. ``recall_at_precision``: the highest recall whose
    precision is at least ``target``. ``precision_at_recall``: the highest precision whose recall is
    at least ``target``. ``fixed``: ``target`` itself. When no threshold reaches the target, the
    one closest to it is used.
    """
    if strategy == "fixed":
        return float(target)
    precision, recall, thresholds = precision_recall_curve(y_val, p_val)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    if strategy == "max_f1":
        f1 = np.divide(
            2 * precision * recall, precision + recall, out=np.zeros_like(precision), where=(precision + recall) > 0
        )
        return float(thresholds[int(np.argmax(f1))])
    if strategy == "recall_at_precision":
        ok = precision >= target
        best = np.flatnonzero(ok)[np.argmax(recall[ok])] if ok.any() else int(np.argmax(precision))
        return float(thresholds[best])
    if strategy == "precision_at_recall":
        ok = recall >= target
        best = np.flatnonzero(ok)[np.argmax(precision[ok])] if ok.any() else int(np.argmax(recall))
        return float(thresholds[best])
    raise ValueError(f"unknown threshold strategy {strategy!r}")


# ---------------------------------------------------------------- metrics at a threshold


def classification_metrics(y: np.ndarray, p: np.ndarray, threshold: float, ks: list[int]) -> dict[str, float]:
    """Every number the evaluate stage reports for one split, at one threshold."""
    y = y.astype(np.int8)
    pred = (p >= threshold).astype(np.int8)
    precision, recall, f1, _ = precision_recall_fscore_support(y, pred, average="binary", zero_division=0)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    prevalence = float(y.mean())
    out = {
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "ap": float(average_precision_score(y, p)),
        "prevalence": prevalence,
        "roc_auc": float(roc_auc_score(y, p)),
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "mcc": float(matthews_corrcoef(y, pred)),
        "brier": float(brier_score_loss(y, p)),
        "majority_accuracy": max(prevalence, 1 - prevalence),
        "tn": int(tn),
        "fp": int(fp),
        "fn": int(fn),
        "tp": int(tp),
    }
    order = np.argsort(-p, kind="stable")
    for k in ks:
        out[f"precision_at_{k}"] = float(y[order[:k]].mean()) if k <= y.size else float("nan")
    return out


def accuracy_trap(metrics: dict[str, float], recall_target: float) -> bool:
    """Accuracy at or above the majority-class baseline while recall misses its target."""
    return metrics["accuracy"] >= metrics["majority_accuracy"] and metrics["recall"] < recall_target


CHUNK_CELLS = 12_000_000  # resamples x rows scored at once


def stratified_weights(y: np.ndarray, resamples: int, seed: int, chunk: int = 25) -> Iterator[np.ndarray]:
    """Bootstrap resamples of the rows as count vectors (sample weights), a chunk of them at a time:
    positives and negatives resampled separately (with replacement), so that every resample keeps the
    prevalence; a chunk's arrays stay near 100 MB on any split."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    chunk = max(1, min(chunk, CHUNK_CELLS // max(1, y.size)))
    for first in range(0, resamples, chunk):
        count = min(chunk, resamples - first)
        picks = np.concatenate([rng.choice(pos, (count, pos.size)), rng.choice(neg, (count, neg.size))], axis=1)
        picks += (np.arange(count) * y.size)[:, None]  # resample i counts rows in its own block
        yield np.bincount(picks.ravel(), minlength=count * y.size).reshape(count, y.size)


def weighted_counts(y: np.ndarray, pred: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """True and false positives and negatives under each row of ``weights``."""
    return {
        "tp": weights @ (y & pred),
        "fp": weights @ (~y & pred),
        "fn": weights @ (y & ~pred),
        "tn": weights @ (~y & ~pred),
    }


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros(a.shape), where=b > 0)


def bootstrap_ci(
    y: np.ndarray, p: np.ndarray, threshold: float, resamples: int, seed: int, level: float = 0.95, chunk: int = 25
) -> dict[str, tuple[float, float]]:
    """Stratified bootstrap percentile intervals for AP, precision, recall and F1 (the threshold held
    fixed). All resamples of a chunk are scored at once (``weighted_ap`` is sklearn's average
    precision with those weights, a test checks they agree)."""
    y = y.astype(bool)
    pred = p >= threshold
    order, starts = tie_groups(p)
    draws: dict[str, list[np.ndarray]] = {"ap": [], "precision": [], "recall": [], "f1": []}
    for weights in stratified_weights(y, resamples, seed, chunk):
        draws["ap"].append(weighted_ap(y, weights, order, starts))
        c = weighted_counts(y, pred, weights)
        precision, recall = _ratio(c["tp"], c["tp"] + c["fp"]), _ratio(c["tp"], c["tp"] + c["fn"])
        draws["precision"].append(precision)
        draws["recall"].append(recall)
        draws["f1"].append(_ratio(2 * precision * recall, precision + recall))
    tail = (1 - level) / 2 * 100
    return {
        k: (float(np.percentile(np.concatenate(v), tail)), float(np.percentile(np.concatenate(v), 100 - tail)))
        for k, v in draws.items()
    }


def paired_draws(
    y: np.ndarray, ours: tuple[np.ndarray, float], theirs: tuple[np.ndarray, float], resamples: int, seed: int
) -> dict[str, np.ndarray]:
    """Bootstrap draws of the paired differences (ours minus theirs) on the same resampled test rows:
    average precision, and at each model's own threshold accuracy, precision and recall."""
    y = y.astype(bool)
    (p_a, t_a), (p_b, t_b) = ours, theirs
    rankings = [tie_groups(p_a), tie_groups(p_b)]
    preds = [p_a >= t_a, p_b >= t_b]
    out: dict[str, list[np.ndarray]] = {"ap": [], "accuracy": [], "precision": [], "recall": []}
    for weights in stratified_weights(y, resamples, seed):
        aps = [weighted_ap(y, weights, order, starts) for order, starts in rankings]
        counts = [weighted_counts(y, pred, weights) for pred in preds]
        total = weights.sum(axis=1)
        values = [
            {
                "accuracy": (c["tp"] + c["tn"]) / total,
                "precision": _ratio(c["tp"], c["tp"] + c["fp"]),
                "recall": _ratio(c["tp"], c["tp"] + c["fn"]),
            }
            for c in counts
        ]
        out["ap"].append(aps[0] - aps[1])
        for key in ("accuracy", "precision", "recall"):
            out[key].append(values[0][key] - values[1][key])
    return {k: np.concatenate(v) for k, v in out.items()}


def pr_roc_points(name: str, y: np.ndarray, p: np.ndarray, points: int = 200) -> tuple[dict, dict]:
    """Thinned precision-recall and ROC points of one model (for DVC's overlay plots)."""
    precision, recall, _ = precision_recall_curve(y, p)
    fpr, tpr, _ = roc_curve(y, p)

    def thin(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        size = len(next(iter(columns.values())))
        keep = np.unique(np.linspace(0, size - 1, min(points, size)).round().astype(int))
        return {"model": np.repeat(name, keep.size), **{k: v[keep] for k, v in columns.items()}}

    return thin({"recall": recall, "precision": precision}), thin({"fpr": fpr, "tpr": tpr})
