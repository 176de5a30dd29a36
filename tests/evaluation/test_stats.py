"""Paired tests across seeds and the censoring rule for speed: what each verdict can and cannot say."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.evaluation.stats import (INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, first_to_target, fewest_permutation_seeds,
                            paired_test, permutation_p, seeds_needed)


@pytest.mark.parametrize(
    ("diffs", "status"),
    [([0.30, 0.25, 0.35, 0.28, 0.31, 0.33], SUPPORTED),
     ([-0.30, -0.25, -0.35, -0.28, -0.31, -0.33], NOT_SUPPORTED),
     ([0.3, -0.2, 0.1, 0.05, -0.15, 0.2], INCONCLUSIVE),
     ([0.30, 0.25, 0.35, 0.28, 0.31], INCONCLUSIVE),  # t says yes, but 5 seeds cannot reach p < 0.05
     ([0.5], INCONCLUSIVE)],
)
def test_a_verdict_needs_both_tests(diffs: list[float], status: str) -> None:
    test = paired_test(diffs, confidence=0.95, power=0.8)
    assert test.status == status
    if len(diffs) > 1:
        assert test.low <= test.mean <= test.high


def test_five_unanimous_seeds_pass_the_t_interval_but_not_the_permutation_test() -> None:
    test = paired_test([0.30, 0.25, 0.35, 0.28, 0.31], confidence=0.95, power=0.8)
    assert test.low > 0 and test.p_value == pytest.approx(2 / 32) and test.smallest_p == pytest.approx(2 / 32)
    assert fewest_permutation_seeds(0.05) == 6


def test_permutation_p_is_exact() -> None:
    assert permutation_p([1.0] * 6) == pytest.approx(2 / 64)
    # one of four signs flipped: |mean| is reached by the patterns with at most one mismatch, both ways
    assert permutation_p([1.0, 1.0, 1.0, -1.0]) == pytest.approx(10 / 16)
    assert permutation_p([0.0, 0.0, 0.0]) == 1.0


def test_detectable_difference_shrinks_and_seeds_needed_grows_as_expected() -> None:
    rng = np.random.default_rng(0)
    noise = list(rng.normal(0.02, 0.05, 6))
    small, large = paired_test(noise, 0.95, 0.8), paired_test(noise * 3, 0.95, 0.8)
    assert large.detectable < small.detectable
    assert seeds_needed(0.01, 0.05, 0.05, 0.8) > seeds_needed(0.05, 0.05, 0.05, 0.8) >= 6
    assert seeds_needed(0.0, 0.05, 0.05, 0.8) is None


def test_first_to_target_is_a_sign_test_over_decided_seeds() -> None:
    assert first_to_target([1] * 6, 0.95).status == SUPPORTED
    assert first_to_target([-1] * 6, 0.95).status == NOT_SUPPORTED
    undecided = first_to_target([1, 1, 1, 1, 1, None], 0.95)
    assert undecided.status == INCONCLUSIVE and undecided.wins == 5 and undecided.losses == 0
    assert math.isclose(undecided.p_value, 2 / 32)
