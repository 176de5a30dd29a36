"""A suite for real, in a throw-away copy: two tables, one of which cannot be prepared (too few
positives) and one whose file is missing; the good table finishes, the others are named with their
one-line reasons, and a second run reuses the finished table instead of running it again (a failed
table is tried again: it has no result to reuse)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import mlflow
import pytest
import yaml

from tests.helpers.params import small_raw_params
from tests.helpers.repository import copy_repository, dvc, run

pytestmark = pytest.mark.slow
SUITE = {
    "name": "tiny",
    "params": {"prepare.split.min_positives": 5},
    "tables": [
        {"name": "ok", "source": "synthetic", "question": "the small default"},
        {
            "name": "too-rare",
            "source": "synthetic",
            "question": "too few positives",
            "prepare": {"synthetic": {"rows": 2000, "fraud_rate": 0.001}},
        },
        {"name": "no-file", "source": "data/raw/nope.csv"},
    ],
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = copy_repository(tmp_path_factory.mktemp("suite-repo"), small_raw_params())
    (repo / "suites" / "tiny.yaml").write_text(yaml.safe_dump(SUITE, sort_keys=False))
    yield repo
    dvc(repo, "queue", "stop", "--kill", check=False)


def test_a_broken_table_fails_alone_and_is_named(repo: Path) -> None:
    import sys

    done = run(repo, sys.executable, "-m", "pipeline.suite", "suites/tiny.yaml", "-j", "2", timeout=1500)
    head = json.loads((repo / "reports" / "suite" / "headline.json").read_text())
    assert head["finished"] == 1 and head["failed"] == 2, head["tables"]
    assert head["tables"]["ok"]["status"] == "finished"
    rare = head["tables"]["too-rare"]
    assert rare["status"] == "failed" and rare["reason"].startswith("prepare: error:")
    assert "min_positives" in rare["reason"]
    assert "nope.csv not found" in head["tables"]["no-file"]["reason"]
    assert "minority" in head["pooled"] and head["pooled"]["minority"]["tables"] == 1
    assert "few_replicates" in head["tables"]["ok"]["caveat_kinds"]  # read from the table's own summary.json
    md = (repo / "reports" / "suite" / "suite.md").read_text()
    assert (
        md.index("## Pooled verdict per claim")
        < md.index("**What weakens this verdict.**")
        < md.index("forest_minority.png")
    )
    assert "With fewer than 2, the verdict cannot be checked on them" in md  # one table: nothing to re-pool
    assert "table too-rare failed" in done.stderr

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    exp = client.get_experiment_by_name("batchnorm-vs-baseline")
    tagged = client.search_runs([exp.experiment_id], "tags.`pipeline.table` = 'ok' and tags.`pipeline.role` = 'model'")
    assert sorted(r.info.run_name for r in tagged) == ["baseline-s0", "batchnorm-s0"]
    table_runs = client.search_runs([exp.experiment_id], "tags.`pipeline.role` = 'table'")
    assert [r.data.tags["pipeline.table"] for r in table_runs] == ["ok"]
    assert "minority_effect" in table_runs[0].data.metrics
    assert any(k.startswith("mlflow.sharedViewState.suite-tiny") for k in exp.tags)
    (suite_run,) = client.search_runs([exp.experiment_id], "tags.`pipeline.role` = 'suite'")
    assert (
        "| minority | **" in suite_run.data.tags["mlflow.note.content"]
        and "| too few |" in (suite_run.data.tags["mlflow.note.content"])
    )

    start = time.monotonic()
    again = run(repo, sys.executable, "-m", "pipeline.suite", "suites/tiny.yaml", timeout=600)
    assert "table ok is done" in again.stderr  # reused; only the failed prepare is tried again
    assert "running 1 table(s)" in again.stderr and "table too-rare failed" in again.stderr
    assert time.monotonic() - start < 120
    assert len(client.search_runs([exp.experiment_id], "tags.`pipeline.role` = 'table'")) == 1
