"""Per-epoch logging: the Tracker protocol the training stages report each model's epochs to, a null one for
untracked runs, and the batched, asynchronous MLflow one."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

from pipeline.tracking import store

log = logging.getLogger("pipeline.train")


class Tracker(Protocol):
    """What the train stage reports to; MLflow or nothing."""

    run_id: str | None

    def log_epoch(self, epoch: int, metrics: Mapping[str, float], at: float | None = None) -> None:
        """Record one epoch's metrics at step=epoch, stamped ``at`` (seconds since 1970; default now: an
        epoch trained elsewhere and logged later keeps its own time)."""

    def flush(self) -> None:
        """Make sure everything recorded so far is stored."""


class NullTracker:
    """Tracking off: every call does nothing."""

    run_id: str | None = None

    def log_epoch(self, epoch: int, metrics: Mapping[str, float], at: float | None = None) -> None:
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

    def log_epoch(self, epoch: int, metrics: Mapping[str, float], at: float | None = None) -> None:
        """Record one epoch's metrics (stamped ``at``, default now); send the buffer when it is due."""
        from mlflow.entities import Metric

        stamp = int((time.time() if at is None else at) * 1000)
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
