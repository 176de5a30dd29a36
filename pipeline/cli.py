"""What every stage's main() shares: logging set-up and turning known errors into one line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from pipeline.config import ConfigError
from pipeline.data import DataError


class StageError(RuntimeError):
    """A user-fixable problem found while a stage runs (bad model file, diverged training...)."""


USER_ERRORS = (ConfigError, DataError, StageError)


def setup_logging() -> None:
    """One readable line per message on stderr."""
    root = logging.getLogger()
    if not any(getattr(h, "_pipeline", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._pipeline = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    for noisy in ("mlflow", "alembic", "urllib3", "git", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_stage(stage: str, body: Callable[[], object]) -> int:
    """Run a stage body; a user error becomes one line on stderr and exit code 2."""
    setup_logging()
    try:
        body()
    except USER_ERRORS as exc:
        print(f"{stage}: error: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0
