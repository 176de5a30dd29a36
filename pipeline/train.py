"""DVC stages `tune` and `train`: train a variant's models, track them in MLflow, write checkpoints and
histories.

``python -m pipeline.train --variant V --tune`` tunes one variant (stage ``tune``): the trials of
train.tune, each a setting of its space on every tuning seed, into tuning/models/V/ with the Optuna
study and trials.json. ``python -m pipeline.train --variant V`` trains its compared models (stage
``train``): one per replicate of prepare.replicates (replicate r: its split, seed r) at the setting
select chose, into models/V/ and models/history/V/ (``--seed R``: replicate R only). A model whose
files are there from the same data, params and code is kept; the others train together, ``train.stack`` of
one batch size in one stack (``train.stack: 1``: one at a time, as torchrun trains each model over
several processes), here or on a Ray cluster (``train.cluster.backend: ray``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from contextlib import nullcontext

from pipeline.data.prepared import Prepared
from pipeline.project.artefacts import PrepareSummary
from pipeline.project.layout import Layout
from pipeline.project.params import Params, load_params
from pipeline.runtime.cli import stage_main
from pipeline.runtime.errors import StageError
from pipeline.tracking import store
from pipeline.training import distributed
from pipeline.training.cluster import Cluster
from pipeline.training.distributed import World, torchrun_command
from pipeline.training.jobs import Job, Planner, TrainResult, stale
from pipeline.training.loop import FitEnv
from pipeline.training.runner import environment, train_jobs
from pipeline.training.tuning import tune_variant

log = logging.getLogger("pipeline.train")


def tune(params: Params, variant: str, layout: Layout = Layout(), track: bool = True) -> list[TrainResult]:
    """Run the variant's trials; return every tuning model of every trial."""
    summary, planner, world, env, cluster = _start(params, variant, layout, track)
    with cluster or nullcontext():
        results = tune_variant(
            params,
            planner,
            variant,
            world,
            lambda jobs: _train_jobs(params, planner, summary, jobs, env, track, cluster),
        )
    if world.is_main:  # trials of an earlier study (other data, params or code) go
        keep = {r.name for r in results}
        for path in stale(layout, variant, True, [], (layout.trials(variant), layout.study(variant))):
            if path.name.split(".")[0] not in keep:
                path.unlink()
    return results


def run(
    params: Params, variant: str, layout: Layout = Layout(), track: bool = True, seeds: list[int] | None = None
) -> list[TrainResult]:
    """Train a variant's compared models (``seeds``: those replicates; default every one)."""
    summary, planner, world, env, cluster = _start(params, variant, layout, track)
    with cluster or nullcontext():
        jobs = planner.compared(variant, seeds)
        if world.is_main and seeds is None:  # the whole plan: whatever it no longer holds goes
            for path in stale(layout, variant, False, jobs):
                path.unlink()
        return _train_jobs(params, planner, summary, jobs, env, track, cluster)


def _start(
    params: Params, variant: str, layout: Layout, track: bool
) -> tuple[PrepareSummary, Planner, World, FitEnv, Cluster | None]:
    if variant not in params.variants.declared:
        raise StageError(
            f"variant {variant!r} is not declared in variants.declared ({', '.join(params.variants.declared)}); "
            "declare it"
        )
    summary = PrepareSummary.read(layout.prepare_summary, "prepare")
    world = World.from_env()
    # An unreachable cluster or store fails now, before any output is touched (the cluster first: its
    # check is quicker than a fresh store's setup).
    cluster = Cluster.connect(params.train.cluster) if params.train.cluster.backend == "ray" else None
    try:
        if track and world.is_main:
            store.client()
    except BaseException:
        if cluster is not None:
            cluster.close()
        raise
    if cluster is not None:
        return summary, Planner(params, layout, summary), world, cluster.environment(), cluster
    env = environment(params, world)  # joins the other training processes: rank 0's view of the disk is theirs
    return summary, Planner(params, layout, summary), world, env, None


def _train_jobs(
    params: Params,
    planner: Planner,
    summary: PrepareSummary,
    jobs: list[Job],
    env: FitEnv,
    track: bool,
    cluster: Cluster | None,
) -> list[TrainResult]:
    """Keep the jobs already done, train the rest (stacked or alone); results in the jobs' order."""
    world, layout = env.world, planner.layout
    todo_names = world.broadcast([job.name for job in jobs if not job.done()] if world.is_main else None)
    todo = [job for job in jobs if job.name in todo_names]  # type: ignore[operator]
    kept = [job for job in jobs if job not in todo]
    if world.is_main:
        for job in kept:  # a crash between writing a model and forgetting its snapshot
            layout.snapshot(job.name).unlink(missing_ok=True)
        if kept:
            log.info(
                "train[%s] %d of %d models kept from an earlier run with the same data, params and code",
                jobs[0].variant,
                len(kept),
                len(jobs),
            )
    trained: dict[str, TrainResult] = {}
    if todo:
        trained = {r.name: r for r in train_jobs(params, layout, Prepared(layout, summary), todo, env, track, cluster)}
    return [trained.get(job.name) or _kept(job) for job in jobs]


def _kept(job: Job) -> TrainResult:
    return TrainResult(
        job.name, job.checkpoint if job.checkpoint.is_file() else None, job.history, job.run_file, fit=None
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--variant V [--seed S]`` (compared models) or ``--variant V --tune`` (tuning)."""

    def arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--variant", required=True, help="a name declared in variants.declared")
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--seed", type=int, help="train only this compared model (stage train trains them all)")
        which.add_argument("--tune", action="store_true", help="tune the variant (stage tune)")

    def body(args: argparse.Namespace) -> object:
        params = load_params(args.params)
        world = World.from_env()
        if not world.is_main:
            logging.getLogger("pipeline").setLevel(logging.WARNING)  # one process speaks
        try:
            if args.tune:
                return tune(params, args.variant)
            return run(params, args.variant, seeds=None if args.seed is None else [args.seed])
        finally:
            distributed.leave(world)

    argv = sys.argv[1:] if argv is None else list(argv)
    launch = torchrun_command(argv)
    if launch is not None:  # this process becomes torchrun, which starts the ranks
        os.execve(launch[0][0], launch[0], launch[1])
    return stage_main("train", __doc__, argv, body, arguments)


if __name__ == "__main__":
    raise SystemExit(main())
