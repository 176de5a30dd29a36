"""The embedded synthetic source: credit-card-like transactions with the public ULB schema."""

from __future__ import annotations

import numpy as np
import pandas as pd

SECONDS_PER_DAY = 86_400
SIGNALS = ("mixed", "linear", "nonlinear")


def synthetic_transactions(rows: int, fraud_rate: float, seed: int, signal: str = "mixed",
                           extra_features: int = 0) -> pd.DataFrame:
    """Credit-card-like transactions with the ULB schema (Time, V1..V28, Amount, Class).

    Legitimate rows: 28 independent Gaussian "PCA components" with decreasing spread, and a
    log-normal Amount, at times that follow a day/night cycle over two days. Fraud rows come
    from two overlapping patterns, each moving three or four components by two to three standard
    deviations on average (pattern B also widens V7, a non-linear cue), with small or large amounts and no
    day/night cycle. Label noise keeps the classes overlapping: 10% of frauds look legitimate
    and 0.02% of legitimate rows look like fraud.

    ``signal``: ``mixed`` (the above, bit for bit); ``linear`` keeps only mean shifts (no widened V7,
    log-normal fraud amounts shifted up, the legitimate day/night cycle); ``nonlinear`` gives every shift a
    random sign per row (no linear cue). ``extra_features``: pure-noise columns ``N1``.. appended, drawn last.
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

    # Rows in time order. Permute column by column, in place: a sorted copy of x would double the
    # memory at 10^7 rows.
    order = np.argsort(time, kind="stable")
    for j in range(x.shape[1]):
        x[:, j] = x[order, j]
    frame = pd.DataFrame(x, columns=[f"V{i}" for i in range(1, 29)], copy=False)
    frame.insert(0, "Time", time[order])
    frame["Amount"] = np.round(amount, 2)[order]
    for k in range(1, extra_features + 1):
        frame[f"N{k}"] = rng.standard_normal(rows)
    frame["Class"] = y[order]
    return frame


def _fraud_patterns(x: np.ndarray, idx: np.ndarray, scales: np.ndarray, rng: np.random.Generator,
                    signal: str) -> None:
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
