"""Each caveat forced on tiny data, read where the user reads it: the report's first screen and
metrics/summary.json's `caveats`."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from pipeline import report
from pipeline.analysis import checks as caveats
from pipeline.analysis.statistics import Power
from pipeline.project.layout import Layout
from pipeline.project.params import Params


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
    selection["variants"]["batchnorm"]["best_so_far"] = [0.40, 0.41, 0.45, 0.47, 0.52]
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


def test_low_power_is_named_whatever_the_outcome(params: Params) -> None:
    """Ten replicates can pass Holm's strictest level; a claim with 35% power at its practical size is
    named with the replicates that would give 80%, one with 90% is not."""

    def claim(key: str, power: float, need: int | None) -> SimpleNamespace:
        return SimpleNamespace(key=key, power=Power(0.02, power, 0.8, need), status="supported")

    ev = SimpleNamespace(replicates=list(range(10)), params=params)
    found = caveats.few_replicates(ev, {"batchnorm": [claim("minority", 0.35, 31), claim("loss", 0.9, 6)]})
    assert found == [
        "BatchNorm, minority: 10 replicates give 35% power to support an effect of the practical size; "
        "about 31 would give 80%."
    ]


@pytest.mark.parametrize("replicates, expected", [(7, 1), (8, 0)])
def test_the_replicates_needed_for_the_family(params: Params, replicates: int, expected: int) -> None:
    """2/2^7 = 0.0156 > 0.05/4 = 0.0125: seven replicates cannot support any claim; eight can."""
    ev = SimpleNamespace(replicates=list(range(replicates)), params=params)
    assert len([c for c in caveats.few_replicates(ev, {}) if "no claim can be supported" in c]) == expected
