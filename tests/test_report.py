"""The report stage: the answer first, every section, honest verdicts under censoring and the batch
rule, reproducible apart from marked volatile blocks."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import yaml

from pipeline import evaluate, prepare, report
from pipeline.analysis.statistics import EQUIVALENT, INCONCLUSIVE, REVERSED, SUPPORTED
from pipeline.project import provenance
from pipeline.project.artefacts import ModelMetrics, PrepareSummary
from pipeline.project.layout import Layout
from pipeline.project.params import Params, parse
from pipeline.reporting.document import VOLATILE_START, strip_volatile
from pipeline.runtime.errors import StageError
from tests.helpers.params import space
from tests.helpers.stages import run_pipeline, train_all

HEADINGS = (
    "## 1. Summary",
    "## 2. Setup",
    "## 3. Tuning",
    "## 4. Training curves",
    "## 5. Accuracy",
    "## 6. Minority class",
    "## 7. Speed",
    "## 8. Verdicts in detail",
    "## 9. Diagnostics",
    "## 10. Provenance",
)
WORDS = {SUPPORTED, EQUIVALENT, REVERSED, INCONCLUSIVE}


@pytest.fixture
def two_replicate_params(raw_params: dict) -> Params:
    raw_params["prepare"]["replicates"] = 2
    raw_params["evaluate"]["references"] = {"logistic_regression": {"C": [1.0]}}
    return parse(raw_params)


@pytest.mark.slow
def test_report_has_every_section_and_is_reproducible(two_replicate_params: Params, tmp_path: Path) -> None:
    first = run_pipeline(two_replicate_params, Layout(tmp_path / "a"))
    second = run_pipeline(two_replicate_params, Layout(tmp_path / "b"))
    md = (first / "report.md").read_text()
    headings = [line for line in md.splitlines() if line.startswith("## ")]
    assert len(headings) == len(HEADINGS) and all(h.startswith(p) for h, p in zip(headings, HEADINGS)), headings
    summary = md[md.index("## 1. Summary") : md.index("## 2. Setup")]  # the answer comes first
    for claim in (
        "BatchNorm catches more fraud (test average precision)",
        "BatchNorm raises test accuracy",
        "BatchNorm lowers the training loss sooner (after the same examples, eval mode, one objective)",
        "BatchNorm trains faster to validation-AP targets (steps x timed seconds per step)",
    ):
        assert claim in summary
    answer = json.loads(Layout(tmp_path / "a").answer.read_text())["sentences"]["batchnorm"]
    assert summary.index(answer) < summary.index("Each claim is read twice") < summary.index("| Claim | Verdict |")
    assert (
        "**Caveats**" in summary
        and "Holm-adjusted" in summary
        and "(each at its tuned setting, 2 replicates)" in summary
    )
    assert "at shared settings" in summary and (first / "figures" / "claims_batchnorm.png").is_file()
    assert "| Epoch | train loss with BatchNorm | train loss without normalisation |" in md
    assert "logistic regression" in md and 'predicting "legit" for every row' in md
    for figure in ("loss_curves", "tuning", "reliability", "precision_recall"):
        assert (first / "figures" / f"{figure}.png").is_file(), figure
    html = (first / "report.html").read_text()
    assert "data:image/png;base64," in html and "<table>" in html and 'src="figures' not in html
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
    # the note opens with the answer (the last report of this group wrote it: the same group, a or b)
    answers = {json.loads(Layout(tmp_path / x).answer.read_text())["sentences"]["batchnorm"] for x in ("a", "b")}
    assert note.split("\n")[0].strip("*") in answers and "| BatchNorm lowers the training loss sooner" in note
    assert info["group"] in note


def test_single_replicate_verdict_says_it_cannot_judge_noise(params: Params, evaluated: Layout) -> None:
    md = (report.run(params, evaluated, track=False) / "report.md").read_text()
    assert "cannot judge replicate-to-replicate noise" in md
    assert all(f": {word}.**" not in md for word in (SUPPORTED, REVERSED, EQUIVALENT))
    summary = json.loads(evaluated.summary.read_text())
    assert any("no claim can be supported" in c for c in summary["caveats"])  # too few replicates, on screen one
    assert "no claim can be supported" in md[: md.index("## 2. Setup")]


@pytest.mark.slow  # runs the pipeline or training processes: over the fast suite's budget
def test_headline_puts_the_answer_first(two_replicate_params: Params, tmp_path: Path) -> None:
    """metrics/summary.json: both variants' test AP, then the verdicts and effects, then the rest."""
    reports = run_pipeline(two_replicate_params, Layout(tmp_path), track=False)
    summary = json.loads(Layout(tmp_path).summary.read_text())
    assert list(summary) == [
        "test_ap",
        "verdict",
        "effect",
        "test_recall",
        "test_precision",
        "test_f1",
        "test_value_recall",
        "test_alert_precision",
        "test_savings_vs_none",
        "reference_test_ap",
        "shared_setting",
        "caveats",
        "caveat_kinds",
        "setting",
        "threshold",
        "replicates",
        "reference",
        "candidate",
    ]
    assert summary["reference"] == "baseline" and summary["candidate"] == "batchnorm"
    assert list(summary["test_ap"]) == ["batchnorm", "baseline"]
    assert set(summary["verdict"]) == {"minority", "accuracy", "loss", "speed"}
    assert set(summary["verdict"].values()) <= WORDS
    assert summary["setting"]["batchnorm"]["lr"] in (0.01, 0.003) and "weight_decay" in summary["setting"]["baseline"]
    metrics = {
        n: ModelMetrics.read(Layout(tmp_path).model_metrics(n), "evaluate") for n in ("batchnorm-s0", "batchnorm-s1")
    }
    assert summary["test_ap"]["batchnorm"] == pytest.approx(
        (metrics["batchnorm-s0"]["test_ap"] + metrics["batchnorm-s1"]["test_ap"]) / 2, abs=1e-4
    )
    effect = summary["effect"]["minority"]
    assert effect["mean"] == pytest.approx(summary["test_ap"]["batchnorm"] - summary["test_ap"]["baseline"], abs=2e-4)
    assert effect["low"] <= effect["mean"] <= effect["high"] and effect["band"] == 0.02
    assert (effect["unit"], effect["reading"]) == ("ap", "tuned") and effect["other"]["low"] <= effect["other"]["high"]
    speed = summary["effect"]["speed"]
    assert (speed["unit"], speed["reading"]) == ("log ratio", "shared")  # an optimisation claim: shared settings
    assert summary["test_value_recall"]["batchnorm"] == pytest.approx(
        (metrics["batchnorm-s0"]["test_value_recall"] + metrics["batchnorm-s1"]["test_value_recall"]) / 2, abs=1e-4
    )
    secondary = effect["secondary"]
    assert {"value_recall", "alert_precision"} <= set(secondary)
    md = (reports / "report.md").read_text()
    screen = md[: md.index("## 2. Setup")]  # the first screen names them beside AP, with their intervals
    m = secondary["value_recall"]
    assert (
        f"value recall {m['mean']:+.3g} [{m['low']:+.3g}, {m['high']:+.3g}]" in screen and "alert precision" in screen
    )
    # Both grid points are shared settings (the same trials for both variants), on one tuning seed.
    assert summary["shared_setting"]["batchnorm"]["pairs"] == 2
    assert summary["threshold"] == "max_f1" and summary["replicates"] == 2


