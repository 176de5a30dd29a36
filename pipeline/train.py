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

from pipeline import distributed, packaging, provenance, tracking
from pipeline.cli import stage_main
from pipeline.config import PARAMS_FILE, Params, TrainParams, flatten, load_params
from pipeline.distributed import World
from pipeline.errors import StageError
from pipeline.layout import VARIANT_COLORS, Layout, PrepareSummary, Split, load_split, model_name, read_chosen
from pipeline.ranking import epoch_metrics
from pipeline.snapshots import SnapshotFile
from pipeline.tracker import EpochReporter, NullTracker, Tracker
from pipeline.model import VARIANTS, MLPConfig, build, checkpoint, norm_of
from pipeline.outputs import staged, write_json
from pipeline.training import BatchError, DivergedError, FitConfig, FitResult, fit, resolve_device

log = logging.getLogger("pipeline.train")


@dataclass(frozen=True)
class TrainResult:
    """Where one trained model went."""

    name: str
    checkpoint: Path | None  # None: a tuning model that diverged
    history: Path
    run_file: Path
    fit: FitResult | None


def training_config(train: TrainParams) -> dict[str, Any]:
    """The train params shared by every model of an execution (not the grid, variant or seed lists)."""
    return train.model_dump(exclude={"variants", "seeds", "lr", "tune_seeds"})


def mlp_config(train: TrainParams, variant: str, n_features: int) -> MLPConfig:
    """The network of one variant: variants differ in their normalisation layers only."""
    model = train.model
    return MLPConfig(n_features=n_features, hidden=tuple(model.hidden), dropout=model.dropout,
                     activation=model.activation, norm=norm_of(variant),
                     norm_placement=model.batchnorm_placement)


def fit_config(train: TrainParams, seed: int, lr: float, pos_weight: float | None) -> FitConfig:
    """The training loop's settings, straight from the train params."""
    return FitConfig(epochs=train.epochs, batch_size=train.batch_size, min_batch=train.min_batch, lr=lr, seed=seed,
                     optimizer=train.optimizer.name, weight_decay=train.optimizer.weight_decay,
                     momentum=train.optimizer.momentum, pos_weight=pos_weight, grad_clip=train.grad_clip,
                     patience=train.patience, bf16=train.bf16)


def pos_weight(train: TrainParams, negatives: int, positives: int) -> float | None:
    """`none`, `balanced` (negatives/positives of the training split) or the number given."""
    if train.pos_weight == "none":
        return None
    if train.pos_weight == "balanced":
        return negatives / positives
    return float(train.pos_weight)


