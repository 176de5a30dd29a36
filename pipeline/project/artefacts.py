"""Every file one stage writes and a later one reads, as one typed model used by its writer and its readers.

Each JSON artefact is a frozen pydantic model: ``write(path)`` stores it (sorted keys, a trailing newline:
stable for DVC and git), ``read(path, stage)`` loads it back and refuses a file that is missing or not
what that stage writes (an unknown key included: an older or newer file is never half read), with the
fix in one line. Paths are ``project.layout``'s; the checkpoint, a torch file, is read here too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline.project.params import Setting
from pipeline.runtime.errors import StageError

Self = TypeVar("Self", bound="Artefact")


class Artefact(BaseModel):
    """A JSON file of the pipeline: unknown keys refused, frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def write(self, path: Path) -> None:
        """Write as JSON with sorted keys and a trailing newline."""
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = self.model_dump(mode="json", exclude_none=False)
        path.write_text(json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n")

    @classmethod
    def read(cls: type[Self], path: Path, stage: str) -> Self:
        """Read a file ``stage`` wrote; a missing or foreign file is a StageError naming the fix."""
        if not path.is_file():
            raise StageError(f"{path} not found; run the {stage} stage first (dvc repro {stage})")
        try:
            return cls.model_validate_json(path.read_text())
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "(the file)"
            raise StageError(
                f"{path}: not the {cls.__name__} the {stage} stage writes ({where}: {first['msg']}); "
                f"re-run it (dvc repro -f {stage})"
            ) from None


# ---------------------------------------------------------------- prepare


class TimeBlock(Artefact):
    """One part of a time split: its rows, positives and the times they span (none when empty)."""

    rows: int
    positives: int
    start: float | None = None  # seconds
    end: float | None = None
    start_text: str | None = None  # as the time column reads them (a date-time, or seconds)
    end_text: str | None = None


class Coverage(Artefact):
    """A categorical column in the tuning split's training part: its values, those kept (the embedding's
    levels; rarer ones share "other") and the share of the part's rows at "other"."""

    values: int
    kept: int
    other: float


class PrepareSummary(Artefact):
    """data/prepared/summary.json: what the prepare stage produced."""

    source: str
    source_sha256: str
    label: str
    features: list[str]
    n_features: int
    split_method: str
    dropped_nonfinite: int
    replicates: list[str]  # the replicates' split names, r0, r1, ...
    redrawn: bool  # each replicate its own split (stratified); a time split's windows are fixed
    folds: int  # a time split's windows (0: stratified)
    blocks: dict[str, dict[str, TimeBlock]]  # a time split's parts per split (empty: stratified)
    rows: dict[str, int]  # the tuning split's parts
    positives: dict[str, int]
    prevalence: dict[str, float]
    params: dict[str, Any]  # the prepare params that made these splits
    amount: str | None  # the column holding each transaction's amount (money metrics), if any
    time_column: str | None  # the column that orders the rows in time (time splits, daily alert budgets), if any
    inferred: dict[str, str]  # "amount", "time": how a column the params named but the data lacks was found
    log1p: list[str]  # the numeric columns log1p'd before scaling
    roles: dict[str, str]  # every column but the label: its role (data.roles)
    entity: str | None  # the id column naming the card or customer (never a feature)
    inputs: list[str]  # the network's numeric inputs, in order (a date-time column gives five)
    categories: dict[str, int]  # categorical column -> its embedding's rows
    coverage: dict[str, Coverage]  # categorical column -> its values, kept and at "other" (tuning's training part)
    imputed: dict[str, dict[str, int]]  # column -> part -> cells imputed (prepare.nonfinite: impute; tuning split)

    @property
    def numeric_inputs(self) -> list[str]:
        """The network's numeric inputs (date-time columns give five each), before the category indices."""
        return self.inputs

    @property
    def embedding_rows(self) -> dict[str, int]:
        """Each categorical column's embedding rows, in the features' order (that of its index in the input)."""
        return {name: self.categories[name] for name in self.features if name in self.categories}


# ---------------------------------------------------------------- tune, select, train


class RunFile(Artefact):
    """models/NAME.run.json: how a model trained and where its MLflow run is. Written last: a model whose
    run file carries its job's key is done."""

    model: str
    variant: str
    seed: int
    trial: int | None  # tuning models: the trial they belong to
    setting: Setting  # what it trained with
    device: str
    group: str  # the execution (data, params, code and DVC experiment) it belongs to
    key: str  # what trained it (data, params, code, setting): a planned model with this key is done
    ranks: int  # training processes
    batchnorm_sync: bool  # with ranks > 1: BatchNorm statistics over the global batch
    stack_size: int  # models trained together with it, at its first epoch
    epochs_run: int
    best_epoch: int  # 0: diverged
    best_val_ap: float | None  # the validation AP of the kept epoch (None: diverged)
    batch_sizes: list[int]  # rows in each batch of an epoch (the smallest is what BatchNorm saw)
    norm_batch_sizes: list[int]  # rows per batch BatchNorm's statistics saw (per process when not synced)
    diverged_at: int | None = None  # tuning models only: the epoch whose loss was NaN or infinite
    run_id: str | None = None  # None when training ran without tracking
    experiment_id: str | None = None
    tracking_uri: str | None = None
    pipeline_run_id: str | None = None  # the group's pipeline run (report, verdict)
    run_name: str | None = None

    @property
    def lr(self) -> float:
        """The learning rate it trained at."""
        return self.setting.lr


class Chosen(Artefact):
    """tuning/chosen/VARIANT.json: the setting select chose (what the variant's compared models train
    with), and its trial."""

    setting: Setting
    trial: int


class Trial(Artefact):
    """One tuning trial: its setting, each tuning seed's best validation AP, their mean."""

    trial: int
    state: Literal["COMPLETE", "FAIL", "PRUNED"]
    setting: Setting
    val_ap_by_seed: dict[str, float]
    diverged_at_epoch_by_seed: dict[str, int]
    val_ap: float | None  # the mean over the tuning seeds (None: a seed diverged)


class Trials(Artefact):
    """tuning/models/VARIANT/trials.json: every finished trial of a variant's study, in trial order."""

    variant: str
    trials: list[Trial]


class VariantSelection(Artefact):
    """One variant's tuning as select read it."""

    trials: list[Trial]
    chosen: Chosen
    val_ap: float  # the chosen trial's mean validation AP
    best_so_far: list[float | None]  # the best mean validation AP after each trial (None before the first score)
    at_edge: dict[str, Literal["low", "high"]]  # chosen values at an edge of the space


class Selection(Artefact):
    """tuning/selection.json: every variant's trials and choice."""

    variants: dict[str, VariantSelection]
    tune_seeds: list[int]
    sampler: str
    trials: int
    criterion: str

    def setting(self, variant: str) -> Setting:
        """The setting chosen for a variant."""
        return self.variants[variant].chosen.setting

    def shared_trials(self, variant: str, reference: str) -> list[tuple[Setting, int, int]]:
        """(setting, the variant's trial, the reference's trial) for every setting both tuned: the seeded first
        round of TPE, which is the same for variants of one space, and all of a grid (none for the reference
        itself)."""
        if variant == reference or variant not in self.variants or reference not in self.variants:
            return []
        theirs = {t.setting: t.trial for t in self.variants[reference].trials}
        return [(t.setting, t.trial, theirs[t.setting]) for t in self.variants[variant].trials if t.setting in theirs]


# ---------------------------------------------------------------- time


class SharedTiming(Artefact):
    """Both variants timed at one setting both tuned (its batch size, dropout and learning rate alike)."""

    setting: Setting
    seconds: dict[str, list[float]]  # variant -> seconds per step, one per round


class StepTimes(Artefact):
    """timing/steps.json: each variant's seconds per training step, trained alone (a stack of one) by the
    project's loop and clock, ``steps`` steps a round, the variants interleaved in every round."""

    rounds: int
    steps: int
    device: str
    threads: int
    tuned: dict[str, list[float]]  # variant -> seconds per step at its tuned setting, one per round
    shared: list[SharedTiming]  # the settings a candidate and the baseline both tuned


# ---------------------------------------------------------------- evaluate


class ReferenceChoice(Artefact):
    """A reference model's grid point, chosen on the tuning split's validation AP, and the whole grid."""

    chosen: dict[str, Any]
    grid: list[dict[str, Any]]


class ModelMetrics(Artefact):
    """evaluation/metrics/NAME.json: every evaluation number of one model on its own split."""

    split: str
    replicate: int
    values: dict[str, float]  # threshold, {train,val,test}_{metric}, bootstrap intervals, money
    reference: ReferenceChoice | None = None  # reference models only
    alert_budget_by_day: dict[int, int] = {}  # with amounts and a time column: the test part's daily budgets

    def __getitem__(self, key: str) -> float:
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        """A value, or ``default`` when this model has none (money keys without amounts)."""
        return self.values.get(key, default)

    def __contains__(self, key: str) -> bool:
        return key in self.values


class LoggedModel(Artefact):
    """A compared model's MLflow run and the URI of its servable model."""

    run_id: str
    model_uri: str


class Logged(Artefact):
    """evaluation/runs.json: where evaluate logged in MLflow."""

    models: dict[str, LoggedModel] = {}
    references: dict[str, str] = {}  # reference model -> its run id


class TuningScore(Artefact):
    """One tuning model's validation and test AP and ROC-AUC on the tuning split (None: diverged)."""

    variant: str
    trial: int
    seed: int
    setting: Setting
    val_ap: float | None = None
    test_ap: float | None = None
    val_roc_auc: float | None = None
    test_roc_auc: float | None = None
    test_accuracy: float | None = None  # at the threshold chosen on validation (evaluate.threshold)
    diverged_at: int | None = None


class TuningScores(Artefact):
    """evaluation/tuning.json: every tuning model's scores."""

    models: dict[str, TuningScore]


class Overview(Artefact):
    """evaluation/overview.json: key test metrics of every model, and mean and sd per variant."""

    models: dict[str, dict[str, float]]
    variants: dict[str, dict[str, float]]


# ---------------------------------------------------------------- report


class Interval(Artefact):
    """An estimate and its interval."""

    mean: float
    low: float
    high: float


class Effect(Interval):
    """One claim's effect at its primary reading: the mean paired difference, its interval, the practical size
    (all in ``unit``: ap, accuracy, fraction, log ratio), Holm's p, and the other reading's estimate."""

    band: float
    p_holm: float
    unit: str = ""
    reading: str = ""  # tuned | shared: the comparison the verdict word belongs to
    other: Interval | None = None  # the other reading, beside it
    secondary: dict[str, Interval] | None = None  # the fraud claim: precision, recall, money beside AP


class SharedFigures(Artefact):
    """A candidate against the reference at shared settings (tuning trials both trained)."""

    pairs: int  # the pairs where both models learned (the shared readings')
    left_out: int = 0  # the pairs where one did not
    steps_speedup: float
    loss_fall: float


class Comparison(Artefact):
    """Another candidate's verdicts and effects (a third variant beside the primary one)."""

    verdict: dict[str, str]
    effect: dict[str, Effect]


class Answer(Artefact):
    """metrics/answer.json: the answer in one sentence per candidate (the report's first line, the MLflow
    pipeline run's description, a suite's row for the table)."""

    sentences: dict[str, str]  # candidate -> its sentence
    titles: dict[str, str]  # every compared variant -> its title (a suite's pages name them so)
    labels: dict[str, str]  # ... its label (table headers, figure axes)
    colors: dict[str, str]  # ... its colour
    reference: str  # the variant the candidates were compared with


class Headline(Artefact):
    """metrics/summary.json, the only DVC metrics file: the answer first. `dvc exp show` keeps this
    order and fits the table to the terminal, so what comes first is what a user sees."""

    test_ap: dict[str, float]
    verdict: dict[str, str] = {}  # the primary variant's, claim -> word
    effect: dict[str, Effect] = {}
    test_recall: dict[str, float]
    test_precision: dict[str, float]
    test_f1: dict[str, float]
    test_value_recall: dict[str, float] | None = None
    test_alert_precision: dict[str, float] | None = None
    test_savings_vs_none: dict[str, float] | None = None
    reference_test_ap: dict[str, float] = {}
    shared_setting: dict[str, SharedFigures] = {}
    others: dict[str, Comparison] = {}  # candidates beside the primary one, by name
    caveats: list[str]
    caveat_kinds: list[str]
    setting: dict[str, Setting]
    threshold: str
    replicates: int
    reference: str  # the variant every candidate was compared with
    candidate: str | None = None  # the primary candidate: its verdicts and effects are the top level's

    def candidates(self) -> list[str]:
        """Every candidate compared, the primary one first."""
        return ([self.candidate] if self.candidate and self.effect else []) + list(self.others)

    def effects(self, variant: str) -> dict[str, Effect]:
        """A candidate's effects (the primary one's at the top level)."""
        return self.effect if variant == self.candidate else self.others[variant].effect

    def verdicts(self, variant: str) -> dict[str, str]:
        """A candidate's verdict words."""
        return self.verdict if variant == self.candidate else self.others[variant].verdict

    def write(self, path: Path) -> None:
        """Write in the field order (not sorted: the answer first), without the optional entries a run lacks
        (money without amounts, other candidates, references turned off)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = self.model_dump(mode="json")
        optional = {name for name, field in type(self).model_fields.items() if not field.is_required()}
        payload = {k: v for k, v in payload.items() if not (k in optional and v in ({}, None))}
        path.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")


# ---------------------------------------------------------------- the checkpoint (a torch file)


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
