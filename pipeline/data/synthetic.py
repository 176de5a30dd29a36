"""The embedded synthetic source: credit-card-like transactions with the public ULB schema, and the
categorical, date-time and identifier columns of real card tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

SECONDS_PER_DAY = 86_400
START = np.datetime64("2024-01-01T00:00:00", "s")  # a Monday: `timestamp` is this plus `Time`
CARDS_EVERY = 25  # one card per this many transactions
# Categorical columns: their values, how often each occurs in legitimate transactions and in fraud-like
# ones (a fraud-like transaction draws from the fraud mix FRAUD_MIX of the time, else from the legitimate one).
CATEGORIES = {
    "merchant_category": (
        [
            "grocery",
            "restaurant",
            "fuel",
            "pharmacy",
            "clothing",
            "utilities",
            "entertainment",
            "travel",
            "online_retail",
            "electronics",
            "gift_cards",
            "cash_advance",
        ],
        [0.22, 0.18, 0.12, 0.07, 0.08, 0.07, 0.07, 0.05, 0.08, 0.03, 0.01, 0.02],
        [0.05, 0.04, 0.03, 0.02, 0.05, 0.02, 0.04, 0.10, 0.22, 0.22, 0.13, 0.08],
    ),
    "channel": (
        ["chip", "contactless", "swipe", "online", "phone"],
        [0.40, 0.30, 0.10, 0.18, 0.02],
        [0.10, 0.07, 0.15, 0.58, 0.10],
    ),
    "country": (
        ["US", "CA", "GB", "MX", "DE", "FR", "BR", "NG", "RU", "CN"],
        [0.880, 0.040, 0.020, 0.020, 0.010, 0.010, 0.010, 0.003, 0.003, 0.004],
        [0.450, 0.050, 0.070, 0.060, 0.040, 0.040, 0.080, 0.080, 0.070, 0.060],
    ),
}
FRAUD_MIX = 0.8  # how often a fraud-like row draws from the fraud mix (fraud rates then differ ~5x by channel)
MISSING_COUNTRY = 0.01  # share of rows whose country is unknown
SIGNALS = ("mixed", "linear", "nonlinear")


def synthetic_transactions(
    rows: int, fraud_rate: float, seed: int, signal: str = "mixed", extra_features: int = 0
) -> pd.DataFrame:
    """Credit-card-like transactions: the ULB schema (Time, V1..V28, Amount), any noise columns N1..,
    then merchant_category, channel, country, timestamp and card_id, then Class.

    Legitimate rows: 28 independent Gaussian "PCA components" with decreasing spread, and a
    log-normal Amount, at times that follow a day/night cycle over two days. Fraud rows come
    from two overlapping patterns, each moving three or four components by two to three standard
    deviations on average (pattern B also widens V7, a non-linear cue), with small or large amounts and no
    day/night cycle. Label noise keeps the classes overlapping: 10% of frauds look legitimate
    and 0.02% of legitimate rows look like fraud. Fraud-like rows also lean to risky merchant
    categories, card-not-present channels and foreign countries (CATEGORIES); 1% of countries are
    missing. Cards: one per CARDS_EVERY rows, 16-digit numbers; frauds hit a few compromised cards,
    about three each. The ULB columns are drawn first, so they are what they were before the others
    existed.

    ``signal``: ``mixed`` (the above, bit for bit); ``linear`` keeps only mean shifts (no widened V7,
    log-normal fraud amounts shifted up, the legitimate day/night cycle); ``nonlinear`` gives every shift a
    random sign per row, and its categories do not lean with fraud (no linear cue; the hour of day still
    differs, fraud ignoring the day/night cycle). ``extra_features``: pure-noise columns ``N1``.. drawn last.
    """
    if signal not in SIGNALS:
        raise ValueError(f"signal must be one of {', '.join(SIGNALS)} (got {signal!r})")
    rng = np.random.default_rng(seed)
    n_pos = max(1, round(rows * fraud_rate))
    y = np.zeros(rows, dtype=np.int8)
    y[rng.choice(rows, size=n_pos, replace=False)] = 1

    scales = np.linspace(2.0, 0.3, 28)
    x = rng.standard_normal((rows, 28)) * scales

    looks_fraud = y == 1
    looks_fraud[rng.random(rows) < 0.10] &= False  # camouflaged frauds: legit-looking features
    decoys = (y == 0) & (rng.random(rows) < 0.0002)  # legit rows with fraud-like features
    looks_fraud |= decoys
    idx = np.flatnonzero(looks_fraud)
    _fraud_patterns(x, idx, scales, rng, signal)

    amount = rng.lognormal(3.0, 1.3, rows)
    small = rng.random(idx.size) < 0.4
    if signal == "linear":
        amount[idx] = rng.lognormal(4.0, 1.3, idx.size)
    else:
        amount[idx] = np.where(small, rng.uniform(0.0, 2.0, idx.size), rng.lognormal(4.5, 1.2, idx.size))

    day_phase = rng.random(rows)
    # Legit activity follows a day/night cycle (inverse-CDF of 1 - 0.8*cos); fraud does not.
    grid = np.linspace(0, 1, 2001)
    cdf = grid - 0.8 * np.sin(2 * np.pi * grid) / (2 * np.pi)
    cycle = np.interp(day_phase, cdf, grid)
    phase = cycle if signal == "linear" else np.where(looks_fraud, day_phase, cycle)
    time = np.floor((rng.integers(0, 2, rows) + phase) * SECONDS_PER_DAY)
    # The non-linear regime keeps its categories free of the (linear, one-hot) fraud cue; same draws.
    mixed = _mixed_columns(rng, looks_fraud & (signal != "nonlinear"), y == 1, time)
    noise = {f"N{k}": rng.standard_normal(rows) for k in range(1, extra_features + 1)}
    return _in_time_order(x, {"Time": time, "Amount": np.round(amount, 2), **noise, **mixed, "Class": y})


def _in_time_order(x: np.ndarray, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """The frame, rows in time order: Time, V1..V28 (``x``), then the other columns in the given order.
    ``x`` is permuted column by column, in place: a sorted copy would double the memory at 10^7 rows."""
    order = np.argsort(columns["Time"], kind="stable")
    for j in range(x.shape[1]):
        x[:, j] = x[order, j]
    frame = pd.DataFrame(x, columns=[f"V{i}" for i in range(1, 29)], copy=False)
    frame.insert(0, "Time", columns.pop("Time")[order])
    for name, values in columns.items():
        frame[name] = values[order]
    return frame


def _mixed_columns(
    rng: np.random.Generator, looks_fraud: np.ndarray, fraud: np.ndarray, time: np.ndarray
) -> dict[str, np.ndarray]:
    """The categorical columns (fraud-like rows lean to the fraud mix), the timestamp text and the card."""
    rows = looks_fraud.size
    out: dict[str, np.ndarray] = {}
    for name, (values, legit, risky) in CATEGORIES.items():
        mixed = looks_fraud & (rng.random(rows) < FRAUD_MIX)
        chosen = np.where(mixed, rng.choice(len(values), rows, p=risky), rng.choice(len(values), rows, p=legit))
        out[name] = np.array(values, dtype=object)[chosen]
    out["country"][rng.random(rows) < MISSING_COUNTRY] = None
    stamps = np.datetime_as_string(START + time.astype("timedelta64[s]"), unit="s")
    out["timestamp"] = np.char.replace(stamps, "T", " ").astype(object)
    n_cards = max(50, rows // CARDS_EVERY)
    numbers = 4_000_000_000_000_000 + rng.choice(10**15, n_cards, replace=False)
    card = rng.integers(0, n_cards, rows)
    compromised = rng.choice(n_cards, size=max(1, int(fraud.sum()) // 3), replace=False)
    card[fraud] = rng.choice(compromised, int(fraud.sum()))
    out["card_id"] = numbers[card]
    return out


def _fraud_patterns(x: np.ndarray, idx: np.ndarray, scales: np.ndarray, rng: np.random.Generator, signal: str) -> None:
    """Move the fraud-looking rows ``idx`` of ``x`` in place: pattern A (60%) or B (40%)."""
    pattern_b = rng.random(idx.size) < 0.4
    shifts_a = {13: -3.0, 11: -2.5, 9: -2.0, 3: 2.0}  # V14, V12, V10, V4
    shifts_b = {16: -3.0, 10: 2.5, 2: -2.0}  # V17, V11, V3
    for shifts, rows_of in ((shifts_a, idx[~pattern_b]), (shifts_b, idx[pattern_b])):
        for col, shift in shifts.items():
            sign = rng.choice([-1.0, 1.0], rows_of.size) if signal == "nonlinear" else 1.0
            x[rows_of, col] = scales[col] * (sign * shift + 1.0 * rng.standard_normal(rows_of.size))
    if signal != "linear":
        x[idx[pattern_b], 6] *= 2.5  # V7
