"""Links into the MLflow UI, and a ready-made comparison view for each pipeline execution.

The view is a "saved view" of the experiment's runs page (MLflow 3.17 keeps them as experiment tags
``mlflow.sharedViewState.<key>``, and opens one with ``?viewStateShareKey=<key>``): this execution's
runs, charts in sections (learning curves first, then the test split, then training), every run
shown, grouped by variant (the charts draw each variant's mean over its seeds with a min-max band; the
runs table lists each group's runs under it). A suite has one more view: every table's compared models,
grouped by variant. The state's shape is the UI's own, for the pinned MLflow version; tests open it in Chromium.
"""

from __future__ import annotations

import base64
import json
import time
import zlib
from typing import Any
from urllib.parse import urlencode

from pipeline.tracking import store
from pipeline.tracking.keys import (
    EPOCH_KEYS,
    EVALUATION_KEYS,
    GROUP,
    MONEY_KEYS,
    ROLE,
    RUN_NAME,
    SUITE,
    SUMMARY_KEYS,
    VARIANT,
    VIEW_PREFIX,
)

SECTIONS = (
    ("learning-curves", "Learning curves per epoch", "LINE", EPOCH_KEYS[:-1]),
    ("test-split", "Test split, kept model", "BAR", EVALUATION_KEYS),
    ("money", "Money and alerts on the test split", "BAR", MONEY_KEYS),
    ("training", "Training", "BAR", SUMMARY_KEYS),
    ("timing", "Seconds per epoch", "LINE", EPOCH_KEYS[-1:]),
)


def view_key(group: str, slug: str) -> str:
    """The saved view of one pipeline execution (``slug``: ``batchnorm-vs-baseline``, the compared variants'
    names, the question's candidate first)."""
    return f"{slug}-{group}"


def _chart(key: str, kind: str, section: str) -> dict[str, Any]:
    chart = {
        "uuid": f"{section}-{key}",
        "type": kind,
        "runsCountToCompare": 100,
        "metricSectionId": section,
        "deleted": False,
        "isGenerated": False,
        "displayName": key,
        "metricKey": key,
    }
    if kind == "LINE":
        chart.update(
            lineSmoothness=0,
            xAxisScaleType="linear",
            scaleType="log" if key.endswith("loss") else "linear",
            range={},
            xAxisKey="step",
            selectedXAxisMetricKey="",
            yAxisKey="metric",
            yAxisExpressions=[],
            ignoreOutliers=False,
            useGlobalXaxisKey=True,
            useGlobalLineSmoothing=True,
        )
    return chart


def group_by_variant() -> dict[str, Any]:
    """The runs page's grouping (MLflow 3.17's ``RunsGroupByConfig``): one group per variant, charts drawing
    the group's average with a band from its min to its max over the runs (seeds, replicates, tables)."""
    return {"aggregateFunction": "average", "groupByKeys": [{"mode": "tag", "groupByData": VARIANT}]}


def view_state(group: str) -> dict[str, Any]:
    """The runs page as the comparison needs it: the execution's compared models, references and
    pipeline run (its tuning runs stay in the group, out of this view), grouped by variant."""
    return runs_view(f"tags.`{GROUP}` = '{group}' and tags.`{ROLE}` != 'tuning'")


def suite_view_state(suite: str) -> dict[str, Any]:
    """Every compared model of a suite's tables, grouped by variant: each variant's mean curve over every
    table and replicate, with its band."""
    return runs_view(f"tags.`{SUITE}` = '{suite}' and tags.`{ROLE}` = 'model'")


def runs_view(search_filter: str) -> dict[str, Any]:
    """A saved runs-page state: the runs a filter finds, charts in sections, grouped by variant."""
    return {
        "searchFilter": search_filter,
        "orderByKey": f"tags.`{RUN_NAME}`",
        "orderByAsc": True,  # models by name (legends list them first), references, the pipeline run
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "datasetsFilter": [],
        "modelVersionFilter": "All Runs",
        "columnOrder": [],
        "columnWidths": {},
        "runsHiddenMode": "SHOW_ALL",
        "selectedColumns": [f"metrics.`{k}`" for k in ("test_ap", "test_recall", "test_precision")]
        + [f"tags.`{VARIANT}`"],
        "compareRunCharts": [_chart(key, kind, section) for section, _, kind, keys in SECTIONS for key in keys],
        "compareRunSections": [
            {
                "uuid": section,
                "name": name,
                "display": True,
                "isReordered": True,
                "deleted": False,
                "isGenerated": False,
            }
            for section, name, _, _ in SECTIONS
        ],
        "viewMaximized": False,
        "runListHidden": False,
        "isAccordionReordered": True,
        "useGroupedValuesInCharts": True,
        "hideEmptyCharts": True,
        "groupBy": group_by_variant(),
        "groupsExpanded": {},
        "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0, "selectedXAxisMetricKey": ""},
    }


def _save(exp_id: str, key: str, name: str, state: dict[str, Any]) -> None:
    payload = json.dumps(state, separators=(",", ":")).encode()
    now = int(time.time() * 1000)
    envelope = {
        "name": name,
        "createdAt": now,
        "updatedAt": now,
        "state": "deflate;" + base64.b64encode(zlib.compress(payload)).decode(),
    }
    store.client().set_experiment_tag(exp_id, VIEW_PREFIX + key, json.dumps(envelope, separators=(",", ":")))


def save_suite_view(exp_id: str, suite: str) -> str:
    """Store (or refresh) a suite's comparison view; return the link that opens it in chart mode."""
    _save(exp_id, f"suite-{suite}", f"Suite {suite}: variants pooled over tables and seeds", suite_view_state(suite))
    return suite_url(exp_id, suite)


def suite_url(exp_id: str, suite: str) -> str:
    """The link that opens a suite's view, charts first."""
    return _view_url(exp_id, f"suite-{suite}")


def _view_url(exp_id: str, key: str) -> str:
    query = urlencode({"viewStateShareKey": key, "compareRunsMode": "CHART"})
    return f"{store.ui_base()}/#/experiments/{exp_id}/runs?{query}"


def save_comparison_view(exp_id: str, group: str, slug: str, title: str) -> str:
    """Store (or refresh) the execution's comparison view (``slug``: its key's part naming the variants,
    ``title``: "BatchNorm vs baseline"); return the link that opens it in chart mode."""
    _save(exp_id, view_key(group, slug), f"{title} {group}", view_state(group))
    return comparison_url(exp_id, group, slug)


def comparison_url(exp_id: str, group: str, slug: str) -> str:
    """The link that opens an execution's comparison view, charts first."""
    return _view_url(exp_id, view_key(group, slug))
