"""Comparisons behind the report: loss tables, epochs to target, paired verdicts, diagnostics."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"


def table_epochs(max_epoch: int, every: int = 5) -> list[int]:
    """Epochs 1, 5, 10 and every fifth after, up to the longest run."""
    return [e for e in sorted({1, *range(every, max_epoch + 1, every)}) if e <= max_epoch]


def mean_sd(values: list[float], digits: int = 4) -> str:
    """`mean ± sd` over seeds (`n=k` when some seeds stopped earlier)."""
    if not values:
        return "–"
    text = f"{np.mean(values):.{digits}f}"
    if len(values) > 1:
        text += f" ± {np.std(values, ddof=1):.{digits}f}"
    return text


def value_at(history: pd.DataFrame, key: str, epoch: int) -> float:
    """The value of ``key`` at ``epoch`` in one history."""
    return float(history.loc[history["epoch"] == epoch, key].iloc[0])


def at_epoch(histories: dict[int, pd.DataFrame], key: str, epoch: int) -> list[float]:
    """Values of ``key`` at ``epoch`` for every seed whose run got that far."""
    return [value_at(h, key, epoch) for h in histories.values() if epoch in set(h["epoch"])]


@dataclass(frozen=True)
class ToTarget:
    """When a run first reached a validation-loss target."""

    epoch: int | None  # None: never reached
    seconds: float | None


def epochs_to_target(history: pd.DataFrame, target: float) -> ToTarget:
    """First epoch (and cumulative seconds) at which val_loss <= target."""
    reached = history.index[history["val_loss"] <= target + 1e-12]
    if len(reached) == 0:
        return ToTarget(None, None)
    row = history.index.get_loc(reached[0])
    return ToTarget(int(history["epoch"].iloc[row]), float(history["epoch_seconds"].iloc[: row + 1].sum()))


@dataclass(frozen=True)
class Verdict:
    """A claim checked by paired differences across seeds (positive favours BatchNorm)."""

    claim: str
    measure: str
    differences: list[float]
    mean: float
    low: float
    high: float
    status: str

    def numbers(self, digits: int = 4) -> str:
        """Mean paired difference with its 95% interval and the per-seed values."""
        per_seed = ", ".join(f"{d:+.{digits}f}" for d in self.differences)
        if len(self.differences) < 2:
            return f"{self.mean:+.{digits}f} (one seed: {per_seed})"
        return f"{self.mean:+.{digits}f} [95% CI {self.low:+.{digits}f}, {self.high:+.{digits}f}] (seeds: {per_seed})"


def paired_verdict(claim: str, measure: str, differences: list[float], level: float = 0.95) -> Verdict:
    """`supported` when the t-interval of the mean paired difference lies above 0, `not supported`
    when it lies below 0, `inconclusive` when it straddles 0 or when there is a single seed."""
    diffs = [float(d) for d in differences if math.isfinite(d)]
    if not diffs:
        return Verdict(claim, measure, [], float("nan"), float("nan"), float("nan"), INCONCLUSIVE)
    mean = float(np.mean(diffs))
    if len(diffs) < 2:
        return Verdict(claim, measure, diffs, mean, float("nan"), float("nan"), INCONCLUSIVE)
    half = float(stats.t.ppf(0.5 + level / 2, len(diffs) - 1) * np.std(diffs, ddof=1) / math.sqrt(len(diffs)))
    low, high = mean - half, mean + half
    status = SUPPORTED if low > 0 else NOT_SUPPORTED if high < 0 else INCONCLUSIVE
    return Verdict(claim, measure, diffs, mean, low, high, status)


def combine(claim: str, parts: list[Verdict]) -> str:
    """All parts supported: supported; any part contradicted: not supported; else inconclusive."""
    statuses = {p.status for p in parts}
    if statuses == {SUPPORTED}:
        return SUPPORTED
    return NOT_SUPPORTED if NOT_SUPPORTED in statuses else INCONCLUSIVE


# ---------------------------------------------------------------- diagnostics


def noisy_share(history: pd.DataFrame) -> float:
    """Share of epochs (after the first) in which validation loss went up."""
    rises = np.diff(history["val_loss"].to_numpy()) > 0
    return float(rises.mean()) if rises.size else 0.0


def loss_drop(history: pd.DataFrame) -> float:
    """Relative fall of the training loss from epoch 2 to the last epoch."""
    losses = history["train_loss"].to_numpy()
    if losses.size < 3:
        return float("nan")
    return float((losses[1] - losses[-1]) / losses[1])


def val_loss_rise(history: pd.DataFrame) -> float:
    """How far the last validation loss sits above the best one (relative): a sign of overfitting."""
    best = float(history["val_loss"].min())
    return float(history["val_loss"].iloc[-1] / best - 1) if best > 0 else 0.0