@contextmanager
def _tracked(track: bool, params: Params, name: str, group: str, mlflow_params: dict[str, Any],
             tags: dict[str, str], resume_run_id: str | None) -> Iterator[Tracker]:
    if not track:
        yield NullTracker()
        return
    with tracking.model_run(params.mlflow.experiment, name, group, mlflow_params, tags, resume_run_id) as tracker:
        yield tracker


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
    """Train one model and write its checkpoint, history CSV and run file.

    With ``lr`` it is a tuning model (stage tune), written to ``folder`` (default: its grid point's
    folder); without, a compared model at the learning rate chosen for its variant (stage train).
    """
    if variant not in VARIANTS:
        raise StageError(f"unknown variant {variant!r}; use one of {', '.join(VARIANTS)}")
    tuning = lr is not None
    summary = PrepareSummary.read(layout)
    label, train = summary.label, params.train
    if lr is None:
        lr = float(read_chosen(layout, variant)["lr"])
    world = World.from_env()
    train_split, val_split = load_split(layout.prepared, "train", label), load_split(layout.prepared, "val", label)
    try:
        device = resolve_device(train.device, world.local_rank)
    except RuntimeError as exc:
        raise StageError(str(exc)) from None
    distributed.start(world, device)
    if train.bf16 and device.type != "cuda":
        log.warning("train.bf16 is ignored on %s (bf16 autocast is CUDA only)", device.type)
    positives = int(train_split.y.sum())
    config = mlp_config(train, variant, train_split.x.shape[1])
    fit_cfg = fit_config(train, seed, lr, pos_weight(train, train_split.y.size - positives, positives))
    name = model_name(variant, seed, lr if tuning else None)
    shape = training_config(train)
    group = provenance.group_key({"data": summary.source_sha256, "prepare": summary.params, "train": shape})
    mlflow_params = {**flatten({"prepare": summary.params, "train": shape}), "train.lr": lr,
                     "variant": variant, "seed": seed, "device": str(device),
                     **{f"data.rows_{s}": n for s, n in summary.rows.items()},
                     **{f"data.prevalence_{s}": p for s, p in summary.prevalence.items()}}
    tags = {tracking.ROLE: "tuning" if tuning else "model", "pipeline.variant": variant, "pipeline.seed": str(seed),
            "pipeline.lr": str(lr), tracking.MODEL: name, tracking.COLOR: VARIANT_COLORS[variant],
            "data.sha256": summary.source_sha256, "device": _device_name(device)}
    paths = (layout.checkpoint(name, tuning), layout.history(name, tuning), layout.run_file(name, tuning))
    if folder is not None:
        paths = tuple(folder / path.relative_to(layout.folder(name, tuning)) for path in paths)
    reporter = EpochReporter(name, train.epochs, show=world.is_main)
    synced = train.batchnorm_sync or world.size == 1
    snapshot = SnapshotFile(layout.snapshot(name), group) if world.max_restarts else None
    resume = None  # after a restart: process 0's snapshot, the same on every rank
    if snapshot is not None and world.attempt > 0:
        resume = world.broadcast(snapshot.load() if world.is_main else None)
    if snapshot and resume is None and world.is_main:
        snapshot.clear()
    records: list[dict[str, float]] = [dict(row) for row in resume["history"]] if resume else []
    run_ids: list[str | None] = []
    info: dict[str, Any] = {"model": name, "variant": variant, "seed": seed, "lr": lr, "device": str(device),
                            "group": group, "ranks": world.size, "batchnorm_sync": synced}
    try:
        with _tracked(track and world.is_main, params, name, group, mlflow_params, tags,
                      resume.get("run_id") if resume else None) as tracker:
            run_ids.append(tracker.run_id)
            if resume is not None and tracker.run_id is not None:
                tracking.set_tag(tracker.run_id, "pipeline.resumed_after_epoch", str(resume["epoch"]))

            def on_epoch_end(epoch: int, record: dict[str, float]) -> None:
                records.append({"epoch": epoch, **record})
                tracker.log_epoch(epoch, {key: record[key] for key in tracking.EPOCH_KEYS})
                reporter(epoch, record)

            model = build(config, seed)
            if world.size > 1 and train.batchnorm_sync and config.norm == "batchnorm":
                model = distributed.sync_batchnorm(model, device)

            def on_snapshot(state: dict[str, Any]) -> None:
                if snapshot and world.is_main:
                    tracker.flush()  # the logged epochs are those of the snapshot, even after a crash
                    snapshot.save({**state, "run_id": tracker.run_id})

            result = fit(model, _shard(train_split, world), _shard(val_split, world), fit_cfg, device,
                         epoch_metrics, on_epoch_end if world.is_main else None, world, synced, resume,
                         on_snapshot if snapshot else None)
            reporter.close()
            if not world.is_main:
                return TrainResult(name, None, *paths[1:], fit=result)
            model = model.cpu().eval()
            with staged(*paths) as (tmp_ckpt, tmp_history, tmp_run):
                torch.save(checkpoint(model, variant=variant, seed=seed, lr=lr, best_epoch=result.best_epoch,
                                      params=shape, label=label, features=summary.features,
                                      data_sha256=summary.source_sha256), tmp_ckpt)
                pd.DataFrame(result.history).to_csv(tmp_history, index=False)
                info.update(best_epoch=result.best_epoch, epochs_run=len(result.history),
                            batch_sizes=result.batch_sizes, norm_batch_sizes=result.norm_batch_sizes)
                if tracker.run_id is not None:
                    _log_outputs(tracker, tmp_history, layout, summary, result)
                    info.update(tracking.run_info(tracker.run_id))
                write_json(tmp_run, info)
        if snapshot and world.is_main and not tuning:  # tune() clears its seeds' snapshots when all are done
            snapshot.clear()
    except DivergedError as exc:
        reporter.close()
        if not world.is_main:
            return TrainResult(name, None, *paths[1:], fit=None)
        if not tuning:
            raise StageError(f"{name}: {exc}") from None
        # A grid point that diverges is a result, not a failure: its run is FAILED, select skips it.
        log.warning("train[%s] %s; select will not choose lr %g", name, exc, lr)
        with staged(paths[1], paths[2]) as (tmp_history, tmp_run):
            pd.DataFrame(records).to_csv(tmp_history, index=False)
            info.update(diverged_at=exc.epoch, epochs_run=len(records), best_epoch=0, batch_sizes=[])
            if run_ids and run_ids[0]:
                tracking.set_tag(run_ids[0], "pipeline.diverged_at", str(exc.epoch))
                info.update(tracking.run_info(run_ids[0]))
            write_json(tmp_run, info)
        return TrainResult(name, None, *paths[1:], fit=None)
    except BatchError as exc:
        raise StageError(f"{name}: {exc}") from None
    log.info("train[%s] lr %g, best epoch %d (val_ap %.3f)%s", name, lr, result.best_epoch, result.best_val_ap,
             ", stopped early" if result.stopped_early else "")
    return TrainResult(name, *paths, fit=result)


