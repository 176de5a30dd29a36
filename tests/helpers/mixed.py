"""A small card-transaction table in the common mixed format (categories, date-time text, identifiers, a
few missing cells), with fraud that depends on several of them; and the params that run it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

CATEGORIES = [
    "grocery_pos",
    "gas_transport",
    "home",
    "shopping_pos",
    "kids_pets",
    "shopping_net",
    "misc_net",
    "food_dining",
    "personal_care",
    "health_fitness",
    "travel",
    "entertainment",
]
RISKY = ["shopping_net", "misc_net", "grocery_pos"]
MERCHANTS = [f"fraud_Merchant {i}" for i in range(40)]  # Kaggle's simulated table prefixes every name "fraud_"
CITIES = [f"City {i}" for i in range(30)]
JOBS = [f"Job {i}" for i in range(20)]
ROLES = {
    "trans_date_trans_time": "datetime",
    "cc_num": "id",
    "merchant": "categorical",
    "category": "categorical",
    "amt": "numeric",
    "gender": "categorical",
    "city": "categorical",
    "state": "categorical",
    "city_pop": "numeric",
    "job": "categorical",
    "dob": "datetime",
    "trans_num": "id",
    "unix_time": "datetime",
    "is_fraud": "label",
}


def mixed_table(
    rows: int = 3000, seed: int = 0, fraud_rate: float = 0.06, merchants: int = 0, empty: float = 0.0
) -> pd.DataFrame:
    """Transactions like the public simulated card table (``trans_date_trans_time, cc_num, merchant,
    category, amt, gender, city, state, city_pop, job, dob, trans_num, unix_time, is_fraud``): fraud at
    night, in three categories, with larger amounts. 2% of merchants are one-offs (rarer than any
    min_category_count: "other", in training and later alike); 2% of categories, a few jobs and three
    amounts are missing. ``merchants`` > 0: that many merchants instead, each in at least one row, the others
    drawn by Zipf's law (a few common, most rare, as in a small sample of a large table); ``empty``: that
    share of the ``amt``, ``city_pop`` and ``dob`` cells empty as well, in any row."""
    rng = np.random.default_rng(seed)
    fraud = rng.random(rows) < fraud_rate
    risky = fraud & (rng.random(rows) < 0.7)
    category = np.where(risky, rng.choice(RISKY, rows), rng.choice(CATEGORIES, rows)).astype(object)
    hour = np.where(fraud & (rng.random(rows) < 0.7), rng.choice([22, 23, 0, 1, 2], rows), rng.integers(6, 22, rows))
    seconds = rng.integers(0, 30, rows) * 86_400 + hour * 3600 + rng.integers(0, 3600, rows)
    stamps = pd.Timestamp("2019-01-01") + pd.to_timedelta(np.sort(seconds), unit="s")
    amount = np.round(np.where(fraud, rng.lognormal(5.0, 1.0, rows), rng.lognormal(3.5, 1.0, rows)), 2)
    cards = 4_000_000_000_000_000 + rng.choice(10**15, 150, replace=False)
    merchant = rng.choice(MERCHANTS, rows).astype(object)
    one_off = rng.random(rows) < 0.02
    merchant[one_off] = [f"fraud_One-off {i}" for i in range(int(one_off.sum()))]
    frame = pd.DataFrame(
        {
            "trans_date_trans_time": stamps.strftime("%Y-%m-%d %H:%M:%S"),
            "cc_num": rng.choice(cards, rows),
            "merchant": merchant,
            "category": category,
            "amt": amount,
            "gender": rng.choice(["F", "M"], rows),
            "city": rng.choice(CITIES, rows),
            "state": rng.choice(["NY", "CA", "TX", "PA", "OH", "MI", "AL", "MO"], rows),
            "city_pop": rng.integers(500, 2_000_000, rows),
            "job": rng.choice(JOBS, rows).astype(object),
            "dob": (pd.Timestamp("1950-01-01") + pd.to_timedelta(rng.integers(0, 18_000, rows), unit="D")).strftime(
                "%Y-%m-%d"
            ),
            "trans_num": [rng.bytes(16).hex() for _ in range(rows)],
            "unix_time": (stamps - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1),
            "is_fraud": fraud.astype(int),
        }
    )
    frame.loc[rng.random(rows) < 0.02, "category"] = None
    frame.loc[rng.choice(rows, 5, replace=False), "job"] = None
    frame.loc[rng.choice(np.flatnonzero(~fraud), 3, replace=False), "amt"] = np.nan
    if merchants:
        names = np.array([f"fraud_Shop {i}" for i in range(merchants)], dtype=object)
        zipf = 1 / np.arange(1, merchants + 1)
        drawn = names[rng.choice(merchants, rows, p=zipf / zipf.sum())]
        drawn[rng.permutation(rows)[:merchants]] = names  # every merchant at least once
        frame["merchant"] = drawn
    for column in ("amt", "city_pop", "dob") if empty else ():
        frame.loc[rng.random(rows) < empty, column] = np.nan if column != "dob" else None
    return frame


def mixed_params(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """Shrunk params (tests.helpers.params.small_raw_params) pointed at a mixed table: its label, a
    declared role (Unix seconds read as a date-time), missing amounts dropped, ``amt`` log1p'd."""
    raw["prepare"].update(
        source=source,
        label="is_fraud",
        log1p=["amt"],
        nonfinite="drop",
        columns={"unix_time": "datetime"},
        min_category_count=5,
    )
    return raw
