"""The suite's pooled statistics against values computed by hand on four fixed tables."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from pipeline.evaluation import pooling

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
    assert one.better == pytest.approx(2 ** -0.25, abs=0.01) and one.worse == 0.0
    tiny = pooling.bayes_signed_rank([0.001, -0.002, 0.0005, 0.0], rope=0.02, seed=0, samples=5_000)
    assert tiny.equivalent == 1.0  # every pair sum lies inside twice the ROPE


def test_win_tie_loss_against_the_rope() -> None:
    assert pooling.win_tie_loss(EFFECTS, 0.02) == pooling.Counts(wins=2, ties=2, losses=0)
    assert pooling.win_tie_loss([-0.05, 0.0, 0.05], 0.01) == pooling.Counts(1, 1, 1)
