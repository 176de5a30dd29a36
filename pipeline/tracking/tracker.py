"""Per-epoch reporting: the Tracker protocol the training loop's callers use, a null one for
untracked runs, the batched, asynchronous MLflow one, the terminal's progress (EpochReporter), and
EpochLog, which feeds both and keeps every record."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from typing import Any, Protocol

from pipeline.tracking import store
from pipeline.tracking.keys import EPOCH_KEYS

log = logging.getLogger("pipeline.train")


class Tracker(Protocol):
    """What the train stage reports to; MLflow or nothing."""

    run_id: str | None

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Record one epoch's metrics at step=epoch."""

    def flush(self) -> None:
        """Make sure everything recorded so far is stored."""


class NullTracker:
    """Tracking off: every call does nothing."""

    run_id: str | None = None

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Do nothing."""

    def flush(self) -> None:
        """Do nothing."""


class MlflowTracker:
    """One MLflow run. Every epoch is recorded with step=epoch; records are sent asynchronously in
    one batch at most every ``send_every`` seconds (the UI stays live, the loop never waits)."""

    def __init__(self, run_id: str, send_every: float = 2.0) -> None:
        self.run_id = run_id
        self.send_every = send_every
        self._buffer: list[Any] = []
        self._pending: list[Any] = []
        self._last_send = time.monotonic()

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Record one epoch's metrics; send the buffer when it is due."""
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        self._buffer.extend(Metric(key, float(value), stamp, epoch) for key, value in metrics.items())
        if time.monotonic() - self._last_send >= self.send_every:
            self._send()

    def _send(self) -> None:
        self._pending.extend(store.log_metrics(self.run_id, self._buffer, synchronous=False))
        self._buffer = []
        self._last_send = time.monotonic()

    def flush(self) -> None:
        """Send what is buffered and wait until everything is stored."""
        if self._buffer:
            self._send()
        for operation in self._pending:
            operation.wait()
        self._pending.clear()


class EpochReporter:
    """A progress bar on a terminal; one line per epoch otherwise."""

    def __init__(self, label: str, epochs: int, show: bool = True) -> None:
        self.label, self.epochs = label, epochs
        self.bar = None
        if show and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=epochs, desc=f"train[{label}]", file=sys.stderr, leave=True)

    def __call__(self, epoch: int, record: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{record['train_loss']:.4f}", val_loss=f"{record['val_loss']:.4f}",
                                 val_ap=f"{record['val_ap']:.3f}")
            if epoch == self.epochs:
                self.bar.close()
            return
        log.info("train[%s] epoch %d/%d  loss %.4f  val_loss %.4f  val_ap %.3f  %.2fs", self.label, epoch,
                 self.epochs, record["train_loss"], record["val_loss"], record["val_ap"], record["epoch_seconds"])

    def close(self) -> None:
        """Close the bar early (early stopping, failure)."""
        if self.bar is not None:
            self.bar.close()


class StackReporter:
    """A stack's progress: one bar (epochs) on a terminal, else one line per epoch for all its models."""

    def __init__(self, label: str, epochs: int, models: int) -> None:
        self.label, self.epochs, self.models = label, epochs, models
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=epochs, desc=f"train[{label} x{models}]", file=sys.stderr, leave=True)

    def __call__(self, epoch: int, records: dict[int, dict[str, float]]) -> None:
        aps = [r["val_ap"] for r in records.values()]
        seconds = next(iter(records.values()))["epoch_seconds"] if records else 0.0
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(training=len(records), best_val_ap=f"{max(aps, default=0):.3f}")
            return
        log.info("train[%s x%d] epoch %d/%d  %d training  val_ap %.3f-%.3f  %.2fs", self.label, self.models, epoch,
                 self.epochs, len(records), min(aps, default=0), max(aps, default=0), seconds)

    def close(self) -> None:
        """Every model has finished."""
        if self.bar is not None:
            self.bar.close()


class EpochLog:
    """Every epoch's record as it comes: kept (a diverged run's history), sent to MLflow, and shown
    (by ``reporter``: one model's, or nothing when a stack reports for all of its models)."""

    def __init__(self, reporter: EpochReporter | None, earlier: list[dict[str, float]]) -> None:
        self.records: list[dict[str, float]] = [dict(row) for row in earlier]  # a resumed run's epochs
        self.reporter = reporter
        self.tracker: Tracker = NullTracker()

    def __call__(self, epoch: int, record: dict[str, float]) -> None:
        self.records.append({"epoch": epoch, **record})
        self.tracker.log_epoch(epoch, {key: record[key] for key in EPOCH_KEYS})
        if self.reporter is not None:
            self.reporter(epoch, record)

    def close(self) -> None:
        """Training ended (finished, stopped early or failed)."""
        if self.reporter is not None:
            self.reporter.close()
