"""Reading back what a queued DVC experiment left: its one-line failure reason."""

from __future__ import annotations

import subprocess

import pytest

from pipeline.runtime import experiments


@pytest.mark.parametrize(("log", "reason"), [
    ("Running stage 'prepare':\nprepare: error: the test part holds 2 positives, fewer than "
     "prepare.split.min_positives=5; use more data\nERROR: failed to reproduce 'prepare'\n",
     "prepare: error: the test part holds 2 positives, fewer than prepare.split.min_positives=5; use more data"),
    ("Traceback (most recent call last):\n  File x\nalembic.util.exc.CommandError: Online migration expected\n"
     "ERROR: failed to reproduce 'tune@batchnorm'\n",
     "stage tune@batchnorm crashed: alembic.util.exc.CommandError: Online migration expected "
     "(see `dvc queue logs t-1`)"),
    ("ERROR: Experiment 't-1' is in queue but has not been started\n",
     "it never ran: the queue stopped before it started (run the suite again)"),
])
def test_failure_reason_is_one_line(monkeypatch: pytest.MonkeyPatch, log: str, reason: str) -> None:
    monkeypatch.setattr(experiments, "dvc", lambda *a: subprocess.CompletedProcess(a, 0, log, ""))
    assert experiments.failure_reason("t-1") == reason
