"""The numpy-only ranking metrics are scikit-learn's, ties and zero weights included."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, precision_score, recall_score

from pipeline.evaluation.ranking import average_precision, epoch_metrics, tie_groups, weighted_ap


@pytest.fixture
def scores() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = (rng.random(4000) < 0.02).astype(np.int8)
    p = np.round(np.clip(0.25 * rng.random(4000) + y * rng.random(4000) * 0.75, 0, 1), 2)  # many ties
    return y, p


def test_weighted_ap_is_sklearns_for_every_resample(scores: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = scores
    weights = np.random.default_rng(3).integers(0, 3, (5, y.size))  # rows drawn 0, 1 or 2 times
    order, starts = tie_groups(p)
    expected = [average_precision_score(y, p, sample_weight=w) for w in weights]
    np.testing.assert_allclose(weighted_ap(y.astype(bool), weights, order, starts), expected, rtol=1e-12)


def test_average_precision_is_sklearns(scores: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = scores
    assert average_precision(y, p) == pytest.approx(average_precision_score(y, p), rel=1e-12)
    assert average_precision(y, -p) == pytest.approx(average_precision_score(y, -p), rel=1e-12)


def test_epoch_metrics_are_sklearns_at_probability_one_half(scores: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = scores
    logits = np.log(p + 1e-3) - np.log(1 - p + 1e-3)
    metrics = epoch_metrics(y, logits)
    pred = logits > 0
    assert metrics["val_accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert metrics["val_precision"] == pytest.approx(precision_score(y, pred))
    assert metrics["val_recall"] == pytest.approx(recall_score(y, pred))
    assert metrics["val_ap"] == pytest.approx(average_precision_score(y, logits), rel=1e-12)
    assert epoch_metrics(y, np.full(y.size, -5.0))["val_precision"] == 0.0  # nothing predicted positive


def test_weighted_ap_without_positives_is_undefined_not_an_error() -> None:
    y = np.zeros(6, dtype=bool)
    order, starts = tie_groups(np.linspace(0, 1, 6))
    assert np.isnan(weighted_ap(y, np.ones((3, 6)), order, starts)).all()
