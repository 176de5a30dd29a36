"""Every statistic against values worked out by hand on tiny fixed inputs: the permutation p (exact, and
sampled with many replicates), Holm's correction, the four words, the nested bootstrap, the simulated
power of the decision rule; the suite's pooled statistics on four fixed tables; mean ± sd."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pipeline.analysis import statistics as pooling
from pipeline.analysis.statistics import (
    EQUIVALENT,
    INCONCLUSIVE,
    REVERSED,
    SAMPLED,
    SUPPORTED,
    design_power,
    fewest_replicates,
    holm,
    holm_levels,
    mean_sd,
    nested_bootstrap,
    outer_bootstrap,
    percentile_interval,
    permutation_p,
    rule_power,
    smallest_p,
    verdict,
)


def test_the_exact_permutation_p_counts_sign_patterns() -> None:
    # [1, 2, 3]: of the 8 sign patterns only +++ and --- have |mean| >= 2 -> 2/8.
    assert permutation_p([1.0, 2.0, 3.0]) == 0.25
    # [1, -1]: the mean is 0, every pattern is as extreme -> 1.
    assert permutation_p([1.0, -1.0]) == 1.0
    # six agreeing differences: only the two unanimous patterns -> 2/64, the smallest six allow.
    assert permutation_p([0.3, 0.25, 0.35, 0.28, 0.31, 0.33]) == smallest_p(6) == 2 / 64


def test_with_many_replicates_the_sampled_p_is_never_zero() -> None:
    """20 agreeing replicates: 2 of 2^20 patterns are as extreme, so 100,000 random ones almost surely
    miss them; (k + 1) / (N + 1) keeps p above 0."""
    p = permutation_p([1.0] * 20, seed=3)
    assert 0 < p <= 3 / (SAMPLED + 1)
    assert permutation_p([1.0, -1.0] * 10) == 1.0  # a zero mean: every sampled pattern as extreme


def test_holm_by_hand() -> None:
    # sorted: a 0.01 (x3 = 0.03), c 0.03 (x2 = 0.06), b 0.04 (x1 = 0.04, raised to 0.06: monotone)
    assert holm({"a": 0.01, "b": 0.04, "c": 0.03}) == pytest.approx({"a": 0.03, "b": 0.06, "c": 0.06})
    assert holm_levels({"a": 0.01, "b": 0.04, "c": 0.03}, 0.05) == pytest.approx(
        {"a": 0.05 / 3, "c": 0.05 / 2, "b": 0.05}
    )
    assert holm({"a": 0.6, "b": 0.7}) == {"a": 1.0, "b": 1.0}  # capped at 1


def test_the_replicates_and_the_family_are_chosen_together() -> None:
    assert fewest_replicates(0.05) == 6  # 2/2^6 = 0.031 <= 0.05 < 2/2^5
    assert fewest_replicates(0.05 / 4) == 8  # Holm over four claims: 2/2^8 = 0.0078 <= 0.0125 < 2/2^7


@pytest.mark.parametrize(
    ("mean", "low", "high", "tost", "p", "word"),
    [
        (0.05, 0.03, 0.07, (0.02, 0.08), 0.004, SUPPORTED),  # significant, above 0, at least the practical size
        (0.005, -0.01, 0.015, (-0.015, 0.019), 0.2, EQUIVALENT),  # the equivalence interval within +-0.02
        (0.004, 0.001, 0.008, (0.0, 0.01), 0.001, EQUIVALENT),  # significant yet negligible: never "supported"
        (-0.05, -0.08, -0.03, (-0.09, -0.02), 0.004, REVERSED),  # significantly the other way: named so
        (0.012, 0.004, 0.03, (0.001, 0.033), 0.004, INCONCLUSIVE),  # significant, below the practical size
        (0.05, -0.01, 0.11, (-0.02, 0.12), 0.3, INCONCLUSIVE),  # not significant
        (0.05, 0.03, 0.07, (0.02, 0.08), 0.12, INCONCLUSIVE),  # p 0.03 before correction, 0.12 after Holm
        # The report's 95% interval lies within the band, but the equivalence interval at the claim's Holm
        # level (wider) does not: not equivalent within the family's correction.
        (0.001, -0.015, 0.017, (-0.025, 0.027), 0.9, INCONCLUSIVE),
    ],
)
def test_the_four_words(mean: float, low: float, high: float, tost: tuple[float, float], p: float, word: str) -> None:
    """``p`` is the Holm-adjusted p, compared with 0.05; the practical size is 0.02; equivalence reads the
    interval of the two one-sided tests at the claim's Holm level (``tost``)."""
    assert verdict(mean, (low, high), tost, p, 0.05, 0.02) == word


