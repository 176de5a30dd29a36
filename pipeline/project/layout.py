"""Where every stage reads and writes: artefact paths, model names, split names, typed readers.

Stages never import each other; they meet here. Every path is relative to a root (the repository
when DVC runs a stage, a temporary folder in tests), and matches the `outs` in dvc.yaml.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.runtime.errors import StageError

SPLITS = ("train", "val", "test")


def model_name(variant: str, seed: int, lr: float | None = None) -> str:
    """One name per model everywhere: files, MLflow run names, report columns. Tuning models name
    their learning rate (``batchnorm-lr0.003-s100``); the compared models do not (``batchnorm-s0``)."""
    return f"{variant}-s{seed}" if lr is None else f"{variant}-lr{lr_text(lr)}-s{seed}"


def variant_of(name: str) -> str:
    """The variant a model name belongs to (``batchnorm-lr0.003-s100`` -> ``batchnorm``)."""
    return name.split("-", 1)[0]


def lr_text(lr: float) -> str:
    """A learning rate as DVC writes it in stage names and paths (`str` of the float)."""
    return str(float(lr))


# Where each artefact lives, relative to the root: the `outs` of dvc.yaml.
PATHS = {
    "prepared": "data/prepared",  # the prepared splits, the fitted scaler, summary.json
    "models": "models",  # the compared models: one folder per variant (checkpoints and run files)
    "histories": "models/history",  # per-epoch history of every compared model, a folder per variant (DVC plots)
    "tuning": "tuning/models",  # the tuning models: one folder per variant (checkpoints, run files, histories)
    "chosen": "tuning/chosen",  # each variant's chosen setting, one small file per variant
    "selection": "tuning/selection.json",  # the whole grid: validation AP per setting and variant
    "evaluation": "evaluation",  # per-model metrics, scores and figures; overview.json
    "curves": "plots/curves",  # PR and ROC points of every model (DVC overlay plots)
    "reports": "reports",  # the report: Markdown, HTML, figures
    "summary": "metrics/summary.json",  # the headline: the only DVC metrics file, tracked by git
    "lock": "dvc.lock",  # DVC's record of what ran
    "snapshots": ".snapshots",  # epoch snapshots of models training under torchrun (not a DVC output)
}


@dataclass(frozen=True)
class Layout:
    """Every artefact path of the pipeline under one root: ``layout.models``, ``layout.reports``, ... for
    each name in PATHS, and the paths of single files below them."""

    root: Path = Path(".")

    def __getattr__(self, name: str) -> Path:
        if name in PATHS:
            return self.root / PATHS[name]
        raise AttributeError(f"{type(self).__name__} has no path {name!r} (see PATHS)")

    @property
    def raw_test(self) -> Path:
        """The test split's rows as they came, unscaled (the label included): what scoring takes."""
        return self.prepared / "test_raw.parquet"

    @property
    def scaler(self) -> Path:
        """The log1p columns and the training split's means and scales."""
        return self.prepared / "scaler.json"

    @property
    def prepare_summary(self) -> Path:
        """What prepare did: rows, positives, features, hashes, its params."""
        return self.prepared / "summary.json"

    def variant_folder(self, variant: str, tuning: bool = False) -> Path:
        """A variant's models: its compared models' checkpoints and run files, or every one of its
        tuning models with their histories (one DVC output each, kept between runs)."""
        return (self.tuning if tuning else self.models) / variant

    def history_folder(self, variant: str, tuning: bool = False) -> Path:
        """A variant's per-epoch histories: of its compared models (one DVC output, drawn by `dvc
        plots`), or of its tuning models (inside their folder)."""
        return self.variant_folder(variant, True) / "history" if tuning else self.histories / variant

    def checkpoint(self, name: str, tuning: bool = False) -> Path:
        """A model's self-describing checkpoint."""
        return self.variant_folder(variant_of(name), tuning) / f"{name}.pt"

    def run_file(self, name: str, tuning: bool = False) -> Path:
        """A model's run file (MLflow ids, best epoch, batch sizes; written last: it marks the model done)."""
        return self.variant_folder(variant_of(name), tuning) / f"{name}.run.json"

    def history(self, name: str, tuning: bool = False) -> Path:
        """One model's per-epoch history."""
        return self.history_folder(variant_of(name), tuning) / f"{name}.csv"

    def snapshot(self, name: str) -> Path:
        """A model's latest epoch snapshot while it trains under torchrun."""
        return self.snapshots / f"{name}.pt"

    def chosen_setting(self, variant: str) -> Path:
        """The setting select chose for one variant (what its compared models train with)."""
        return self.chosen / f"{variant}.json"

    def model_metrics(self, name: str) -> Path:
        """Every evaluation metric of one model or reference model."""
        return self.evaluation / "metrics" / f"{name}.json"

    def scores(self, name: str) -> Path:
        """One model's validation and test scores."""
        return self.evaluation / "scores" / f"{name}.parquet"

    def figures(self, name: str) -> Path:
        """One model's evaluation figures."""
        return self.evaluation / "figures" / name

    @property
    def overview(self) -> Path:
        """Key test metrics of every model and the mean and sd per variant."""
        return self.evaluation / "overview.json"

    @property
    def reference_runs(self) -> Path:
        """Where evaluate logged in MLflow (when tracking is on): every compared model's run and
        servable model, every reference model's run."""
        return self.evaluation / "runs.json"

    @property
    def tuning_scores(self) -> Path:
        """Validation and test AP of every tuning model (the shared-setting view)."""
        return self.evaluation / "tuning.json"