@pytest.mark.slow  # runs the pipeline or training processes: over the fast suite's budget
def test_layernorm_is_compared_with_the_baseline_too(raw_params: dict, tmp_path: Path) -> None:
    raw_params["train"]["variants"] = ["batchnorm", "baseline", "layernorm"]
    raw_params["evaluate"]["references"] = {}
    md = (run_pipeline(parse(raw_params), Layout(tmp_path), track=False) / "report.md").read_text()
    assert "Does LayerNorm make this MLP" in md and "LayerNorm catches more fraud" in md
    summary = json.loads(Layout(tmp_path).summary.read_text())
    assert set(summary["test_ap"]) == {"batchnorm", "baseline", "layernorm"}
    assert set(summary["others"]["layernorm"]["verdict"]) == {"minority", "accuracy", "loss", "speed"}
    sentences = json.loads(Layout(tmp_path).answer.read_text())["sentences"]
    assert list(sentences) == ["batchnorm", "layernorm"] and sentences["layernorm"].startswith("LayerNorm ")


def _evaluated(params: Params, layout: Layout) -> Layout:
    prepare.run(params.prepare, layout)
    train_all(params, layout, track=False)
    evaluate.run(params, layout, track=False)
    return layout


def test_batches_below_the_minimum_are_merged_and_reported(raw_params: dict, tmp_path: Path) -> None:
    """2,400 training rows at batch 1,190 leave a 20-row tail (< train.min_batch 32): it joins the batch
    before it, and the report names the real batch sizes."""
    space(raw_params, batch_size=[1190])
    raw_params["train"]["min_batch"] = 32
    raw_params["evaluate"]["references"] = {}
    params = parse(raw_params)
    layout = _evaluated(params, Layout(tmp_path))
    info = json.loads(layout.run_file("batchnorm-s0").read_text())
    assert info["batch_sizes"] == [1190, 1210]
    md = (report.run(params, layout, track=False) / "report.md").read_text()
    assert "BatchNorm's smallest batch held 1,190 rows" in md
    assert "The last 20 training rows joined the batch before them (a batch of 1,210 rows)" in md
    assert "Only 2 optimisation step(s) per epoch" in md


