"""The MLflow store: reached or refused within seconds, the project's HTTP defaults, metrics in batches,
a fresh local store opened by several processes at once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

from pipeline.tracking import keys as tags
from pipeline.tracking import store

REPO = Path(__file__).resolve().parents[2]


def test_a_silent_server_fails_within_ten_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that accepts connections but never answers (hung, or a firewall's black hole)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        start = time.monotonic()
        with pytest.raises(Exception, match=f"MLflow tracking server {uri} is unreachable .*timed out"):
            store.client()
        assert time.monotonic() - start < 10


def test_project_defaults_never_override_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    store.use_project_defaults()
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == store.ENV_DEFAULTS["MLFLOW_HTTP_REQUEST_TIMEOUT"]


def test_metrics_go_in_batches_the_api_takes(monkeypatch: pytest.MonkeyPatch) -> None:
    """2,500 metrics: three calls of at most BATCH_LIMIT (1,000) each, and every value stored."""
    run_id = store.client().create_run(store.experiment_id("batches")).info.run_id
    calls: list[int] = []
    log_batch = mlflow.MlflowClient.log_batch

    def counting(self: mlflow.MlflowClient, run_id: str, metrics: list, **kwargs: object) -> object:
        calls.append(len(metrics))
        return log_batch(self, run_id, metrics=metrics, **kwargs)

    monkeypatch.setattr(mlflow.MlflowClient, "log_batch", counting)
    metrics = [Metric("m", float(step), 0, step) for step in range(2500)]
    for pending in store.log_metrics(run_id, metrics, synchronous=False):
        pending.wait()
    assert calls == [tags.BATCH_LIMIT, tags.BATCH_LIMIT, 500]
    history = store.client().get_metric_history(run_id, "m")
    assert sorted(m.step for m in history) == list(range(2500))


_OPEN_AT_ONCE = """
import sys, time
from pathlib import Path
from pipeline.tracking import store
go = Path(sys.argv[1])
go.with_name(f"ready-{sys.argv[2]}").touch()
while not go.exists():
    time.sleep(0.01)
store.client().search_experiments(max_results=1)
"""


def test_processes_opening_a_fresh_store_at_once_all_get_it(tmp_path: Path) -> None:
    """A queue's workers or torchrun's ranks meeting a fresh local store together: MLflow alone creates its
    tables unlocked, and 3 processes at once failed its migration in 4 rounds of 4 ("expected to match one row
    ... 0 found"). Released together after their imports, all 3 open it, and it holds MLflow's tables."""
    database = tmp_path / "fresh" / "mlflow.db"
    database.parent.mkdir()
    go = database.with_name("go")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{database}", "PYTHONPATH": str(REPO)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN_AT_ONCE, str(go), str(n)], env=env, stderr=subprocess.PIPE, text=True
        )
        for n in range(3)
    ]
    deadline = time.monotonic() + 120
    while len(list(database.parent.glob("ready-*"))) < 3:
        assert time.monotonic() < deadline and all(w.poll() is None for w in workers), "a worker never got ready"
        time.sleep(0.05)
    go.touch()
    errors = [w.communicate(timeout=120)[1] for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], [e.strip().splitlines()[-1:] for e in errors]
    assert mlflow.MlflowClient(f"sqlite:///{database}").search_experiments()[0].name == "Default"


def test_the_store_lock_nests() -> None:
    """A holder of store_lock may take it again (a first client() call inside it creates the store's
    tables under it): no deadlock on the process's own lock."""
    code = (
        "from pipeline.tracking import store\n"
        "with store.store_lock():\n"
        "    with store.store_lock():\n"
        "        store.client().search_experiments()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]


class _Flaky:
    """A client whose calls fail as MLflow's do when the server stops mid-answer, ``failures`` times each."""

    def __init__(self, failures: int, error: type[Exception]) -> None:
        self.failures, self.error, self.calls = failures, error, []

    def _call(self, name: str) -> str:
        self.calls.append(name)
        if self.calls.count(name) <= self.failures:
            try:
                raise self.error("Connection broken: IncompleteRead(0 bytes read, 8108 more expected)")
            except Exception as cut:
                raise MlflowException(f"API request to http://127.0.0.1/api failed with exception {cut}")  # noqa: B904
        return name

    def get_run(self) -> str:
        return self._call("get_run")

    def create_run(self) -> str:
        return self._call("create_run")


def test_a_repeatable_call_is_made_again_when_the_answer_was_cut_short(monkeypatch: pytest.MonkeyPatch) -> None:
    import requests

    monkeypatch.setattr(store, "REPEAT_WAITS", (0.0, 0.0, 0.0))
    flaky = _Flaky(2, requests.exceptions.ChunkedEncodingError)
    assert store.RepeatOnBrokenAnswer(flaky).get_run() == "get_run" and flaky.calls == ["get_run"] * 3
    with pytest.raises(MlflowException, match="IncompleteRead"):  # a creation may have happened: never repeated
        store.RepeatOnBrokenAnswer(flaky).create_run()
    assert flaky.calls.count("create_run") == 1
    always = _Flaky(9, requests.exceptions.ConnectionError)
    with pytest.raises(MlflowException):  # gives up after its repeats
        store.RepeatOnBrokenAnswer(always).get_run()
    assert always.calls == ["get_run"] * 4
    other = _Flaky(1, ValueError)  # not a connection failure: raised at once
    with pytest.raises(MlflowException):
        store.RepeatOnBrokenAnswer(other).get_run()
    assert other.calls == ["get_run"]