def test_equivalence_needs_units_enough_for_its_level() -> None:
    """Two differences inside the band have a bootstrap interval inside it too, yet a one-sided sign-flip
    test of two units cannot go below 1/4: no evidence of equivalence at 0.0125. Seven units can reach
    1/128 = 0.0078 <= 0.0125; six cannot (1/64 = 0.0156)."""
    inside = (0.001, (-0.005, 0.006), (-0.005, 0.006), 1.0, 0.05, 0.02)
    assert verdict(*inside, units=2, level=0.0125) == INCONCLUSIVE
    assert verdict(*inside, units=6, level=0.0125) == INCONCLUSIVE
    assert verdict(*inside, units=7, level=0.0125) == EQUIVALENT


def test_the_equivalence_interval_at_a_holm_level_by_hand() -> None:
    """Two one-sided tests at a claim's Holm level L are its 1 - 2L percentile interval. Draws 0.01 .. 1.00:
    at L = 0.05 / 4 the interval holds 97.5% of them, the 1.25th and 98.75th percentiles, interpolated
    linearly between draws: 0.01 + 0.0125 x 99 x 0.01 and 0.01 + 0.9875 x 99 x 0.01."""
    draws = np.arange(1, 101) / 100
    level = holm_levels({"a": 0.001, "b": 0.2, "c": 0.3, "d": 0.4}, 0.05)["a"]
    assert level == 0.0125
    low, high = percentile_interval(draws, 1 - 2 * level)
    assert low == pytest.approx(0.01 + 0.0125 * 0.99) and high == pytest.approx(0.01 + 0.9875 * 0.99)
    # The last claim in Holm's order is compared at 0.05: its equivalence interval is the 90% one, narrower.
    assert percentile_interval(draws, 1 - 2 * 0.05) == pytest.approx((0.01 + 0.05 * 0.99, 0.01 + 0.95 * 0.99))


def test_the_nested_bootstrap_by_hand() -> None:
    """Two replicates whose every inner draw is 1 and 3: a resample of both replicates averages to 1
    (both the first, 1/4), 2 (one each, 1/2) or 3 (1/4); the 95% interval is [1, 3]."""
    low, high = nested_bootstrap([np.full(50, 1.0), np.full(50, 3.0)], 4000, 0, 0.95)
    assert (low, high) == (1.0, 3.0)
    # One replicate: the interval is its inner draws' own quantiles (0..100 uniform -> 2.5 and 97.5).
    low, high = nested_bootstrap([np.arange(101.0)], 20000, 1, 0.95)
    assert low == pytest.approx(2.5, abs=1.0) and high == pytest.approx(97.5, abs=1.0)
    # The inner level widens the interval of the same replicate means.
    plain = outer_bootstrap([0.1, 0.2, 0.15, 0.12], 4000, 0, 0.95)
    nested = nested_bootstrap(
        [np.random.default_rng(r).normal(m, 0.05, 200) for r, m in enumerate([0.1, 0.2, 0.15, 0.12])], 4000, 0, 0.95
    )
    assert nested[1] - nested[0] > plain[1] - plain[0]


def _half(spread: float, n: int) -> float:
    """The 95% interval's half-width of a mean of n differences with this spread (normal approximation)."""
    return 1.96 * spread / math.sqrt(n)


