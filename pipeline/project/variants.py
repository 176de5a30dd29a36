"""The variants a run compares, as params.yaml declares them (``variants``; ``train.variants`` picks which
run): each one's name, words, colour and line style, and its recipe: the shared model and optimizer with
its overrides, and the settings it holds fixed (they leave its tuning space). One of them is the
reference (``variants.reference``) every other one, a candidate, is compared with; the first candidate in
``train.variants`` is the question's (the primary one: its verdict heads the report and the headline).

Declared order is the order of every table, legend and column; colours and line styles follow it unless a
variant names its colour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.project.params import ModelParams, OptimizerParams, Params, recipe

REFERENCE_COLOR = "#7f7f7f"  # reference models (scikit-learn yardsticks), in MLflow and figures
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")
COLOR_NAMES = dict(zip(PALETTE, ("blue", "orange", "green", "red", "purple", "brown", "pink", "olive", "cyan")))
LINESTYLES = ("-", "--", "-.", ":")


@dataclass(frozen=True)
class Variant:
    """One declared variant, resolved against the shared recipe."""

    name: str  # in params, file names, MLflow run names and tags
    title: str  # in sentences: "BatchNorm", "the baseline"
    label: str  # in table headers: "with BatchNorm"
    color: str  # MLflow's run colour (mlflow.runColor) and every figure
    linestyle: str  # in overlaid figures
    model: ModelParams  # the shared model with its overrides
    optimizer: OptimizerParams  # the shared optimizer with its overrides
    fixed: dict[str, Any]  # settings held fixed: they leave its tuning space

    @property
    def short(self) -> str:
        """In lists: "BatchNorm 0.003, baseline 0.01" (the title without a leading "the ")."""
        return self.title.removeprefix("the ")

    @property
    def batchnorm(self) -> bool:
        """Whether it normalises with BatchNorm (BatchNorm's own checks then apply)."""
        return self.model.norm == "batchnorm"


class Catalogue:
    """Every declared variant of a run's params, and which are compared, the reference and the primary."""

    def __init__(self, params: Params) -> None:
        declared = params.variants.declared
        self._recipes = {name: recipe(params, name) for name in declared}
        self.variants: dict[str, Variant] = {
            name: Variant(
                name,
                spec.title,
                spec.label or spec.title,
                spec.color or PALETTE[i % len(PALETTE)],
                LINESTYLES[i % len(LINESTYLES)],
                ModelParams.model_validate(self._recipes[name]["model"]),
                OptimizerParams.model_validate(self._recipes[name]["optimizer"]),
                self._recipes[name]["fixed"],
            )
            for i, (name, spec) in enumerate(declared.items())
        }
        self._params = params

    # Which variants run is read when asked: a stage that trains one variant reads only its declaration.
    @property
    def reference(self) -> str:
        """The variant every candidate is compared with."""
        return self._params.variants.reference

    @property
    def compared(self) -> list[str]:
        """The variants this run trains, in declared order."""
        return self.ordered(self._params.train.variants)

    @property
    def candidates(self) -> list[str]:
        """The compared variants but the reference, in train.variants' order."""
        return [v for v in self._params.train.variants if v != self.reference]

    @property
    def primary(self) -> str | None:
        """The question's candidate: the first in train.variants (None without a candidate)."""
        return self.candidates[0] if self.candidates else None

    def __getitem__(self, name: str) -> Variant:
        return self.variants[name]

    def __contains__(self, name: object) -> bool:
        return name in self.variants

    def recipe(self, name: str) -> dict[str, Any]:
        """What the variant trains with beyond its tuned setting (model, optimizer, fixed settings): part of
        its models' keys, so a changed declaration retrains them."""
        return self._recipes[name]

    def title(self, name: str) -> str:
        """How a variant (or a reference model) is named in a sentence."""
        return self.variants[name].title if name in self.variants else f"the {name.replace('_', ' ')}"

    def label(self, name: str) -> str:
        """How a variant (or any other model name) is named in table headers."""
        return self.variants[name].label if name in self.variants else name

    def short(self, name: str) -> str:
        """How a variant (or a reference model) is named in a list."""
        return self.variants[name].short if name in self.variants else name.replace("_", " ")

    def color(self, name: str) -> str:
        """A variant's colour; reference models grey."""
        return self.variants[name].color if name in self.variants else REFERENCE_COLOR

    def color_name(self, name: str) -> str:
        """A variant's colour in words where it is the palette's ("blue"), else its hex code."""
        color = self.color(name)
        return COLOR_NAMES.get(color, color)

    def ordered(self, names: list[str] | tuple[str, ...] | set[str]) -> list[str]:
        """Names in declared order, then any other names sorted."""
        return [n for n in self.variants if n in names] + sorted(n for n in names if n not in self.variants)

    @property
    def slug(self) -> str:
        """The compared variants' names, the question's candidate first: ``batchnorm-vs-baseline`` (MLflow's
        saved views are keyed by it)."""
        return "-vs-".join([*([self.primary] if self.primary else []), self.reference])

    @property
    def heading(self) -> str:
        """The same in words: ``BatchNorm vs baseline``."""
        return " vs ".join(self.short(v) for v in [*([self.primary] if self.primary else []), self.reference])

    def question(self, variant: str) -> str:
        """The question a candidate answers: "Does GELU make this MLP learn faster and catch more fraud than
        ReLU?"."""
        return (
            f"Does {self.title(variant)} make this MLP learn faster and catch more fraud than "
            f"{self.title(self.reference)}?"
        )

    def differences(self, variant: str) -> str:
        """How a candidate's recipe differs from the reference's, in words ("" when alike): "activation gelu
        against relu; dropout fixed at 0.2"."""
        ours, theirs = self.recipe(variant), self.recipe(self.reference)
        said = []
        for part in ("model", "optimizer"):
            for key, value in ours[part].items():
                if theirs[part][key] != value:
                    where = "optimizer " if part == "optimizer" and key != "momentum" else ""
                    said.append(f"{where}{key.replace('_', ' ')} {_words(value)} against {_words(theirs[part][key])}")
        for key in sorted(set(ours["fixed"]) | set(theirs["fixed"])):
            a, b = ours["fixed"].get(key), theirs["fixed"].get(key)
            if a != b:
                said.append(
                    f"{key.replace('_', ' ')} {'fixed at ' + _words(a) if a is not None else 'tuned'} "
                    f"against {'fixed at ' + _words(b) if b is not None else 'tuned'}"
                )
        return "; ".join(said)

    def same_shape(self, variant: str) -> bool:
        """Whether a candidate's network has the reference's shapes (hidden widths, embedding widths): then
        every shared layer starts from the same weights; else only what the seeded generator draws alike."""
        ours, theirs = self.variants[variant].model, self.variants[self.reference].model
        return ours.hidden == theirs.hidden and ours.embedding_scale == theirs.embedding_scale


def _words(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)
