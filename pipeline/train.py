"""DVC stage `train`: train one (variant, seed) model, track it in MLflow, write checkpoint and history."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from pipeline import packaging, provenance, tracking
from pipeline.cli import stage_main
from pipeline.config import Params, TrainParams, flatten
from pipeline.data import Split, load_split
from pipeline.errors import StageError
from pipeline.layout import VARIANT_COLORS, Layout, PrepareSummary, model_name
from pipeline.metrics import epoch_metrics
from pipeline.model import VARIANTS, MLPConfig, build, checkpoint
from pipeline.outputs import staged, write_json
from pipeline.training import DivergedError, FitConfig, FitResult, fit, resolve_device

log = logging.getLogger("pipeline.train")


@dataclass(frozen=True)
class TrainResult:
    """Where one trained model went."""

    name: str
    checkpoint: Path
    history: Path
    run_file: Path
    fit: FitResult


def training_config(train: TrainParams) -> dict[str, Any]:
    """The train params that shape one model (everything except the variant and seed lists)."""
    return train.model_dump(exclude={"variants", "seeds"})


def mlp_config(train: TrainParams, variant: str, n_features: int) -> MLPConfig:
    """The network of one variant: the two variants differ in the BatchNorm flag only."""
    model = train.model
    return MLPConfig(n_features=n_features, hidden=tuple(model.hidden), dropout=model.dropout,
                     activation=model.activation, batchnorm=variant == "batchnorm",
                     batchnorm_placement=model.batchnorm_placement)


def fit_config(train: TrainParams, seed: int, pos_weight: float | None) -> FitConfig:
    """The training loop's settings, straight from the train params."""
    return FitConfig(epochs=train.epochs, batch_size=train.batch_size, lr=train.lr, seed=seed,
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


class EpochReporter:
    """A progress bar on a terminal; one line per epoch otherwise."""

    def __init__(self, label: str, epochs: int) -> None:
        self.label, self.epochs = label, epochs
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=epochs, desc=f"train[{label}]", file=sys.stderr, leave=True)

    def __call__(self, epoch: int, record: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{record['train_loss']:.4f}", val_loss=f"{record['val_loss']:.4f}",
                                 val_ap=f"{record['val_ap']:.3f}")
            if epoch == self.epochs:
                self.bar.close()
            return
        log.info("train[%s] epoch %d/%d  loss %.4f  val_loss %.4f  val_ap %.3f  %.2fs", self.label, epoch,
                 self.epochs, record["train_loss"], record["val_loss"], record["val_ap"], record["epoch_seconds"])

    def close(self) -> None:
        """Close the bar early (early stopping, failure)."""
        if self.bar is not None:
            self.bar.close()


@contextmanager
def _tracked(track: bool, params: Params, name: str, group: str, mlflow_params: dict[str, Any],
             tags: dict[str, str]) -> Iterator[tracking.Tracker]:
    if not track:
        yield tracking.NullTracker()
        return
    with tracking.model_run(params.mlflow.experiment, name, group, mlflow_params, tags) as tracker:
        yield tracker


def run(params: Params, variant: str, seed: int, layout: Layout = Layout(), track: bool = True) -> TrainResult:
    """Train one model and write its checkpoint, history CSV and MLflow run file."""
    if variant not in VARIANTS:
        raise StageError(f"unknown variant {variant!r}; use one of {', '.join(VARIANTS)}")
    summary = PrepareSummary.read(layout)
    label, train = summary.label, params.train
    train_split, val_split = load_split(layout.prepared, "train", label), load_split(layout.prepared, "val", label)
    try:
        device = resolve_device(train.device)
    except RuntimeError as exc:
        raise StageError(str(exc)) from None
    if train.bf16 and device.type != "cuda":
        log.warning("train.bf16 is ignored on %s (bf16 autocast is CUDA only)", device.type)
    positives = int(train_split.y.sum())
    config = mlp_config(train, variant, train_split.x.shape[1])
    fit_cfg = fit_config(train, seed, pos_weight(train, train_split.y.size - positives, positives))
    name = model_name(variant, seed)
    shape = training_config(train)
    group = provenance.group_key({"data": summary.source_sha256, "prepare": summary.params, "train": shape})
    mlflow_params = {**flatten({"prepare": summary.params, "train": shape}),
                     "variant": variant, "seed": seed, "device": str(device),
                     **{f"data.rows_{s}": n for s, n in summary.rows.items()},
                     **{f"data.prevalence_{s}": p for s, p in summary.prevalence.items()}}
    tags = {tracking.ROLE: "model", "pipeline.variant": variant, "pipeline.seed": str(seed), tracking.MODEL: name,
            tracking.COLOR: VARIANT_COLORS[variant], "data.sha256": summary.source_sha256,
            "device": _device_name(device)}
    paths = (layout.checkpoint(name), layout.history(name), layout.run_file(name))
    reporter = EpochReporter(f"{variant} s{seed}", train.epochs)
    try:
        with _tracked(track, params, name, group, mlflow_params, tags) as tracker:
            def on_epoch_end(epoch: int, record: dict[str, float]) -> None:
                tracker.log_epoch(epoch, {key: record[key] for key in tracking.EPOCH_KEYS})
                reporter(epoch, record)

            model = build(config, seed)
            result = fit(model, _tensors(train_split), _tensors(val_split), fit_cfg, device, epoch_metrics,
                         on_epoch_end)
            reporter.close()
            model = model.cpu().eval()
            with staged(*paths) as (tmp_ckpt, tmp_history, tmp_run):
                torch.save(checkpoint(model, variant=variant, seed=seed, best_epoch=result.best_epoch,
                                      params=shape, label=label, features=summary.features,
                                      data_sha256=summary.source_sha256), tmp_ckpt)
                pd.DataFrame(result.history).to_csv(tmp_history, index=False)
                info: dict[str, Any] = {"model": name, "variant": variant, "seed": seed, "device": str(device),
                                        "best_epoch": result.best_epoch, "group": group}
                if tracker.run_id is not None:
                    _log_outputs(tracker, model, val_split.x[:5], tmp_history, layout, label, summary, result)
                    info.update(tracking.run_info(tracker.run_id))
                write_json(tmp_run, info)
    except DivergedError as exc:
        reporter.close()
        raise StageError(f"{name}: {exc}") from None
    log.info("train[%s] best epoch %d (val_ap %.3f)%s", name, result.best_epoch, result.best_val_ap,
             ", stopped early" if result.stopped_early else "")
    return TrainResult(name, *paths, fit=result)


def _tensors(split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(split.x), torch.from_numpy(split.y)


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _log_outputs(tracker: tracking.Tracker, model: torch.nn.Module, example: Any, history: Path, layout: Layout,
                 label: str, summary: PrepareSummary, result: FitResult) -> None:
    tracker.flush()
    with tempfile.TemporaryDirectory() as tmp:
        named = Path(tmp) / "history.csv"
        shutil.copy(history, named)
        packaging.log_torch_model(model, example, extra_files=[named])
    train_path = layout.prepared / "train.parquet"
    packaging.log_training_data(pd.read_parquet(train_path), train_path, label, summary.source_sha256)
    tracking.log_summary({"best_epoch": result.best_epoch, "best_val_ap": result.best_val_ap,
                          "epochs_run": len(result.history)})


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m pipeline.train --variant batchnorm --seed 0``."""
    def arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--variant", required=True, choices=VARIANTS)
        parser.add_argument("--seed", required=True, type=int)

    return stage_main("train", __doc__, argv, lambda params, args: run(params, args.variant, args.seed), arguments)


if __name__ == "__main__":
    raise SystemExit(main())