def test_the_power_of_the_rule_by_simulation() -> None:
    alpha = 0.05 / 4
    # A large, clean effect: the rule supports it whenever the permutation test can (8 replicates).
    assert rule_power(0.1, 0.01, 8, alpha, 0.02, _half(0.01, 8), seed=0) == 1.0
    assert rule_power(0.1, 0.01, 7, alpha, 0.02, _half(0.01, 7), seed=0) == 0.0  # 2/2^7 > 0.0125: never
    # No effect: support is as rare as the level allows.
    assert rule_power(0.0, 0.05, 10, alpha, 0.02, _half(0.05, 10), seed=0) <= alpha
    assert math.isclose(
        rule_power(0.03, 0.02, 10, alpha, 0.02, _half(0.02, 10), seed=0),
        rule_power(0.03, 0.02, 10, alpha, 0.02, _half(0.02, 10), seed=0),
    )  # seeded: repeatable


def test_power_tends_to_one_above_the_practical_size_and_stays_near_half_at_it() -> None:
    """The rule asks the estimate to reach the practical size: at a true effect of exactly that size the
    estimate falls short about half the time whatever the replicates, while above it power tends to 1."""
    alpha, band, spread = 0.05 / 4, 0.02, 0.02
    above = [rule_power(0.03, spread, n, alpha, band, _half(spread, n), seed=0) for n in (10, 40, 160)]
    assert above[0] < above[1] < above[2] and above[2] > 0.99
    at = [rule_power(band, spread, n, alpha, band, _half(spread, n), seed=0) for n in (40, 160)]
    assert all(abs(p - 0.5) < 0.06 for p in at)


def test_power_matches_the_normal_approximation_by_hand() -> None:
    """n = 64 differences of sd 1 around 0.5, Holm level 0.0125, practical size 0.4. The mean is about
    N(0.5, 1/8²); the test at 0.0125 needs |mean| > 2.5 / 8 = 0.31 and the interval 1.96 / 8 = 0.245 above 0,
    both implied by mean >= 0.4: power = P(mean >= 0.4) = Phi((0.5 - 0.4) x 8) = Phi(0.8) = 0.788.
    The detectable effect at 80%: 0.4 + z(0.8) / 8 = 0.4 + 0.8416 / 8 = 0.505. The replicates for 80% at
    1.5 x 0.4 = 0.6: now the test binds (2.5 / sqrt(n) > 0.4 below n = 39), P(mean > 2.5 / sqrt n) = 0.8
    when (0.6 - 2.5 / sqrt n) sqrt n = 0.8416, sqrt n = 5.57, n = 31 (the t distribution's heavier tails
    ask a few more)."""
    alpha, band, spread, n = 0.0125, 0.4, 1.0, 64
    assert rule_power(0.5, spread, n, alpha, band, _half(spread, n), seed=0) == pytest.approx(0.788, abs=0.03)
    power = design_power(spread, n, alpha, band, _half(spread, n), 0.8)
    assert power.detectable == pytest.approx(0.505, abs=0.02)
    assert power.replicates is not None and 30 <= power.replicates <= 36
    # Too few replicates for the level: nothing can be supported, and the count that can is given.
    few = design_power(spread, 7, alpha, band, _half(spread, 7), 0.8)
    assert math.isinf(few.detectable) and few.replicates == power.replicates


# ---------------------------------------------------------------- across tables

# Four tables: effect (e.g. test AP, variant minus baseline) and its standard error.
EFFECTS = [0.02, 0.05, -0.01, 0.03]
SES = [0.01, 0.02, 0.015, 0.01]


def test_dersimonian_laird_matches_the_hand_computation() -> None:
    # By hand: w = 1/se^2 = [10000, 2500, 4444.4, 10000], sum 26944.4; fixed mean 580.56/26944.4 = 0.0215464;
    # Q = sum w (y - 0.0215464)^2 = 7.18557 on 3 df; C = 26944.4 - 226,000,000/26944.4 = 18556.70;
    # tau^2 = (7.18557 - 3)/18556.70 = 0.000225556; I^2 = 4.18557/7.18557 = 0.58250;
    # w* = 1/(se^2 + tau^2); mu = sum w* y / sum w* = 0.0212136; se = sqrt(1/sum w*) = 0.0100194.
    pooled = pooling.dersimonian_laird(EFFECTS, SES, 0.95)
    assert pooled.q == pytest.approx(7.185567, abs=1e-5)
    assert pooled.tau2 == pytest.approx(0.000225556, rel=1e-5)
    assert pooled.i2 == pytest.approx(0.582496, abs=1e-5)
    assert pooled.mean == pytest.approx(0.0212136, abs=1e-6)
    assert pooled.se == pytest.approx(0.0100194, abs=1e-6)
    assert (pooled.low, pooled.high) == (pytest.approx(0.0015761, abs=1e-6), pytest.approx(0.0408512, abs=1e-6))


