"""Every params model (strict, typed, frozen; one per section of params.yaml) and the one reader of
params files: YAML read as DVC reads it, and the first problem as one line naming the key.

Defaults live in params.yaml only: no model here has a default of its own (but optional extras)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from pipeline.runtime.cli import PARAMS_FILE
from pipeline.runtime.errors import ConfigError


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
            raise ValueError(
                f"{key} values must be {'whole ' if integer else ''}numbers in [{low:g}, {high:g}] (got {value!r})"
            )


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

    def holding(self, fixed: dict[str, Any]) -> SpaceParams:
        """The space a variant tunes: this one with the settings it holds fixed as one choice each."""
        return self.model_copy(update={name: Choices(choices=[value]) for name, value in fixed.items()})

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


Norm = Literal["batchnorm", "layernorm", "none"]
Activation = Literal["relu", "gelu", "silu", "tanh"]
Placement = Literal["before", "after"]
OptimizerName = Literal["adam", "adamw", "sgd"]
EmbeddingScale = Annotated[float, Field(gt=0, le=8)]
Momentum = Annotated[float, Field(ge=0, lt=1)]


class ModelParams(Strict):
    """The shared recipe's MLP (a variant overrides any of it: ``variants.declared.NAME.model``; its dropout
    is tuning's)."""

    hidden: list[PositiveInt] = Field(min_length=1)
    activation: Activation
    norm: Norm  # the layer after each hidden linear layer
    batchnorm_placement: Placement  # a normalisation layer before or after the activation
    embedding_scale: EmbeddingScale  # each categorical column's embedding width: this times the usual rule


class OptimizerParams(Strict):
    """The shared recipe's optimizer and its knobs (its learning rate and weight decay are tuning's)."""

    name: OptimizerName
    momentum: Momentum


class DistributedParams(Strict):
    """Training processes on this machine (torchrun --standalone when above 1), restarts after a crash."""

    nproc: int = Field(ge=1, le=1024)
    max_restarts: int = Field(ge=0, le=100)


