"""The claims' measures on hand-made curves: time to a validation-AP target, the rungs both variants
reach, the speed and loss differences, and the verdict rule applied to them."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd
import pytest

from pipeline.analysis.claims import Measure, loss_measure, rung_times, speed_measures, time_to
from pipeline.project.params import parse
from pipeline.reporting.sections import effect_text
from tests.helpers.params import small_raw_params


def _curve(seconds: list[float], aps: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"step": [10 * (i + 1) for i in range(len(aps))], "seconds": seconds, "val_ap": aps})


def test_time_to_interpolates_from_the_last_probe_below() -> None:
    curve = _curve([1.0, 2.0, 4.0], [0.2, 0.4, 0.8])
    # 0.6 lies halfway between (2 s, 0.4) and (4 s, 0.8): 3 s; in steps halfway between 20 and 30.
    assert time_to(curve, "seconds", 0.6, start=0.01) == pytest.approx(3.0)
    assert time_to(curve, "step", 0.6, start=0.01) == pytest.approx(25.0)
    # Below the first probe: from (0, start) = (0, 0.0) to (1 s, 0.2), 0.1 is reached at 0.5 s.
    assert time_to(curve, "seconds", 0.1, start=0.0) == pytest.approx(0.5)
    assert time_to(curve, "seconds", 0.4, start=0.0) == pytest.approx(2.0)  # reached exactly at a probe
    assert math.isnan(time_to(curve, "seconds", 0.9, start=0.0))  # never reached: no number
    assert time_to(curve, "seconds", 0.005, start=0.01) == 0.0  # a random ranking already scores it


def _evidence(ours: list[pd.DataFrame], base: list[pd.DataFrame], **histories: list[pd.DataFrame]) -> SimpleNamespace:
    raw = small_raw_params()
    raw["report"]["speed_rungs"] = [0.5, 1.0]
    raw["report"]["early_epoch"] = 1
    return SimpleNamespace(
        params=parse(raw),
        summary=SimpleNamespace(prevalence={"val": 0.0}, redrawn=True),
        probes={"batchnorm": dict(enumerate(ours)), "baseline": dict(enumerate(base))},
        histories={k: dict(enumerate(v)) for k, v in histories.items()},
        replicates=list(range(len(ours))),
    )


def test_rungs_are_fractions_of_the_lower_best_and_both_reach_them() -> None:
    ours, base = _curve([1, 2], [0.4, 0.8]), _curve([1, 2, 3, 4], [0.1, 0.2, 0.3, 0.6])
    ev = _evidence([ours], [base])
    rungs = rung_times(ev, "batchnorm", 0, "seconds")
    # The lower best is the baseline's 0.6: targets 0.3 and 0.6.
    assert [t for t, _, _ in rungs] == pytest.approx([0.3, 0.6])
    assert rungs[0][1:] == pytest.approx((0.75, 3.0))  # ours: 0 -> 0.4 over the first second
    assert rungs[1][1:] == pytest.approx((1.5, 4.0))


def test_speed_is_the_mean_log_ratio_over_rungs_per_replicate() -> None:
    # Replicate 0: ours twice as fast at both rungs (log 2); replicate 1: equally fast (0).
    fast, slow = _curve([1, 2], [0.3, 0.6]), _curve([2, 4], [0.3, 0.6])
    ev = _evidence([fast, slow], [slow, slow])
    seconds, steps = speed_measures(ev, "batchnorm")
    assert seconds.differences == pytest.approx([math.log(2), 0.0])
    assert steps.differences == pytest.approx([0.0, 0.0])  # same steps at each probe: a step did more work
    assert seconds.low <= seconds.mean <= seconds.high


def test_loss_measure_is_the_relative_fall_after_the_early_epoch() -> None:
    def history(losses: list[float]) -> pd.DataFrame:
        return pd.DataFrame({"epoch": range(1, len(losses) + 1), "train_loss": losses})

    ev = _evidence(
        [_curve([1], [0.5])] * 2,
        [_curve([1], [0.5])] * 2,
        batchnorm=[history([0.05, 0.04]), history([0.08, 0.05])],
        baseline=[history([0.10, 0.05]), history([0.10, 0.06])],
    )
    m = loss_measure(ev, "batchnorm")
    assert m.differences == pytest.approx([0.5, 0.2])  # (0.10 - 0.05) / 0.10 and (0.10 - 0.08) / 0.10
    assert m.mean == pytest.approx(0.35) and m.spread == pytest.approx(0.2121, abs=1e-4)


def test_a_secondary_measure_is_shown_without_a_practical_size() -> None:
    m = Measure("test recall", "recall", [0.1, 0.3], 0.05, 0.35, "seeds")
    assert effect_text(m, 0.02) == "+0.2 [+0.05, +0.35] over seeds; practical size 0.02"
    assert effect_text(m, math.nan) == "+0.2 [+0.05, +0.35] over seeds"
