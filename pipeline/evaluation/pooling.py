"""Pooling one claim's per-table effects into one verdict across tables (the suite's statistics).

Each table gives a paired effect over its replicates with an interval (the single-table report's).
Four readings of the same per-table effects, each answering its own question:

- DerSimonian-Laird random effects: how large is the effect on average over tables like these, and
  how much does it differ between them (tau², I²)? The tables' standard errors come from their
  intervals, ``(high - low) / (2 z)``; the pooled interval is normal, ``mu ± z se``.
- Wilcoxon signed-rank test (scipy) over the per-table effects: is the effect's sign consistent
  across tables (ignoring each table's own uncertainty and size)?
- Bayesian signed-rank test (baycomp, Benavoli et al. 2014) with a region of practical equivalence
  (ROPE: the claim's practical size): how probable is it that, on a new table like these, the
  variant is better, practically equivalent, or worse?
- Win / tie / loss counts: on how many tables the effect is above, inside or below the ROPE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import baycomp
import numpy as np
from scipy import stats

MIN_SE = 1e-9  # a table whose interval has no width (every replicate identical) still gets a finite weight


@dataclass(frozen=True)
class RandomEffects:
    """A DerSimonian-Laird pooled effect, its interval and the heterogeneity between tables."""

    mean: float
    low: float
    high: float
    se: float
    tau2: float  # between-table variance
    q: float  # Cochran's Q
    i2: float  # share of the effects' spread beyond what their standard errors explain, 0..1


@dataclass(frozen=True)
class BayesSignedRank:
    """Posterior probabilities that the variant is worse, equivalent (within the ROPE) or better."""

    worse: float
    equivalent: float
    better: float
    rope: float


@dataclass(frozen=True)
class Counts:
    """Tables whose effect lies above (win), inside (tie) or below (loss) the ROPE."""

    wins: int
    ties: int
    losses: int


def z_value(confidence: float) -> float:
    """The two-sided normal quantile of a confidence level (1.96 at 0.95)."""
    return float(stats.norm.ppf(0.5 + confidence / 2))


def standard_error(low: float, high: float, confidence: float) -> float:
    """The standard error a normal interval of this width and level implies."""
    return max((high - low) / (2 * z_value(confidence)), MIN_SE)


def dersimonian_laird(effects: list[float], ses: list[float], confidence: float) -> RandomEffects:
    """The DerSimonian-Laird random-effects pooled effect of per-table effects with standard errors."""
    y, v = np.asarray(effects, float), np.maximum(np.asarray(ses, float), MIN_SE) ** 2
    if y.size == 0:
        return RandomEffects(math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
    w = 1 / v
    fixed = float(np.sum(w * y) / np.sum(w))
    q = float(np.sum(w * (y - fixed) ** 2))
    df = y.size - 1
    c = float(np.sum(w) - np.sum(w ** 2) / np.sum(w))
    tau2 = max(0.0, (q - df) / c) if df > 0 else 0.0
    w_star = 1 / (v + tau2)
    mean = float(np.sum(w_star * y) / np.sum(w_star))
    se = float(math.sqrt(1 / np.sum(w_star)))
    i2 = max(0.0, (q - df) / q) if q > 0 else 0.0
    z = z_value(confidence)
    return RandomEffects(mean, mean - z * se, mean + z * se, se, tau2, q, i2)


def wilcoxon_p(effects: list[float]) -> float:
    """The two-sided Wilcoxon signed-rank p of the per-table effects against 0 (1 when every effect is 0
    or there are fewer than 2 tables)."""
    y = np.asarray(effects, float)
    if y.size < 2 or not np.any(y != 0):
        return 1.0
    return float(stats.wilcoxon(y, alternative="two-sided").pvalue)


def bayes_signed_rank(effects: list[float], rope: float, seed: int = 0, samples: int = 20_000) -> BayesSignedRank:
    """baycomp's Bayesian signed-rank test of the effects against 0 with a ROPE (prior 0.5 on a
    pseudo-observation at 0, baycomp's default)."""
    y = np.asarray(effects, float)
    worse, equivalent, better = baycomp.SignedRankTest.probs(np.zeros_like(y), y, rope, nsamples=samples,
                                                             random_state=seed)
    return BayesSignedRank(float(worse), float(equivalent), float(better), rope)


def win_tie_loss(effects: list[float], rope: float) -> Counts:
    """Counts of tables above, inside and below the ROPE."""
    y = np.asarray(effects, float)
    return Counts(int(np.sum(y > rope)), int(np.sum(np.abs(y) <= rope)), int(np.sum(y < -rope)))
