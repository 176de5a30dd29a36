"""Strict, typed models of params.yaml, one per stage section (read by ``project.loading``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.data.tables import table_kind
from pipeline.project.variants import VariantName


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
LearningRate = Annotated[float, Field(gt=0, le=10)]
PositiveFloat = Annotated[float, Field(gt=0)]


def _no_repeats(value: list) -> list:
    if len(set(value)) != len(value):
        raise ValueError("must not repeat an entry")
    return value


class SyntheticParams(_Strict):
    """Size and fraud rate of the embedded synthetic data set."""

    rows: int = Field(ge=1000)
    fraud_rate: float = Field(gt=0, lt=0.5)


class SplitParams(_Strict):
    """How rows are divided into train, validation and test."""

    method: Literal["stratified", "time"]
    fractions: list[float]
    time_column: str
    min_positives: int = Field(ge=1)

    @field_validator("fractions")
    @classmethod
    def _three_fractions(cls, value: list[float]) -> list[float]:
        if len(value) != 3 or any(f <= 0 for f in value) or abs(sum(value) - 1) > 1e-6:
            raise ValueError("must be three positive fractions (train, val, test) summing to 1")
        return value


class PrepareParams(_Strict):
    """Parameters of the prepare stage."""

    source: str = Field(min_length=1)
    label: str = Field(min_length=1)
    seed: int = Field(ge=0)
    synthetic: SyntheticParams
    split: SplitParams
    log1p: list[str]
    nonfinite: Literal["error", "drop"]
    drop_columns: list[str]

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if value != "synthetic" and table_kind(value) is None:
            raise ValueError("must be 'synthetic' or a path ending in .csv, .csv.gz (or another compression "
                             "pandas reads: .zip, .bz2, .xz, .zst) or .parquet")
        return value


class ModelParams(_Strict):
    """MLP shape; identical for every variant."""

    hidden: list[PositiveInt] = Field(min_length=1)
    dropout: float = Field(ge=0, lt=1)
    activation: Literal["relu", "gelu", "silu", "tanh"]
    batchnorm_placement: Literal["before", "after"]


class OptimizerParams(_Strict):
    """Optimizer choice and its knobs."""

    name: Literal["adam", "adamw", "sgd"]
    weight_decay: float = Field(ge=0)
    momentum: float = Field(ge=0, lt=1)


class DistributedParams(_Strict):
    """Training processes on this machine (torchrun --standalone when above 1), restarts after a crash."""

    nproc: int = Field(ge=1, le=1024)
    max_restarts: int = Field(ge=0, le=100)


class TrainParams(_Strict):
    """Parameters of the tune and train stages."""

    variants: list[VariantName] = Field(min_length=1)
    seeds: list[NonNegativeInt] = Field(min_length=1)
    lr: list[LearningRate] = Field(min_length=1)
    tune_seeds: list[NonNegativeInt] = Field(min_length=1)
    epochs: int = Field(ge=1, le=10_000)
    batch_size: int = Field(ge=2)
    min_batch: int = Field(ge=2)
    device: Literal["auto", "cpu", "cuda"]
    bf16: bool
    model: ModelParams
    optimizer: OptimizerParams
    pos_weight: float | Literal["none", "balanced"]
    grad_clip: float = Field(ge=0)
    patience: int = Field(ge=0)
    stack: int = Field(ge=1, le=1024)
    batchnorm_sync: bool
    distributed: DistributedParams

    @field_validator("variants", "seeds", "lr", "tune_seeds")
    @classmethod
    def _unique(cls, value: list) -> list:
        return _no_repeats(value)

    @field_validator("tune_seeds")
    @classmethod
    def _own_seeds(cls, value: list[int], info: Any) -> list[int]:
        shared = sorted(set(value) & set(info.data.get("seeds", [])))
        if shared:
            raise ValueError(f"must not share seeds with train.seeds ({shared}): tuning models are chosen on "
                             "validation and kept apart from the models they choose for")
        return value

    @field_validator("pos_weight")
    @classmethod
    def _positive_weight(cls, value: float | str) -> float | str:
        if isinstance(value, float | int) and value <= 0:
            raise ValueError("must be 'none', 'balanced' or a number > 0")
        return value


class ThresholdParams(_Strict):
    """How the decision threshold is chosen on the validation split."""

    strategy: Literal["max_f1", "recall_at_precision", "precision_at_recall", "fixed"]
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


class ReportParams(_Strict):
    """Parameters of the report stage."""

    early_epoch: int = Field(ge=1)
    small_batch: int = Field(ge=2)
    confidence: float = Field(gt=0.5, lt=1)
    power: float = Field(gt=0.5, lt=1)
    suspect_margin: float = Field(ge=0, lt=1)


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
