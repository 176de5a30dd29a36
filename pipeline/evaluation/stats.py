"""Paired tests across seeds, suited to a handful of seeds.

Each claim compares two variants trained on the same seeds, so the unit is the per-seed difference.
Two tests, and a claim needs both:

- the t-interval of the mean difference (its size and uncertainty; assumes roughly normal
  differences, which a handful of seeds cannot check), and
- the exact sign-flip permutation test (no distributional assumption: under "no effect" each
  difference is as likely positive as negative, so all 2^n sign patterns are equally likely).

With n seeds the permutation test cannot go below 2 / 2^n: 6 seeds are the fewest that can reach
p < 0.05 two-sided. Censored outcomes (a run that never reached a target) get no number: they are
compared by which variant got there first, with an exact sign test.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
EXACT_UP_TO = 16  # seeds: all 2^n sign patterns; above, 200,000 random ones (seeded)


@dataclass(frozen=True)
class PairedTest:
    """Per-seed differences (positive favours the first variant) and what they support."""

    differences: list[float]
    level: float  # the confidence level of the interval and the tests
    mean: float
    low: float  # t-interval at the confidence level
    high: float
    p_value: float  # exact sign-flip permutation test, two-sided
    smallest_p: float  # the smallest p this many seeds can give
    detectable: float  # the smallest true difference these seeds detect with the given power
    seeds_needed: int | None  # for a clear answer at the observed mean (None: no difference seen)
    status: str

    def interval(self, digits: int = 4) -> str:
        """`+0.1234 [+0.0567, +0.1901]`, or the mean alone for one seed."""
        if len(self.differences) < 2:
            return f"{self.mean:+.{digits}f} (one seed)"
        return f"{self.mean:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"


def permutation_p(differences: list[float], seed: int = 0) -> float:
    """Two-sided exact sign-flip permutation p of the mean difference."""
    d = np.asarray(differences, dtype=float)
    observed = abs(d.mean()) - 1e-12 * max(1.0, abs(d).max())
    if d.size <= EXACT_UP_TO:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(200_000, d.size))
    return float(np.mean(np.abs(signs @ d / d.size) >= observed))


def _t_sum(n: int, alpha: float, power: float) -> float:
    return float(stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1))


def fewest_permutation_seeds(alpha: float) -> int:
    """The fewest seeds whose permutation test can reach p <= alpha (two-sided)."""
    return max(2, math.ceil(math.log2(2 / alpha)))


def seeds_needed(mean: float, sd: float, alpha: float, power: float, limit: int = 10_000) -> int | None:
    """Seeds for which a paired t-test detects ``mean`` with the given power (and the permutation
    test can reach alpha); None when no difference was seen."""
    if mean == 0 or not math.isfinite(mean):
        return None
    n = fewest_permutation_seeds(alpha)
    while n < limit and _t_sum(n, alpha, power) * sd / math.sqrt(n) > abs(mean):
        n += 1
    return n


def paired_test(differences: list[float], confidence: float, power: float) -> PairedTest:
    """Both tests, the detectable difference and the seeds needed; `supported` when both tests put
    the difference above zero, `not supported` when both put it below, else `inconclusive`."""
    d = [float(x) for x in differences if math.isfinite(x)]
    alpha = 1 - confidence
    nan = float("nan")
    if len(d) < 2:
        mean = float(np.mean(d)) if d else nan
        return PairedTest(d, confidence, mean, nan, nan, 1.0, 1.0, nan, seeds_needed(mean, 0.0, alpha, power),
                          INCONCLUSIVE)
    n, mean, sd = len(d), float(np.mean(d)), float(np.std(d, ddof=1))
    half = float(stats.t.ppf(1 - alpha / 2, n - 1)) * sd / math.sqrt(n)
    p = permutation_p(d)
    status = INCONCLUSIVE
    if p <= alpha and mean - half > 0:
        status = SUPPORTED
    elif p <= alpha and mean + half < 0:
        status = NOT_SUPPORTED
    return PairedTest(d, confidence, mean, mean - half, mean + half, p, 2 / 2 ** n if n <= EXACT_UP_TO else 0.0,
                      _t_sum(n, alpha, power) * sd / math.sqrt(n), seeds_needed(mean, sd, alpha, power), status)


@dataclass(frozen=True)
class FirstToTarget:
    """Which variant reached a target first, seed by seed (1: the first variant, -1: the other,
    0: same epoch, None: undecidable because a run stopped before the other reached it)."""

    outcomes: list[int | None]
    wins: int
    losses: int
    p_value: float  # exact two-sided sign test over the decided seeds (ties left out)
    status: str


def first_to_target(outcomes: list[int | None], confidence: float) -> FirstToTarget:
    """An exact sign test of who gets there first; no epoch count is ever imputed."""
    wins, losses = outcomes.count(1), outcomes.count(-1)
    decided = wins + losses
    p = float(stats.binomtest(wins, decided, 0.5).pvalue) if decided else 1.0
    status = INCONCLUSIVE
    if p <= 1 - confidence:
        status = SUPPORTED if wins > losses else NOT_SUPPORTED
    return FirstToTarget(list(outcomes), wins, losses, p, status)


def combine(statuses: list[str]) -> str:
    """All parts supported: supported; any part contradicted: not supported; else inconclusive."""
    if set(statuses) == {SUPPORTED}:
        return SUPPORTED
    return NOT_SUPPORTED if NOT_SUPPORTED in statuses else INCONCLUSIVE
