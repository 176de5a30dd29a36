"""Provenance tells code and params changes apart from the records the pipeline itself writes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pipeline.project.provenance import git_state


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    (tmp_path / "metrics").mkdir()
    for name in ("dvc.lock", "metrics/summary.json", "metrics/answer.json", "params.yaml", "code.py"):
        (tmp_path / name).write_text("v1\n")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "c"], cwd=tmp_path, check=True)
    return tmp_path


def test_a_fresh_repro_is_not_uncommitted_code(repo: Path) -> None:
    """After `dvc repro` in a fresh clone only dvc.lock (and the headline) changed: outputs, not code."""
    (repo / "dvc.lock").write_text("v2\n")
    (repo / "metrics" / "summary.json").write_text("v2\n")
    (repo / "metrics" / "answer.json").write_text("v2\n")
    state = git_state(repo)
    assert state.changed_code == [] and not state.dirty
    assert state.changed_outputs == ["dvc.lock", "metrics/answer.json", "metrics/summary.json"]


def test_changed_code_or_params_is_dirty(repo: Path) -> None:
    (repo / "params.yaml").write_text("v2\n")
    (repo / "code.py").write_text("v2\n")
    state = git_state(repo)
    assert state.dirty and state.changed_code == ["code.py", "params.yaml"] and state.changed_outputs == []


def test_outside_git_is_unknown(tmp_path: Path) -> None:
    assert git_state(tmp_path).commit == "unknown"
