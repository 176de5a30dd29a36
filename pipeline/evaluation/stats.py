"""The statistics of the verdicts: paired differences over replicates, a sign-flip permutation test,
Holm's correction for the family of claims, a nested bootstrap interval, the four verdict words, and
the power of that decision rule.

Each claim compares two variants trained on the same replicates (the same split, initial shared
weights and row order), so the unit is the per-replicate difference. The test is the sign-flip
permutation test of its mean (under "no effect" each difference is as likely positive as negative):
exact over all 2^n sign patterns up to EXACT_UP_TO replicates, sampled above (p = (k+1)/(N+1), never
0). With n replicates its p cannot go below 2/2^n, so the number of replicates and the size of the
family must be chosen together: Holm's correction over m claims needs 2/2^n <= alpha/m.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

SUPPORTED, EQUIVALENT, REVERSED, INCONCLUSIVE = "supported", "equivalent", "reversed", "inconclusive"
EXACT_UP_TO = 16  # replicates: every sign pattern; above, SAMPLED random ones (seeded)
SAMPLED = 100_000


def permutation_p(differences: list[float], seed: int = 0) -> float:
    """Two-sided sign-flip permutation p of the mean difference."""
    d = np.asarray(differences, dtype=float)
    observed = abs(d.mean()) - 1e-12 * max(1.0, float(np.abs(d).max(initial=0.0)))
    if d.size <= EXACT_UP_TO:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
        return float(np.mean(np.abs(signs @ d / d.size) >= observed))
    signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(SAMPLED, d.size))
    hits = int(np.sum(np.abs(signs @ d / d.size) >= observed))
    return (hits + 1) / (SAMPLED + 1)


def smallest_p(n: int) -> float:
    """The smallest p the permutation test can give with n replicates."""
    return 2 / 2 ** n if n <= EXACT_UP_TO else 1 / (SAMPLED + 1)


def fewest_replicates(alpha: float) -> int:
    """The fewest replicates whose permutation test can reach p <= alpha (two-sided)."""
    return max(2, math.ceil(math.log2(2 / alpha)))


def holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm's step-down adjusted p-values (compare each with alpha): the family-wise error rate stays
    at alpha whatever the dependence between the claims, and it is uniformly more powerful than
    Bonferroni."""
    order = sorted(p_values, key=p_values.get)
    m, running, out = len(order), 0.0, {}
    for rank, key in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[key]))
        out[key] = running
    return out


def holm_levels(p_values: dict[str, float], alpha: float) -> dict[str, float]:
    """The level each claim's raw p is compared with under Holm: alpha/m for the smallest p, then
    alpha/(m-1), ... (the rank each claim has among this family's p-values)."""
    order = sorted(p_values, key=p_values.get)
    return {key: alpha / (len(order) - rank) for rank, key in enumerate(order)}


def verdict(mean: float, low: float, high: float, p_adjusted: float, alpha: float, band: float) -> str:
    """The word for a claim that the effect is positive, given its estimate, interval, adjusted p and
    practical size ``band`` (in the claim's own unit):

    - equivalent: the whole interval lies inside [-band, +band], however significant;
    - supported: significant, the interval above 0 and the estimate at least the practical size;
    - reversed: significant, the interval below 0 and the estimate at most -band (named so, never
      "not supported");
    - inconclusive: anything else (not significant, or significant but smaller than matters while
      the interval still reaches beyond the band).
    """
    if not all(math.isfinite(v) for v in (mean, low, high)):
        return INCONCLUSIVE
    if -band <= low and high <= band:
        return EQUIVALENT
    significant = p_adjusted <= alpha
    if significant and low > 0 and mean >= band:
        return SUPPORTED
    if significant and high < 0 and mean <= -band:
        return REVERSED
    return INCONCLUSIVE


def nested_bootstrap(inner: list[np.ndarray], resamples: int, seed: int, level: float) -> tuple[float, float]:
    """Percentile interval of the mean over replicates of a paired difference, resampling both levels:
    the replicates (their seeds and splits) with replacement, and within each drawn replicate one of
    its ``inner`` draws (the difference on a bootstrap resample of that replicate's test rows).

    Two-level resampling is conservative when the replicates' test rows are independent samples;
    here they are drawn from one table and overlap, so the spread between replicates alone would
    understate the variance on new data, and the inner level is kept."""
    rng = np.random.default_rng(seed)
    draws = np.stack(inner)  # (replicates, inner draws)
    n, b = draws.shape
    picks = rng.integers(0, n, size=(resamples, n))
    columns = rng.integers(0, b, size=(resamples, n))
    means = draws[picks, columns].mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def outer_bootstrap(differences: list[float], resamples: int, seed: int, level: float) -> tuple[float, float]:
    """Percentile interval of the mean over replicates, resampling the replicates only (for claims
    measured on training and validation, with no test rows to resample)."""
    return nested_bootstrap([np.array([d]) for d in differences], resamples, seed, level)


@dataclass(frozen=True)
class Power:
    """How often the decision rule says supported at an effect of ``effect``, and how many
    replicates would make that at least ``target``."""

    effect: float
    power: float
    target: float
    replicates_needed: int | None  # None: not within the limit tried


def rule_power(effect: float, spread: float, n: int, alpha: float, band: float, level: float,
               simulations: int = 2000, seed: int = 0) -> float:
    """Simulated power of the rule actually used: n differences drawn from N(effect, spread^2), the
    permutation test at ``alpha`` (the claim's Holm level), and the verdict's interval and practical
    size (the interval as mean +- z * spread / sqrt(n), the normal approximation of the bootstrap)."""
    if n < 2 or spread <= 0:
        return float(n >= fewest_replicates(alpha) and effect >= band)
    rng = np.random.default_rng(seed)
    d = rng.normal(effect, spread, size=(simulations, n))
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=n))) if n <= 12 else \
        rng.choice((1.0, -1.0), size=(4096, n))
    means = d.mean(axis=1)
    null = np.abs(d @ signs.T / n)  # (simulations, sign patterns)
    p = np.mean(null >= np.abs(means)[:, None] - 1e-12, axis=1)
    half = _z(level) * spread / math.sqrt(n)
    return float(((p <= alpha) & (means - half > 0) & (means >= band)).mean())


def replicates_for(effect: float, spread: float, alpha: float, band: float, level: float, target: float,
                   start: int, limit: int = 64, seed: int = 0) -> int | None:
    """The fewest replicates (from ``start``) whose simulated rule power reaches ``target``."""
    for n in range(max(start, fewest_replicates(alpha)), limit + 1):
        if rule_power(effect, spread, n, alpha, band, level, simulations=1000, seed=seed) >= target:
            return n
    return None


def _z(level: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(1 - (1 - level) / 2)
