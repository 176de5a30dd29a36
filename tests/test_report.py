"""The report stage: every section, honest verdicts, reproducible apart from marked volatile blocks."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest

from pipeline import evaluate, prepare, report, train
from pipeline.analysis import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, paired_verdict
from pipeline.cli import StageError
from pipeline.config import Params, parse
from pipeline.document import VOLATILE_START, strip_volatile


def pipeline_once(params: Params, root: Path) -> Path:
    """prepare -> train (every variant and seed) -> evaluate -> report, all under root."""
    prepare.run(params.prepare, root / "prepared", root / "prepare.json")
    for variant in params.train.variants:
        for seed in params.train.seeds:
            train.run(params, variant, seed, data_dir=root / "prepared", summary_path=root / "prepare.json",
                      models_dir=root / "models", history_dir=root / "history")
    evaluate.run(params, data_dir=root / "prepared", summary_path=root / "prepare.json", models_dir=root / "models",
                 outputs=evaluate.Outputs(scores=root / "scores", metrics=root / "metrics",
                                          combined=root / "evaluate.json", figures=root / "figures",
                                          curves=root / "curves"))
    src = report.Sources(data=root / "prepared", summary=root / "prepare.json", models=root / "models",
                         history=root / "history", metrics=root / "metrics", combined=root / "evaluate.json",
                         scores=root / "scores", lock=root / "dvc.lock")
    return report.run(params, src, root / "reports")


@pytest.fixture
def two_seed_params(raw_params: dict) -> Params:
    raw_params["train"]["seeds"] = [0, 1]
    raw_params["evaluate"]["references"] = ["logistic_regression"]
    return parse(raw_params)


def test_report_has_every_section_and_is_reproducible(two_seed_params: Params, tmp_path: Path) -> None:
    first = pipeline_once(two_seed_params, tmp_path / "a")
    second = pipeline_once(two_seed_params, tmp_path / "b")
    md = (first / "report.md").read_text()
    for heading in ("## 1. Setup", "## 2. Training curves", "## 3. Validation accuracy",
                    "## 4. Minority-class precision", "## 5. Speed", "## 6. Verdict", "## 7. Diagnostics",
                    "## 8. Provenance"):
        assert heading in md
    for claim in ("BatchNorm lowers training loss sooner", "BatchNorm raises validation accuracy",
                  "BatchNorm raises minority-class precision and recall", "BatchNorm reaches the target loss faster"):
        assert claim in md
    assert "| Epoch | train loss with BatchNorm | train loss without BatchNorm |" in md
    assert "logistic_regression" in md and "Majority-class accuracy" in md
    assert (first / "figures" / "loss_curves.png").is_file()
    html = (first / "report.html").read_text()
    assert "data:image/png;base64," in html and "<table>" in html and "src=\"figures" not in html
    assert md.count(VOLATILE_START) >= 3  # date, timings, run ids
    # Same params on CPU: identical apart from the marked volatile blocks.
    assert strip_volatile(md) == strip_volatile((second / "report.md").read_text())
    assert strip_volatile(html) == strip_volatile((second / "report.html").read_text())
    assert md != (second / "report.md").read_text()  # run ids and timings really are in those blocks

    parent = json.loads((tmp_path / "a" / "models" / "batchnorm-s0.run.json").read_text())["parent_run_id"]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent, "report")}
    assert {"report/report.md", "report/report.html"} <= artifacts


def test_single_seed_verdict_says_it_cannot_judge_noise(params: Params, tmp_path: Path) -> None:
    md = (pipeline_once(params, tmp_path) / "report.md").read_text()
    assert "cannot judge seed-to-seed noise" in md
    assert "**supported**" not in md and "**not supported**" not in md


def test_small_batch_warning(raw_params: dict, tmp_path: Path) -> None:
    raw_params["train"].update(batch_size=16, epochs=2)
    raw_params["evaluate"]["references"] = []
    md = (pipeline_once(parse(raw_params), tmp_path) / "report.md").read_text()
    assert "BatchNorm with batch size 16 (< 32)" in md


@pytest.mark.parametrize(
    ("diffs", "status"),
    [([0.3, 0.25, 0.35], SUPPORTED), ([-0.3, -0.25, -0.35], NOT_SUPPORTED), ([0.3, -0.2, 0.1], INCONCLUSIVE),
     ([0.5], INCONCLUSIVE)],
)
def test_paired_verdict(diffs: list[float], status: str) -> None:
    verdict = paired_verdict("claim", "measure", diffs)
    assert verdict.status == status
    if len(diffs) > 1:
        assert verdict.low <= verdict.mean <= verdict.high


def test_missing_inputs_are_a_clear_error(params: Params, tmp_path: Path) -> None:
    with pytest.raises(StageError, match="not found; run the earlier stages first"):
        report.run(params, report.Sources(summary=tmp_path / "none.json"), tmp_path / "reports")
    assert not (tmp_path / "reports").exists()


def test_provenance_lists_only_deterministic_hashes() -> None:
    lock = {"stages": {
        "prepare": {"outs": [{"path": "data/prepared", "md5": "a.dir"}, {"path": "metrics/prepare.json", "md5": "b"}]},
        "train@batchnorm-0": {"outs": [{"path": "models/batchnorm-s0.pt", "md5": "c"},
                                       {"path": "models/batchnorm-s0.run.json", "md5": "d"},
                                       {"path": "plots/history/batchnorm-s0.csv", "md5": "e"}]}}}
    assert report.lock_hashes(lock) == [["`data/prepared`", "`a.dir`"], ["`models/batchnorm-s0.pt`", "`c`"]]
    assert report.lock_hashes(None) == []
