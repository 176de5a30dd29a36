"""Each caveat forced on tiny data, read where the user reads it: the report's first screen and
metrics/summary.json's `caveats`."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from pipeline import report
from pipeline.analysis import checks as caveats
from pipeline.analysis.statistics import Power
from pipeline.project.artefacts import Trial
from pipeline.project.layout import Layout
from pipeline.project.params import Params, Setting
from pipeline.project.variants import Catalogue


def _first_screen(params: Params, layout: Layout) -> tuple[str, list[str]]:
    md = (report.run(params, layout, track=False) / "report.md").read_text()
    return md[: md.index("## 2. Setup")], json.loads(layout.summary.read_text())["caveats"]


def _kinds(layout: Layout) -> list[str]:
    """metrics/summary.json's ``caveat_kinds``: what a suite reads of each table's caveats."""
    found = json.loads(layout.summary.read_text())["caveat_kinds"]
    assert found == [k for k in caveats.KINDS if k in found]  # in the report's order
    return found


def _say(found: list[str], fragment: str) -> str:
    hits = [c for c in found if fragment in c]
    assert len(hits) == 1, (fragment, found)
    return hits[0]


def test_a_variant_below_the_logistic_regression_is_named(params: Params, evaluated: Layout) -> None:
    """The baseline's test scores replaced by the reverse of the logistic regression's: far below it
    on AP and ROC-AUC, the paired interval wholly below 0."""
    scores = pd.read_parquet(evaluated.scores("baseline-s0"))
    yardstick = pd.read_parquet(evaluated.scores("logistic_regression-s0"))
    scores["score"] = 1.0 - yardstick["score"].to_numpy()
    scores.to_parquet(evaluated.scores("baseline-s0"), index=False)
    test = scores[scores["split"] == "test"]
    path = evaluated.model_metrics("baseline-s0")
    metrics = json.loads(path.read_text())
    metrics["values"].update(
        test_ap=average_precision_score(test["y_true"], test["score"]),
        test_roc_auc=roc_auc_score(test["y_true"], test["score"]),
    )
    path.write_text(json.dumps(metrics))
    screen, found = _first_screen(params, evaluated)
    line = _say(found, "The baseline ranks below the logistic regression on test average precision")
    assert "a comparison of MLPs worse than a linear model says little" in line and line in screen
    assert not any(c.startswith("BatchNorm ranks below") for c in found)
    assert "below_yardstick" in _kinds(evaluated)


def test_a_run_stopped_while_improving_is_named(params: Params, evaluated: Layout) -> None:
    for name, val_ap in (("batchnorm-s0", lambda e: e / 10), ("baseline-s0", lambda e: 1 / e)):
        path = evaluated.history(name)
        history = pd.read_csv(path)
        history["val_ap"] = val_ap(history["epoch"])  # BatchNorm best at the cap (3), the baseline at epoch 1
        history.to_csv(path, index=False)
    screen, found = _first_screen(params, evaluated)
    line = _say(found, "had their best validation AP at the epoch cap (3)")
    assert line.startswith("BatchNorm: replicate(s) [0]") and "raise train.epochs" in line and line in screen
    assert "cut_off" in _kinds(evaluated)


def test_a_choice_at_the_edge_and_a_search_still_climbing_are_named(params: Params, evaluated: Layout) -> None:
    selection = json.loads(evaluated.selection.read_text())
    selection["variants"]["baseline"]["at_edge"] = {"lr": "high"}
    selection["variants"]["batchnorm"]["best_so_far"] = [0.40, 0.41, 0.45, 0.47, 0.52]  # one seed: no noise known
    evaluated.selection.write_text(json.dumps(selection))
    screen, found = _first_screen(params, evaluated)
    edge = _say(found, "tuned lr sits at the high end of train.tune.space.lr")
    climbing = _say(found, "still climbing: its last 1 trial(s) raised the best validation AP by 0.050")
    assert (
        edge.startswith("The baseline") and climbing.startswith("BatchNorm") and "raise train.tune.trials" in climbing
    )
    assert edge in screen and climbing in screen
    assert {"at_edge", "tuning_climbing"} <= set(_kinds(evaluated))


def test_too_few_replicates_and_a_time_split_are_named(params: Params, evaluated: Layout) -> None:
    screen, found = _first_screen(params, evaluated)
    line = _say(found, "no claim can be supported")
    assert "With 1 replicate(s) the permutation test cannot go below p = 1" in line and "use at least 8" in line
    assert line in screen
    assert not any("same for every replicate" in c for c in found)  # a stratified split is redrawn
    assert "few_replicates" in _kinds(evaluated) and "fixed_split" not in _kinds(evaluated)
    assert caveats.fixed_split(SimpleNamespace(summary=SimpleNamespace(redrawn=False, folds=1))) == [
        "The split is by time and the same for every replicate: the intervals cover seeds and test rows, not the "
        "choice of split (prepare.split.folds > 1 evaluates on several consecutive windows)."
    ]
    assert caveats.fixed_split(SimpleNamespace(summary=SimpleNamespace(redrawn=False, folds=3))) == []


def test_low_power_is_named_only_beside_an_inconclusive_claim_and_attainably(params: Params) -> None:
    """Ten replicates can pass Holm's strictest level. An inconclusive claim whose rule supports only effects
    above 1.5 times its practical size is named with that smallest effect and the replicates that bring it to
    1.5 times the size; the same power beside an equivalent (or supported) claim is no caveat, nor is an
    inconclusive claim whose rule already reaches 1.5 times the size."""

    def claim(status: str, detectable: float, replicates: int | None) -> SimpleNamespace:
        measure = SimpleNamespace(unit="ap", differences=[0.0] * 10)
        return SimpleNamespace(
            text="BatchNorm catches more fraud (test average precision)",
            status=status,
            band=0.02,
            measure=measure,
            primary=SimpleNamespace(units="replicates"),
            power=Power(target=0.8, level=0.0125, spread=0.02, detectable=detectable, replicates=replicates),
        )

    ev = SimpleNamespace(replicates=list(range(10)), params=params)
    found = caveats.few_replicates(
        ev,
        {
            "batchnorm": [
                claim("inconclusive", 0.041, 23),
                claim("equivalent", 0.041, 23),
                claim("inconclusive", 0.029, 9),
            ]
        },
    )
    assert found == [
        "BatchNorm catches more fraud (test average precision) is inconclusive, and its 10 replicates could support "
        "only an effect of 0.041 or more 80% of the time (practical size 0.020); about 23 replicates would support an "
        "effect 1.5 times the practical size (prepare.replicates)."
    ]
    never = caveats.few_replicates(ev, {"batchnorm": [claim("inconclusive", float("inf"), None)]})
    assert never and "no effect, however large" in never[0] and "no count up to 256" in never[0]


def _trial(number: int, by_seed: list[float]) -> Trial:
    setting = Setting(lr=0.01, weight_decay=0.0, batch_size=128, pos_weight="none", dropout=0.0)
    return Trial(
        trial=number,
        state="COMPLETE",
        setting=setting,
        val_ap_by_seed={str(100 + i): v for i, v in enumerate(by_seed)},
        diverged_at_epoch_by_seed={},
        val_ap=sum(by_seed) / len(by_seed),
    )


def test_the_tuning_noise_by_hand() -> None:
    """Two seeds a trial, pooled over the better half of the trials: the within-trial variances of the two
    best are (0.02² / 2) and (0.04² / 2), i.e. 0.0002 and 0.0008; pooled 0.0005; a trial's score averages two
    seeds, so its standard error is sqrt(0.0005 / 2) = 0.0158. The two poor, unstable trials (0.3 apart)
    do not enter: they say little about the seeds' disagreement where the choice is made."""
    trials = [_trial(0, [0.70, 0.72]), _trial(1, [0.60, 0.64]), _trial(2, [0.2, 0.5]), _trial(3, [0.1, 0.4])]
    assert caveats.trial_noise(trials) == pytest.approx((0.0005 / 2) ** 0.5)
    assert math.isnan(caveats.trial_noise([_trial(0, [0.7])]))  # one seed: no noise to weigh


