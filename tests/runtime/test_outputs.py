"""Stage outputs appear whole or not at all, and a killed process's temporary folders go away."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.runtime.outputs import staged


def test_a_failure_leaves_the_previous_output_and_no_temporary_folder(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("previous")
    with pytest.raises(RuntimeError), staged(target) as (temp,):
        temp.write_text("half")
        raise RuntimeError("stage failed")
    assert target.read_text() == "previous" and sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_the_temporary_folder_of_a_killed_process_is_removed_by_the_next_one(tmp_path: Path) -> None:
    """A SIGKILLed stage cannot clean up; the next stage writing the same output removes its folder,
    and never the folder of a process that is still running (this one) or of another output."""
    target = tmp_path / "models" / "batchnorm-lr0.01"
    killed = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(killed.stdout)  # exited: no process has this pid now (reuse within the test is unlikely)
    target.parent.mkdir(parents=True)
    abandoned = target.parent / f".{target.name}.{dead_pid}.k3j_x9"
    running = target.parent / f".{target.name}.{os.getpid()}.ab12cd"
    other = target.parent / f".{target.name}.5.{dead_pid}.zz9_qq"  # the folder of an output named NAME.5
    for folder in (abandoned, running, other):
        (folder / target.name).mkdir(parents=True)
    with staged(target) as (temp,):
        temp.mkdir()
        (temp / "model.pt").write_bytes(b"weights")
    assert (target / "model.pt").read_bytes() == b"weights"
    assert not abandoned.exists() and running.exists() and other.exists()
