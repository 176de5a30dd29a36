"""Stage outputs written to a temporary path and moved into place only on success."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.runtime.processes import alive


@contextmanager
def staged(*targets: Path) -> Iterator[list[Path]]:
    """Yield temporary paths for ``targets``; move them into place only if the block succeeds.

    A failure leaves the previous outputs untouched and removes every temporary path. Temporary
    paths are named after the process; those of a process that died without cleaning up (SIGKILL,
    out of memory) are removed by the next one.
    """
    temps: list[Path] = []
    try:
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            _remove_abandoned(target)
            prefix = f".{target.name}.{os.getpid()}."
            temps.append(Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent)) / target.name)
        yield temps
        for temp, target in zip(temps, targets):
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(temp, target)
    finally:
        for temp in temps:
            shutil.rmtree(temp.parent, ignore_errors=True)


def _remove_abandoned(target: Path) -> None:
    """Remove the temporary folders for ``target`` (``.NAME.PID.random``) whose process is gone."""
    for folder in target.parent.glob(f".{glob.escape(target.name)}.*"):
        pid, _, rest = folder.name[len(target.name) + 2 :].partition(".")
        if not (pid.isdigit() and rest and "." not in rest and folder.is_dir()):
            continue
        if not alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