@pytest.mark.parametrize(
    ("best", "seeds", "state"),
    [
        # The last quarter (2 of 8) raised the best by 0.03, beyond 0.005 and twice the noise (0.0141).
        ([0.6] * 6 + [0.62, 0.63], [0.01] * 8, "still climbing"),
        # No gain, and quiet seeds (twice the noise 0.0014 <= 0.005), after the random start-up: saturated.
        ([0.6] * 8, [0.001] * 8, "saturated"),
        # No gain, but seeds 0.02 apart: twice the noise (0.0141) hides a gain of 0.005. Not established.
        ([0.6] * 8, [0.02] * 8, "not established"),
        # A gain of 0.008 > 0.005 but within the noise: not climbing beyond it; not established.
        ([0.6] * 7 + [0.608], [0.02] * 8, "not established"),
    ],
)
def test_the_tuning_budget_weighs_the_seeds_noise(
    params: Params, best: list[float], seeds: list[float], state: str
) -> None:
    """report.saturation 0.005; the sampler's random start-up is train.tune.parallel trials (TPE)."""
    trials = [_trial(i, [0.6 - gap / 2, 0.6 + gap / 2]) for i, gap in enumerate(seeds)]
    tune = params.train.tune.model_copy(update={"sampler": "tpe", "parallel": 6, "trials": 8})
    ev = SimpleNamespace(
        params=params.model_copy(update={"train": params.train.model_copy(update={"tune": tune})}),
        catalogue=Catalogue(params),
        selection=SimpleNamespace(variants={"batchnorm": SimpleNamespace(best_so_far=best, trials=trials)}),
    )
    budget = caveats.tuning_budget(ev, "batchnorm")
    assert budget.state == state
    if state == "not established":
        said = caveats.unsettled({"batchnorm": budget})
        assert len(said) == 1 and said[0].startswith("Whether tuning had finished is not established for BatchNorm")


def test_top_trials_within_the_noise_are_tied(params: Params) -> None:
    """Scores 0.7832, 0.7831 and 0.70, seeds 0.02 apart (twice the noise 0.0141): the first two are tied."""
    trials = [_trial(0, [0.7732, 0.7932]), _trial(1, [0.7731, 0.7931]), _trial(2, [0.69, 0.71])]
    ev = SimpleNamespace(
        params=params,
        catalogue=Catalogue(params),
        selection=SimpleNamespace(
            variants={"baseline": SimpleNamespace(best_so_far=[0.7832, 0.7832, 0.7832], trials=trials)}
        ),
    )
    assert [t.trial for t in caveats.tuning_budget(ev, "baseline").tied] == [0, 1]


@pytest.mark.parametrize("replicates, expected", [(7, 1), (8, 0)])
def test_the_replicates_needed_for_the_family(params: Params, replicates: int, expected: int) -> None:
    """2/2^7 = 0.0156 > 0.05/4 = 0.0125: seven replicates cannot support any claim; eight can."""
    ev = SimpleNamespace(replicates=list(range(replicates)), params=params)
    assert len([c for c in caveats.few_replicates(ev, {}) if "no claim can be supported" in c]) == expected
