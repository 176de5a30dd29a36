"""DVC stages `tune` and `train`: train models, track them in MLflow, write checkpoints and histories.

``python -m pipeline.train --variant V --lr LR`` trains the tuning models of one grid point (stage
``tune``): every tuning seed at that learning rate, into tuning/models/V-lrLR/ (one process, one
output). ``python -m pipeline.train --variant V --seed S`` trains one compared model (stage
``train``) at the learning rate the select stage chose for its variant, into models/.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from pipeline.evaluation.ranking import epoch_metrics
from pipeline.modeling import distributed
from pipeline.modeling.distributed import World
from pipeline.modeling.fit import BatchError, DivergedError, FitData, FitEnv, FitHooks, FitResult, fit, resolve_device
from pipeline.modeling.model import MLP, build, checkpoint
from pipeline.modeling.recipe import fit_config, mlp_config, pos_weight, training_config
from pipeline.modeling.snapshots import Snapshot, SnapshotFile, resume_point
from pipeline.project import provenance
from pipeline.project.config import Params
from pipeline.project.layout import Layout, PrepareSummary, Split, load_split, model_name, read_chosen
from pipeline.project.loading import flatten
from pipeline.project.variants import NAMES
from pipeline.project.variants import variant as catalogue_entry
from pipeline.runtime.cli import stage_main
from pipeline.runtime.errors import StageError
from pipeline.runtime.outputs import staged, write_json
from pipeline.runtime.torchrun import torchrun_command
from pipeline.tracking import runs, tags
from pipeline.tracking.tracker import EpochLog, NullTracker, Tracker

log = logging.getLogger("pipeline.train")


@dataclass(frozen=True)
class TrainResult:
    """Where one trained model went."""

    name: str
    checkpoint: Path | None  # None: a tuning model that diverged
    history: Path
    run_file: Path
    fit: FitResult | None


@dataclass(frozen=True)
class Job:
    """One model to train: which one, its execution group, and where its files go."""

    name: str
    variant: str
    seed: int
    lr: float
    tuning: bool
    group: str
    shape: dict[str, Any]  # the train params every model of the execution shares
    checkpoint: Path
    history: Path
    run_file: Path


def plan(params: Params, layout: Layout, summary: PrepareSummary, variant: str, seed: int, lr: float | None,
         folder: Path | None) -> Job:
    """A tuning model when ``lr`` is given (written to ``folder``, default its grid point's folder), else a
    compared model at the learning rate select chose for its variant."""
    tuning = lr is not None
    if lr is None:
        lr = float(read_chosen(layout, variant)["lr"])
    name = model_name(variant, seed, lr if tuning else None)
    shape = training_config(params.train)
    group = provenance.group_key({"data": summary.source_sha256, "prepare": summary.params, "train": shape})
    paths = (layout.checkpoint(name, tuning), layout.history(name, tuning), layout.run_file(name, tuning))
    if folder is not None:
        paths = tuple(folder / path.relative_to(layout.folder(name, tuning)) for path in paths)
    return Job(name, variant, seed, lr, tuning, group, shape, *paths)


def tune(params: Params, variant: str, lr: float, layout: Layout = Layout(), track: bool = True) -> list[TrainResult]:
    """Train every tuning seed of one grid point; its folder appears only when all of them succeeded."""
    final = layout.grid_point(variant, lr)
    if not World.from_env().is_main:  # the other ranks train alongside rank 0 and write nothing
        return [run(params, variant, seed, layout, track, lr, final) for seed in params.train.tune_seeds]
    with staged(final) as (folder,):
        folder.mkdir()
        results = [run(params, variant, seed, layout, track, lr, folder) for seed in params.train.tune_seeds]
    for seed in params.train.tune_seeds:  # kept until here: a restart does not train finished seeds again
        layout.snapshot(model_name(variant, seed, lr)).unlink(missing_ok=True)

    def moved(path: Path | None) -> Path | None:
        return None if path is None else final / path.relative_to(folder)

    return [replace(r, checkpoint=moved(r.checkpoint), history=moved(r.history), run_file=moved(r.run_file))
            for r in results]


def run(params: Params, variant: str, seed: int, layout: Layout = Layout(), track: bool = True,
        lr: float | None = None, folder: Path | None = None) -> TrainResult:
    """Train one model and write its checkpoint, history CSV and run file (see plan() for which)."""
    if variant not in NAMES:
        raise StageError(f"unknown variant {variant!r}; use one of {', '.join(NAMES)}")
    summary = PrepareSummary.read(layout)
    job = plan(params, layout, summary, variant, seed, lr, folder)
    world = World.from_env()
    train_split, val_split = (load_split(layout.prepared, s, summary.label) for s in ("train", "val"))
    env = _environment(params, world)
    snapshot = SnapshotFile(layout.snapshot(job.name), job.group) if world.max_restarts else None
    resume = resume_point(snapshot, world)
    epochs = EpochLog(job.name, params.train.epochs, world.is_main, resume.history if resume else [])
    try:
        with _tracked(track and world.is_main, params, job, summary, env, resume) as tracker:
            epochs.tracker = tracker
            model = _model(params, job, train_split.x.shape[1], env)
            positives = int(train_split.y.sum())
            cfg = fit_config(params.train, seed, job.lr, pos_weight(params.train, train_split.y.size - positives,
                                                                      positives))
            hooks = FitHooks(epoch_metrics, epochs if world.is_main else None,
                             _saver(snapshot, tracker, world) if snapshot else None)
            result = fit(model, FitData(_shard(train_split, world), _shard(val_split, world)), cfg, env, hooks, resume)
            epochs.close()
            if not world.is_main:
                return TrainResult(job.name, None, job.history, job.run_file, fit=result)
            _write(job, model.cpu().eval(), result, tracker, layout, summary, _run_file(job, env))
        if snapshot and world.is_main and not job.tuning:  # tune() clears its seeds' snapshots when all are done
            snapshot.clear()
    except DivergedError as exc:
        epochs.close()
        return _diverged(job, exc, epochs, env, world)
    except BatchError as exc:
        raise StageError(f"{job.name}: {exc}") from None
    log.info("train[%s] lr %g, best epoch %d (val_ap %.3f)%s", job.name, job.lr, result.best_epoch,
             result.best_val_ap, ", stopped early" if result.stopped_early else "")
    return TrainResult(job.name, job.checkpoint, job.history, job.run_file, fit=result)


def _environment(params: Params, world: World) -> FitEnv:
    """The device of this process, joined to the other training processes."""
    try:
        device = resolve_device(params.train.device, world.local_rank)
    except RuntimeError as exc:
        raise StageError(str(exc)) from None
    distributed.start(world, device)
    if params.train.bf16 and device.type != "cuda":
        log.warning("train.bf16 is ignored on %s (bf16 autocast is CUDA only)", device.type)
    return FitEnv(device, world, norm_synced=params.train.batchnorm_sync or world.size == 1)


def _model(params: Params, job: Job, n_features: int, env: FitEnv) -> MLP:
    """The freshly initialised network, its BatchNorm synced over the processes when asked."""
    config = mlp_config(params.train, job.variant, n_features)
    model = build(config, job.seed)
    if env.world.size > 1 and params.train.batchnorm_sync and config.norm == "batchnorm":
        model = distributed.sync_batchnorm(model, env.device)
    return model


def _saver(snapshot: SnapshotFile, tracker: Tracker, world: World):  # noqa: ANN202 (a callable)
    """The loop's snapshot hook: process 0 stores each epoch's state with its MLflow run."""
    def save(state: Snapshot) -> None:
        if world.is_main:
            tracker.flush()  # the logged epochs are those of the snapshot, even after a crash
            snapshot.save(state.with_run(tracker.run_id))

    return save


@contextmanager
def _tracked(track: bool, params: Params, job: Job, summary: PrepareSummary, env: FitEnv,
             resume: Snapshot | None) -> Iterator[Tracker]:
    """The model's MLflow run (the crashed one again after a restart), or no tracking."""
    if not track:
        yield NullTracker()
        return
    device = env.device
    mlflow_params = {**flatten({"prepare": summary.params, "train": job.shape}), "train.lr": job.lr,
                     "variant": job.variant, "seed": job.seed, "device": str(device),
                     **{f"data.rows_{s}": n for s, n in summary.rows.items()},
                     **{f"data.prevalence_{s}": p for s, p in summary.prevalence.items()}}
    run_tags = {tags.ROLE: "tuning" if job.tuning else "model", tags.VARIANT: job.variant, tags.SEED: str(job.seed),
                tags.LR: str(job.lr), tags.MODEL: job.name, tags.COLOR: catalogue_entry(job.variant).color,
                tags.DATA_SHA256: summary.source_sha256,
                tags.DEVICE: torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
    resumed = resume.run_id if resume is not None else None
    with runs.model_run(params.mlflow.experiment, job.name, job.group, mlflow_params, run_tags, resumed) as tracker:
        if resume is not None and tracker.run_id is not None:
            runs.set_tag(tracker.run_id, tags.RESUMED_AFTER, str(resume.epoch))
        yield tracker


def _run_file(job: Job, env: FitEnv) -> dict[str, Any]:
    """What the run file records of every model, trained or diverged."""
    return {"model": job.name, "variant": job.variant, "seed": job.seed, "lr": job.lr, "device": str(env.device),
            "group": job.group, "ranks": env.world.size, "batchnorm_sync": env.norm_synced}


def _write(job: Job, model: MLP, result: FitResult, tracker: Tracker, layout: Layout, summary: PrepareSummary,
           info: dict[str, Any]) -> None:
    """The checkpoint, history and run file, all or none; the history and training data into MLflow."""
    with staged(job.checkpoint, job.history, job.run_file) as (tmp_ckpt, tmp_history, tmp_run):
        torch.save(checkpoint(model, variant=job.variant, seed=job.seed, lr=job.lr, best_epoch=result.best_epoch,
                              params=job.shape, label=summary.label, features=summary.features,
                              data_sha256=summary.source_sha256), tmp_ckpt)
        pd.DataFrame(result.history).to_csv(tmp_history, index=False)
        info.update(best_epoch=result.best_epoch, epochs_run=len(result.history), batch_sizes=result.batch_sizes,
                    norm_batch_sizes=result.norm_batch_sizes)
        if tracker.run_id is not None:
            _log_outputs(tracker, tmp_history, layout, summary, result)
            info.update(runs.run_info(tracker.run_id))
        write_json(tmp_run, info)


def _diverged(job: Job, exc: DivergedError, epochs: EpochLog, env: FitEnv, world: World) -> TrainResult:
    """A compared model that diverges fails the stage; a tuning model's divergence is a result."""
    if not world.is_main:
        return TrainResult(job.name, None, job.history, job.run_file, fit=None)
    if not job.tuning:
        raise StageError(f"{job.name}: {exc}") from None
    # A grid point that diverges is a result, not a failure: its run is FAILED, select skips it.
    log.warning("train[%s] %s; select will not choose lr %g", job.name, exc, job.lr)
    info = _run_file(job, env)
    with staged(job.history, job.run_file) as (tmp_history, tmp_run):
        pd.DataFrame(epochs.records).to_csv(tmp_history, index=False)
        info.update(diverged_at=exc.epoch, epochs_run=len(epochs.records), best_epoch=0, batch_sizes=[])
        run_id = epochs.tracker.run_id
        if run_id:
            runs.set_tag(run_id, tags.DIVERGED_AT, str(exc.epoch))
            info.update(runs.run_info(run_id))
        write_json(tmp_run, info)
    return TrainResult(job.name, None, job.history, job.run_file, fit=None)


def _shard(split: Split, world: World) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's contiguous shard of a split (all of it in one process)."""
    start, stop = world.bounds(split.y.size)
    return torch.from_numpy(split.x[start:stop]), torch.from_numpy(split.y[start:stop])


def _log_outputs(tracker: Tracker, history: Path, layout: Layout, summary: PrepareSummary,
                 result: FitResult) -> None:
    tracker.flush()
    with tempfile.TemporaryDirectory() as tmp:
        named = Path(tmp) / "history.csv"
        shutil.copy(history, named)
        runs.log_artifact(named)
    runs.log_training_data(layout.prepared / "train.parquet", summary.features, summary.label,
                           summary.source_sha256)
    runs.log_summary({"best_epoch": result.best_epoch, "best_val_ap": result.best_val_ap,
                      "epochs_run": len(result.history)})


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--variant V --seed S`` (a compared model) or ``--variant V --lr LR`` (a grid point)."""
    def arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--variant", required=True, choices=NAMES)
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--seed", type=int, help="train this compared model (stage train)")
        which.add_argument("--lr", type=float, help="train every tuning seed at this learning rate (stage tune)")

    def body(params: Params, args: argparse.Namespace) -> object:
        world = World.from_env()
        if not world.is_main:
            logging.getLogger("pipeline").setLevel(logging.WARNING)  # one process speaks
        try:
            return tune(params, args.variant, args.lr) if args.lr is not None else run(params, args.variant, args.seed)
        finally:
            distributed.stop(world)

    argv = sys.argv[1:] if argv is None else list(argv)
    launch = torchrun_command(argv)
    if launch is not None:  # this process becomes torchrun, which starts the ranks
        os.execve(launch[0][0], launch[0], launch[1])
    return stage_main("train", __doc__, argv, body, arguments)


if __name__ == "__main__":
    raise SystemExit(main())
