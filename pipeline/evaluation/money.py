"""What a fraud team measures, from the rows of a split (``ledgers``: each row's label, amount, day,
entity and the daily alert budgets): money caught and missed, precision within a daily alert budget, the
cost of a threshold and the savings it brings. Every function takes row weights (1 per row, or a
bootstrap resample's counts, one row of ``weights`` per resample), so point values and bootstrap
draws are the same computation.

- Value-weighted recall: the share of the fraudulent amount among the alerts (p >= threshold).
- Alert budget (the Fraud Detection Handbook's daily precision@k): each day, the k highest scores
  are alerted; precision is the share of them that are fraud, averaged over the days, and the amount
  they catch is summed. Rows with equal scores at the budget's edge share the last places: each gets
  the same fraction of an alert (the expected count under random tie-breaking). With an entity (a card),
  the units are entity-days (score: the entity's highest that day; fraud: any of its rows), one alert
  per card per day.
- Cost: each alert costs ``cost_per_alert`` and each missed fraud its amount. Savings compare a model
  with no model (every fraud lost, no alert) and with alerting everything (every row reviewed).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from pipeline.data.prepared import Prepared
from pipeline.evaluation.metrics import stratified_weights
from pipeline.project.params import Params

DAY_SECONDS = 86_400.0


@dataclass(frozen=True)
class Transactions:
    """A part of a split as money: labels, amounts, days, entities and the daily alert budgets."""

    y: np.ndarray  # bool, (rows,)
    amount: np.ndarray  # float64, (rows,)
    day: np.ndarray  # int64 day index of each row
    budget: dict[int, int]  # alerts per day (of the days in ``day``)
    entity: np.ndarray | None = None  # the card or customer of each row, if the data names one

    @cached_property
    def groups(self) -> np.ndarray | None:
        """Each row's entity-day (an index from 0), found once: every resample and model reuses it; None
        without an entity."""
        if self.entity is None:
            return None
        keys = np.stack([self.day, np.unique(self.entity, return_inverse=True)[1]], axis=1)
        return np.unique(keys, axis=0, return_inverse=True)[1].ravel()


def ledgers(prepared: Prepared, split: str, params: Params) -> dict[str, Transactions]:
    """The split's validation and test parts as money (days from prepare's time column); empty when the data
    has no amount column."""
    summary, table = prepared.summary, prepared.table
    if summary.amount is None:
        return {}
    seconds = prepared.seconds(summary.time_column) if summary.time_column is not None else None
    every_day = days(seconds) if seconds is not None else None
    labels = table[summary.label].to_numpy().astype(bool)
    amounts = table[summary.amount].to_numpy(dtype=np.float64)
    amounts = np.where(np.isfinite(amounts), amounts, 0.0)  # an unknown amount counts no money (the model imputes it)
    entities = table[summary.entity].astype(str).to_numpy() if summary.entity is not None else None
    out = {}
    for part, rows in prepared.indices(split).items():
        if part not in ("val", "test"):
            continue
        day = every_day[rows] if every_day is not None else np.zeros(rows.size, dtype=np.int64)
        budget = daily_budgets(day, every_day, params.evaluate.alerts_per_day) if every_day is not None else {}
        out[part] = Transactions(
            labels[rows], amounts[rows], day, budget, entities[rows] if entities is not None else None
        )
    return out


def days(seconds: np.ndarray) -> np.ndarray:
    """Day index of each time in seconds (from the first day of the time column's origin)."""
    return np.floor(np.asarray(seconds, dtype=np.float64) / DAY_SECONDS).astype(np.int64)


def daily_budgets(part_days: np.ndarray, all_days: np.ndarray, per_day: int) -> dict[int, int]:
    """The alert budget of each day of a part: ``per_day`` is the team's capacity on the whole day's
    traffic, so a part holding a share s of a day's rows gets round(per_day x s) alerts (at least 1)."""
    seen, counts = np.unique(part_days, return_counts=True)
    total = dict(zip(*np.unique(all_days, return_counts=True)))
    return {int(d): max(1, round(per_day * c / total[d])) for d, c in zip(seen, counts)}


def value_counts(t: Transactions, alerted: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Amount caught and missed, alerts, and value-weighted recall, under each row of ``weights``."""
    fraud_amount = t.amount * t.y
    caught = weights @ (fraud_amount * alerted)
    total = weights @ fraud_amount
    return {
        "amount_caught": caught,
        "amount_missed": total - caught,
        "alerts": weights @ alerted.astype(float),
        "value_recall": np.divide(caught, total, out=np.zeros_like(caught), where=total > 0),
    }


def costs(t: Transactions, alerted: np.ndarray, weights: np.ndarray, cost_per_alert: float) -> dict[str, np.ndarray]:
    """The model's cost and its savings against no model and against alerting every row."""
    counts = value_counts(t, alerted, weights)
    cost = cost_per_alert * counts["alerts"] + counts["amount_missed"]
    lost = counts["amount_caught"] + counts["amount_missed"]  # every fraud, with no model
    reviewed = cost_per_alert * weights.sum(axis=1)  # every row alerted, no fraud missed
    return {"cost": cost, "savings_vs_none": lost - cost, "savings_vs_all": reviewed - cost}


def cost_threshold(y: np.ndarray, p: np.ndarray, amount: np.ndarray, cost_per_alert: float) -> float:
    """The threshold with the lowest cost on these rows (alerts x cost_per_alert + missed fraud
    amount); among equal costs the highest threshold (fewest alerts). Above every score: no alert."""
    order = np.argsort(-p, kind="stable")
    scores = p[order]
    ends = np.r_[np.flatnonzero(scores[1:] != scores[:-1]), scores.size - 1]  # last row of each tie group
    alerts = ends + 1
    caught = np.cumsum((amount * y)[order])[ends]
    cost = cost_per_alert * alerts + (float((amount * y).sum()) - caught)
    none = float((amount * y).sum())
    best = int(np.argmin(cost))
    return float(scores[ends[best]]) if cost[best] < none else float(np.nextafter(scores[0], np.inf))


def units(
    y: np.ndarray, p: np.ndarray, amount: np.ndarray, day: np.ndarray, group: np.ndarray | None
) -> tuple[np.ndarray, ...]:
    """The alerted units: rows, or entity-days (``group``: each row's; highest score, any fraud, the
    fraud amount summed)."""
    if group is None:
        return y.astype(bool), p, amount * y, day
    count = group.max() + 1
    score = np.full(count, -np.inf)
    np.maximum.at(score, group, p)
    fraud = np.bincount(group, weights=y.astype(float), minlength=count) > 0
    value = np.bincount(group, weights=amount * y, minlength=count)
    unit_day = np.zeros(count, dtype=np.int64)
    unit_day[group] = day
    return fraud, score, value, unit_day


def alert_budget(
    fraud: np.ndarray,
    score: np.ndarray,
    value: np.ndarray,
    day: np.ndarray,
    budget: dict[int, int],
    weights: np.ndarray,
) -> dict[str, np.ndarray]:
    """Precision among each day's top-k units, averaged over the days, and the fraud amount they
    catch as a share of all fraud amount, under each row of ``weights`` (one weight per unit)."""
    precisions, caught = [], np.zeros(weights.shape[0])
    for d, k in sorted(budget.items()):
        rows = np.flatnonzero(day == d)
        order = rows[np.argsort(-score[rows], kind="stable")]
        ordered = score[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        w = weights[:, order].astype(np.float64)
        per_group = [np.add.reduceat(w * x, starts, axis=1) for x in (np.ones(order.size), fraud[order], value[order])]
        size, positives, amount = per_group
        before = np.cumsum(size, axis=1) - size  # units ranked above each tie group
        share = np.clip((k - before) / np.where(size > 0, size, 1), 0.0, 1.0) * (size > 0)
        alerts = np.minimum(k, size.sum(axis=1))  # a day with fewer units than k alerts them all
        precisions.append(
            np.divide((share * positives).sum(axis=1), alerts, out=np.zeros(alerts.shape), where=alerts > 0)
        )
        caught += (share * amount).sum(axis=1)
    total = weights @ value
    return {
        "alert_precision": np.mean(precisions, axis=0),
        "alert_value_recall": np.divide(caught, total, out=np.zeros_like(caught), where=total > 0),
    }


def money_metrics(
    t: Transactions, p: np.ndarray, threshold: float, weights: np.ndarray, cost_per_alert: float
) -> dict[str, np.ndarray]:
    """Every money and alert-budget number of one model under each row of ``weights`` (row weights;
    with an entity, the alert budget weighs each entity-day by its rows' mean weight)."""
    out = {**value_counts(t, p >= threshold, weights), **costs(t, p >= threshold, weights, cost_per_alert)}
    if not t.budget:  # no time column: no days to budget
        return out
    fraud, score, value, unit_day = units(t.y, p, t.amount, t.day, t.groups)
    unit_weights = weights if t.groups is None else _unit_weights(t.groups, weights)
    return {**out, **alert_budget(fraud, score, value, unit_day, t.budget, unit_weights)}


def _unit_weights(group: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Each entity-day's weight in a resample: the mean of its rows' weights."""
    sizes = np.bincount(group)
    return np.stack([np.bincount(group, weights=row, minlength=sizes.size) for row in weights]) / sizes


INTERVALS = (
    "value_recall",
    "amount_caught",
    "alert_precision",
    "alert_value_recall",
    "savings_vs_none",
    "savings_vs_all",
)


def money_summary(
    t: Transactions,
    p: np.ndarray,
    threshold: float,
    cost_per_alert: float,
    resamples: int,
    seed: int,
    level: float = 0.95,
) -> dict[str, float]:
    """Point values, and stratified bootstrap percentile intervals of the main ones (the threshold
    held fixed, as for precision and recall)."""
    point = {k: float(v[0]) for k, v in money_metrics(t, p, threshold, np.ones((1, t.y.size)), cost_per_alert).items()}
    draws: dict[str, list[np.ndarray]] = {}
    for weights in stratified_weights(t.y, resamples, seed):
        for key, values in money_metrics(t, p, threshold, weights, cost_per_alert).items():
            draws.setdefault(key, []).append(values)
    tail = (1 - level) / 2 * 100
    out = dict(point)
    for key in INTERVALS:
        if key in draws:
            values = np.concatenate(draws[key])
            out[f"{key}_ci_low"], out[f"{key}_ci_high"] = (
                float(np.percentile(values, tail)),
                float(np.percentile(values, 100 - tail)),
            )
    return out


PAIRED = ("value_recall", "alert_precision")


def paired_money_draws(
    t: Transactions,
    ours: tuple[np.ndarray, float],
    theirs: tuple[np.ndarray, float],
    resamples: int,
    seed: int,
    cost_per_alert: float,
) -> dict[str, np.ndarray]:
    """Bootstrap draws of the paired differences (ours minus theirs) in value-weighted recall and in
    precision within the alert budget, both models on the same resampled rows (the seed and the
    stratification of metrics.paired_draws, so that the draws pair with its draws too)."""
    out: dict[str, list[np.ndarray]] = {}
    for weights in stratified_weights(t.y, resamples, seed):
        a, b = (money_metrics(t, p, threshold, weights, cost_per_alert) for p, threshold in (ours, theirs))
        for key in PAIRED:
            if key in a:
                out.setdefault(key, []).append(a[key] - b[key])
    return {k: np.concatenate(v) for k, v in out.items()}
