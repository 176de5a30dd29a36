"""The saved comparison views: the state the MLflow UI reads (the pinned version's), stored as an
experiment tag it can decode, and the links that open it."""

from __future__ import annotations

import base64
import json
import zlib

import mlflow

from pipeline.tracking import keys, store, ui


def test_saved_views_group_runs_by_variant() -> None:
    for state in (ui.view_state("abc123"), ui.suite_view_state("default")):
        assert state["groupBy"] == {
            "aggregateFunction": "average",
            "groupByKeys": [{"mode": "tag", "groupByData": "pipeline.variant"}],
        }
        assert state["useGroupedValuesInCharts"] is True and state["lifecycleFilter"] == "Active"


def test_an_executions_view_shows_its_compared_models_and_every_chart() -> None:
    state = ui.view_state("abc123")
    assert state["searchFilter"] == "tags.`pipeline.group` = 'abc123' and tags.`pipeline.role` != 'tuning'"
    charts = {c["metricKey"]: c for c in state["compareRunCharts"]}
    assert set(charts) == {*keys.EPOCH_KEYS, *keys.EVALUATION_KEYS, *keys.MONEY_KEYS, *keys.SUMMARY_KEYS}
    assert charts["train_loss"]["type"] == "LINE" and charts["train_loss"]["scaleType"] == "log"
    assert charts["val_ap"]["scaleType"] == "linear" and charts["test_ap"]["type"] == "BAR"
    assert state["compareRunSections"][0]["uuid"] == "learning-curves"  # learning curves first
    suite = ui.suite_view_state("default")
    assert suite["searchFilter"] == "tags.`pipeline.suite` = 'default' and tags.`pipeline.role` = 'model'"


def test_a_saved_view_is_an_experiment_tag_the_ui_decodes_and_a_link_opens() -> None:
    exp_id = store.experiment_id("views")
    url = ui.save_comparison_view(exp_id, "abc123", "batchnorm-vs-baseline", "BatchNorm vs baseline")
    assert (
        url == f"http://127.0.0.1:5000/#/experiments/{exp_id}/runs?viewStateShareKey=batchnorm-vs-baseline-abc123"
        "&compareRunsMode=CHART"
    )
    tags = mlflow.MlflowClient().get_experiment(exp_id).tags
    envelope = json.loads(tags["mlflow.sharedViewState.batchnorm-vs-baseline-abc123"])
    assert envelope["name"] == "BatchNorm vs baseline abc123" and envelope["state"].startswith("deflate;")
    decoded = json.loads(zlib.decompress(base64.b64decode(envelope["state"].removeprefix("deflate;"))))
    assert decoded == ui.view_state("abc123")
    assert ui.save_suite_view(exp_id, "default").endswith("viewStateShareKey=suite-default&compareRunsMode=CHART")
