"""The files stages hand each other: one typed model each, written by its stage and read back equal; a missing
file or one another version wrote is one line naming the stage to run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.project.artefacts import Chosen, Headline, ModelMetrics, RunFile, Trial, Trials
from pipeline.project.params import Setting
from pipeline.runtime.errors import StageError

SETTING = Setting(lr=0.01, weight_decay=0.0, batch_size=128, pos_weight="balanced", dropout=0.1)


def test_a_file_reads_back_equal_and_stable(tmp_path: Path) -> None:
    trials = Trials(
        variant="batchnorm",
        trials=[
            Trial(
                trial=0,
                state="COMPLETE",
                setting=SETTING,
                val_ap_by_seed={"100": 0.5},
                diverged_at_epoch_by_seed={},
                val_ap=0.5,
            )
        ],
    )
    trials.write(tmp_path / "trials.json")
    assert Trials.read(tmp_path / "trials.json", "tune") == trials
    text = (tmp_path / "trials.json").read_text()
    assert text.endswith("}\n") and json.loads(text)["trials"][0]["setting"]["pos_weight"] == "balanced"
    trials.write(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_text() == text  # sorted keys: the same content, the same bytes


def test_a_missing_file_names_the_stage_to_run(tmp_path: Path) -> None:
    with pytest.raises(StageError, match=r"chosen.json not found; run the select stage first \(dvc repro select\)"):
        Chosen.read(tmp_path / "chosen.json", "select")


def test_a_file_another_version_wrote_is_refused_not_half_read(tmp_path: Path) -> None:
    path = tmp_path / "batchnorm.json"
    path.write_text(
        json.dumps({"lr": 0.01, "weight_decay": 0, "batch_size": 128, "pos_weight": "none", "dropout": 0, "trial": 3})
    )  # the flat format of an older select
    with pytest.raises(
        StageError,
        match=r"not the Chosen the select stage writes \(setting: Field required\); "
        r"re-run it \(dvc repro -f select\)",
    ):
        Chosen.read(path, "select")
    path.write_text(json.dumps({"setting": SETTING.model_dump(), "trial": 3, "seeds": [1]}))
    with pytest.raises(StageError, match="seeds: Extra inputs are not permitted"):
        Chosen.read(path, "select")


def test_model_metrics_read_like_a_mapping_of_numbers(tmp_path: Path) -> None:
    metrics = ModelMetrics(
        split="r0", replicate=0, values={"test_ap": 0.7, "threshold": 0.4}, alert_budget_by_day={0: 12, 1: 9}
    )
    metrics.write(tmp_path / "m.json")
    again = ModelMetrics.read(tmp_path / "m.json", "evaluate")
    assert again["test_ap"] == 0.7 and "threshold" in again and again.get("test_value_recall") is None
    assert again.alert_budget_by_day == {0: 12, 1: 9}  # JSON's text keys back to days


def test_the_headline_keeps_the_answer_first_and_omits_what_a_run_lacks(tmp_path: Path) -> None:
    headline = Headline(
        test_ap={"batchnorm": 0.7, "baseline": 0.69},
        verdict={"minority": "equivalent"},
        test_recall={},
        test_precision={},
        test_f1={},
        caveats=[],
        caveat_kinds=[],
        setting={"batchnorm": SETTING},
        threshold="max_f1",
        replicates=10,
        reference="baseline",
    )
    headline.write(tmp_path / "summary.json")
    written = json.loads((tmp_path / "summary.json").read_text())
    assert list(written)[:2] == ["test_ap", "verdict"] and "test_value_recall" not in written  # no amounts
    assert written["caveats"] == [] and "others" not in written and "candidate" not in written
    assert written["reference"] == "baseline"
    assert Headline.read(tmp_path / "summary.json", "report") == headline


def test_a_run_file_says_how_a_model_trained(tmp_path: Path) -> None:
    run = RunFile(
        model="batchnorm-s0",
        variant="batchnorm",
        seed=0,
        trial=None,
        setting=SETTING,
        device="cpu",
        group="g" * 12,
        key="k" * 16,
        ranks=1,
        batchnorm_sync=True,
        stack_size=10,
        epochs_run=7,
        best_epoch=5,
        best_val_ap=0.8,
        batch_sizes=[128, 130],
        norm_batch_sizes=[128, 130],
    )
    run.write(tmp_path / "run.json")
    assert RunFile.read(tmp_path / "run.json", "train").lr == 0.01 and run.run_id is None
