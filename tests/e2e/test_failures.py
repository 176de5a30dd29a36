"""Failures a user meets running the commands: SIGINT/SIGTERM mid-training, Ctrl-C on `dvc repro`,
`dvc queue kill`, a dead tracking server. Each gives one line, the right exit code, a final MLflow
status and nothing partial. (A SIGKILLed run and a silent server: tests/tracking/.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import yaml

from pipeline.project.layout import Layout
from pipeline.project.params import parse
from pipeline.tracking.store import sqlite_client
from tests.helpers.params import small_raw_params, space


@pytest.fixture
def slow_training(tmp_path: Path) -> Path:
    """A folder with prepared data and params whose tuning takes a while (many small batches)."""
    from pipeline import prepare

    raw = small_raw_params()
    space(raw, lr=[0.01, 0.003], batch_size=[32])
    raw["train"].update(epochs=400, min_batch=16)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    prepare.run(parse(raw).prepare, Layout(tmp_path))
    return tmp_path


def _start_training(folder: Path) -> subprocess.Popen:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.train", "--variant", "batchnorm", "--tune"],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _model_files(folder: Path) -> list[Path]:
    """Every file under tuning/ but the Optuna study (kept by design: the next run finishes its trials)."""
    return [p for p in (folder / "tuning").rglob("*") if p.is_file() and p.name != "study.journal"]


def _wait_for_epochs(folder: Path, process: subprocess.Popen) -> str:
    """Wait until a tuning run has logged an epoch; return its id."""
    client = sqlite_client(folder / "mlflow.db")  # never creates the tables while the stage does
    deadline = time.time() + 120
    while time.time() < deadline:
        assert process.poll() is None, process.communicate()
        experiment = client.get_experiment_by_name("batchnorm-vs-baseline")
        tuning = client.search_runs([experiment.experiment_id], "tags.`pipeline.role` = 'tuning'") if experiment else []
        if tuning and client.get_metric_history(tuning[0].info.run_id, "train_loss"):
            return tuning[0].info.run_id
        time.sleep(0.5)
    raise AssertionError("training never logged an epoch")


@pytest.mark.slow  # runs the pipeline or training processes: over the fast suite's budget
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_training_ends_the_run_killed_and_leaves_nothing(slow_training: Path, sig: int, code: int) -> None:
    process = _start_training(slow_training)
    run_id = _wait_for_epochs(slow_training, process)
    process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    assert process.returncode == code, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"train: interrupted by {signal.Signals(sig).name}; its MLflow runs are marked KILLED")
    assert "dvc repro" in last and "Traceback" not in err
    client = mlflow.MlflowClient(f"sqlite:///{slow_training / 'mlflow.db'}")
    run = client.get_run(run_id)
    assert run.info.status == "KILLED" and run.info.end_time is not None
    assert len(run.data.metrics) > 0  # the buffered epochs were flushed before the run ended
    stack = client.search_runs([run.info.experiment_id], "tags.`pipeline.role` = 'tuning'")
    assert sorted(r.info.run_name for r in stack) == ["batchnorm-t0-s100", "batchnorm-t1-s100"]
    assert {r.info.status for r in stack} == {"KILLED"}  # both trials trained together; both runs end
    assert _model_files(slow_training) == []  # no checkpoint, history, run file or trials.json


def test_a_dead_server_fails_at_once_with_the_fix(prepared: Layout, raw_params: dict) -> None:
    (prepared.root / "params.yaml").write_text(yaml.safe_dump(raw_params, sort_keys=False))
    env = {**os.environ, "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.train", "--variant", "batchnorm", "--tune"],
        cwd=prepared.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # "At once": the process's imports plus one refused connection, not MLflow's ~4 minutes of retries; the
    # margin covers a loaded 2-core machine, where importing the training stack alone can take 20 s.
    assert time.monotonic() - start < 60
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith(
        "train: error: MLflow tracking server http://127.0.0.1:9 is unreachable ([Errno 111] "
        "Connection refused); start it (`make server` for the team setup), fix "
        "MLFLOW_TRACKING_URI, or unset MLFLOW_TRACKING_URI to use the local store sqlite:///"
    )
    assert [p for p in prepared.root.joinpath("tuning").rglob("*") if p.is_file()] == []


def _dvc_repo(tmp_path: Path, epochs: int = 200) -> tuple[Path, mlflow.MlflowClient]:
    from tests.helpers.repository import copy_repository

    raw = small_raw_params()
    space(raw, lr=[0.01, 0.003], batch_size=[32])
    raw["train"].update(epochs=epochs, min_batch=16, patience=0)
    raw["evaluate"]["references"] = {"logistic_regression": {"C": [1.0]}}
    repo = copy_repository(tmp_path / "repo", raw)
    return repo, sqlite_client(repo / "mlflow.db")


def _wait_for_a_training_run(client: mlflow.MlflowClient, process: subprocess.Popen | None = None) -> str:
    deadline = time.time() + 300
    while time.time() < deadline:
        assert process is None or process.poll() is None, "the pipeline ended before training"
        experiment = client.get_experiment_by_name("batchnorm-vs-baseline")
        active = client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'") if experiment else []
        running = [r for r in active if client.get_metric_history(r.info.run_id, "train_loss")]
        if running:
            return running[0].info.run_id
        time.sleep(0.5)
    raise AssertionError("no run started training")


@pytest.mark.slow
def test_ctrl_c_on_dvc_repro_then_dvc_repro_completes(tmp_path: Path) -> None:
    """Ctrl-C in a terminal signals the whole foreground process group: dvc and the stage."""
    from tests.helpers.repository import dvc, env_for

    repo, client = _dvc_repo(tmp_path)
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("dvc")), "repro"],
        cwd=repo,
        env=env_for(repo),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    run_id = _wait_for_a_training_run(client, process)
    os.killpg(process.pid, signal.SIGINT)
    out, _ = process.communicate(timeout=120)
    assert process.returncode != 0
    assert "interrupted by SIGINT; its MLflow runs are marked KILLED" in out and "Traceback" not in out, out[-3000:]
    assert client.get_run(run_id).info.status == "KILLED"
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw["train"]["epochs"] = 3  # the user resumes, in less time
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    dvc(repo, "repro")
    experiment = client.get_experiment_by_name("batchnorm-vs-baseline")
    statuses = {r.info.status for r in client.search_runs([experiment.experiment_id])}
    assert "RUNNING" not in statuses and "FINISHED" in statuses
    assert (repo / "reports" / "report.md").is_file()


@pytest.mark.slow
def test_dvc_queue_kill_marks_the_run_killed(tmp_path: Path) -> None:
    from tests.helpers.repository import dvc, start_queue

    repo, client = _dvc_repo(tmp_path, epochs=3000)  # a minute or more per model: the kill lands mid-training
    try:
        dvc(repo, "exp", "run", "--queue", "--name", "long")
        start_queue(repo, 1)
        run_id = _wait_for_a_training_run(client)
        dvc(repo, "queue", "kill", "long")
        deadline = time.time() + 120
        while client.get_run(run_id).info.status == "RUNNING":
            assert time.time() < deadline, "the killed worker's run stayed RUNNING"
            time.sleep(0.5)
        assert client.get_run(run_id).info.status == "KILLED"
        while "Running" in (status := dvc(repo, "queue", "status").stdout):
            assert time.time() < deadline, status
            time.sleep(1)
        assert "Failed" in status, status
    finally:
        dvc(repo, "queue", "stop", "--kill", check=False)
