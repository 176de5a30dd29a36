"""The MLflow store: reached or refused within seconds, the project's HTTP defaults, metrics in batches."""

from __future__ import annotations

import os
import socket
import time

import mlflow
import pytest
from mlflow.entities import Metric

from pipeline.tracking import store, tags


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