def test_homogeneous_tables_have_no_heterogeneity_and_pool_like_fixed_effects() -> None:
    pooled = pooling.dersimonian_laird([0.01, 0.01, 0.01], [0.01, 0.02, 0.02], 0.95)
    assert (pooled.q, pooled.tau2, pooled.i2) == (pytest.approx(0.0), 0.0, 0.0)
    # fixed effect: weights 10000, 2500, 2500 -> se = sqrt(1/15000)
    assert pooled.mean == pytest.approx(0.01)
    assert pooled.se == pytest.approx(math.sqrt(1 / 15000))


def test_standard_error_from_a_95_interval() -> None:
    assert pooling.standard_error(-0.0196, 0.0196, 0.95) == pytest.approx(0.01, rel=1e-3)


def test_wilcoxon_matches_the_exact_hand_count() -> None:
    # |effects| ranked 0.01 -> 1, 0.02 -> 2, 0.03 -> 3, 0.05 -> 4; W- = 1 (the one negative, rank 1).
    # Of the 2^4 sign patterns, 2 give W- <= 1 (none negative, or only rank 1): one-sided 2/16, two-sided 4/16.
    assert pooling.wilcoxon_p(EFFECTS) == pytest.approx(0.25)
    assert pooling.wilcoxon_p([0.0, 0.0, 0.0]) == 1.0


def test_bayesian_signed_rank_matches_its_posterior_by_hand() -> None:
    # Every effect above twice the ROPE: the only mass not "better" is the pseudo-observation at 0 paired
    # with itself, w0^2, with w0 ~ Beta(0.5, 4) (Dirichlet(0.5, 1, 1, 1, 1)). "Better" wins when
    # 1 - w0^2 > w0^2, i.e. w0 < 1/sqrt(2); "equivalent" otherwise; "worse" never.
    found = pooling.bayes_signed_rank([0.1, 0.2, 0.3, 0.4], rope=0.02, seed=0, samples=20_000)
    by_hand = stats.beta.cdf(1 / math.sqrt(2), 0.5, 4)
    assert found.better == pytest.approx(by_hand, abs=0.01)
    assert found.equivalent == pytest.approx(1 - by_hand, abs=0.01)
    assert found.worse == 0.0
    flipped = pooling.bayes_signed_rank([-0.1, -0.2, -0.3, -0.4], rope=0.02, seed=0, samples=20_000)
    assert flipped.worse == pytest.approx(by_hand, abs=0.01) and flipped.better == 0.0
    # One table: w0 ~ Beta(0.5, 1), whose CDF is sqrt(x): P(better) = (1/sqrt(2))^(1/2) = 2^(-1/4) = 0.8409.
    one = pooling.bayes_signed_rank([0.1], rope=0.02, seed=0, samples=20_000)
    assert one.better == pytest.approx(2**-0.25, abs=0.01) and one.worse == 0.0
    tiny = pooling.bayes_signed_rank([0.001, -0.002, 0.0005, 0.0], rope=0.02, seed=0, samples=5_000)
    assert tiny.equivalent == 1.0  # every pair sum lies inside twice the ROPE


def test_win_tie_loss_against_the_rope() -> None:
    assert pooling.win_tie_loss(EFFECTS, 0.02) == pooling.Counts(wins=2, ties=2, losses=0)
    assert pooling.win_tie_loss([-0.05, 0.0, 0.05], 0.01) == pooling.Counts(1, 1, 1)


def test_mean_sd_over_replicates() -> None:
    assert mean_sd([1.0, 2.0, 3.0], 2) == "2.00 ± 1.00"
    assert mean_sd([0.5]) == "0.5000"  # one replicate: no spread to show
    assert mean_sd([math.nan, math.inf]) == "–"
    assert mean_sd([0.1, -0.3], 1, noisy=True) == "-0.1 ± 0.3 (noisy)"  # spread larger than the mean
