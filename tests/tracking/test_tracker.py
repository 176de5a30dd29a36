"""Per-epoch logging: records batched and sent asynchronously, everything stored after flush(), each epoch
at its step; tracking off does nothing."""

from __future__ import annotations

import mlflow
import pytest

from pipeline.tracking import store
from pipeline.tracking.tracker import MlflowTracker, NullTracker


def _run_id() -> str:
    client = store.client()
    return client.create_run(store.experiment_id("tracker")).info.run_id


def test_epochs_are_sent_in_batches_and_all_stored_after_flush() -> None:
    run_id = _run_id()
    tracker = MlflowTracker(run_id, send_every=3600.0)  # nothing is due during the test
    for epoch in (1, 2, 3):
        tracker.log_epoch(epoch, {"train_loss": 1.0 / epoch, "val_ap": 0.1 * epoch})
    client = mlflow.MlflowClient()
    assert client.get_metric_history(run_id, "train_loss") == []  # buffered: the loop never waited
    tracker.flush()
    history = client.get_metric_history(run_id, "train_loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(1, 1.0), (2, 0.5), (3, 1 / 3)]
    assert [m.step for m in client.get_metric_history(run_id, "val_ap")] == [1, 2, 3]


def test_a_due_batch_goes_out_while_training() -> None:
    run_id = _run_id()
    tracker = MlflowTracker(run_id, send_every=0.0)  # every epoch is due
    tracker.log_epoch(1, {"train_loss": 0.7})
    tracker.log_epoch(2, {"train_loss": 0.6})
    for operation in tracker._pending:  # the asynchronous calls already made, before any flush
        operation.wait()
    assert len(mlflow.MlflowClient().get_metric_history(run_id, "train_loss")) == 2
    tracker.flush()
    assert tracker._pending == [] and tracker._buffer == []


def test_tracking_off_does_nothing() -> None:
    tracker = NullTracker()
    tracker.log_epoch(1, {"train_loss": float("nan")})
    tracker.flush()
    assert tracker.run_id is None


@pytest.mark.parametrize("key", ["train_loss", "val_ap"])
def test_values_are_floats_at_their_epoch(key: str) -> None:
    run_id = _run_id()
    tracker = MlflowTracker(run_id)
    tracker.log_epoch(7, {key: 3})  # an int from a history row
    tracker.flush()
    (metric,) = mlflow.MlflowClient().get_metric_history(run_id, key)
    assert (metric.step, metric.value) == (7, 3.0)


def test_an_epoch_logged_later_keeps_its_own_time() -> None:
    """A stack trained on a cluster is logged by the driver when it comes back: each epoch at the time it
    ended on its node, not when it was logged."""
    run_id = _run_id()
    tracker = MlflowTracker(run_id)
    ended = [1_700_000_000.25, 1_700_000_003.5]
    for epoch, at in enumerate(ended, start=1):
        tracker.log_epoch(epoch, {"train_loss": 0.5}, at=at)
    tracker.log_epoch(3, {"train_loss": 0.4})  # now
    tracker.flush()
    history = sorted(mlflow.MlflowClient().get_metric_history(run_id, "train_loss"), key=lambda m: m.step)
    assert [m.timestamp for m in history[:2]] == [1_700_000_000_250, 1_700_000_003_500]
    assert history[2].timestamp > 1_700_000_003_500
