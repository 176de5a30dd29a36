"""Money and alert-budget metrics against hand-computed values on tiny tables: ties at the budget's
edge, a day with no fraud, entity-days, the cost threshold and the savings."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.evaluation.money import (
    Transactions,
    alert_budget,
    cost_threshold,
    daily_budgets,
    days,
    money_metrics,
    units,
)

ONE = np.ones((1, 6))


def _two_days() -> tuple[Transactions, np.ndarray]:
    """Day 0: 0.9 fraud (10), 0.8 legit, 0.8 fraud (30), 0.1 legit; day 1: two legit rows."""
    y = np.array([1, 0, 1, 0, 0, 0], dtype=bool)
    amount = np.array([10.0, 5.0, 30.0, 1.0, 2.0, 3.0])
    t = Transactions(y, amount, np.array([0, 0, 0, 0, 1, 1]), {0: 2, 1: 2})
    return t, np.array([0.9, 0.8, 0.8, 0.1, 0.5, 0.4])


def test_ties_at_the_edge_share_the_last_alert_and_a_day_without_fraud_counts_zero() -> None:
    t, p = _two_days()
    out = alert_budget(*units(t.y, p, t.amount, t.day, t.groups), t.budget, ONE)
    # Day 0, k=2: 0.9 (fraud) in; the two rows at 0.8 share the last alert (half each): 1 + 0.5 of 2
    # frauds -> 0.75. Day 1: no fraud, 0. Mean over days 0.375. Amount: 10 + 0.5 x 30 = 25 of 40.
    assert out["alert_precision"] == pytest.approx([0.375])
    assert out["alert_value_recall"] == pytest.approx([25 / 40])


def test_one_alert_per_card_per_day() -> None:
    """Card A: 0.9 legit and 0.3 fraud (5); card B: 0.6 fraud (7); card C 0.5 legit; k=1: card A,
    the highest, is a fraudulent card that day: precision 1, 5 of 12 caught."""
    y = np.array([0, 1, 1, 0], dtype=bool)
    t = Transactions(
        y, np.array([50.0, 5.0, 7.0, 9.0]), np.zeros(4, dtype=np.int64), {0: 1}, entity=np.array(["A", "A", "B", "C"])
    )
    out = money_metrics(t, np.array([0.9, 0.3, 0.6, 0.5]), threshold=0.55, weights=np.ones((1, 4)), cost_per_alert=2.0)
    assert out["alert_precision"] == pytest.approx([1.0]) and out["alert_value_recall"] == pytest.approx([5 / 12])
    # At threshold 0.55 rows 0 (legit) and 2 (fraud, 7) are alerted: 7 of 12 caught, 5 missed.
    assert out["amount_caught"] == pytest.approx([7.0]) and out["value_recall"] == pytest.approx([7 / 12])
    # Cost 2 x 2 + 5 = 9; no model loses 12 (saves 3); alerting all 4 rows costs 8 (saves -1).
    assert out["cost"] == pytest.approx([9.0])
    assert out["savings_vs_none"] == pytest.approx([3.0]) and out["savings_vs_all"] == pytest.approx([-1.0])


def test_bootstrap_weights_count_rows_like_copies() -> None:
    """Weights 2 on the first row equal the table with that row written twice."""
    t, p = _two_days()
    weights = np.array([[2, 1, 1, 1, 1, 1]], dtype=float)
    doubled = Transactions(np.r_[t.y[:1], t.y], np.r_[t.amount[:1], t.amount], np.r_[t.day[:1], t.day], t.budget)
    a = money_metrics(t, p, 0.85, weights, 1.0)
    b = money_metrics(doubled, np.r_[p[:1], p], 0.85, np.ones((1, 7)), 1.0)
    assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k]) for k in a)


def test_the_cost_threshold_by_hand() -> None:
    y = np.array([1, 0, 1, 0], dtype=bool)
    p = np.array([0.9, 0.8, 0.4, 0.1])
    amount = np.array([100.0, 50.0, 3.0, 20.0])
    # Costs at 5 per alert: t=0.9 -> 5 + 3 = 8; 0.8 -> 10 + 3; 0.4 -> 15; 0.1 -> 20; no alert -> 103.
    assert cost_threshold(y, p, amount, 5.0) == 0.9
    # At 200 per alert even the first alert costs more than the 100 it saves: no alert at all.
    assert cost_threshold(y, p, amount, 200.0) > 0.9


def test_budgets_scale_with_the_share_of_each_days_rows() -> None:
    seconds = np.array([10.0, 86_399.0, 86_400.0, 200_000.0])
    assert days(seconds).tolist() == [0, 0, 1, 2]
    # The part holds 2 of day 0's 4 rows and 1 of day 1's 2: half the budget on each.
    assert daily_budgets(np.array([0, 0, 1]), np.array([0, 0, 0, 0, 1, 1]), 10) == {0: 5, 1: 5}
    assert daily_budgets(np.array([3]), np.array([3] * 1000), 10) == {3: 1}  # never below one alert
