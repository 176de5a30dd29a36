"""What every stage's command line shares: argument parsing, logging, and known errors as one line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from pipeline.config import PARAMS_FILE, Params, load_params
from pipeline.errors import UserError


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
    except UserError as exc:
        print(f"{stage}: error: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


def stage_main(stage: str, description: str | None, argv: list[str] | None,
               body: Callable[[Params, argparse.Namespace], object],
               arguments: Callable[[argparse.ArgumentParser], None] | None = None) -> int:
    """Parse ``--params`` (and the stage's own ``arguments``), load params, run ``body`` as a stage."""
    parser = argparse.ArgumentParser(prog=f"python -m pipeline.{stage}", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=PARAMS_FILE, help="params file (default: params.yaml)")
    if arguments is not None:
        arguments(parser)
    args = parser.parse_args(argv)
    return run_stage(stage, lambda: body(load_params(args.params), args))