def _need(path: Path, stage: str) -> Path:
    if not path.exists():
        raise StageError(f"{path} not found; run the {stage} stage first (dvc repro {stage})")
    return path


def _from_dict(cls: type, raw: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in raw.items() if k in known})


@dataclass(frozen=True)
class PrepareSummary:
    """metrics/prepare.json: what the prepare stage produced."""

    source: str
    source_sha256: str
    label: str
    features: list[str]
    n_features: int
    split_method: str
    dropped_nonfinite: int
    rows: dict[str, int]
    positives: dict[str, int]
    prevalence: dict[str, float]
    params: dict[str, Any]  # the prepare params that made these splits

    @classmethod
    def read(cls, layout: Layout) -> PrepareSummary:
        """Read the summary written by prepare."""
        return _from_dict(cls, json.loads(_need(layout.prepare_summary, "prepare").read_text()))


@dataclass(frozen=True)
class RunInfo:
    """models/NAME.run.json: how to find a trained model's MLflow run again, and how it trained."""

    model: str
    variant: str
    seed: int
    lr: float
    device: str
    best_epoch: int
    epochs_run: int
    batch_sizes: list[int]  # rows in each batch of an epoch (the smallest is what BatchNorm saw)
    group: str
    diverged_at: int | None = None  # tuning models only: the epoch whose loss was NaN or infinite
    run_id: str | None = None  # None when training ran without tracking
    experiment_id: str | None = None
    tracking_uri: str | None = None
    pipeline_run_id: str | None = None  # the group's pipeline run (report, verdict)
    run_name: str | None = None
    ranks: int = 1  # training processes
    batchnorm_sync: bool = True  # with ranks > 1: BatchNorm statistics over the global batch
    norm_batch_sizes: list[int] | None = None  # rows per batch BatchNorm's statistics saw (None: batch_sizes)
    stack_size: int = 1  # models trained together with it, at its first epoch
    key: str | None = None  # what trained it (data, params, code, setting): a planned model with this key is done

    @classmethod
    def read(cls, layout: Layout, name: str, tuning: bool = False) -> RunInfo:
        """The run file of one model."""
        return _from_dict(cls, json.loads(_need(layout.run_file(name, tuning), "train").read_text()))


def read_chosen(layout: Layout, variant: str) -> dict[str, Any]:
    """The setting chosen for one variant (``{"lr": ...}``)."""
    return json.loads(_need(layout.chosen_setting(variant), "select").read_text())


def read_selection(layout: Layout) -> dict[str, Any]:
    """The whole tuning grid and the choices (see the select stage)."""
    return json.loads(_need(layout.selection, "select").read_text())


def read_history(layout: Layout, name: str, tuning: bool = False) -> pd.DataFrame:
    """One model's per-epoch history."""
    return pd.read_csv(_need(layout.history(name, tuning), "train"))


def read_model_metrics(layout: Layout, name: str) -> dict[str, float]:
    """The evaluation metrics of one model."""
    return json.loads(_need(layout.model_metrics(name), "evaluate").read_text())


def read_scores(layout: Layout, name: str) -> pd.DataFrame:
    """The validation and test scores evaluate saved for one model (split, y_true, score)."""
    return pd.read_parquet(_need(layout.scores(name), "evaluate"))


@dataclass(frozen=True)
class Split:
    """One prepared split as arrays."""

    x: np.ndarray  # float32, (rows, features)
    y: np.ndarray  # int8, (rows,)


def load_split(data_dir: Path, name: str, label: str) -> Split:
    """Read one prepared split written by the prepare stage."""
    path = data_dir / f"{name}.parquet"
    if not path.is_file():
        raise StageError(f"{path}: prepared split not found; run the prepare stage first (dvc repro prepare)")
    frame = pd.read_parquet(path)
    x = np.array(frame.drop(columns=[label]).to_numpy(dtype=np.float32), copy=True)  # writable, for torch
    return Split(x, np.array(frame[label].to_numpy(dtype=np.int8), copy=True))


def load_checkpoint(path: Path, summary: PrepareSummary) -> dict[str, Any]:
    """Read a checkpoint written by train, and check it was trained on these prepared data."""
    import pickle
    import zipfile

    import torch

    fix = "re-run training (dvc repro)"
    if not path.is_file():
        raise StageError(f"{path}: model file not found; {fix}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        raise StageError(f"{path}: not a readable checkpoint ({str(exc).splitlines()[0]}); {fix}") from None
    if not isinstance(payload, dict) or not {"model", "config", "features"} <= set(payload):
        raise StageError(f"{path}: not a checkpoint written by the train stage; {fix}")
    if payload["features"] != summary.features or payload.get("data_sha256") != summary.source_sha256:
        raise StageError(f"{path}: trained on other data than data/prepared (features or data hash differ); {fix}")
    return payload
