"""The evaluate stage: thresholds from validation only, saved scores reproduce metrics, bad input."""

from __future__ import annotations

import json
import logging

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

from pipeline import evaluate, prepare, report, select
from pipeline.data.prepared import Prepared
from pipeline.evaluation.metrics import choose_threshold
from pipeline.project.artefacts import ModelMetrics, PrepareSummary, TuningScores
from pipeline.project.layout import Layout
from pipeline.project.params import Params, parse
from pipeline.runtime.errors import StageError
from pipeline.tracking import keys as tags
from tests.helpers.stages import raw_test, train_all


def _evaluate(params: Params, layout: Layout, **kwargs: object) -> dict:
    return evaluate.run(params, layout, **kwargs)


@pytest.mark.slow  # runs the pipeline or training processes: over the fast suite's budget
def test_every_model_and_reference_is_evaluated_and_tracked(
    params: Params, prepared: Layout, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    train_all(params, prepared)  # tracked training: evaluation goes into these runs
    trained = prepared
    results = _evaluate(params, trained)
    names = ["batchnorm-s0", "baseline-s0", "logistic_regression-s0", "hist_gradient_boosting-s0"]
    assert sorted(results) == sorted(names)
    for name in names:
        saved = ModelMetrics.read(trained.model_metrics(name), "evaluate")
        for key in (
            "test_precision",
            "test_recall",
            "test_f1",
            "test_ap",
            "test_roc_auc",
            "threshold",
            "test_prevalence",
            "test_mcc",
            "test_brier",
            "test_balanced_accuracy",
            "test_majority_accuracy",
            "test_tp",
            "test_precision_at_50",
            "test_ap_ci_low",
            "test_ap_ci_high",
            "train_ap",
            "test_accuracy_trap",
        ):
            assert key in saved, (name, key)
        assert sorted(p.name for p in trained.figures(name).iterdir()) == sorted(  # replicate 0: figures
            f"{f}.png" for f in ("pr_curve", "roc_curve", "confusion_matrix", "calibration", "score_histogram")
        )
    lr_grid = ModelMetrics.read(trained.model_metrics("logistic_regression-s0"), "evaluate")
    assert lr_grid.reference.chosen == {"C": 1.0} and [g["C"] for g in lr_grid.reference.grid] == [1.0]
    assert lr_grid.split == "r0" and lr_grid.replicate == 0
    tuning = TuningScores.read(trained.tuning_scores, "evaluate").models
    assert set(tuning) == {f"{v}-t{t}-s100" for v in ("batchnorm", "baseline") for t in (0, 1)}
    first = tuning["batchnorm-t0-s100"]
    assert first.trial == 0 and first.setting.lr in (0.01, 0.003) and 0 < first.val_ap <= 1 and first.test_roc_auc > 0
    combined = json.loads(trained.overview.read_text())
    assert set(combined["models"]) == set(names) and set(combined["variants"]) == {"batchnorm", "baseline"}
    curves = pd.read_csv(trained.curves / "precision_recall.csv")
    assert set(curves["model"]) == set(names)

    client = mlflow.MlflowClient()
    run_id = json.loads(trained.run_file("batchnorm-s0").read_text())["run_id"]
    run = client.get_run(run_id)
    assert run.data.metrics["test_ap"] == pytest.approx(results["batchnorm-s0"]["test_ap"])
    assert set(run.data.metrics) == {*tags.EVALUATION_KEYS, *tags.MONEY_KEYS, *tags.EPOCH_KEYS, *tags.SUMMARY_KEYS}
    assert run.data.metrics["test_value_recall"] == pytest.approx(results["batchnorm-s0"]["test_value_recall"])
    for key in tags.EPOCH_KEYS:  # evaluation never writes into a per-epoch key
        assert [m.step for m in client.get_metric_history(run_id, key)] == [1, 2, 3], key
    logged = {a.path for a in client.list_artifacts(run_id, "evaluation")}
    assert {"evaluation/pr_curve.png", "evaluation/batchnorm-s0.json"} <= logged
    assert "mlflow.parentRunId" not in run.data.tags  # not nested: visible in the runs table
    _assert_pyfunc_agrees(trained, json.loads(trained.logged.read_text())["models"], run_id)
    assert json.loads(trained.logged.read_text())["references"].keys() == set(names[2:])
    refs = mlflow.search_runs(search_all_experiments=True, filter_string="tags.`pipeline.role` = 'reference'")
    assert sorted(refs["tags.mlflow.runName"]) == sorted(["logistic_regression-s0", "hist_gradient_boosting-s0"])
    assert set(refs["tags.pipeline.group"]) == {run.data.tags["pipeline.group"]}
    assert refs["metrics.test_ap"].notna().all()
    assert all(refs[f"metrics.{key}"].notna().all() for key in tags.MONEY_KEYS)  # same keys: charts compare them
    _evaluate(params, trained)  # a second evaluation reuses the reference runs
    again = mlflow.search_runs(search_all_experiments=True, filter_string="tags.`pipeline.role` = 'reference'")
    assert len(again) == 2

    # Another store (the outputs came from DVC's cache, or mlflow.db was deleted): select, evaluate and the
    # report go on from the files, each with one warning, and log nothing into runs this store lacks.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{trained.root / 'another.db'}")
    with caplog.at_level(logging.WARNING):
        select.run(params, trained)
        assert _evaluate(params, trained) == results
        report.run(params, trained)
    lines = [r.getMessage() for r in caplog.records if "not in this MLflow store" in r.getMessage()]
    assert [line.split(":")[0] for line in lines] == ["select", "evaluate", "report"], lines
    assert "4 tuning run(s)" in lines[0] and "2 model run(s)" in lines[1] and "1 pipeline run(s)" in lines[2]
    assert json.loads(trained.logged.read_text()) == {"models": {}, "references": {}}
    assert mlflow.search_runs(search_all_experiments=True).empty


def _assert_pyfunc_agrees(layout: Layout, logged: dict, run_id: str) -> None:
    """The logged pyfunc, given the test split's raw rows (label and card id included, as a user might),
    returns evaluate's saved test scores to 1e-6 and the same decisions at the saved threshold; its
    signature names the feature columns only."""
    assert set(logged) == {"batchnorm-s0", "baseline-s0"} and logged["batchnorm-s0"]["run_id"] == run_id
    raw = raw_test(layout)
    for name, entry in logged.items():
        model = mlflow.pyfunc.load_model(entry["model_uri"])
        assert [c.name for c in model.metadata.get_input_schema().inputs] == PrepareSummary.read(
            layout.prepare_summary, "prepare"
        ).features
        out = model.predict(raw)
        scores = pd.read_parquet(layout.scores(name))
        saved = scores.loc[scores["split"] == "test", "score"].to_numpy()
        threshold = ModelMetrics.read(layout.model_metrics(name), "evaluate")["threshold"]
        assert list(out.columns) == ["fraud_probability", "fraud"] and len(out) == len(raw)
        np.testing.assert_allclose(out["fraud_probability"].to_numpy(), saved, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(out["fraud"].to_numpy(), (saved >= threshold).astype(int))
        assert model.metadata.run_id == entry["run_id"]


def test_saved_scores_reproduce_metrics_with_sklearn(params: Params, evaluated: Layout) -> None:
    names = ["batchnorm-s0", "baseline-s0", *(f"{r}-s0" for r in params.evaluate.references.names())]
    for name in names:
        metrics = ModelMetrics.read(evaluated.model_metrics(name), "evaluate")
        scores = pd.read_parquet(evaluated.scores(name))
        val, test = scores[scores["split"] == "val"], scores[scores["split"] == "test"]
        threshold = choose_threshold(
            val["y_true"].to_numpy(),
            val["score"].to_numpy(),
            params.evaluate.threshold.strategy,
            params.evaluate.threshold.target,
        )
        assert threshold == pytest.approx(metrics["threshold"])
        y, p = test["y_true"].to_numpy(), test["score"].to_numpy()
        assert precision_score(y, p >= threshold) == pytest.approx(metrics["test_precision"])
        assert recall_score(y, p >= threshold) == pytest.approx(metrics["test_recall"])
        assert f1_score(y, p >= threshold) == pytest.approx(metrics["test_f1"])
        assert average_precision_score(y, p) == pytest.approx(metrics["test_ap"])
        assert roc_auc_score(y, p) == pytest.approx(metrics["test_roc_auc"])
        assert metrics["test_ap_ci_low"] <= metrics["test_ap"] <= metrics["test_ap_ci_high"]
        # Money from the saved rows by hand: the fraud amount among the alerts over all fraud amount.
        fraud = test["amount"].to_numpy() * y
        assert fraud[p >= threshold].sum() / fraud.sum() == pytest.approx(metrics["test_value_recall"])
        assert fraud[p >= threshold].sum() == pytest.approx(metrics["test_amount_caught"])
        cost = params.evaluate.cost_per_alert * (p >= threshold).sum() + fraud[p < threshold].sum()
        assert metrics["test_savings_vs_none"] == pytest.approx(fraud.sum() - cost)
        assert (
            metrics["test_value_recall_ci_low"] <= metrics["test_value_recall"] <= metrics["test_value_recall_ci_high"]
        )
        # Each day's k highest cards (a card's highest score that day; a fraud if any of its rows is; no
        # ties here): precision averaged over the days.
        budget = metrics.alert_budget_by_day
        cards = test.groupby(["day", "entity"]).agg(score=("score", "max"), fraud=("y_true", "max")).reset_index()
        daily = [cards[cards["day"] == int(d)].nlargest(k, "score")["fraud"].mean() for d, k in budget.items()]
        assert metrics["test_alert_precision"] == pytest.approx(np.mean(daily))
        assert sum(budget.values()) == metrics["test_alert_budget"] and set(test["day"]) == set(budget)


def test_the_cost_strategy_chooses_on_validation_amounts(raw_params: dict, trained: Layout) -> None:
    raw_params["evaluate"]["threshold"]["strategy"] = "cost"
    raw_params["evaluate"]["references"] = {}
    params = parse(raw_params)
    results = _evaluate(params, trained, track=False)
    scores = pd.read_parquet(trained.scores("batchnorm-s0"))
    val = scores[scores["split"] == "val"]
    y, p, amount = val["y_true"].to_numpy(), val["score"].to_numpy(), val["amount"].to_numpy()
    cost = {t: params.evaluate.cost_per_alert * (p >= t).sum() + (amount * y)[p < t].sum() for t in np.unique(p)}
    assert results["batchnorm-s0"]["threshold"] == min(cost, key=lambda t: (cost[t], -t))
    raw_params["prepare"]["amount"] = None  # no amounts: the cost strategy cannot run, and says why
    unpriced = parse(raw_params)
    prepare.run(unpriced.prepare, trained)
    before = trained.model_metrics("batchnorm-s0").read_text()
    with pytest.raises(StageError, match="strategy cost needs each transaction's amount: set prepare.amount"):
        _evaluate(unpriced, trained, track=False)
    assert trained.model_metrics("batchnorm-s0").read_text() == before  # the last evaluation is kept whole


def _relabel(layout: Layout, part: str, labels: object) -> None:
    """Set the labels of replicate 0's rows of one part in the prepared table."""
    rows = Prepared(layout, PrepareSummary.read(layout.prepare_summary, "prepare")).indices("r0")[part]
    table = pd.read_parquet(layout.table)
    table.loc[rows, "Class"] = labels(table.loc[rows, "Class"]) if callable(labels) else labels
    table.to_parquet(layout.table, index=False)


def test_threshold_never_sees_test_labels(raw_params: dict, trained: Layout) -> None:
    """Flip every test label of the replicate: its test metrics change, its thresholds cannot."""
    raw_params["evaluate"]["references"] = {"logistic_regression": {"C": [1.0]}}
    params = parse(raw_params)
    before = _evaluate(params, trained, track=False)
    _relabel(trained, "test", lambda y: 1 - y)
    after = _evaluate(params, trained, track=False)
    assert set(before) == {"batchnorm-s0", "baseline-s0", "logistic_regression-s0"}
    for name in before:
        assert after[name]["threshold"] == before[name]["threshold"]
        assert after[name]["test_recall"] != before[name]["test_recall"]


def test_missing_model_is_a_clear_error_and_leaves_nothing(params: Params, trained: Layout) -> None:
    trained.checkpoint("baseline-s0").unlink()
    with pytest.raises(StageError, match=r"baseline-s0\.pt: model file not found; re-run training"):
        _evaluate(params, trained)
    assert not trained.evaluation.exists() and not trained.curves.exists()


def test_corrupt_or_mismatched_model_is_a_clear_error(params: Params, trained: Layout) -> None:
    trained.checkpoint("baseline-s0").write_bytes(b"not a checkpoint")
    with pytest.raises(StageError, match="not a readable checkpoint"):
        _evaluate(params, trained)
    raw = params.model_dump()
    raw["prepare"]["seed"] = 1  # other data: the checkpoint's data hash no longer matches
    prepare.run(parse(raw).prepare, trained)
    trained.checkpoint("baseline-s0").unlink()
    with pytest.raises(StageError, match="trained on other data"):
        _evaluate(params, trained)


def test_split_without_positives_is_a_clear_error(params: Params, trained: Layout) -> None:
    _relabel(trained, "val", 0)
    with pytest.raises(StageError, match="the val part of split 'r0' holds no positives"):
        _evaluate(params, trained)


def test_references_can_be_turned_off(raw_params: dict, trained: Layout) -> None:
    raw_params["evaluate"]["references"] = {}
    results = _evaluate(parse(raw_params), trained, track=False)
    assert sorted(results) == ["baseline-s0", "batchnorm-s0"]  # references off: none fitted


def test_reference_grid_is_chosen_on_validation(raw_params: dict, trained: Layout) -> None:
    raw_params["evaluate"]["references"] = {"logistic_regression": {"C": [0.0001, 1.0]}}
    _evaluate(parse(raw_params), trained, track=False)
    saved = ModelMetrics.read(trained.model_metrics("logistic_regression-s0"), "evaluate")
    best = max(saved.reference.grid, key=lambda g: g["val_ap"])  # validation AP on the tuning split
    assert saved.reference.chosen == {"C": best["C"]} and len(saved.reference.grid) == 2
    assert min(g["val_ap"] for g in saved.reference.grid) < best["val_ap"]  # the two points really differ
