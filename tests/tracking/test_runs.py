"""MLflow runs of the pipeline: orphans of killed processes are ended, never a live one's."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from pipeline.tracking import keys as tags
from pipeline.tracking import runs, store


def test_a_sigkilled_run_is_marked_killed_by_the_next_run(tmp_path: Path) -> None:
    """SIGKILL cannot be caught: the next model run in the experiment ends the orphan."""
    client = store.client()
    exp_id = store.experiment_id("orphans")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = client.create_run(exp_id, tags={tags.PROCESS: f"{socket.gethostname()}:{dead.pid}"}).info.run_id
    alive = client.create_run(exp_id, tags={tags.PROCESS: f"{socket.gethostname()}:{os.getpid()}"}).info.run_id
    with runs.open_model_run("orphans", "m", "g" * 12, {}, {}):
        pass
    assert client.get_run(orphan).info.status == "KILLED"
    assert "died without ending the run" in client.get_run(orphan).data.tags[tags.NOTE]
    assert client.get_run(alive).info.status == "RUNNING"
