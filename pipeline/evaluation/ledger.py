"""The validation and test parts of a split as money (evaluation.money.Transactions): each row's
label, amount (prepare.amount), day (from the time column), entity (the card or customer, when prepare
found one) and each day's alert budget, scaled by the part's share of that day's rows in the whole table."""

from __future__ import annotations

import numpy as np

from pipeline.data.prepared import Prepared
from pipeline.evaluation.money import Transactions, daily_budgets, days
from pipeline.project.config import Params


def ledgers(prepared: Prepared, split: str, params: Params) -> dict[str, Transactions]:
    """The split's validation and test parts as money; empty when the data has no amount column."""
    summary, table = prepared.summary, prepared.table
    if summary.amount is None:
        return {}
    seconds = prepared.seconds(params.prepare.split.time_column)
    every_day = days(seconds) if seconds is not None else None
    labels = table[summary.label].to_numpy().astype(bool)
    amounts = table[summary.amount].to_numpy(dtype=np.float64)
    entities = table[summary.entity].astype(str).to_numpy() if summary.entity is not None else None
    out = {}
    for part, rows in prepared.indices(split).items():
        if part not in ("val", "test"):
            continue
        day = every_day[rows] if every_day is not None else np.zeros(rows.size, dtype=np.int64)
        budget = daily_budgets(day, every_day, params.evaluate.alerts_per_day) if every_day is not None else {}
        out[part] = Transactions(labels[rows], amounts[rows], day, budget,
                                 entities[rows] if entities is not None else None)
    return out
