"""Where every stage reads and writes: artefact paths, model names, split names, typed readers.

Stages never import each other; they meet here. Every path is relative to a root (the repository
when DVC runs a stage, a temporary folder in tests), and matches the `outs` in dvc.yaml.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.runtime.errors import StageError

SPLITS = ("train", "val", "test")
TUNING = "tuning"  # the split tuning trains and chooses on; the compared models use the replicates'


def replicate_name(replicate: int) -> str:
    """Replicate r's split: ``r0``, ``r1``, ... (its models are seeded r)."""
    return f"r{replicate}"


def replicate_names(count: int) -> list[str]:
    """Every replicate's split."""
    return [replicate_name(r) for r in range(count)]


def model_name(variant: str, seed: int, trial: int | None = None) -> str:
    """One name per model everywhere: files, MLflow run names, report columns. Tuning models name
    their trial (``batchnorm-t7-s100``); the compared models do not (``batchnorm-s0``)."""
    return f"{variant}-s{seed}" if trial is None else f"{variant}-t{trial}-s{seed}"


def variant_of(name: str) -> str:
    """The variant a model name belongs to (``batchnorm-t7-s100`` -> ``batchnorm``)."""
    return name.split("-", 1)[0]


# Where each artefact lives, relative to the root: the `outs` of dvc.yaml.
PATHS = {
    "prepared": "data/prepared",  # the validated table, every split's row indices and encoder, summary.json
    "models": "models",  # the compared models: one folder per variant (checkpoints and run files)
    "histories": "models/history",  # per-epoch history of every compared model, a folder per variant (DVC plots)
    "tuning": "tuning/models",  # the tuning models: one folder per variant (checkpoints, run files, histories)
    "chosen": "tuning/chosen",  # each variant's chosen setting, one small file per variant
    "selection": "tuning/selection.json",  # every variant's chosen setting, best-so-far curve and edge flags
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
    def table(self) -> Path:
        """The validated rows as they came (features and label): every split is rows of this table."""
        return self.prepared / "table.parquet"

    def split_file(self, split: str) -> Path:
        """One split's row indices (train, val, test): the tuning split or a replicate's."""
        return self.prepared / "splits" / f"{split}.npz"

    def encoder(self, split: str) -> Path:
        """One split's encoder (data.encoder), fitted on its training part."""
        return self.prepared / "encoders" / f"{split}.json"

    @property
    def prepare_summary(self) -> Path:
        """What prepare did: rows, positives, features and column roles, hashes, its params."""
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

    def probes(self, name: str, tuning: bool = False) -> Path:
        """One model's validation at probe steps and epoch ends (step, epoch, training seconds, val_ap)."""
        return self.variant_folder(variant_of(name), tuning) / f"{name}.probes.csv"

    def snapshot(self, name: str) -> Path:
        """A model's latest epoch snapshot while it trains under torchrun."""
        return self.snapshots / f"{name}.pt"

    def trials(self, variant: str) -> Path:
        """Every tuning trial of a variant: its setting, each tuning seed's validation AP, their mean."""
        return self.variant_folder(variant, tuning=True) / "trials.json"

    def study(self, variant: str) -> Path:
        """The Optuna study of a variant's tuning (a journal file): raising the trials goes on from it."""
        return self.variant_folder(variant, tuning=True) / "study.journal"

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
    replicates: list[str]  # the replicates' split names, r0, r1, ...
    redrawn: bool  # each replicate its own split (stratified); a time split's windows are fixed
    rows: dict[str, int]
    positives: dict[str, int]
    prevalence: dict[str, float]
    params: dict[str, Any]  # the prepare params that made these splits
    folds: int = 0  # a time split's windows (0: stratified)
    blocks: dict[str, Any] = field(default_factory=dict)  # a time split's parts per split: rows, positives, times
    amount: str | None = None  # the column holding each transaction's amount (money metrics), if any
    roles: dict[str, str] = field(default_factory=dict)  # every column but the label: its role (data.roles)
    entity: str | None = None  # the id column naming the card or customer (never a feature)
    inputs: list[str] | None = None  # the network's numeric inputs, in order (None: the features)
    categories: dict[str, int] = field(default_factory=dict)  # categorical column -> its embedding's rows

    @property
    def numeric_inputs(self) -> list[str]:
        """The network's numeric inputs (date-time columns give five each), before the category indices."""
        return self.features if self.inputs is None else self.inputs

    @property
    def embedding_rows(self) -> dict[str, int]:
        """Each categorical column's embedding rows, in the features' order (that of its index in the input)."""
        return {name: self.categories[name] for name in self.features if name in self.categories}

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
    setting: dict[str, Any] | None = None  # what it trained with (modeling.recipe.Setting)
    trial: int | None = None  # tuning models: the trial they belong to
    best_val_ap: float | None = None  # the validation AP of the kept epoch

    @classmethod
    def read(cls, layout: Layout, name: str, tuning: bool = False) -> RunInfo:
        """The run file of one model."""
        return _from_dict(cls, json.loads(_need(layout.run_file(name, tuning), "train").read_text()))


def read_chosen(layout: Layout, variant: str) -> dict[str, Any]:
    """The setting chosen for one variant (``modeling.recipe.Setting``'s fields, and its trial)."""
    return json.loads(_need(layout.chosen_setting(variant), "select").read_text())


def read_trials(layout: Layout, variant: str) -> list[dict[str, Any]]:
    """A variant's tuning trials, in trial order (see the tune stage)."""
    return json.loads(_need(layout.trials(variant), "tune").read_text())


def read_selection(layout: Layout) -> dict[str, Any]:
    """The whole tuning grid and the choices (see the select stage)."""
    return json.loads(_need(layout.selection, "select").read_text())


def read_history(layout: Layout, name: str, tuning: bool = False) -> pd.DataFrame:
    """One model's per-epoch history."""
    return pd.read_csv(_need(layout.history(name, tuning), "train"))


def read_probes(layout: Layout, name: str, tuning: bool = False) -> pd.DataFrame:
    """One model's probes."""
    return pd.read_csv(_need(layout.probes(name, tuning), "train"))


def read_model_metrics(layout: Layout, name: str) -> dict[str, float]:
    """The evaluation metrics of one model."""
    return json.loads(_need(layout.model_metrics(name), "evaluate").read_text())


def read_scores(layout: Layout, name: str) -> pd.DataFrame:
    """The validation and test scores evaluate saved for one model (split, y_true, score)."""
    return pd.read_parquet(_need(layout.scores(name), "evaluate"))


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
