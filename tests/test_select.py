"""The select stage: each variant's learning rate from validation only; diverged points never win."""

from __future__ import annotations

import json

import pytest

from pipeline import prepare, select, train
from pipeline.project.loading import parse
from pipeline.runtime.errors import StageError
from pipeline.project.layout import Layout


@pytest.mark.slow  # runs the pipeline or training processes: over the fast suite's budget
def test_the_choice_is_the_best_mean_validation_ap_and_skips_diverged_points(raw_params: dict,
                                                                          layout: Layout) -> None:
    raw_params["train"].update(lr=[0.01, 0.003, 10.0], tune_seeds=[100, 101])
    raw_params["train"]["optimizer"].update(name="sgd", momentum=0.9)
    raw_params["train"]["model"]["hidden"] = [256, 256]
    params = parse(raw_params)
    prepare.run(params.prepare, layout)
    train.tune(params, "baseline", layout, track=False)
    params = parse({**raw_params, "train": {**raw_params["train"], "variants": ["baseline"]}})
    chosen = select.run(params.train, layout, track=False)
    table = json.loads(layout.selection.read_text())["grid"]["baseline"]
    assert table["10.0"]["diverged_at_epoch_by_seed"] and table["10.0"]["val_ap_mean"] is None
    scored = {lr: entry["val_ap_mean"] for lr, entry in table.items() if entry["val_ap_mean"] is not None}
    assert chosen["baseline"] == float(max(scored, key=scored.get))
    assert json.loads(layout.chosen_setting("baseline").read_text()) == {"lr": chosen["baseline"]}


def test_a_variant_whose_every_rate_diverged_is_a_clear_error(raw_params: dict, layout: Layout) -> None:
    raw_params["train"].update(lr=[10.0], variants=["baseline"])
    raw_params["train"]["optimizer"].update(name="sgd", momentum=0.9)
    raw_params["train"]["model"]["hidden"] = [256, 256]
    params = parse(raw_params)
    prepare.run(params.prepare, layout)
    train.tune(params, "baseline", layout, track=False)
    with pytest.raises(StageError, match="every learning rate in train.lr diverged for baseline"):
        select.run(params.train, layout, track=False)
    assert not layout.chosen.exists()
