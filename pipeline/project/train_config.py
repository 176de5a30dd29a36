"""Strict, typed models of params.yaml's train section: the network, the loop, and tuning's search space."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.project.variants import VariantName


class Strict(BaseModel):
    """Every params model: unknown keys refused, values not coerced, frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveInt = Annotated[int, Field(ge=1)]


def no_repeats(value: list) -> list:
    """A list whose entries are all different."""
    if len(set(map(str, value))) != len(value):
        raise ValueError("must not repeat an entry")
    return value


class Range(Strict):
    """A number tuning draws between ``low`` and ``high`` (uniformly on a log scale with ``log``)."""

    low: float
    high: float
    log: bool

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if not self.low < self.high:
            raise ValueError("low must be below high")
        if self.log and self.low <= 0:
            raise ValueError("low must be > 0 on a log scale")
        return self


class Choices(Strict):
    """The values tuning picks from (one value: that value, not tuned)."""

    choices: list[float | int | str] = Field(min_length=1)

    @field_validator("choices")
    @classmethod
    def _distinct(cls, value: list) -> list:
        return no_repeats(value)


def _numbers(dimension: Range | Choices, key: str, low: float, high: float, integer: bool = False) -> None:
    values = [dimension.low, dimension.high] if isinstance(dimension, Range) else dimension.choices
    for value in values:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high
        if not ok or (integer and not (isinstance(value, int) or float(value).is_integer())):
            raise ValueError(f"{key} values must be {'whole ' if integer else ''}numbers in [{low:g}, {high:g}] "
                             f"(got {value!r})")


class SpaceParams(Strict):
    """What tuning chooses for each variant: every setting a model trains with."""

    lr: Range | Choices
    weight_decay: Range | Choices
    batch_size: Choices
    pos_weight: Choices  # none | balanced (negatives/positives of train) | a number
    dropout: Range | Choices

    @model_validator(mode="after")
    def _in_bounds(self) -> SpaceParams:
        _numbers(self.lr, "lr", 1e-7, 10.0)
        _numbers(self.weight_decay, "weight_decay", 0.0, 1.0)
        _numbers(self.batch_size, "batch_size", 2, 1_000_000, integer=True)
        _numbers(self.dropout, "dropout", 0.0, 0.95)
        for value in self.pos_weight.choices:
            if not (value in ("none", "balanced") or (isinstance(value, int | float) and value > 0)):
                raise ValueError(f"pos_weight choices must be 'none', 'balanced' or a number > 0 (got {value!r})")
        return self

    def grid_size(self) -> int | None:
        """How many settings the space holds when every dimension is a list of choices."""
        dims = [getattr(self, name) for name in type(self).model_fields]
        return math.prod(len(d.choices) for d in dims) if all(isinstance(d, Choices) for d in dims) else None


class TuneParams(Strict):
    """Equal tuning: the same number of trials for every variant, each a setting of the space trained on
    every tuning seed and scored by their mean validation AP."""

    trials: PositiveInt
    seeds: list[NonNegativeInt] = Field(min_length=1)
    sampler: Literal["tpe", "grid"]
    seed: NonNegativeInt
    parallel: PositiveInt  # trials asked at once and trained together
    space: SpaceParams

    @field_validator("seeds")
    @classmethod
    def _unique(cls, value: list) -> list:
        return no_repeats(value)

    @model_validator(mode="after")
    def _grid(self) -> TuneParams:
        if self.sampler == "grid":
            size = self.space.grid_size()
            if size is None:
                raise ValueError("sampler grid needs every dimension of space as choices")
            if self.trials > size:
                raise ValueError(f"trials ({self.trials}) exceeds the grid's {size} settings")
        return self


class ModelParams(Strict):
    """MLP shape; identical for every variant (its dropout is tuning's)."""

    hidden: list[PositiveInt] = Field(min_length=1)
    activation: Literal["relu", "gelu", "silu", "tanh"]
    batchnorm_placement: Literal["before", "after"]


class OptimizerParams(Strict):
    """Optimizer choice and its knobs (its learning rate and weight decay are tuning's)."""

    name: Literal["adam", "adamw", "sgd"]
    momentum: float = Field(ge=0, lt=1)


class DistributedParams(Strict):
    """Training processes on this machine (torchrun --standalone when above 1), restarts after a crash."""

    nproc: int = Field(ge=1, le=1024)
    max_restarts: int = Field(ge=0, le=100)


class TrainParams(Strict):
    """Parameters of the tune and train stages."""

    variants: list[VariantName] = Field(min_length=1)
    tune: TuneParams
    epochs: int = Field(ge=1, le=10_000)
    min_batch: int = Field(ge=2)
    device: Literal["auto", "cpu", "cuda"]
    bf16: bool
    model: ModelParams
    optimizer: OptimizerParams
    grad_clip: float = Field(ge=0)
    patience: int = Field(ge=0)
    probe_growth: float = Field(ge=0, le=10)

    @field_validator("probe_growth")
    @classmethod
    def _growing(cls, value: float) -> float:
        if 0 < value <= 1:
            raise ValueError("must be 0 (off) or above 1")
        return value
    stack: int = Field(ge=1, le=1024)
    batchnorm_sync: bool
    distributed: DistributedParams

    @field_validator("variants")
    @classmethod
    def _unique(cls, value: list) -> list:
        return no_repeats(value)


@dataclass(frozen=True)
class Setting:
    """What tuning chooses, per variant: everything a model trains with that the space holds."""

    lr: float
    weight_decay: float
    batch_size: int
    pos_weight: str | float  # none | balanced | a number
    dropout: float

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for files, MLflow params and the report)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Setting:
        """Inverse of to_dict(); other keys (a trial number, scores) are ignored."""
        return cls(lr=float(raw["lr"]), weight_decay=float(raw["weight_decay"]), batch_size=int(raw["batch_size"]),
                   pos_weight=raw["pos_weight"], dropout=float(raw["dropout"]))

    def name(self) -> str:
        """A short readable form: ``lr 0.003, wd 0, batch 1024, pos_weight none, dropout 0``."""
        return (f"lr {self.lr:.3g}, wd {self.weight_decay:g}, batch {self.batch_size}, pos_weight {self.pos_weight}, "
                f"dropout {self.dropout:g}")
