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

from pipeline.errors import StageError

SPLITS = ("train", "val", "test")
# One colour per variant everywhere: MLflow run colours (mlflow.runColor) and figures.
VARIANT_COLORS = {"batchnorm": "#1f77b4", "baseline": "#ff7f0e"}
REFERENCE_COLOR = "#7f7f7f"


def model_name(variant: str, seed: int) -> str:
    """One name per model everywhere: files, MLflow run names, report columns."""
    return f"{variant}-s{seed}"


# Where each artefact lives, relative to the root: the `outs` of dvc.yaml.
PATHS = {
    "prepared": "data/prepared",  # the prepared splits, the fitted scaler, summary.json
    "models": "models",  # checkpoints, run files and histories: all that training writes
    "histories": "models/history",  # per-epoch history of every model (DVC plots)
    "evaluation": "evaluation",  # per-model metrics, scores and figures; overview.json
    "curves": "plots/curves",  # PR and ROC points of every model (DVC overlay plots)
    "reports": "reports",  # the report: Markdown, HTML, figures
    "summary": "metrics/summary.json",  # the headline: the only DVC metrics file, tracked by git
    "lock": "dvc.lock",  # DVC's record of what ran
}


@dataclass(frozen=True)
class Layout:
    """Every artefact path of the pipeline under one root (see PATHS)."""

    root: Path = Path(".")
    prepared: Path = field(init=False, repr=False)
    models: Path = field(init=False, repr=False)
    histories: Path = field(init=False, repr=False)
    evaluation: Path = field(init=False, repr=False)
    curves: Path = field(init=False, repr=False)
    reports: Path = field(init=False, repr=False)
    summary: Path = field(init=False, repr=False)
    lock: Path = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name, relative in PATHS.items():
            object.__setattr__(self, name, self.root / relative)

    @property
    def prepare_summary(self) -> Path:
        """What prepare did: rows, positives, features, hashes, its params."""
        return self.prepared / "summary.json"

    def checkpoint(self, name: str) -> Path:
        """A model's self-describing checkpoint."""
        return self.models / f"{name}.pt"

    def run_file(self, name: str) -> Path:
        """A model's run file (MLflow ids, best epoch)."""
        return self.models / f"{name}.run.json"

    def history(self, name: str) -> Path:
        """One model's per-epoch history."""
        return self.histories / f"{name}.csv"

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
    """models/NAME.run.json: how to find a trained model's MLflow run again."""

    model: str
    variant: str
    seed: int
    device: str
    best_epoch: int
    group: str
    run_id: str | None = None  # None when training ran without tracking
    experiment_id: str | None = None
    tracking_uri: str | None = None
    pipeline_run_id: str | None = None  # the group's pipeline run (report, verdict)
    run_name: str | None = None

    @classmethod
    def read(cls, layout: Layout, name: str) -> RunInfo | None:
        """The run file of one model, or None when it is absent."""
        path = layout.run_file(name)
        return _from_dict(cls, json.loads(path.read_text())) if path.is_file() else None


def read_history(layout: Layout, name: str) -> pd.DataFrame:
    """One model's per-epoch history."""
    return pd.read_csv(_need(layout.history(name), "train"))


def read_model_metrics(layout: Layout, name: str) -> dict[str, float]:
    """The evaluation metrics of one model."""
    return json.loads(_need(layout.model_metrics(name), "evaluate").read_text())


def read_scores(layout: Layout, name: str) -> pd.DataFrame:
    """The validation and test scores evaluate saved for one model (split, y_true, score)."""
    return pd.read_parquet(_need(layout.scores(name), "evaluate"))