class ClusterParams(Strict):
    """Where a stage's stacks train: one after another in its own process (``local``), or all at once as
    tasks of a running Ray cluster (``ray``, docs/cluster.md). Never what they compute: the stacks are the
    same either way, and so are the models."""

    backend: Literal["local", "ray"]
    address: str | None  # ray: the cluster's address (host:port, or auto); None: the RAY_ADDRESS variable
    cpus: int = Field(ge=1, le=1024)  # ray: CPUs per stack, its torch threads
    gpus: int = Field(ge=0, le=1)  # ray: GPUs per stack (1: stacks train on GPU nodes, on CUDA)
    retries: int = Field(ge=0, le=100)  # ray: how often a stack lost with its worker or node is trained again

    @field_validator("address")
    @classmethod
    def _not_empty(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must be an address (host:port, or auto) or null (then RAY_ADDRESS)")
        return value


class TrainParams(Strict):
    """Parameters of the tune and train stages."""

    variants: list[str] = Field(min_length=1)  # names declared in variants.declared, the reference among them
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
    cluster: ClusterParams

    @field_validator("variants")
    @classmethod
    def _unique(cls, value: list) -> list:
        return no_repeats(value)

    @field_validator("cluster")
    @classmethod
    def _one_way_to_spread(cls, value: ClusterParams, info: ValidationInfo) -> ClusterParams:
        """The ray backend trains each stack in one process, on the device its resources give it."""
        if value.backend == "ray":
            if "distributed" in info.data and info.data["distributed"].nproc > 1:
                raise ValueError(
                    "backend ray trains each stack in one process: set train.distributed.nproc to 1, or the "
                    "backend to local to train each model over several processes"
                )
            if info.data.get("device") == "cuda" and value.gpus == 0:
                raise ValueError("backend ray with train.device cuda needs gpus 1 (a GPU per stack)")
            if info.data.get("device") == "cpu" and value.gpus > 0:
                raise ValueError("gpus 1 with train.device cpu would hold a GPU per stack unused: set gpus to 0")
        return value


class Setting(BaseModel):
    """What tuning chooses, per variant: everything a model trains with that the space holds (a trial's
    values; in run files, chosen settings and MLflow params)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lr: float
    weight_decay: float
    batch_size: int
    pos_weight: str | float  # none | balanced | a number
    dropout: float

    def name(self) -> str:
        """A short readable form: ``lr 0.003, wd 0, batch 1024, pos_weight none, dropout 0``."""
        return (
            f"lr {self.lr:.3g}, wd {self.weight_decay:g}, batch {self.batch_size}, pos_weight {self.pos_weight}, "
            f"dropout {self.dropout:g}"
        )


PositiveFloat = Annotated[float, Field(gt=0)]


class SyntheticParams(Strict):
    """Size, fraud rate, fraud signal and noise columns of the embedded synthetic data set."""

    rows: int = Field(ge=1000)
    fraud_rate: float = Field(gt=0, lt=0.5)
    signal: Literal["mixed", "linear", "nonlinear"]
    extra_features: int = Field(ge=0, le=1000)


DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class SplitParams(Strict):
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


COMPRESSIONS = (".gz", ".bz2", ".zip", ".xz", ".zst")  # what pandas decompresses by suffix


def table_kind(path: str | Path) -> str | None:
    """What prepare.source may name: 'csv' for .csv and compressed .csv.gz/.bz2/.zip/.xz/.zst,
    'parquet' for .parquet, else None."""
    name = Path(path).name.lower()
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".csv") or any(name.endswith(".csv" + c) for c in COMPRESSIONS):
        return "csv"
    return None


class PrepareParams(Strict):
    """Parameters of the prepare stage."""

    source: str = Field(min_length=1)
    label: str = Field(min_length=1)
    seed: int = Field(ge=0)
    replicates: int = Field(ge=1, le=1000)
    synthetic: SyntheticParams
    split: SplitParams
    log1p: list[str]  # the entry naming ``amount`` follows the amount column found (data.roles)
    amount: str | None  # each transaction's amount, for the money metrics (absent: one named like an amount)
    nonfinite: Literal["impute", "error", "drop"]
    drop_columns: list[str]
    columns: dict[str, ColumnRole]  # declared roles, over any inference (data.roles)
    min_category_count: int = Field(ge=1)  # rarer categories of the training part share the "other" index

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if value != "synthetic" and table_kind(value) is None:
            raise ValueError(
                "must be 'synthetic' or a path ending in .csv, .csv.gz (or another compression "
                "pandas reads: .zip, .bz2, .xz, .zst) or .parquet"
            )
        return value


class ThresholdParams(Strict):
    """How the decision threshold is chosen on the validation split."""

    strategy: Literal["max_f1", "recall_at_precision", "precision_at_recall", "fixed", "cost"]
    target: float = Field(ge=0, le=1)


class BootstrapParams(Strict):
    """Stratified bootstrap for confidence intervals."""

    resamples: int = Field(ge=10, le=100_000)
    seed: int = Field(ge=0)


class LogisticRegressionGrid(Strict):
    """Balanced logistic regression; the inverse regularisation strengths tried."""

    C: list[PositiveFloat] = Field(min_length=1)


class GradientBoostingGrid(Strict):
    """Balanced histogram gradient boosting, early-stopped on the validation split."""

    learning_rate: list[PositiveFloat] = Field(min_length=1)
    max_leaf_nodes: list[Annotated[int, Field(ge=2)]] = Field(min_length=1)


class ReferenceParams(Strict):
    """Reference models and their validation grids; leave one out to turn it off."""

    logistic_regression: LogisticRegressionGrid | None = None
    hist_gradient_boosting: GradientBoostingGrid | None = None

    def names(self) -> list[str]:
        """The references turned on, in a fixed order."""
        return [name for name in type(self).model_fields if getattr(self, name) is not None]


class EvaluateParams(Strict):
    """Parameters of the evaluate stage."""

    threshold: ThresholdParams
    references: ReferenceParams
    bootstrap: BootstrapParams
    precision_at_k: list[PositiveInt]
    recall_target: float = Field(gt=0, le=1)
    alerts_per_day: PositiveInt  # the investigators' daily capacity on the whole day's traffic
    cost_per_alert: PositiveFloat  # what reviewing one alert costs, in the amount column's currency


class MinEffectParams(Strict):
    """The practical size of each claim, in its own unit: a smaller effect is never "supported"."""

    minority: float = Field(gt=0, lt=1)  # test average precision
    accuracy: float = Field(gt=0, lt=1)  # test accuracy
    loss: float = Field(gt=0, lt=1)  # relative reduction of the training loss
    speed: float = Field(gt=0, lt=10)  # relative time saved: 0.1 = the target reached 1.1x as fast


class ClaimBootstrapParams(Strict):
    """The nested bootstrap of the verdicts' intervals: replicates, then test rows within each."""

    resamples: int = Field(ge=100, le=1_000_000)  # outer: replicates drawn with replacement
    inner: int = Field(ge=10, le=100_000)  # per replicate: resamples of its test rows
    seed: int = Field(ge=0)


class ReportParams(Strict):
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


class TimingParams(Strict):
    """Parameters of the timing stage: how often, and how long, each variant's training step is timed."""

    repeats: int = Field(ge=2, le=1000)  # rounds, each timing every variant once, in a rotating order
    steps: int = Field(ge=5, le=100_000)  # timed steps per variant and round (a warm-up round goes first)


class MlflowParams(Strict):
    """Where runs go in MLflow, and the registered model the best one becomes."""

    experiment: str = Field(min_length=1)
    registered_model: str = Field(min_length=1)


class ModelOverrides(Strict):
    """What a variant changes of the shared recipe's model (``train.model``); what it leaves out, it shares."""

    hidden: list[PositiveInt] | None = Field(default=None, min_length=1)
    activation: Activation | None = None
    norm: Norm | None = None
    batchnorm_placement: Placement | None = None
    embedding_scale: EmbeddingScale | None = None


class OptimizerOverrides(Strict):
    """What a variant changes of the shared recipe's optimizer (``train.optimizer``)."""

    name: OptimizerName | None = None
    momentum: Momentum | None = None


class FixedSettings(Strict):
    """Settings a variant holds fixed: they leave its tuning space (it tunes the others)."""

    lr: float | None = Field(default=None, gt=0, le=10)
    weight_decay: float | None = Field(default=None, ge=0, le=1)
    batch_size: int | None = Field(default=None, ge=2, le=1_000_000)
    pos_weight: str | float | int | None = None
    dropout: float | None = Field(default=None, ge=0, le=0.95)

    @field_validator("pos_weight")
    @classmethod
    def _weight(cls, value: str | float | None) -> str | float | None:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if value is not None and not (value in ("none", "balanced") or (number and value > 0)):
            raise ValueError("must be 'none', 'balanced' or a number > 0")
        return value

    def given(self) -> dict[str, Any]:
        """The settings held, by name."""
        return self.model_dump(exclude_none=True)


VARIANT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")  # in file names, MLflow run names (NAME-s0), DVC stages


class VariantSpec(Strict):
    """One declared variant: its words, its colour, and its overrides of the shared recipe."""

    title: str = Field(min_length=1)  # in sentences: "GELU", "the baseline"
    label: str | None = None  # in table headers: "with GELU" (default: the title)
    color: str | None = Field(default=None, pattern=r"^#[0-9a-fA-F]{6}$")  # MLflow and figures (default: by order)
    model: ModelOverrides = ModelOverrides()
    optimizer: OptimizerOverrides = OptimizerOverrides()
    fixed: FixedSettings = FixedSettings()


class VariantsParams(Strict):
    """The variants a run may compare (``train.variants`` picks them), and the reference every other one is
    compared with."""

    reference: str
    declared: dict[str, VariantSpec] = Field(min_length=2)

    @field_validator("declared")
    @classmethod
    def _names(cls, value: dict[str, VariantSpec]) -> dict[str, VariantSpec]:
        bad = [name for name in value if not VARIANT_NAME.match(name)]
        if bad:
            raise ValueError(
                f"names {bad} must be lower-case letters, digits and _ (a letter first, at most 32): they name files, "
                "MLflow runs (NAME-s0) and DVC stages"
            )
        return value


class Params(Strict):
    """The whole of params.yaml."""

    prepare: PrepareParams
    variants: VariantsParams
    train: TrainParams
    timing: TimingParams
    evaluate: EvaluateParams
    report: ReportParams
    mlflow: MlflowParams

    @model_validator(mode="after")
    def _variants(self) -> Params:
        """Every compared variant declared, the reference among them, no candidate the reference itself, no
        variant with nothing left to tune (each problem one line naming its key)."""
        declared, compared, reference = self.variants.declared, self.train.variants, self.variants.reference
        unknown = [v for v in compared if v not in declared]
        if unknown:
            raise ValueError(
                f"train.variants names {', '.join(unknown)}, not declared in variants.declared (declared: "
                f"{', '.join(declared)}); declare it or remove it"
            )
        if reference not in declared:
            raise ValueError(f"variants.reference {reference!r} is not declared in variants.declared; declare it")
        if reference not in compared:
            raise ValueError(
                f"variants.reference {reference!r} is not in train.variants {compared}: every candidate is compared "
                "with it; add it"
            )
        dimensions = list(SpaceParams.model_fields)
        for name in compared:
            spec = declared[name]
            fixed = spec.fixed.given()
            if set(fixed) == set(dimensions):
                raise ValueError(
                    f"variants.declared.{name}.fixed holds every dimension of train.tune.space ({', '.join(fixed)}): "
                    "nothing is left to tune; remove one"
                )
            if self.train.tune.sampler == "grid":
                size = math.prod(
                    1 if d in fixed else len(getattr(self.train.tune.space, d).choices)  # type: ignore[union-attr]
                    for d in dimensions
                )
                if self.train.tune.trials > size:
                    raise ValueError(
                        f"variants.declared.{name}.fixed leaves a grid of {size} settings, fewer than "
                        f"train.tune.trials ({self.train.tune.trials}): every variant gets the same budget"
                    )
            if name != reference and recipe(self, name) == recipe(self, reference):
                raise ValueError(
                    f"variants.declared.{name} is the reference {reference!r} again: its model, optimizer and fixed "
                    "settings are the reference's; override something"
                )
        return self

    @model_validator(mode="after")
    def _own_seeds(self) -> Params:
        shared = sorted(set(self.train.tune.seeds) & set(range(self.prepare.replicates)))
        if shared:
            raise ValueError(
                f"train.tune.seeds must not share seeds with the replicates 0..{self.prepare.replicates - 1} "
                f"({shared}): tuning models are chosen on validation and kept apart from the models "
                "they choose for"
            )
        return self


def recipe(params: Params, variant: str) -> dict[str, Any]:
    """What a variant trains with beyond its tuned setting: the shared model and optimizer with its overrides,
    and the settings it holds fixed."""
    spec = params.variants.declared[variant]
    model = params.train.model.model_copy(update=spec.model.model_dump(exclude_none=True))
    optimizer = params.train.optimizer.model_copy(update=spec.optimizer.model_dump(exclude_none=True))
    return {"model": model.model_dump(), "optimizer": optimizer.model_dump(), "fixed": spec.fixed.given()}


class DuplicateKey(yaml.YAMLError):
    """A mapping that names one key twice (YAML would keep the last silently)."""


def _yaml_loader() -> type[yaml.SafeLoader]:
    """A SafeLoader that reads YAML 1.2 floats such as ``1e-3`` as numbers, as DVC does, and refuses a key
    named twice in one mapping (two variants of one name, two values of one param)."""

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
                if key in seen:
                    raise DuplicateKey(
                        f"the key {key!r} appears twice in one mapping (line {key_node.start_mark.line + 1})"
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    float_re = re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    )
    Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    for first in "-+0123456789.":
        Loader.yaml_implicit_resolvers[first] = [
            (tag, rx) for tag, rx in Loader.yaml_implicit_resolvers.get(first, []) if tag != "tag:yaml.org,2002:float"
        ]
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", float_re, list("-+0123456789."))
    return Loader


def _describe(error: dict[str, Any]) -> str:
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]).lstrip(".")
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"unknown key {key} (remove it or check its spelling)"
    if kind == "missing":
        return f"{key} is missing (add it to params.yaml)"
    message = error["msg"].removeprefix("Value error, ")
    if not key:  # a check across sections (a model validator): its message names the keys itself
        return message
    ctx = error.get("ctx") or {}
    bounds = {
        "greater_than": "> {gt}",
        "greater_than_equal": ">= {ge}",
        "less_than": "< {lt}",
        "less_than_equal": "<= {le}",
    }
    if kind in bounds:
        message = "must be " + bounds[kind].format(**ctx)
    elif kind == "literal_error":
        message = "must be one of " + str(ctx.get("expected", ""))
    elif kind in ("model_type", "dict_type"):
        message = "must be a mapping of names to settings (see params.yaml's comments)"
    said = f"{key} {message[0].lower()}{message[1:]}"
    given = error.get("input")
    return said if isinstance(given, dict) else f"{said} (got {given!r})"  # a mapping's message names its part


Section = TypeVar("Section", bound=BaseModel)


def parse(raw: dict[str, Any], model: type[Section] = Params, where: str = "params.yaml") -> Section:
    """Validate a params mapping, turning its problems into one readable ConfigError (every problem, one
    per clause)."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{where}: " + "; ".join(_describe(e) for e in exc.errors())) from None


def read_yaml(text: str) -> Any:
    """Parse params YAML the way DVC does (YAML 1.2 floats); the one reader of params files."""
    return yaml.load(text, Loader=_yaml_loader())


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read and validate params.yaml."""
    try:
        raw = read_yaml(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found (run from the repository root)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})".replace("\n", " ")) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: must be a mapping of stage sections")
    return parse(raw, Params, str(path))


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested models/dicts into dotted keys (for MLflow params)."""
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}
