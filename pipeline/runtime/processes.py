"""Processes: whether one still runs (for the leftovers, temporary folders, MLflow runs, a server, of one
that died), and how several share this machine's cores."""

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


def sharing_cores(workers: int) -> dict[str, str]:
    """The environment for one of ``workers`` processes that run at once here: this one's, with
    OMP_NUM_THREADS (torch's and scikit-learn's thread pools) set to the CPU cores shared out between
    them, unless it is set already. Each process would otherwise start a thread per core, and
    ``workers`` of them oversubscribe the cores (2 x 2 threads on 2 cores trained 1.2-1.5x slower)."""
    return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // max(1, workers))), **os.environ}
