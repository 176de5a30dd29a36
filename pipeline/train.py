"""DVC stages `tune` and `train`: train a variant's models, track them in MLflow, write checkpoints and
histories.

``python -m pipeline.train --variant V --tune`` trains the tuning models of one variant (stage
``tune``): every learning rate of train.lr on every tuning seed, into tuning/models/V/.
``python -m pipeline.train --variant V`` trains its compared models (stage ``train``): every seed of
train.seeds at the learning rate select chose, into models/V/ and models/history/V/ (``--seed S``:
that one only). A model whose files are there from the same data, params and code is kept; the
others train together, ``train.stack`` of them in one stack, or one at a time with ``train.stack:
1``, which is also how torchrun trains each model over several processes.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from pipeline.modeling import distributed
from pipeline.modeling.distributed import World
from pipeline.modeling.fit import FitEnv
from pipeline.project.config import Params
from pipeline.project.layout import Layout, PrepareSummary
from pipeline.project.variants import NAMES
from pipeline.runtime.cli import stage_main
from pipeline.runtime.errors import StageError
from pipeline.runtime.torchrun import torchrun_command
from pipeline.training.alone import train_alone
from pipeline.training.environment import environment, splits
from pipeline.training.jobs import Job, TrainResult, plan, stale
from pipeline.training.stacked import train_stacked

log = logging.getLogger("pipeline.train")


def tune(params: Params, variant: str, layout: Layout = Layout(), track: bool = True) -> list[TrainResult]:
    """Train every tuning model of a variant (each learning rate x each tuning seed)."""
    return train_variant(params, variant, layout, track, tuning=True)


def run(params: Params, variant: str, layout: Layout = Layout(), track: bool = True,
        seeds: list[int] | None = None) -> list[TrainResult]:
    """Train a variant's compared models (``seeds``, default every one of train.seeds)."""
    return train_variant(params, variant, layout, track, tuning=False, seeds=seeds)


def train_variant(params: Params, variant: str, layout: Layout, track: bool, tuning: bool,
                  seeds: list[int] | None = None) -> list[TrainResult]:
    """Plan the variant's models, keep the ones already done, train the rest (stacked or alone)."""
    if variant not in NAMES:
        raise StageError(f"unknown variant {variant!r}; use one of {', '.join(NAMES)}")
    summary = PrepareSummary.read(layout)
    jobs = plan(params, layout, summary, variant, tuning, seeds)
    world = World.from_env()
    env = environment(params, world)  # joins the other training processes: rank 0's view of the disk is theirs
    todo_names = world.broadcast([job.name for job in jobs if not job.done()] if world.is_main else None)
    if world.is_main and seeds is None:  # the whole plan: whatever it no longer holds goes
        for path in stale(layout, variant, tuning, jobs):
            path.unlink()
    todo = [job for job in jobs if job.name in todo_names]  # type: ignore[operator]
    kept = [job for job in jobs if job not in todo]
    if world.is_main:
        for job in kept:  # a crash between writing a model and forgetting its snapshot
            layout.snapshot(job.name).unlink(missing_ok=True)
    if kept and world.is_main:
        log.info("train[%s] %d of %d models kept from an earlier run with the same data, params and code",
                 variant, len(kept), len(jobs))
    trained = {r.name: r for r in _train(params, layout, summary, todo, env, track)} if todo else {}
    return [trained.get(job.name) or _kept(job) for job in jobs]


def _train(params: Params, layout: Layout, summary: PrepareSummary, jobs: list[Job], env: FitEnv,
           track: bool) -> list[TrainResult]:
    data = splits(layout, summary)
    if env.world.size > 1 or params.train.stack == 1:
        return [train_alone(params, layout, summary, job, data, env, track) for job in jobs]
    return train_stacked(params, layout, summary, jobs, data, env, track)


def _kept(job: Job) -> TrainResult:
    return TrainResult(job.name, job.checkpoint if job.checkpoint.is_file() else None, job.history, job.run_file,
                       fit=None)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--variant V [--seed S]`` (compared models) or ``--variant V --tune`` (tuning models)."""
    def arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--variant", required=True, choices=NAMES)
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--seed", type=int, help="train only this compared model (stage train trains them all)")
        which.add_argument("--tune", action="store_true", help="train the variant's tuning models (stage tune)")

    def body(params: Params, args: argparse.Namespace) -> object:
        world = World.from_env()
        if not world.is_main:
            logging.getLogger("pipeline").setLevel(logging.WARNING)  # one process speaks
        try:
            if args.tune:
                return tune(params, args.variant)
            return run(params, args.variant, seeds=None if args.seed is None else [args.seed])
        finally:
            distributed.stop(world)

    argv = sys.argv[1:] if argv is None else list(argv)
    launch = torchrun_command(argv)
    if launch is not None:  # this process becomes torchrun, which starts the ranks
        os.execve(launch[0][0], launch[0], launch[1])
    return stage_main("train", __doc__, argv, body, arguments)


if __name__ == "__main__":
    raise SystemExit(main())
