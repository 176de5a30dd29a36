"""The select stage: each variant's setting, the best trial on validation only; diverged trials never
win; the best score after each trial; chosen values at the edge of the space."""

from __future__ import annotations

import json

import pytest

from pipeline import prepare, select, train
from pipeline.project.artefacts import Trial
from pipeline.project.layout import Layout
from pipeline.project.params import Setting, SpaceParams, parse
from pipeline.runtime.errors import StageError
from tests.helpers.params import space


@pytest.mark.slow  # runs the pipeline or training processes: over the fast suite's budget
def test_the_choice_is_the_best_mean_validation_ap_and_skips_diverged_trials(raw_params: dict, layout: Layout) -> None:
    raw_params["train"]["tune"]["seeds"] = [100, 101]
    raw_params["train"]["optimizer"].update(name="sgd", momentum=0.9)
    raw_params["train"]["model"]["hidden"] = [256, 256]
    params = parse(space(raw_params, lr=[0.01, 0.003, 10.0]))
    prepare.run(params.prepare, layout)
    train.tune(params, "baseline", layout, track=False)
    params = parse({**raw_params, "train": {**raw_params["train"], "variants": ["baseline"]}})
    chosen = select.run(params, layout, track=False)
    entry = json.loads(layout.selection.read_text())["variants"]["baseline"]
    trials = {t["setting"]["lr"]: t for t in entry["trials"]}
    assert trials[10.0]["diverged_at_epoch_by_seed"] and trials[10.0]["val_ap"] is None
    scored = {lr: t["val_ap"] for lr, t in trials.items() if t["val_ap"] is not None}
    assert chosen["baseline"].setting.lr == max(scored, key=scored.get)
    saved = json.loads(layout.chosen_setting("baseline").read_text())
    assert saved == {
        "setting": trials[saved["setting"]["lr"]]["setting"],
        "trial": trials[saved["setting"]["lr"]]["trial"],
    }
    assert entry["best_so_far"] == [
        max(v for v in (t["val_ap"] for t in entry["trials"][: i + 1]) if v is not None)
        if any(t["val_ap"] is not None for t in entry["trials"][: i + 1])
        else None
        for i in range(len(entry["trials"]))
    ]


def test_every_trial_diverged_is_a_clear_error(raw_params: dict, layout: Layout) -> None:
    raw_params["train"]["variants"] = ["baseline"]
    raw_params["train"]["optimizer"].update(name="sgd", momentum=0.9)
    raw_params["train"]["model"]["hidden"] = [256, 256]
    params = parse(space(raw_params, lr=[10.0]))
    prepare.run(params.prepare, layout)
    train.tune(params, "baseline", layout, track=False)
    with pytest.raises(StageError, match="every trial of baseline diverged"):
        select.run(params, layout, track=False)
    assert not layout.chosen.exists()


def _trial(number: int, val_ap: float | None) -> Trial:
    setting = Setting(lr=0.01, weight_decay=0.0, batch_size=128, pos_weight="none", dropout=0.0)
    return Trial(
        trial=number,
        state="COMPLETE" if val_ap is not None else "FAIL",
        setting=setting,
        val_ap_by_seed={},
        diverged_at_epoch_by_seed={},
        val_ap=val_ap,
    )


def test_ties_go_to_the_earlier_trial_and_the_best_so_far_never_falls() -> None:
    trials = [_trial(0, 0.5), _trial(1, None), _trial(2, 0.7), _trial(3, 0.7), _trial(4, 0.6)]
    assert select.choose("v", trials).trial == 2
    assert select.best_so_far(trials) == [0.5, 0.5, 0.7, 0.7, 0.7]
    assert select.best_so_far([_trial(0, None)]) == [None]


def test_chosen_values_at_the_edge_of_the_space_are_named() -> None:
    space_ = SpaceParams.model_validate(
        {
            "lr": {"low": 1e-4, "high": 1e-2, "log": True},
            "weight_decay": {"choices": [0.0, 1e-4, 1e-3]},
            "batch_size": {"choices": [512, 1024, 2048]},
            "pos_weight": {"choices": ["none", "balanced"]},
            "dropout": {"low": 0.0, "high": 0.5, "log": False},
        }
    )
    # lr 1.1e-4 is 2% up the log range (edge); 2048 the largest of three choices; dropout 0.25 the middle
    edges = select.edges_of(
        space_, Setting(lr=1.1e-4, weight_decay=1e-4, batch_size=2048, pos_weight="none", dropout=0.25)
    )
    assert edges == {"lr": "low", "batch_size": "high"}
    assert select.edges_of(
        space_, Setting(lr=1e-3, weight_decay=1e-3, batch_size=1024, pos_weight="balanced", dropout=0.49)
    ) == {"weight_decay": "high", "dropout": "high"}
    # No weight decay and no dropout are ends nothing lies beyond: never an edge.
    assert (
        select.edges_of(space_, Setting(lr=1e-3, weight_decay=0.0, batch_size=1024, pos_weight="balanced", dropout=0.0))
        == {}
    )
