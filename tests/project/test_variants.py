"""The variant catalogue is the one list: params accept exactly its names, and everything orders by it."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.modeling.network import NORMS
from pipeline.project import variants
from pipeline.project.params import parse
from pipeline.runtime.errors import ConfigError


def test_params_accept_exactly_the_catalogue(raw_params: dict[str, Any]) -> None:
    raw_params["train"]["variants"] = list(variants.NAMES)
    assert parse(raw_params).train.variants == list(variants.NAMES)
    raw_params["train"]["variants"] = ["groupnorm"]
    with pytest.raises(
        ConfigError, match="train.variants\\[0\\] must be one of 'batchnorm', 'baseline' or 'layernorm'"
    ):
        parse(raw_params)


def test_every_normalisation_has_a_layer_and_every_variant_a_colour_of_its_own() -> None:
    assert {v.norm for v in variants.CATALOGUE} - {"none"} == set(NORMS)
    colours = [v.color for v in variants.CATALOGUE] + [variants.REFERENCE_COLOR]
    assert len(set(colours)) == len(colours)
    assert variants.variant(variants.BASELINE).norm == "none"


def test_tables_and_legends_follow_the_catalogue() -> None:
    assert variants.ordered(["logistic_regression", "layernorm", "baseline", "batchnorm"]) == [
        "batchnorm",
        "baseline",
        "layernorm",
        "logistic_regression",
    ]
    assert (
        variants.label("batchnorm") == "with BatchNorm"
        and variants.label("logistic_regression") == "logistic_regression"
    )
