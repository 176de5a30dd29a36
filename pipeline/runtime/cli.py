"""What every stage's command line shares: argument parsing, logging, and known errors as one line."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from pipeline.runtime.errors import Interrupted, UserError

PARAMS_FILE = Path("params.yaml")  # every stage's --params default (the params file DVC reads)


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


RESUME = {
    "score": "run the same command again",
    "study": "run the same command again",
    "compare": "run the same command again",
    "suite": "run the same command again (finished tables are reused)",
}


def on_signals() -> None:
    """SIGINT and SIGTERM raise Interrupted, so that runs end KILLED and staged outputs are removed;
    a second signal while that cleanup runs exits at once."""

    def handler(number: int, frame: object) -> None:
        name = signal.Signals(number).name
        code = 128 + number
        if getattr(handler, "fired", False):
            os._exit(code)
        handler.fired = True  # type: ignore[attr-defined]
        raise Interrupted(name, code)

    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, handler)


def run_stage(stage: str, body: Callable[[], object]) -> int:
    """Run a stage body: a user error becomes one line on stderr and exit code 2; SIGINT/SIGTERM one
    line and 130/143, after its MLflow runs were marked KILLED and its partial outputs removed."""
    setup_logging()
    on_signals()
    try:
        body()
    except UserError as exc:
        print(f"{stage}: error: {exc}", file=sys.stderr, flush=True)
        return 2
    except (Interrupted, KeyboardInterrupt) as exc:
        name, code = (exc.signal_name, exc.exit_code) if isinstance(exc, Interrupted) else ("SIGINT", 130)
        resume = RESUME.get(stage, "`dvc repro` resumes from the first unfinished stage")
        print(
            f"{stage}: interrupted by {name}; its MLflow runs are marked KILLED and no partial output was "
            f"left; {resume}",
            file=sys.stderr,
            flush=True,
        )
        return code
    return 0


def stage_main(
    stage: str,
    description: str | None,
    argv: list[str] | None,
    body: Callable[[argparse.Namespace], object],
    arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """Parse ``--params`` (and the stage's own ``arguments``), then run ``body(args)`` as a stage (it loads
    the params file ``args.params``: a problem in it is one line and exit code 2, like any user error)."""
    parser = argparse.ArgumentParser(
        prog=f"python -m pipeline.{stage}",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--params", type=Path, default=PARAMS_FILE, help="params file (default: params.yaml)")
    if arguments is not None:
        arguments(parser)
    args = parser.parse_args(argv)
    return run_stage(stage, lambda: body(args))
