"""DVC experiments as a library: queue named experiments, run the queue, find what they left.

Shared by the commands that ask one question of many experiments (``study``: one param swept;
``suite``: one table each). Every call goes through the ``dvc`` beside this interpreter.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)
ERROR_LINE = re.compile(r"^([a-z_]+): error: (.+)$")
EXCEPTION_LINE = re.compile(r"^[\w.]*(Error|Exception|Interrupt)\b[^:]*: .+")
STAGE_FAILED = re.compile(r"^ERROR: failed to reproduce '([^']+)'")


def _dvc_call(*args: str) -> tuple[list[str], dict[str, str]]:
    """The dvc command (the one beside this interpreter when there is one) and its environment: this
    interpreter's bin folder first on PATH, because dvc starts its queue workers as plain ``dvc``, and
    they the stages' ``python``, by name: found nowhere (a venv not activated), a worker dies at once
    and the queue waits for ever."""
    found = Path(sys.executable).with_name("dvc")
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "PATH": os.pathsep.join([str(found.parent), os.environ.get("PATH", os.defpath)]),
    }
    return [str(found) if found.exists() else "dvc", *args], env


def dvc(*args: str) -> subprocess.CompletedProcess[str]:
    """Run dvc (see _dvc_call), output captured."""
    command, env = _dvc_call(*args)
    return subprocess.run(command, capture_output=True, text=True, env=env)


def git(*args: str) -> str:
    """Run git and return its stdout ('' when it fails)."""
    done = subprocess.run(["git", *args], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else ""


def queue(name: str, items: list[str]) -> str | None:
    """Queue one experiment with ``-S`` items; None when queued, else dvc's last error line.

    --keep-going: a model that fails its own stage (a diverged tuning trial) does not stop the others.
    """
    sets = [arg for item in items for arg in ("-S", item)]
    queued = dvc("exp", "run", "--queue", "--keep-going", "--name", name, *sets)
    if queued.returncode == 0:
        return None
    lines = [line.strip() for line in (queued.stderr + queued.stdout).splitlines() if line.strip()]
    return lines[-1] if lines else f"dvc exit code {queued.returncode}"


def run_queue(jobs: int) -> bool:
    """Run every queued experiment with ``jobs`` workers and wait; False when some failed.

    The queue's workers are daemons that inherit dvc's stdout and stderr and may idle on after the queue
    is empty: they get a file, never a pipe, or waiting for the pipe to close would wait for them. They
    inherit its environment (see _dvc_call).
    """
    command, env = _dvc_call("exp", "run", "--run-all", "--jobs", str(jobs))
    with tempfile.TemporaryFile("w+") as out:
        code = subprocess.run(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        ).returncode
    return code == 0


def find_ref(name: str) -> str | None:
    """The git ref of a finished experiment of this name, on any baseline (names carry their own key)."""
    refs = git("for-each-ref", "--format=%(refname)", "refs/exps/").split()
    found = [ref for ref in refs if ref.rsplit("/", 1)[-1] == name]
    return found[-1] if found else None


def read_file(ref: str, path: str) -> str | None:
    """A git-tracked file of an experiment's commit (metrics/summary.json is one), or None."""
    done = subprocess.run(["git", "show", f"{ref}:{path}"], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


def failure_reason(name: str) -> str:
    """The one-line reason a queued experiment failed: its stage's ``<stage>: error: ...`` line."""
    logs = dvc("queue", "logs", name)
    lines = [line.strip() for line in (logs.stdout + logs.stderr).splitlines() if line.strip()]
    errors = [line for line in lines if ERROR_LINE.match(line)]
    if errors:
        return errors[-1]
    if any("has not been started" in line or "No output logs found" in line for line in lines):
        return "it never ran: the queue stopped before it started (run the suite again)"
    stages = [m.group(1) for m in map(STAGE_FAILED.match, lines) if m]
    crashes = [line for line in lines if EXCEPTION_LINE.match(line)]
    where = f"stage {stages[-1]} crashed" if stages else "it failed"
    return where + (f": {crashes[-1][:300]}" if crashes else "") + f" (see `dvc queue logs {name}`)"
