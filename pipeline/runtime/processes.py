"""Whether a process still runs: for the leftovers (temporary folders, MLflow runs, a server) of one that died."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """True while a process with this id exists on this host (also one of another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
