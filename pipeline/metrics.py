"""Imbalanced-class metrics, on top of sklearn.metrics."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score, precision_score, recall_score


def epoch_metrics(y_true: np.ndarray, logits: np.ndarray) -> dict[str, float]:
    """Validation metrics tracked every epoch: accuracy, precision and recall at p=0.5, and AP."""
    y_pred = (logits > 0).astype(np.int8)  # sigmoid(logit) > 0.5
    y_true = y_true.astype(np.int8)
    return {
        "val_accuracy": float(accuracy_score(y_true, y_pred)),
        "val_precision": float(precision_score(y_true, y_pred, zero_division=0)),
        "val_recall": float(recall_score(y_true, y_pred, zero_division=0)),
        "val_ap": float(average_precision_score(y_true, logits)),
    }