@pytest.mark.slow  # runs the pipeline or training processes: over the fast suite's budget
def test_small_batch_warning(raw_params: dict, tmp_path: Path) -> None:
    space(raw_params, batch_size=[16])
    raw_params["train"]["epochs"] = 2
    raw_params["evaluate"]["references"] = {}
    md = (run_pipeline(parse(raw_params), Layout(tmp_path), track=False) / "report.md").read_text()
    assert "BatchNorm trained on batches of only 16 rows (< 32)" in md


def test_per_process_batchnorm_statistics_are_named(params: Params, evaluated: Layout) -> None:
    """Models trained over 2 processes without synced BatchNorm (as train writes their run files)."""
    for replicate in range(params.prepare.replicates):
        path = evaluated.run_file(f"batchnorm-s{replicate}")
        info = json.loads(path.read_text())
        info.update(ranks=2, batchnorm_sync=False, norm_batch_sizes=[size // 2 for size in info["batch_sizes"]])
        path.write_text(json.dumps(info))
    md = (report.run(params, evaluated, track=False) / "report.md").read_text()
    assert "BatchNorm statistics were per process: 2 training processes" in md
    info = json.loads(evaluated.run_file("batchnorm-s0").read_text())
    smallest = min(info["batch_sizes"])
    assert f"as few as {smallest // 2} rows of {smallest}" in md and "set `train.batchnorm_sync: true`" in md


@pytest.mark.parametrize("missing", ["prepare_summary", "history", "model_metrics", "selection"])
def test_missing_inputs_are_a_clear_error(missing: str, params: Params, evaluated: Layout) -> None:
    target = {
        "prepare_summary": evaluated.prepare_summary,
        "history": evaluated.history("baseline-s0"),
        "model_metrics": evaluated.model_metrics("batchnorm-s0"),
        "selection": evaluated.selection,
    }[missing]
    target.unlink()
    with pytest.raises(StageError, match=f"{target.name} not found; run the .* stage first"):
        report.run(params, evaluated, track=False)
    assert not evaluated.reports.exists()


def test_provenance_hashes_the_prepared_data_and_each_checkpoint(tmp_path: Path) -> None:
    lock = {
        "stages": {
            "prepare": {
                "outs": [{"path": "data/prepared", "md5": "a.dir"}, {"path": "metrics/prepare.json", "md5": "b"}]
            },
            "train@batchnorm": {"outs": [{"path": "models/batchnorm", "md5": "c.dir"}]},
        }
    }
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    checkpoint = tmp_path / "models" / "batchnorm" / "batchnorm-s0.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"weights")
    # md5 of b"weights", computed independently: `printf weights | md5sum`.
    assert provenance.output_hashes(tmp_path, [checkpoint, tmp_path / "absent.pt"]) == [
        ("data/prepared", "a.dir"),
        ("models/batchnorm/batchnorm-s0.pt", "63f4f1e9b725370f459720575cd5f953"),
    ]
    (tmp_path / "dvc.lock").unlink()
    assert provenance.output_hashes(tmp_path, []) == []


def test_money_and_alerts_for_every_model(params: Params, evaluated: Layout) -> None:
    """Section 6's money table: every compared and reference model, each number with an interval; the
    minority claim's details carry value-weighted recall and alert-budget precision; the headline too."""
    md = (report.run(params, evaluated, track=False) / "report.md").read_text()
    section = md[md.index("## 6. Minority class") : md.index("## 7.")]
    header = next(line for line in section.splitlines() if line.startswith("| Model | Value-weighted recall"))
    assert "Precision within the alert budget" in header and "Savings vs no model" in header
    rows = [line for line in section.splitlines() if line.startswith("| ") and "[" in line and "Value" not in line]
    names = ("with BatchNorm", "without normalisation", "logistic_regression", "hist_gradient_boosting")
    assert all(any(n in r for r in rows) for n in names), rows
    assert "100 alerts a day on the whole day's traffic" in section
    details = md[md.index("## 8. Verdicts in detail") : md.index("## 9.")]
    assert "value-weighted recall (share of the fraud amount caught)" in details
    assert "precision within the daily alert budget" in details
    summary = json.loads(evaluated.summary.read_text())
    assert list(summary)[:9] == [
        "test_ap",
        "verdict",
        "effect",
        "test_recall",
        "test_precision",
        "test_f1",
        "test_value_recall",
        "test_alert_precision",
        "test_savings_vs_none",
    ]
    secondary = summary["effect"]["minority"]["secondary"]
    assert set(secondary) == {"precision", "recall", "value_recall", "alert_precision"}
    assert all(v["low"] <= v["mean"] <= v["high"] for v in secondary.values())


@pytest.mark.slow  # the whole pipeline on the real ULB sample
def test_a_time_ordered_run_on_the_ulb_sample(raw_params: dict, sample_csv: Path, tmp_path: Path) -> None:
    """Time split with a 1-hour delay on the 0.47-day sample (its frauds sit mostly late: 5 of 96 in
    the earliest 60% of rows): the report's setup says what every block spans and holds, the caveat
    says the split is the same for every replicate, and the money table keeps its alert budget."""
    raw_params["prepare"].update(source=str(sample_csv), replicates=2)
    # After the 1-hour gap the validation block holds only 3 of the sample's frauds.
    raw_params["prepare"]["split"].update(method="time", delay="1h", min_positives=3)
    raw_params["evaluate"]["references"] = {}
    md = (run_pipeline(parse(raw_params), Layout(tmp_path), track=False) / "report.md").read_text()
    setup = md[md.index("## 2. Setup") : md.index("## 3.")]
    assert "**Split by time** (`Time`): 1 window(s)" in setup and "a gap of 1h is left out" in setup
    summary = PrepareSummary.read(Layout(tmp_path).prepare_summary, "prepare")
    block = summary.blocks["r0"]
    assert block["train"].end + 3600 < block["val"].start < block["test"].start  # the gap holds the hour
    assert block["gap"].rows > 0 and block["train"].end < block["gap"].start <= block["train"].end + 3600
    assert sum(block[p].rows for p in ("train", "gap", "val", "test")) == 5099
    assert summary.blocks["r1"] == block == summary.blocks["tuning"]
    rows = [line for line in setup.splitlines() if line.startswith("| r0 |")]
    assert [r.split(" | ")[1] for r in rows] == ["train", "gap", "val", "test"] and all(" h |" in r for r in rows)
    assert "The split is by time and the same for every replicate" in md[: md.index("## 2. Setup")]
    assert "Precision within the alert budget" in md
