"""A suite's tables in MLflow: each table's experiment runs tagged with the table, one run per table
holding its effects, and one suite run holding the report."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipeline.tracking import runs, store
from pipeline.tracking.keys import DVC_EXP_NAME, NOTE, ROLE, SUITE, SUITE_KEY, TABLE

log = logging.getLogger(__name__)


def tag_table_runs(experiment: str, exp_name: str, table: str, suite: str) -> int:
    """Tag every run of a table's DVC experiment with the table and the suite; return how many."""
    found = runs.search(experiment, f"tags.`{DVC_EXP_NAME}` = '{exp_name}'")
    client = store.client()
    for run in found:
        if run.data.tags.get(TABLE) != table or run.data.tags.get(SUITE) != suite:
            client.set_tag(run.info.run_id, TABLE, table)
            client.set_tag(run.info.run_id, SUITE, suite)
    return len(found)


def table_run(
    experiment: str,
    suite: str,
    table: str,
    key: str,
    exp_name: str,
    settings: dict[str, Any],
    metrics: dict[str, float],
) -> str:
    """The table's own run (role ``table``): its settings as params, its effects as metrics; reused when
    the same table, code and params were already recorded (``pipeline.suite_key``)."""
    tags = {
        **runs.environment_tags(),
        ROLE: "table",
        SUITE: suite,
        TABLE: table,
        SUITE_KEY: key,
        DVC_EXP_NAME: exp_name,
    }
    exp_id = store.experiment_id(experiment)
    query = (
        f"tags.`{ROLE}` = 'table' and tags.`{SUITE}` = '{suite}' and tags.`{TABLE}` = '{table}' and "
        f"tags.`{SUITE_KEY}` = '{key}'"
    )
    found = store.client().search_runs([exp_id], filter_string=query, max_results=1)
    if found:
        return found[0].info.run_id
    with store.store_lock():
        run_id = runs.find_or_create_run(
            exp_id, tags, f"table-{suite}-{table}", (ROLE, SUITE, TABLE, SUITE_KEY), settings
        )
    runs.log_results(run_id, metrics)
    return run_id


def suite_run(experiment: str, suite: str, report_dir: Path, description: str) -> str:
    """The suite's run (role ``suite``): the report as artifacts, the pooled verdict as its description.
    A new run per invocation: each is one pooled verdict over the tables of that moment."""
    exp_id = store.experiment_id(experiment)
    client = store.client()
    run = client.create_run(
        exp_id,
        run_name=f"suite-{suite}",
        tags={**runs.environment_tags(), ROLE: "suite", SUITE: suite, NOTE: description},
    )
    status = "FAILED"
    try:
        runs.log_results(run.info.run_id, {}, (report_dir,), "suite")
        status = "FINISHED"
    finally:
        client.set_terminated(run.info.run_id, status)
    return run.info.run_id
