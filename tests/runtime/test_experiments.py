"""DVC experiments as a library: a queue run with the venv not activated; reading back what a queued
experiment left, its one-line failure reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from pipeline.runtime import experiments

# A stage that records the param it ran with, in a git-tracked metrics file.
RECORD = "import json, os; json.dump({'key': int(os.environ['KEY'])}, open('record.json', 'w'))"


def _scratch_repository(root: Path) -> None:
    """A git + DVC repository of one stage, ``record``, whose command reads params.yaml's ``key``."""
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    (root / "params.yaml").write_text("key: 0\n")
    stage = {
        "cmd": f'KEY=${{key}} {sys.executable} -c "{RECORD}"',
        "params": ["key"],
        "metrics": [{"record.json": {"cache": False}}],
    }
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"record": stage}}))
    (root / "record.json").write_text("{}")
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "scratch"], cwd=root, check=True)


@pytest.mark.slow
def test_a_queue_runs_with_the_venv_not_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers, started from `.venv/bin/python -m pipeline.suite` with the venv not activated: dvc
    spawns them as plain `dvc`, and a worker that finds none dies at once, leaving the queue waiting
    for ever; both experiments finish, each with its own param."""
    _scratch_repository(tmp_path)
    monkeypatch.chdir(tmp_path)
    bin_folder = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != bin_folder))
    for key in (1, 2):
        assert experiments.queue(f"record-{key}", [f"key={key}"]) is None
    finished: list[bool] = []
    worker = threading.Thread(target=lambda: finished.append(experiments.run_queue(2)), daemon=True)
    worker.start()
    worker.join(timeout=180)
    assert finished == [True], "the queue did not finish in 3 minutes: did its workers find dvc?"
    for key in (1, 2):
        ref = experiments.find_ref(f"record-{key}")
        assert ref is not None, key
        assert json.loads(experiments.read_file(ref, "record.json") or "{}") == {"key": key}


@pytest.mark.parametrize(
    ("log", "reason"),
    [
        (
            "Running stage 'prepare':\nprepare: error: the test part holds 2 positives, fewer than "
            "prepare.split.min_positives=5; use more data\nERROR: failed to reproduce 'prepare'\n",
            "prepare: error: the test part holds 2 positives, fewer than prepare.split.min_positives=5; use more data",
        ),
        (
            "Traceback (most recent call last):\n  File x\nalembic.util.exc.CommandError: Online migration expected\n"
            "ERROR: failed to reproduce 'tune@batchnorm'\n",
            "stage tune@batchnorm crashed: alembic.util.exc.CommandError: Online migration expected "
            "(see `dvc queue logs t-1`)",
        ),
        (
            "ERROR: Experiment 't-1' is in queue but has not been started\n",
            "it never ran: the queue stopped before it started (run the suite again)",
        ),
    ],
)
def test_failure_reason_is_one_line(monkeypatch: pytest.MonkeyPatch, log: str, reason: str) -> None:
    monkeypatch.setattr(experiments, "dvc", lambda *a: subprocess.CompletedProcess(a, 0, log, ""))
    assert experiments.failure_reason("t-1") == reason
