"""Where every stage reads and writes: artefact paths, model names and split names.

Stages never import each other; they meet here (and in ``project.artefacts``, the typed files at these
paths). Every path is relative to a root (the repository when DVC runs a stage, a temporary folder in
tests) and matches the ``outs`` in dvc.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "val", "test")
TUNING = "tuning"  # the split tuning trains and chooses on; the compared models use the replicates'
LOCK = "dvc.lock"  # DVC's record of what ran
SUMMARY = "metrics/summary.json"  # the headline: the only DVC metrics file, tracked by git
ANSWER = "metrics/answer.json"  # the one-sentence answers: tracked by git beside it, not a metric (a sentence
# in `dvc exp show` and `dvc metrics diff` would take the whole terminal)
PREPARED = "data/prepared"


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


@dataclass(frozen=True)
class Layout:
    """Every artefact path of the pipeline under one root."""

    root: Path = Path(".")

    # ---------------------------------------------------------------- the outputs of dvc.yaml

    @property
    def prepared(self) -> Path:
        """prepare: the validated table, every split's row indices and encoder, summary.json."""
        return self.root / PREPARED

    @property
    def tuning(self) -> Path:
        """tune: the tuning models, one folder per variant (checkpoints, run files, histories, study)."""
        return self.root / "tuning" / "models"

    @property
    def chosen(self) -> Path:
        """select: each variant's chosen setting, one small file per variant."""
        return self.root / "tuning" / "chosen"

    @property
    def selection(self) -> Path:
        """select: every variant's trials, chosen setting, best-so-far curve and edge flags."""
        return self.root / "tuning" / "selection.json"

    @property
    def models(self) -> Path:
        """train: the compared models, one folder per variant (checkpoints, run files, probes)."""
        return self.root / "models"

    @property
    def histories(self) -> Path:
        """train: the per-epoch history of every compared model, a folder per variant (DVC plots)."""
        return self.root / "models" / "history"

    @property
    def timing(self) -> Path:
        """time: each variant's seconds per training step, timed alone and interleaved (the speed claim)."""
        return self.root / "timing"

    @property
    def step_times(self) -> Path:
        """The timing stage's measurements (project.artefacts.StepTimes)."""
        return self.timing / "steps.json"

    @property
    def evaluation(self) -> Path:
        """evaluate: per-model metrics, scores and figures; overview.json, tuning.json, runs.json."""
        return self.root / "evaluation"

    @property
    def curves(self) -> Path:
        """evaluate: PR and ROC points of every model (DVC overlay plots)."""
        return self.root / "plots" / "curves"

    @property
    def reports(self) -> Path:
        """report: the report (Markdown, HTML, figures)."""
        return self.root / "reports"

    @property
    def summary(self) -> Path:
        """report: the headline, metrics/summary.json."""
        return self.root / SUMMARY

    @property
    def answer(self) -> Path:
        """report: each candidate's one-sentence answer, metrics/answer.json."""
        return self.root / ANSWER

    @property
    def lock(self) -> Path:
        """DVC's record of what ran."""
        return self.root / LOCK

    @property
    def snapshots(self) -> Path:
        """Epoch snapshots of models training under torchrun (not a DVC output)."""
        return self.root / ".snapshots"

    # ---------------------------------------------------------------- files inside them

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
    def logged(self) -> Path:
        """Where evaluate logged in MLflow (when tracking is on): every compared model's run and
        servable model, every reference model's run."""
        return self.evaluation / "runs.json"

    @property
    def tuning_scores(self) -> Path:
        """Validation and test AP of every tuning model (the shared-setting view)."""
        return self.evaluation / "tuning.json"
