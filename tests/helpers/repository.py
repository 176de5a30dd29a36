"""Helpers for end-to-end tests: a throw-away copy of the repository, and running commands in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]


def copy_repository(dest: Path, params: dict[str, Any]) -> Path:
    """Copy the working tree (tracked and untracked, not ignored) into a fresh git repo at dest."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True, capture_output=True
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    for name in ("dvc.lock",):  # a lock from another data size would only confuse the copy
        (dest / name).unlink(missing_ok=True)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "copy for test"], cwd=dest, check=True)
    return dest


def env_for(repo: Path) -> dict[str, str]:
    """The environment a user would have: this interpreter's bin first, the repo's own store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run(
    repo: Path, *command: str, check: bool = True, env: dict[str, str] | None = None, timeout: int = 900
) -> subprocess.CompletedProcess[str]:
    """Run a command in the copy; on failure, show its output."""
    result = subprocess.run(
        list(command), cwd=repo, env=env or env_for(repo), capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-6000:]}"
        )
    return result


def dvc(repo: Path, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run the dvc that sits beside this interpreter."""
    return run(repo, str(Path(sys.executable).parent / "dvc"), *args, **kwargs)


def start_queue(repo: Path, jobs: int, env: dict[str, str] | None = None) -> None:
    """`dvc queue start -j N`. Its workers are daemons that inherit the caller's stdout and stderr
    and may outlive the queue: give them files, never a pipe that someone waits to close."""
    with tempfile.TemporaryFile("w+") as out:
        code = subprocess.run(
            [str(Path(sys.executable).parent / "dvc"), "queue", "start", "-j", str(jobs)],
            cwd=repo,
            env=env or env_for(repo),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=120,
        ).returncode
        out.seek(0)
        assert code == 0, out.read()[-3000:]
