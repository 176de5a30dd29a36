"""Strict, typed models of params.yaml, one per stage section (read by ``project.loading``)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from pipeline.data.tables import table_kind
from pipeline.project.train_config import Strict as _Strict
from pipeline.project.train_config import TrainParams


PositiveInt = Annotated[int, Field(ge=1)]
PositiveFloat = Annotated[float, Field(gt=0)]


class SyntheticParams(_Strict):
    """Size, fraud rate, fraud signal and noise columns of the embedded synthetic data set."""

    rows: int = Field(ge=1000)
    fraud_rate: float = Field(gt=0, lt=0.5)
    signal: Literal["mixed", "linear", "nonlinear"]
    extra_features: int = Field(ge=0, le=1000)


DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class SplitParams(_Strict):
    """How rows are divided into train, validation and test."""

    method: Literal["stratified", "time"]
    fractions: list[float]
    time_column: str
    min_positives: int = Field(ge=1)
    delay: str  # time only: a gap after the training block (labels arrive late), e.g. 30m, 12h, 7d
    folds: int = Field(ge=1, le=100)  # time only: consecutive train/delay/val/test windows (prequential)

    @field_validator("delay")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not DURATION.match(value):
            raise ValueError("must be a duration: a number and s, m, h or d, such as 0s, 30m, 12h or 7d")
        return value

    @property
    def delay_seconds(self) -> float:
        """The delay in seconds (the unit of a numeric time column; date-times are read as seconds)."""
        match = DURATION.match(self.delay)
        assert match is not None  # the pattern was checked at load
        return float(match.group(1)) * SECONDS[match.group(2)]

    @field_validator("fractions")
    @classmethod
    def _three_fractions(cls, value: list[float]) -> list[float]:
        if len(value) != 3 or any(f <= 0 for f in value) or abs(sum(value) - 1) > 1e-6:
            raise ValueError("must be three positive fractions (train, val, test) summing to 1")
        return value


ColumnRole = Literal["numeric", "categorical", "datetime", "id", "entity", "drop"]


class PrepareParams(_Strict):
    """Parameters of the prepare stage."""

    source: str = Field(min_length=1)
    label: str = Field(min_length=1)
    seed: int = Field(ge=0)
    replicates: int = Field(ge=1, le=1000)
    synthetic: SyntheticParams
    split: SplitParams
    log1p: list[str]
    amount: str | None  # each transaction's amount, for the money metrics (used when the column exists)
    nonfinite: Literal["error", "drop"]
    drop_columns: list[str]
    columns: dict[str, ColumnRole]  # declared roles, over any inference (data.roles)
    min_category_count: int = Field(ge=1)  # rarer categories of the training part share the "other" index

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if value != "synthetic" and table_kind(value) is None:
            raise ValueError("must be 'synthetic' or a path ending in .csv, .csv.gz (or another compression "
                             "pandas reads: .zip, .bz2, .xz, .zst) or .parquet")
        return value


class ThresholdParams(_Strict):
    """How the decision threshold is chosen on the validation split."""

    strategy: Literal["max_f1", "recall_at_precision", "precision_at_recall", "fixed", "cost"]
    target: float = Field(ge=0, le=1)


class BootstrapParams(_Strict):
    """Stratified bootstrap for confidence intervals."""

    resamples: int = Field(ge=10, le=100_000)
    seed: int = Field(ge=0)


class LogisticRegressionGrid(_Strict):
    """Balanced logistic regression; the inverse regularisation strengths tried."""

    C: list[PositiveFloat] = Field(min_length=1)


class GradientBoostingGrid(_Strict):
    """Balanced histogram gradient boosting, early-stopped on the validation split."""

    learning_rate: list[PositiveFloat] = Field(min_length=1)
    max_leaf_nodes: list[Annotated[int, Field(ge=2)]] = Field(min_length=1)


class ReferenceParams(_Strict):
    """Reference models and their validation grids; leave one out to turn it off."""

    logistic_regression: LogisticRegressionGrid | None = None
    hist_gradient_boosting: GradientBoostingGrid | None = None

    def names(self) -> list[str]:
        """The references turned on, in a fixed order."""
        return [name for name in type(self).model_fields if getattr(self, name) is not None]


class EvaluateParams(_Strict):
    """Parameters of the evaluate stage."""

    threshold: ThresholdParams
    references: ReferenceParams
    bootstrap: BootstrapParams
    precision_at_k: list[PositiveInt]
    recall_target: float = Field(gt=0, le=1)
    alerts_per_day: PositiveInt  # the investigators' daily capacity on the whole day's traffic
    cost_per_alert: PositiveFloat  # what reviewing one alert costs, in the amount column's currency


class MinEffectParams(_Strict):
    """The practical size of each claim, in its own unit: a smaller effect is never "supported"."""

    minority: float = Field(gt=0, lt=1)  # test average precision
    accuracy: float = Field(gt=0, lt=1)  # test accuracy
    loss: float = Field(gt=0, lt=1)  # relative reduction of the training loss
    speed: float = Field(gt=0, lt=10)  # relative time saved: 0.1 = the target reached 1.1x as fast


class ClaimBootstrapParams(_Strict):
    """The nested bootstrap of the verdicts' intervals: replicates, then test rows within each."""

    resamples: int = Field(ge=100, le=1_000_000)  # outer: replicates drawn with replacement
    inner: int = Field(ge=10, le=100_000)  # per replicate: resamples of its test rows
    seed: int = Field(ge=0)


class ReportParams(_Strict):
    """Parameters of the report stage."""

    early_epoch: int = Field(ge=1)
    small_batch: int = Field(ge=2)
    confidence: float = Field(gt=0.5, lt=1)
    power: float = Field(gt=0.5, lt=1)
    min_effect: MinEffectParams
    bootstrap: ClaimBootstrapParams
    speed_rungs: list[float] = Field(min_length=1)
    saturation: float = Field(ge=0, lt=1)

    @field_validator("speed_rungs")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        if any(not 0 < v <= 1 for v in value) or sorted(set(value)) != value:
            raise ValueError("must be increasing fractions in (0, 1] of the best validation AP both variants reach")
        return value


class MlflowParams(_Strict):
    """Where runs go in MLflow, and the registered model the best one becomes."""

    experiment: str = Field(min_length=1)
    registered_model: str = Field(min_length=1)


class Params(_Strict):
    """The whole of params.yaml."""

    prepare: PrepareParams
    train: TrainParams
    evaluate: EvaluateParams
    report: ReportParams
    mlflow: MlflowParams

    @model_validator(mode="after")
    def _own_seeds(self) -> Params:
        shared = sorted(set(self.train.tune.seeds) & set(range(self.prepare.replicates)))
        if shared:
            raise ValueError(f"train.tune.seeds must not share seeds with the replicates 0..{self.prepare.replicates - 1} "
                             f"({shared}): tuning models are chosen on validation and kept apart from the models "
                             "they choose for")
        return self
