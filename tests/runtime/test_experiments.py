"""DVC experiments as a library: the queue's workers share the cores out; reading back what a queued
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

# A stage that records the thread setting it ran with, in a git-tracked metrics file.
RECORD = ("import json, os; json.dump({'key': int(os.environ['KEY']), "
          "'omp': os.environ.get('OMP_NUM_THREADS')}, open('threads.json', 'w'))")


def _scratch_repository(root: Path) -> None:
    """A git + DVC repository of one stage, ``record``, whose command reads params.yaml's ``key``."""
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    (root / "params.yaml").write_text("key: 0\n")
    stage = {"cmd": f"KEY=${{key}} {sys.executable} -c \"{RECORD}\"", "params": ["key"],
             "metrics": [{"threads.json": {"cache": False}}]}
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"record": stage}}))
    (root / "threads.json").write_text("{}")
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "scratch"], cwd=root, check=True)


@pytest.mark.slow
def test_the_queues_workers_share_the_cores_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers at once: each experiment's stage runs with OMP_NUM_THREADS = cores // 2 (the
    pipeline's torch and scikit-learn would otherwise start a thread per core in each); and the
    workers start with the venv not on PATH (`.venv/bin/python -m pipeline.suite`): dvc spawns them as
    plain `dvc`, and a worker that finds none dies at once, leaving the queue waiting for ever."""
    _scratch_repository(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    bin_folder = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != bin_folder))
    for key in (1, 2):
        assert experiments.queue(f"threads-{key}", [f"key={key}"]) is None
    finished: list[bool] = []
    worker = threading.Thread(target=lambda: finished.append(experiments.run_queue(2)), daemon=True)
    worker.start()
    worker.join(timeout=180)
    assert finished == [True], "the queue did not finish in 3 minutes: did its workers find dvc?"
    for key in (1, 2):
        ref = experiments.find_ref(f"threads-{key}")
        assert ref is not None, key
        recorded = json.loads(experiments.read_file(ref, "threads.json") or "{}")
        assert recorded == {"key": key, "omp": str(max(1, (os.cpu_count() or 1) // 2))}


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
