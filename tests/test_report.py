"""The report stage: every section, honest verdicts, reproducible apart from marked volatile blocks."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import yaml

from pipeline import evaluate, prepare, provenance, report, train
from pipeline.analysis import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, paired_verdict
from pipeline.config import Params, parse
from pipeline.document import VOLATILE_START, strip_volatile
from pipeline.errors import StageError
from pipeline.layout import Layout


def pipeline_once(params: Params, root: Path, track: bool = True) -> Path:
    """prepare -> train (every variant and seed) -> evaluate -> report, all under root."""
    layout = Layout(root)
    prepare.run(params.prepare, layout)
    for variant in params.train.variants:
        for seed in params.train.seeds:
            train.run(params, variant, seed, layout, track=track)
    evaluate.run(params, layout, track=track)
    return report.run(params, layout, track=track)


@pytest.fixture
def two_seed_params(raw_params: dict) -> Params:
    raw_params["train"]["seeds"] = [0, 1]
    raw_params["evaluate"]["references"] = ["logistic_regression"]
    return parse(raw_params)


@pytest.mark.slow
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

    info = json.loads(Layout(tmp_path / "a").run_file("batchnorm-s0").read_text())
    client = mlflow.MlflowClient()
    artifacts = {a.path for a in client.list_artifacts(info["pipeline_run_id"], "report")}
    assert {"report/report.md", "report/report.html"} <= artifacts
    note = client.get_run(info["pipeline_run_id"]).data.tags["mlflow.note.content"]
    assert "| BatchNorm lowers training loss sooner |" in note and info["group"] in note


def test_single_seed_verdict_says_it_cannot_judge_noise(raw_params: dict, tmp_path: Path) -> None:
    raw_params["evaluate"]["references"] = []
    md = (pipeline_once(parse(raw_params), tmp_path, track=False) / "report.md").read_text()
    assert "cannot judge seed-to-seed noise" in md
    assert "**supported**" not in md and "**not supported**" not in md


def test_small_batch_warning(raw_params: dict, tmp_path: Path) -> None:
    raw_params["train"].update(batch_size=16, epochs=2)
    raw_params["evaluate"]["references"] = []
    md = (pipeline_once(parse(raw_params), tmp_path, track=False) / "report.md").read_text()
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


@pytest.mark.parametrize("missing", ["prepare_summary", "history", "model_metrics"])
def test_missing_inputs_are_a_clear_error(missing: str, params: Params, trained: Layout) -> None:
    evaluate.run(params, trained, track=False)
    target = {"prepare_summary": trained.prepare_summary, "history": trained.history("baseline-s0"),
              "model_metrics": trained.model_metrics("batchnorm-s0")}[missing]
    target.unlink()
    with pytest.raises(StageError, match=f"{target.name} not found; run the .* stage first"):
        report.run(params, trained, track=False)
    assert not trained.reports.exists()


def test_provenance_lists_only_deterministic_hashes(tmp_path: Path) -> None:
    lock = {"stages": {
        "prepare": {"outs": [{"path": "data/prepared", "md5": "a.dir"}, {"path": "metrics/prepare.json", "md5": "b"}]},
        "train@batchnorm-0": {"outs": [{"path": "models/batchnorm-s0.pt", "md5": "c"},
                                       {"path": "models/batchnorm-s0.run.json", "md5": "d"},
                                       {"path": "plots/history/batchnorm-s0.csv", "md5": "e"}]}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    assert provenance.lock_hashes(tmp_path / "dvc.lock") == [("data/prepared", "a.dir"), ("models/batchnorm-s0.pt", "c")]
    assert provenance.lock_hashes(tmp_path / "absent.lock") == []


def test_headline_puts_the_answer_first(raw_params: dict, tmp_path: Path) -> None:
    """metrics/summary.json: both variants' test AP, then the verdicts, then the rest; small and flat."""
    raw_params["train"]["seeds"] = [0, 1]
    raw_params["evaluate"]["references"] = ["logistic_regression"]
    params = parse(raw_params)
    pipeline_once(params, tmp_path, track=False)
    summary = json.loads(Layout(tmp_path).summary.read_text())
    assert list(summary) == ["test_ap", "verdict", "test_recall", "test_precision", "test_f1", "reference_test_ap",
                             "threshold", "seeds"]
    assert list(summary["test_ap"]) == ["batchnorm", "baseline"]
    assert set(summary["verdict"]) == {"loss", "accuracy", "minority", "speed"}
    assert set(summary["verdict"].values()) <= {SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE}
    metrics = {n: json.loads(Layout(tmp_path).model_metrics(n).read_text()) for n in ("batchnorm-s0", "batchnorm-s1")}
    assert summary["test_ap"]["batchnorm"] == pytest.approx(
        (metrics["batchnorm-s0"]["test_ap"] + metrics["batchnorm-s1"]["test_ap"]) / 2, abs=1e-4)
    assert summary["threshold"] == "max_f1" and summary["seeds"] == 2