def _shard(split: Split, world: World) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's contiguous shard of a split (all of it in one process)."""
    start, stop = world.bounds(split.y.size)
    return torch.from_numpy(split.x[start:stop]), torch.from_numpy(split.y[start:stop])


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _log_outputs(tracker: Tracker, history: Path, layout: Layout, summary: PrepareSummary,
                 result: FitResult) -> None:
    tracker.flush()
    with tempfile.TemporaryDirectory() as tmp:
        named = Path(tmp) / "history.csv"
        shutil.copy(history, named)
        tracking.log_artifact(named)
    packaging.log_training_data(layout.prepared / "train.parquet", summary.features, summary.label,
                                summary.source_sha256)
    tracking.log_summary({"best_epoch": result.best_epoch, "best_val_ap": result.best_val_ap,
                          "epochs_run": len(result.history)})


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--variant V --seed S`` (a compared model) or ``--variant V --lr LR`` (a grid point)."""
    def arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--variant", required=True, choices=VARIANTS)
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


def torchrun_command(argv: list[str]) -> tuple[list[str], dict[str, str]] | None:
    """`torchrun --standalone --nproc_per_node N -m pipeline.train ARGS` and its environment (the
    CPU cores shared out between ranks unless OMP_NUM_THREADS is set) when train.distributed.nproc
    is above 1 and this is not already one of torchrun's workers; None otherwise (also when the
    params cannot be read: the stage itself then says why)."""
    if "LOCAL_RANK" in os.environ:
        return None
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--params", type=Path, default=PARAMS_FILE)
    try:
        launch = load_params(parser.parse_known_args(argv)[0].params).train.distributed
    except Exception:  # noqa: BLE001 - reported by stage_main with its fix
        return None
    if launch.nproc == 1:
        return None
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(launch.nproc),
               "--max-restarts", str(launch.max_restarts), "-m", "pipeline.train", *argv]
    return command, {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // launch.nproc)), **os.environ}


if __name__ == "__main__":
    raise SystemExit(main())
