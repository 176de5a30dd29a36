"""The one catalogue of the variants compared: each one's name, normalisation, colour, labels and order.

Every variant is the same MLP; they differ only in the normalisation layer after each hidden linear
layer. The catalogue's order is the order of every table, legend and column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

VariantName = Literal["batchnorm", "baseline", "layernorm"]  # what params.yaml may list in train.variants
Norm = Literal["batchnorm", "layernorm", "none"]
REFERENCE_COLOR = "#7f7f7f"  # reference models (scikit-learn yardsticks), in MLflow and figures


@dataclass(frozen=True)
class Variant:
    """One variant of the MLP."""

    name: str  # in params, file names, MLflow run names and tags
    norm: Norm  # the layer it adds (modeling.model maps it to a torch module)
    color: str  # MLflow's run colour (mlflow.runColor) and every figure
    label: str  # in table headers: "with BatchNorm"
    title: str  # in sentences: "BatchNorm", "the baseline"
    short: str  # in lists: "BatchNorm 0.003, baseline 0.01"
    linestyle: str  # in overlaid figures


CATALOGUE = (
    Variant("batchnorm", "batchnorm", "#1f77b4", "with BatchNorm", "BatchNorm", "BatchNorm", "-"),
    Variant("baseline", "none", "#ff7f0e", "without normalisation", "the baseline", "baseline", "--"),
    Variant("layernorm", "layernorm", "#2ca02c", "with LayerNorm", "LayerNorm", "LayerNorm", "-."),
)
VARIANTS = {variant.name: variant for variant in CATALOGUE}
NAMES = tuple(VARIANTS)
BASELINE = "baseline"
PRIMARY = "batchnorm"  # the variant the question is about: its verdict heads the summary and the headline
assert get_args(VariantName) == NAMES, "the catalogue and VariantName list the same variants"


def variant(name: str) -> Variant:
    """The catalogue entry of a variant name."""
    return VARIANTS[name]


def label(name: str) -> str:
    """How a variant (or any other model name) is named in table headers."""
    return VARIANTS[name].label if name in VARIANTS else name


def title(name: str) -> str:
    """How a variant (or a reference model) is named in a sentence."""
    return VARIANTS[name].title if name in VARIANTS else f"the {name.replace('_', ' ')}"


def short(name: str) -> str:
    """How a variant is named in a list."""
    return VARIANTS[name].short


def ordered(names: list[str] | tuple[str, ...]) -> list[str]:
    """Variant names in catalogue order, then any other names sorted."""
    return [n for n in NAMES if n in names] + sorted(n for n in names if n not in VARIANTS)
