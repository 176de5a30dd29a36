"""Imbalanced-class metrics, on top of sklearn.metrics."""

from __future__ import annotations

from typing import Any

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
)


def epoch_metrics(y_true: Any, logits: Any) -> dict[str, float]:
    """Validation metrics tracked every epoch: accuracy, precision and recall at p=0.5, and AP.

    Takes arrays or CPU tensors. One confusion matrix gives the three thresholded metrics (a third
    of the cost of calling accuracy_score, precision_score and recall_score separately, every epoch).
    """
    y_true, logits = np.asarray(y_true).astype(np.int8), np.asarray(logits)
    y_pred = (logits > 0).astype(np.int8)  # sigmoid(logit) > 0.5
    (tn, fp), (fn, tp) = confusion_matrix(y_true, y_pred, labels=[0, 1])
    return {
        "val_accuracy": float((tp + tn) / y_true.size),
        "val_precision": float(tp / (tp + fp)) if tp + fp else 0.0,
        "val_recall": float(tp / (tp + fn)) if tp + fn else 0.0,
        "val_ap": float(average_precision_score(y_true, logits)),
    }


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
        f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(precision),
                       where=(precision + recall) > 0)
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
        "precision": float(precision), "recall": float(recall), "f1": float(f1),
        "ap": float(average_precision_score(y, p)), "prevalence": prevalence,
        "roc_auc": float(roc_auc_score(y, p)),
        "accuracy": float(accuracy_score(y, pred)), "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "mcc": float(matthews_corrcoef(y, pred)), "brier": float(brier_score_loss(y, p)),
        "majority_accuracy": max(prevalence, 1 - prevalence),
        "tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp),
    }
    order = np.argsort(-p, kind="stable")
    for k in ks:
        out[f"precision_at_{k}"] = float(y[order[:k]].mean()) if k <= y.size else float("nan")
    return out


def accuracy_trap(metrics: dict[str, float], recall_target: float) -> bool:
    """Accuracy at or above the majority-class baseline while recall misses its target."""
    return metrics["accuracy"] >= metrics["majority_accuracy"] and metrics["recall"] < recall_target


def bootstrap_ci(y: np.ndarray, p: np.ndarray, threshold: float, resamples: int, seed: int,
                 level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Stratified bootstrap percentile intervals for AP, precision, recall and F1.

    Positives and negatives are resampled separately (with replacement), so every resample keeps
    the split's prevalence; a resample is a vector of row counts passed to sklearn as weights.
    """
    rng = np.random.default_rng(seed)
    y = y.astype(np.int8)
    pred = (p >= threshold).astype(np.int8)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    draws: dict[str, list[float]] = {"ap": [], "precision": [], "recall": [], "f1": []}
    for _ in range(resamples):
        weight = np.zeros(y.size)
        np.add.at(weight, rng.choice(pos, pos.size), 1)
        np.add.at(weight, rng.choice(neg, neg.size), 1)
        keep = weight > 0
        yk, pk, wk = y[keep], p[keep], weight[keep]
        draws["ap"].append(average_precision_score(yk, pk, sample_weight=wk))
        prec, rec, f1, _ = precision_recall_fscore_support(yk, pred[keep], sample_weight=wk, average="binary",
                                                           zero_division=0)
        draws["precision"].append(prec)
        draws["recall"].append(rec)
        draws["f1"].append(f1)
    tail = (1 - level) / 2 * 100
    return {k: (float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))) for k, v in draws.items()}
