"""The claims' measures on hand-made curves and timings: time to a validation-AP target, the rungs both
variants reach, the steps and the timed cost of a step making training seconds, the loss after the same
examples, the settings apart, and the answer's words."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from pipeline.analysis.claims import (
    Measure,
    bootstrapped,
    cost_ratio,
    in_words,
    log_speedup,
    loss_fall,
    rungs,
    settings_apart,
    time_to,
    tuned_speed,
)
from pipeline.project.params import Setting, parse
from pipeline.reporting.sections import effect_text
from tests.helpers.params import small_raw_params


def _curve(aps: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"step": [10 * (i + 1) for i in range(len(aps))], "val_ap": aps})


def test_time_to_interpolates_from_the_last_probe_below() -> None:
    curve = _curve([0.2, 0.4, 0.8])
    # 0.6 lies halfway between (step 20, 0.4) and (step 30, 0.8): 25 steps.
    assert time_to(curve, "step", 0.6, start=0.01) == pytest.approx(25.0)
    # Below the first probe: from (0, start) = (0, 0.0) to (10, 0.2), 0.1 is reached at step 5.
    assert time_to(curve, "step", 0.1, start=0.0) == pytest.approx(5.0)
    assert time_to(curve, "step", 0.4, start=0.0) == pytest.approx(20.0)  # reached exactly at a probe
    assert math.isnan(time_to(curve, "step", 0.9, start=0.0))  # never reached: no number
    assert time_to(curve, "step", 0.005, start=0.01) == 0.0  # a random ranking already scores it


def test_rungs_are_fractions_of_the_lower_best_and_both_reach_them() -> None:
    ours, base = _curve([0.4, 0.8]), _curve([0.1, 0.2, 0.3, 0.6])
    found = rungs(ours, base, 0.0, [0.5, 1.0], "step")
    # The lower best is the baseline's 0.6: targets 0.3 and 0.6.
    assert [t for t, _, _ in found] == pytest.approx([0.3, 0.6])
    assert found[0][1:] == pytest.approx((7.5, 30.0))  # ours: 0 -> 0.4 over the first 10 steps
    assert found[1][1:] == pytest.approx((15.0, 40.0))
    # log(30 / 7.5) = log 4 and log(40 / 15): their mean, positive as ours got there in fewer steps.
    assert log_speedup(found) == pytest.approx((math.log(4) + math.log(40 / 15)) / 2)


def _evidence(ours: list[pd.DataFrame], base: list[pd.DataFrame], tuned: dict[str, list[float]]) -> SimpleNamespace:
    raw = small_raw_params()
    raw["report"]["speed_rungs"] = [0.5, 1.0]
    raw["report"]["bootstrap"].update(resamples=4000)
    return SimpleNamespace(
        params=parse(raw),
        summary=SimpleNamespace(prevalence={"val": 0.0}, redrawn=True),
        probes={"batchnorm": dict(enumerate(ours)), "baseline": dict(enumerate(base))},
        replicates=list(range(len(ours))),
        timing=SimpleNamespace(tuned=tuned),
        reference="baseline",
    )


def test_training_seconds_are_the_replicates_steps_times_a_timing_round_each() -> None:
    """Both replicates need half the baseline's steps (log 2). The cost of a step is timed in two rounds:
    BatchNorm 1.0 then 1.5 ms, the baseline 1.0 then 1.0 ms, so replicate 0's seconds ratio is 2 x 1.0 and
    replicate 1's 2 x (1.0 / 1.5). With one timing for every replicate the two would be equal and the interval
    of zero width; here the cost's own spread enters the interval: with two units the bootstrap's 95% interval
    runs from one to the other."""
    fast, slow = _curve([0.3, 0.6]), _curve([0.15, 0.3, 0.45, 0.6])
    ev = _evidence([fast, fast], [slow, slow], {"batchnorm": [1.0e-3, 1.5e-3], "baseline": [1.0e-3, 1.0e-3]})
    assert cost_ratio(ev.timing.tuned, "batchnorm", "baseline", 1) == pytest.approx(math.log(1.0 / 1.5))
    seconds = tuned_speed(ev, "batchnorm")
    assert seconds == pytest.approx([math.log(2), math.log(2) + math.log(1 / 1.5)])
    m = bootstrapped(ev, "speed", "log ratio", seconds, None, "seeds and the timing rounds")
    assert (m.low, m.high) == pytest.approx((min(seconds), max(seconds)))
    # A third replicate reuses the first round: rounds in turn.
    ev3 = _evidence([fast] * 3, [slow] * 3, {"batchnorm": [1.0e-3, 1.5e-3], "baseline": [1.0e-3, 1.0e-3]})
    assert tuned_speed(ev3, "batchnorm")[2] == pytest.approx(math.log(2))


def test_the_loss_is_compared_at_the_early_epoch_on_the_eval_mode_loss() -> None:
    """The training loss in eval mode, unweighted (``train_loss_eval``), not the training-mode minibatch mean
    (``train_loss``, which dropout and class weights change)."""

    def history(eval_losses: list[float]) -> pd.DataFrame:
        n = len(eval_losses)
        return pd.DataFrame({"epoch": range(1, n + 1), "train_loss_eval": eval_losses, "train_loss": [9.0] * n})

    assert loss_fall(history([0.05, 0.04]), history([0.10, 0.05]), 1) == pytest.approx(0.5)
    assert loss_fall(history([0.05, 0.04]), history([0.10, 0.05]), 2) == pytest.approx(0.2)
    assert loss_fall(history([0.05]), history([0.10, 0.05]), 2) == pytest.approx(0.5)  # the last epoch both ran


def test_settings_apart_names_each_difference() -> None:
    ours = Setting(lr=0.00942, weight_decay=0.0, batch_size=2048, pos_weight="balanced", dropout=0.2)
    theirs = Setting(lr=0.0011, weight_decay=0.0, batch_size=1024, pos_weight="none", dropout=0.0)
    ev = SimpleNamespace(setting=lambda v: ours if v == "batchnorm" else theirs, reference="baseline")
    assert settings_apart(ev, "batchnorm") == (
        "learning rate 0.00942 against 0.0011, 8.6x apart; batch 2048 against 1024; dropout 0.2 against 0; "
        "class weight balanced against none"
    )
    alike = SimpleNamespace(setting=lambda v: theirs, reference="baseline")
    assert settings_apart(alike, "batchnorm") == ""


def test_effects_in_their_claims_words() -> None:
    assert in_words(math.log(2.16), "log ratio") == "2.16x"
    assert in_words(0.384, "fraction") == "+38.4%" and in_words(0.05, "fraction", signed=False) == "5.0%"
    assert in_words(0.00011, "accuracy") == "+1.1 per 10,000 rows"  # never e-notation
    assert in_words(0.0005, "accuracy", signed=False) == "5.0 per 10,000 rows"
    assert in_words(-0.0004, "ap") == "-0.000" and in_words(0.02, "ap", signed=False) == "0.020"


def test_a_secondary_measure_is_shown_without_a_practical_size() -> None:
    m = Measure("test recall", "recall", [0.1, 0.3], np.array([0.1, 0.3]), 0.05, 0.35, "seeds")
    assert effect_text(m, 0.02) == "+0.2 [+0.05, +0.35] over seeds; practical size 0.02"
    assert effect_text(m, math.nan) == "+0.2 [+0.05, +0.35] over seeds"
