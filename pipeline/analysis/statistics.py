"""Every statistic of the verdicts, one home each: the sign-flip permutation test of paired differences,
Holm's correction, the nested bootstrap interval, the verdict words, the power of that decision rule;
and the pooling of per-table effects across a suite's tables (random effects, Wilcoxon, the Bayesian
signed-rank test, win/tie/loss). Each is checked against hand-computed values on tiny fixed inputs
(tests/analysis/test_statistics.py).

**One table.** Each claim compares two variants trained on the same replicates (the same split, initial
shared weights and row order), so the unit is the per-replicate difference. The test is the sign-flip
permutation test of its mean (under "no effect" each difference is as likely positive as negative):
exact over all 2^n sign patterns up to EXACT_UP_TO replicates, sampled above (p = (k+1)/(N+1), never
0). With n replicates its p cannot go below 2/2^n, so the number of replicates and the size of the
family must be chosen together: Holm's correction over m claims needs 2/2^n <= alpha/m.

**Across tables.** Each table gives a paired effect over its replicates with an interval (the
single-table report's). Four readings of the same per-table effects, each answering its own question:

- DerSimonian-Laird random effects: how large is the effect on average over tables like these, and
  how much does it differ between them (tau², I²)? The tables' standard errors come from their
  intervals, ``(high - low) / (2 z)``; the pooled interval is normal, ``mu ± z se``.
- Wilcoxon signed-rank test (scipy) over the per-table effects: is the effect's sign consistent
  across tables (ignoring each table's own uncertainty and size)?
- Bayesian signed-rank test (baycomp, Benavoli et al. 2014) with a region of practical equivalence
  (ROPE: the claim's practical size): how probable is it that, on a new table like these, the
  variant is better, practically equivalent, or worse?
- Win / tie / loss counts: on how many tables the effect is above, inside or below the ROPE.

scipy and baycomp load when a pooling test runs (the commands that only format numbers never pay for them).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

# ---------------------------------------------------------------- one table

SUPPORTED, EQUIVALENT, REVERSED, INCONCLUSIVE = "supported", "equivalent", "reversed", "inconclusive"
EXACT_UP_TO = 16  # replicates: every sign pattern; above, SAMPLED random ones (seeded)
SAMPLED = 100_000
# The power simulation runs the test on thousands of simulated replicate sets: fewer patterns per set.
POWER_EXACT_UP_TO, POWER_SAMPLED = 12, 4096


def sign_patterns(
    n: int, rng: np.random.Generator, exact_up_to: int = EXACT_UP_TO, samples: int = SAMPLED
) -> tuple[np.ndarray, bool]:
    """The sign patterns of the sign-flip test of n paired differences, one per row: all 2^n of them up
    to ``exact_up_to`` replicates, else ``samples`` random ones drawn from ``rng``; and whether they are
    all of them (an exact test)."""
    if n <= exact_up_to:
        return np.array(list(itertools.product((1.0, -1.0), repeat=n))), True
    return rng.choice((1.0, -1.0), size=(samples, n)), False


def permutation_p(differences: list[float], seed: int = 0) -> float:
    """Two-sided sign-flip permutation p of the mean difference: the share of sign patterns whose mean
    is at least as far from 0 (exact up to EXACT_UP_TO replicates; above, (k + 1) / (N + 1) over SAMPLED
    seeded patterns, never 0)."""
    d = np.asarray(differences, dtype=float)
    observed = abs(d.mean()) - 1e-12 * max(1.0, float(np.abs(d).max(initial=0.0)))
    signs, exact = sign_patterns(d.size, np.random.default_rng(seed))
    hits = int(np.sum(np.abs(signs @ d / d.size) >= observed))
    return hits / len(signs) if exact else (hits + 1) / (len(signs) + 1)


def smallest_p(n: int) -> float:
    """The smallest p the permutation test can give with n replicates."""
    return 2 / 2**n if n <= EXACT_UP_TO else 1 / (SAMPLED + 1)


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


def verdict(
    mean: float,
    interval: tuple[float, float],
    tost: tuple[float, float],
    p_adjusted: float,
    alpha: float,
    band: float,
    units: int = 1_000,
    level: float = 0.05,
) -> str:
    """The word for a claim that the effect is positive, given its estimate, its interval (the report's
    confidence), its equivalence interval (``tost``: the 1 - 2 x level interval, ``level`` the claim's Holm
    level: two one-sided tests at that level), its Holm-adjusted p and practical size ``band`` (in the
    claim's own unit):

    - equivalent: the equivalence interval lies inside [-band, +band] (both one-sided tests reject an effect
      of the practical size, at the claim's level within the family), however significant, and there are
      enough ``units`` for a one-sided sign-flip test to reach that ``level`` at all (1/2^units <= level):
      a bootstrap interval of two or three differences is no evidence of equivalence;
    - supported: significant after correction, the interval above 0 and the estimate at least the
      practical size;
    - reversed: significant, the interval below 0 and the estimate at most -band (named so, never
      "not supported");
    - inconclusive: anything else (not significant, or significant but smaller than matters while
      the interval still reaches beyond the band).
    """
    (low, high), (tost_low, tost_high) = interval, tost
    if not all(math.isfinite(v) for v in (mean, low, high, tost_low, tost_high)):
        return INCONCLUSIVE
    if -band <= tost_low and tost_high <= band and 0.5**units <= level:
        return EQUIVALENT
    significant = p_adjusted <= alpha
    if significant and low > 0 and mean >= band:
        return SUPPORTED
    if significant and high < 0 and mean <= -band:
        return REVERSED
    return INCONCLUSIVE


def bootstrap_means(inner: list[np.ndarray], resamples: int, seed: int) -> np.ndarray:
    """Bootstrap draws of the mean over replicates of a paired difference, resampling both levels: the
    replicates (their seeds and splits) with replacement, and within each drawn replicate one of its
    ``inner`` draws (the difference on a bootstrap resample of that replicate's test rows; a single draw:
    the replicate's difference itself, for claims with no test rows to resample).

    Two-level resampling is conservative when the replicates' test rows are independent samples; here they
    are drawn from one table and overlap, so the spread between replicates alone would understate the
    variance on new data, and the inner level is kept."""
    rng = np.random.default_rng(seed)
    draws = np.stack(inner)  # (replicates, inner draws)
    n, b = draws.shape
    picks = rng.integers(0, n, size=(resamples, n))
    columns = rng.integers(0, b, size=(resamples, n))
    return draws[picks, columns].mean(axis=1)


def percentile_interval(means: np.ndarray, level: float) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap draws."""
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def nested_bootstrap(inner: list[np.ndarray], resamples: int, seed: int, level: float) -> tuple[float, float]:
    """The percentile interval of ``bootstrap_means`` (replicates, then test rows)."""
    return percentile_interval(bootstrap_means(inner, resamples, seed), level)


def outer_bootstrap(differences: list[float], resamples: int, seed: int, level: float) -> tuple[float, float]:
    """Percentile interval of the mean over replicates, resampling the replicates only (for claims
    measured on training and validation, with no test rows to resample)."""
    return nested_bootstrap([np.array([d]) for d in differences], resamples, seed, level)


@dataclass(frozen=True)
class Power:
    """What the decision rule can support at this many replicates: the smallest true effect it supports
    ``target`` of the time (its detectable effect), and the replicates that would bring that down to
    1.5 times the practical size. Both are attainable: the rule needs the estimate to reach the practical
    size, so at an effect of exactly that size it says "supported" about half the time whatever the
    replicates, while above it its power tends to 1."""

    target: float  # the power asked (report.power)
    level: float  # the claim's Holm level, at which the simulation tests
    spread: float  # the sd of the per-replicate differences: what the test sees
    detectable: float  # the smallest effect supported with ``target`` power at these replicates (inf: none)
    replicates: int | None  # the fewest replicates with ``target`` power at 1.5 x the practical size


def rule_power(
    effect: float, spread: float, n: int, alpha: float, band: float, half: float, simulations: int = 2000, seed: int = 0
) -> float:
    """Simulated power of the rule actually used: n differences drawn from N(effect, spread^2), the
    sign-flip permutation test at ``alpha`` (the claim's Holm level), the interval mean +- ``half`` (its
    half-width at n replicates) above 0, and the estimate at least the practical size ``band``."""
    if n < 2 or spread <= 0:
        return float(n >= fewest_replicates(alpha) and effect >= band and effect > half)
    rng = np.random.default_rng(seed)
    d = rng.normal(effect, spread, size=(simulations, n))
    signs, _ = sign_patterns(n, rng, exact_up_to=POWER_EXACT_UP_TO, samples=POWER_SAMPLED)
    means = d.mean(axis=1)
    null = np.abs(d @ signs.T / n)  # (simulations, sign patterns)
    p = np.mean(null >= np.abs(means)[:, None] - 1e-12, axis=1)
    return float(((p <= alpha) & (means - half > 0) & (means >= band)).mean())


def design_power(
    spread: float, n: int, alpha: float, band: float, half: float, target: float, limit: int = 256
) -> Power:
    """The rule's power at n replicates, said attainably: the detectable effect (bisection on the effect,
    the simulation's random numbers held, so power rises with the effect), and the fewest replicates
    (bisection on n, up to ``limit``) with ``target`` power at 1.5 x ``band``. ``half`` is the interval's
    half-width at n replicates; at other counts it scales as 1 / sqrt(n)."""

    def power(effect: float, m: int) -> float:
        return rule_power(effect, spread, m, alpha, band, half * math.sqrt(n / m), simulations=1000)

    if n < fewest_replicates(alpha):
        detectable = math.inf
    else:
        low, high = band, band + 10 * (spread + half) + 1e-12
        if power(high, n) < target:
            detectable = math.inf
        else:
            for _ in range(30):
                middle = (low + high) / 2
                low, high = (low, middle) if power(middle, n) >= target else (middle, high)
            detectable = high
    few, many = max(2, fewest_replicates(alpha)), limit
    if power(1.5 * band, many) < target:
        needed = None
    else:
        while few < many:
            middle = (few + many) // 2
            few, many = (few, middle) if power(1.5 * band, middle) >= target else (middle + 1, many)
        needed = few
    return Power(target, alpha, spread, detectable, needed)


# ---------------------------------------------------------------- across tables

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
    c = float(np.sum(w) - np.sum(w**2) / np.sum(w))
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
    from scipy import stats

    return float(stats.wilcoxon(y, alternative="two-sided").pvalue)


def bayes_signed_rank(effects: list[float], rope: float, seed: int = 0, samples: int = 20_000) -> BayesSignedRank:
    """baycomp's Bayesian signed-rank test of the effects against 0 with a ROPE (prior 0.5 on a
    pseudo-observation at 0, baycomp's default)."""
    import baycomp

    y = np.asarray(effects, float)
    worse, equivalent, better = baycomp.SignedRankTest.probs(
        np.zeros_like(y), y, rope, nsamples=samples, random_state=seed
    )
    return BayesSignedRank(float(worse), float(equivalent), float(better), rope)


def win_tie_loss(effects: list[float], rope: float) -> Counts:
    """Counts of tables above, inside and below the ROPE."""
    y = np.asarray(effects, float)
    return Counts(int(np.sum(y > rope)), int(np.sum(np.abs(y) <= rope)), int(np.sum(y < -rope)))


# ---------------------------------------------------------------- describing values


def z_value(confidence: float) -> float:
    """The two-sided normal quantile of a confidence level (1.96 at 0.95)."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def mean_sd(values: list[float], digits: int = 4, fmt: str = "f", noisy: bool = False) -> str:
    """`mean ± sd` of per-replicate values (the mean alone for one value, – for none); with ``noisy``, a
    spread larger than the mean is marked so."""
    finite = [float(v) for v in values if math.isfinite(v)]
    if not finite:
        return "–"
    text = f"{np.mean(finite):,.{digits}{fmt}}"
    if len(finite) > 1:
        sd = float(np.std(finite, ddof=1))
        text += f" ± {sd:,.{digits}{fmt}}"
        if noisy and sd > abs(float(np.mean(finite))):
            text += " (noisy)"
    return text
