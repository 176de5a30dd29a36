"""How people use the pipeline: MLflow runs after dvc repro, dvc exp run, `mlflow run`, compare, and a
tiny study. All in one throw-away copy of the repository. (The queue with two workers against one
SQLite store: tests/e2e/test_dvc_workflow.py, the sweep of docs/mlflow.md.)"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from pipeline.project.layout import Layout
from tests.helpers.params import small_raw_params
from tests.helpers.repository import copy_repository, dvc, env_for, run

pytestmark = pytest.mark.slow
MODELS = ["batchnorm-s0", "baseline-s0"]
TUNING = ["batchnorm-t0-s100", "batchnorm-t1-s100", "baseline-t0-s100", "baseline-t1-s100"]
EXPERIMENT = "batchnorm-vs-baseline"


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    raw = small_raw_params()
    raw["evaluate"]["references"] = {"logistic_regression": {"C": [1.0]}}
    repo = copy_repository(tmp_path_factory.mktemp("exp-repo"), raw)
    dvc(repo, "repro")
    yield repo
    # Queue workers are daemons that outlive their queue. Stop them only now: a stop request is
    # also obeyed by workers started later in the same repository.
    dvc(repo, "queue", "stop", "--kill", check=False)


def client(repo: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")


def model_runs(repo: Path, extra: str = "") -> list:
    c = client(repo)
    exp = c.get_experiment_by_name(EXPERIMENT)
    return c.search_runs([exp.experiment_id], filter_string="tags.`pipeline.role` = 'model'" + extra)


def test_runs_have_identical_keys_histories_test_metrics_and_artifacts(repo: Path) -> None:
    runs = model_runs(repo)
    assert sorted(r.info.run_name for r in runs) == sorted(MODELS)
    keys = [set(r.data.metrics) for r in runs]
    assert keys[0] == keys[1] and {"test_ap", "test_recall", "threshold", "val_loss"} <= keys[0]
    c = client(repo)
    for r in runs:
        assert len(c.get_metric_history(r.info.run_id, "train_loss")) == 3
        paths = {a.path for a in c.list_artifacts(r.info.run_id)}
        assert {"evaluation", "history.csv"} <= paths
        assert r.outputs.model_outputs  # the logged model


def test_compare_prints_models_side_by_side(repo: Path) -> None:
    out = run(repo, sys.executable, "-m", "pipeline.compare").stdout
    header = out.splitlines()[1]
    assert "batchnorm (n=1)" in header and "baseline (n=1)" in header and "logistic_regression" in header
    assert "test_ap" in out and "test_recall" in out


def test_exp_run_adds_tagged_runs_and_keeps_earlier_ones(repo: Path) -> None:
    before = {r.info.run_id: r.data.metrics["test_ap"] for r in model_runs(repo)}
    dvc(repo, "exp", "run", "-S", "train.epochs=2", "--name", "short")
    tagged = model_runs(repo, " and tags.`dvc.exp_name` = 'short'")
    assert sorted(r.info.run_name for r in tagged) == sorted(MODELS)
    assert all("train.epochs=2" in r.data.tags["dvc.changed_params"] for r in tagged)
    assert all(len(client(repo).get_metric_history(r.info.run_id, "val_loss")) == 2 for r in tagged)
    after = {r.info.run_id: r.data.metrics.get("test_ap") for r in model_runs(repo)}
    assert {k: after[k] for k in before} == before  # the earlier runs are untouched
    shown = json.loads(dvc(repo, "exp", "show", "--json").stdout)
    assert "short" in json.dumps(shown) and "test_ap" in json.dumps(shown)


def test_exp_run_over_two_processes_leaves_one_run_per_model(repo: Path) -> None:
    """torchrun starts 2 ranks per model; rank 0 alone talks to MLflow."""
    dvc(repo, "exp", "run", "-S", "train.distributed.nproc=2", "--name", "two-procs")
    for role, names in (("model", MODELS), ("tuning", TUNING)):
        c = client(repo)
        exp = c.get_experiment_by_name(EXPERIMENT)
        runs = c.search_runs(
            [exp.experiment_id], f"tags.`pipeline.role` = '{role}' and tags.`dvc.exp_name` = 'two-procs'"
        )
        assert sorted(r.info.run_name for r in runs) == sorted(names), role
        assert all(r.info.status == "FINISHED" and r.data.params["train.distributed.nproc"] == "2" for r in runs)


def test_mlflow_run_lands_in_the_pipeline_grouping(repo: Path) -> None:
    """A model trained through `mlflow run` and the same model trained by DVC share one group; the
    launcher runs that `mlflow run` creates are filed in that group, described, and hold no metrics.
    The `main` entry point (`dvc repro`, then compare) files its launcher even when nothing re-ran,
    and leaves the comparison in it. (A model done with the same data, params and code is kept, not
    retrained: each time its checkpoint is removed first, so that it trains.)"""
    mlflow_cli = str(Path(sys.executable).with_name("mlflow"))
    env = {**env_for(repo), "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}"}
    checkpoint = Layout(repo).checkpoint("batchnorm-s0")
    checkpoint.unlink()
    run(
        repo,
        mlflow_cli,
        "run",
        ".",
        "-e",
        "train",
        "-P",
        "variant=batchnorm",
        "-P",
        "seed=0",
        "--env-manager",
        "local",
        "--experiment-name",
        EXPERIMENT,
        env=env,
    )
    assert checkpoint.is_file()
    checkpoint.unlink()
    dvc(repo, "repro", "train@batchnorm")
    via_mlflow, via_dvc = sorted(
        model_runs(repo, " and attributes.run_name = 'batchnorm-s0'"), key=lambda r: r.info.start_time
    )[-2:]
    group = via_mlflow.data.tags["pipeline.group"]
    assert via_dvc.data.tags["pipeline.group"] == group
    assert "mlflow.parentRunId" not in via_mlflow.data.tags | via_dvc.data.tags
    run(repo, mlflow_cli, "run", ".", "-e", "main", "--env-manager", "local", "--experiment-name", EXPERIMENT, env=env)
    c = client(repo)
    launchers = c.search_runs(
        [via_mlflow.info.experiment_id], "tags.`pipeline.role` = 'launcher'", order_by=["attributes.start_time ASC"]
    )
    assert len(launchers) == 2  # no stray, untagged launcher
    for launcher in launchers:
        assert launcher.data.tags["pipeline.group"] == group and not launcher.data.metrics
        assert group in launcher.data.tags["mlflow.note.content"]
    comparison = c.download_artifacts(launchers[-1].info.run_id, "comparison.txt")
    assert "batchnorm (n=1)" in Path(comparison).read_text()
    untagged = c.search_runs([via_mlflow.info.experiment_id], "attributes.status = 'FINISHED'")
    assert all(r.data.tags.get("pipeline.role") for r in untagged)


def test_tiny_study_runs_end_to_end_and_shows_failures(repo: Path) -> None:
    """lr=10 with SGD diverges while tuning; --keep-going lets the rest of that experiment still run. (The
    study holds the learning rate at each value: one setting, so a grid of one trial.)"""
    run(
        repo,
        sys.executable,
        "-m",
        "pipeline.study",
        "lr",
        "--values",
        "0.01,10",
        "-S",
        "train.optimizer.name=sgd",
        "-S",
        "train.model.hidden=[256,256]",
        "-S",
        "train.tune.trials=1",
        "--jobs",
        "1",
        timeout=900,
    )
    (study_dir,) = (repo / "reports" / "studies").iterdir()
    md = (study_dir / "study.md").read_text()
    assert "| train.lr | Variant |" in md and (study_dir / "study.png").is_file()
    assert "0.01 | batchnorm" in md and "0.01 | baseline" in md
    assert "baseline seed 100 at train.lr=10 (tuning)" in md  # diverged: a FAILED run in the study, not a crash
    assert (study_dir / "study.html").read_text().count("data:image/png;base64,") == 1
