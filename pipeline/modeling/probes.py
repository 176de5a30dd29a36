"""Validation between epochs: probes at steps growing geometrically, so that "how fast" can be told at
a resolution finer than an epoch where training moves fastest (the first steps) and at little cost
later, and a clock of training time (steps only: validation and probes are not training)."""

from __future__ import annotations

import math
import time

PROBE_COLUMNS = ("step", "epoch", "seconds", "val_ap", "val_loss")  # one row per probe


def probe_steps(growth: float, total: int) -> set[int]:
    """Steps 1, then each about ``growth`` times the last (rounded up, distinct), up to ``total``;
    none when growth is 0."""
    if growth <= 0:
        return set()
    steps, value = set(), 1.0
    while value <= total:
        steps.add(math.ceil(value))
        value = max(value * growth, math.ceil(value) + 1)
    return steps


class Clock:
    """Seconds spent training, shared out among the models trained together (a stack's k models each
    get 1/k of its steps' time)."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self._since: float | None = None
        self._share = 1

    def start(self, share: int = 1) -> None:
        """Training (again), for ``share`` models."""
        self._since, self._share = time.perf_counter(), share

    def stop(self) -> float:
        """Not training; returns the seconds so far."""
        if self._since is not None:
            self.seconds += (time.perf_counter() - self._since) / self._share
            self._since = None
        return self.seconds


def probe_record(step: int, steps_per_epoch: int, seconds: float, validation: dict[str, float]) -> dict[str, float]:
    """One probe: when (steps, epochs, training seconds) and what validation said."""
    values = (step, step / steps_per_epoch, seconds, validation["val_ap"], validation["val_loss"])
    return dict(zip(PROBE_COLUMNS, values))
