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

from pipeline import tracking
from pipeline.cli import StageError, run_stage
from pipeline.config import Params, TrainParams, flatten, load_params
from pipeline.data import load_split
from pipeline.model import VARIANTS, MLPConfig, build, checkpoint
from pipeline.outputs import staged, write_json
from pipeline.prepare import DATA_DIR, SUMMARY
from pipeline.training import DivergedError, FitConfig, FitResult, fit, resolve_device

log = logging.getLogger("pipeline.train")

MODELS_DIR = Path("models")
HISTORY_DIR = Path("plots/history")


def model_name(variant: str, seed: int) -> str:
    """One name per model everywhere: files, MLflow run names, report columns."""
    return f"{variant}-s{seed}"


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


def run(params: Params, variant: str, seed: int, data_dir: Path = DATA_DIR, summary_path: Path = SUMMARY,
        models_dir: Path = MODELS_DIR, history_dir: Path = HISTORY_DIR, track: bool = True) -> TrainResult:
    """Train one model and write its checkpoint, history CSV and MLflow run file."""
    if variant not in VARIANTS:
        raise StageError(f"unknown variant {variant!r}; use one of {', '.join(VARIANTS)}")
    if not summary_path.is_file():
        raise StageError(f"{summary_path} not found; run the prepare stage first (dvc repro prepare)")
    summary = json.loads(summary_path.read_text())
    label, train = summary["label"], params.train
    train_split, val_split = load_split(data_dir, "train", label), load_split(data_dir, "val", label)
    try:
        device = resolve_device(train.device)
    except RuntimeError as exc:
        raise StageError(str(exc)) from None
    if train.bf16 and device.type != "cuda":
        log.warning("train.bf16 is ignored on %s (bf16 autocast is CUDA only)", device.type)
    positives = int(train_split.y.sum())
    config = MLPConfig(n_features=train_split.x.shape[1], hidden=tuple(train.model.hidden),
                       dropout=train.model.dropout, activation=train.model.activation,
                       batchnorm=variant == "batchnorm", batchnorm_placement=train.model.batchnorm_placement)
    fit_cfg = FitConfig(epochs=train.epochs, batch_size=train.batch_size, lr=train.lr, seed=seed,
                        optimizer=train.optimizer.name, weight_decay=train.optimizer.weight_decay,
                        momentum=train.optimizer.momentum,
                        pos_weight=pos_weight(train, train_split.y.size - positives, positives),
                        grad_clip=train.grad_clip, patience=train.patience, bf16=train.bf16)
    name = model_name(variant, seed)
    shape = training_config(train)
    group = tracking.group_key({"data": summary["source_sha256"], "prepare": params.prepare.model_dump(),
                                "train": shape})
    mlflow_params = {**flatten({"prepare": params.prepare, "train": shape}),
                     "variant": variant, "seed": seed, "device": str(device),
                     **{f"data.rows_{s}": n for s, n in summary["rows"].items()},
                     **{f"data.prevalence_{s}": p for s, p in summary["prevalence"].items()}}
    tags = {"pipeline.role": "model", "pipeline.variant": variant, "pipeline.seed": str(seed),
            tracking.MODEL: name, "data.sha256": summary["source_sha256"], "device": _device_name(device)}
    paths = (models_dir / f"{name}.pt", history_dir / f"{name}.csv", models_dir / f"{name}.run.json")
    reporter = EpochReporter(f"{variant} s{seed}", train.epochs)
    try:
        with _tracked(track, params, name, group, mlflow_params, tags) as tracker:
            def on_epoch_end(epoch: int, record: dict[str, float]) -> None:
                tracker.log_epoch(epoch, record)
                reporter(epoch, record)

            model = build(config, seed)
            result = fit(model, _tensors(train_split), _tensors(val_split), fit_cfg, device, on_epoch_end)
            reporter.close()
            model = model.cpu().eval()
            with staged(*paths) as (tmp_ckpt, tmp_history, tmp_run):
                torch.save(checkpoint(model, variant=variant, seed=seed, best_epoch=result.best_epoch,
                                      params=shape, label=label, features=summary["features"],
                                      data_sha256=summary["source_sha256"]), tmp_ckpt)
                pd.DataFrame(result.history).to_csv(tmp_history, index=False)
                info: dict[str, Any] = {"model": name, "variant": variant, "seed": seed, "device": str(device),
                                        "best_epoch": result.best_epoch, "group": group}
                if tracker.run_id is not None:
                    _log_outputs(tracker, model, val_split.x[:5], tmp_history, data_dir, label, summary, result)
                    info.update(tracking.run_info(tracker.run_id))
                write_json(tmp_run, info)
    except DivergedError as exc:
        reporter.close()
        raise StageError(f"{name}: {exc}") from None
    log.info("train[%s] best epoch %d (val_ap %.3f)%s", name, result.best_epoch, result.best_val_ap,
             ", stopped early" if result.stopped_early else "")
    return TrainResult(name, *paths, fit=result)


def _tensors(split: Any) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(split.x), torch.from_numpy(split.y)


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _log_outputs(tracker: tracking.Tracker, model: torch.nn.Module, example: Any, history: Path, data_dir: Path,
                 label: str, summary: dict[str, Any], result: FitResult) -> None:
    tracker.flush()
    with tempfile.TemporaryDirectory() as tmp:
        named = Path(tmp) / "history.csv"
        shutil.copy(history, named)
        tracking.log_torch_model(model, example, extra_files=[named])
    train_path = data_dir / "train.parquet"
    tracking.log_training_data(pd.read_parquet(train_path), train_path, label, summary["source_sha256"])
    tracking.log_summary({"best_epoch": result.best_epoch, "best_val_ap": result.best_val_ap,
                          "epochs_run": len(result.history)})


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m pipeline.train --variant batchnorm --seed 0``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", required=True, choices=VARIANTS)
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    return run_stage("train", lambda: run(load_params(args.params), args.variant, args.seed))


if __name__ == "__main__":
    raise SystemExit(main())
