import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score

from pipeline.evaluation.metrics import (
    accuracy_trap,
    bootstrap_ci,
    choose_threshold,
    classification_metrics,
    paired_draws,
)


@pytest.fixture
def scores() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = (rng.random(4000) < 0.02).astype(np.int8)
    p = np.clip(0.25 * rng.random(4000) + y * rng.random(4000) * 0.75, 0, 1)
    return y, p


@pytest.mark.parametrize("strategy", ["max_f1", "recall_at_precision", "precision_at_recall", "fixed"])
def test_threshold_strategies_meet_their_definition(strategy: str, scores: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = scores
    t = choose_threshold(y, p, strategy, 0.6)
    pred = p >= t
    if strategy == "fixed":
        assert t == 0.6
    elif strategy == "max_f1":
        # An F1-optimal threshold can always sit at some positive's score: check those candidates.
        best = max(f1_score(y, p >= c) for c in np.unique(p[y == 1]))
        assert f1_score(y, pred) == pytest.approx(best)
    elif strategy == "recall_at_precision":
        assert precision_score(y, pred) >= 0.6
    else:
        assert recall_score(y, pred) >= 0.6


@pytest.mark.parametrize("strategy", ["max_f1", "recall_at_precision", "precision_at_recall"])
def test_threshold_depends_on_the_ranking_only(strategy: str, scores: tuple[np.ndarray, np.ndarray]) -> None:
    """A monotone rescaling of the scores moves the threshold with them and selects the same rows."""
    y, p = scores
    t = choose_threshold(y, p, strategy, 0.6)
    t_sqrt = choose_threshold(y, np.sqrt(p), strategy, 0.6)
    assert t_sqrt == pytest.approx(np.sqrt(t))
    assert np.array_equal(p >= t, np.sqrt(p) >= t_sqrt)


def test_metrics_match_sklearn(scores: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = scores
    m = classification_metrics(y, p, 0.3, [10, 50])
    assert m["precision"] == pytest.approx(precision_score(y, p >= 0.3))
    assert m["recall"] == pytest.approx(recall_score(y, p >= 0.3))
    assert m["ap"] == pytest.approx(average_precision_score(y, p))
    assert m["tp"] + m["fn"] == y.sum() and m["tn"] + m["fp"] == (y == 0).sum()
    assert m["majority_accuracy"] == pytest.approx(1 - y.mean())
    top10 = np.argsort(-p, kind="stable")[:10]
    assert m["precision_at_10"] == pytest.approx(y[top10].mean())


def test_bootstrap_intervals_bracket_point_estimates(scores: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = scores
    point = classification_metrics(y, p, 0.24, [])
    assert 0 < point["precision"] < 1 and 0 < point["recall"] < 1
    ci = bootstrap_ci(y, p, 0.24, resamples=200, seed=1)
    for key in ("ap", "precision", "recall", "f1"):
        low, high = ci[key]
        assert low <= point[key] <= high and high - low > 0.01, key
    assert bootstrap_ci(y, p, 0.3, resamples=50, seed=1) == bootstrap_ci(y, p, 0.3, resamples=50, seed=1)


def test_accuracy_trap_flags_high_accuracy_with_low_recall() -> None:
    y = np.array([0] * 98 + [1] * 2, dtype=np.int8)
    p = np.zeros(100)
    m = classification_metrics(y, p, 0.5, [])
    assert m["accuracy"] == 0.98 and m["recall"] == 0.0
    assert accuracy_trap(m, recall_target=0.5)
    p[-2:] = 0.9
    assert not accuracy_trap(classification_metrics(y, p, 0.5, []), recall_target=0.5)


def test_paired_draws_resample_the_same_rows_for_both_models() -> None:
    """The same model twice: every draw's difference is exactly 0 (the rows are shared); a perfect
    ranking against its reverse: AP differs by (1 - reversed AP) in each draw, at most 1."""
    y = np.array([1, 0, 0, 1, 0, 0, 0, 0, 1, 0])
    p = np.linspace(0.9, 0.1, 10)
    same = paired_draws(y, (p, 0.5), (p, 0.5), resamples=30, seed=1)
    assert all(np.array_equal(v, np.zeros(30)) for v in same.values())
    perfect = np.where(y == 1, 0.9, 0.1)
    draws = paired_draws(y, (perfect, 0.5), (1 - perfect, 0.5), resamples=30, seed=1)
    assert draws["ap"].shape == (30,) and ((draws["ap"] > 0) & (draws["ap"] < 1)).all()
    assert (draws["recall"] == 1.0).all() and (draws["precision"] == 1.0).all()  # 1 - 0 in every draw
