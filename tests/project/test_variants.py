"""Declared variants: params.yaml's `variants` resolved against the shared recipe (names, words, colours,
overrides, fixed settings), and every declaration the params refuse, each in one line naming its key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from pipeline.modeling.network import NORMS
from pipeline.project.params import Choices, load_params, parse
from pipeline.project.variants import REFERENCE_COLOR, Catalogue
from pipeline.runtime.errors import ConfigError


def _gelu(raw: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """GELU against ReLU: two declared variants, ReLU the reference."""
    raw = copy.deepcopy(raw)
    raw["variants"] = {
        "reference": "relu",
        "declared": {
            "gelu": {"title": "GELU", "model": {"activation": "gelu"}, **extra},
            "relu": {"title": "ReLU"},
        },
    }
    raw["train"]["variants"] = ["gelu", "relu"]
    return raw


def test_the_default_declarations_resolve_to_batchnorm_against_the_baseline(raw_params: dict[str, Any]) -> None:
    cat = Catalogue(parse(raw_params))
    assert (cat.compared, cat.candidates, cat.primary, cat.reference) == (
        ["batchnorm", "baseline"],
        ["batchnorm"],
        "batchnorm",
        "baseline",
    )
    assert {cat[v].model.norm for v in cat.variants} - {"none"} == set(NORMS)  # every normalisation declared
    colours = [cat.color(v) for v in cat.variants] + [REFERENCE_COLOR]
    assert len(set(colours)) == len(colours) and cat.color_name("batchnorm") == "blue"
    assert cat.question("batchnorm") == (
        "Does BatchNorm make this MLP learn faster and catch more fraud than the baseline?"
    )
    assert (cat.slug, cat.heading) == ("batchnorm-vs-baseline", "BatchNorm vs baseline")
    assert cat.differences("batchnorm") == "norm batchnorm against none" and cat.same_shape("batchnorm")
    assert cat.ordered(["logistic_regression", "layernorm", "baseline", "batchnorm"]) == [
        "batchnorm",
        "baseline",
        "layernorm",
        "logistic_regression",
    ]
    assert cat.label("batchnorm") == "with BatchNorm" and cat.label("logistic_regression") == "logistic_regression"
    assert cat.title("logistic_regression") == "the logistic regression" and cat.short("baseline") == "baseline"


def test_a_declared_question_follows_its_names_and_overrides(raw_params: dict[str, Any]) -> None:
    cat = Catalogue(parse(_gelu(raw_params, fixed={"dropout": 0.2}, optimizer={"name": "adamw"})))
    assert cat.question("gelu") == "Does GELU make this MLP learn faster and catch more fraud than ReLU?"
    assert cat["gelu"].model.activation == "gelu" and cat["relu"].model.activation == "relu"
    assert cat["gelu"].optimizer.name == "adamw" and cat["gelu"].fixed == {"dropout": 0.2}
    assert cat.differences("gelu") == (
        "activation gelu against relu; optimizer name adamw against adam; dropout fixed at 0.2 against tuned"
    )
    assert cat.label("gelu") == "GELU" and cat.slug == "gelu-vs-relu"  # the label defaults to the title
    space = parse(raw_params).train.tune.space.holding(cat["gelu"].fixed)
    assert space.dropout == Choices(choices=[0.2]) and space.lr == parse(raw_params).train.tune.space.lr
    wider = Catalogue(parse(_gelu(raw_params, model={"hidden": [128, 32]})))
    assert not wider.same_shape("gelu")  # other shapes: initial weights cannot be equal, and the report says so


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda raw: raw["variants"]["declared"]["gelu"]["model"].update(activaton="gelu"),
            "unknown key variants.declared.gelu.model.activaton",
        ),
        (
            lambda raw: raw["variants"]["declared"]["gelu"]["model"].update(hidden="wide"),
            "variants.declared.gelu.model.hidden",
        ),
        (
            lambda raw: raw["variants"]["declared"]["gelu"]["model"].update(activation="relu"),
            "variants.declared.gelu is the reference 'relu' again",
        ),
        (
            lambda raw: raw["variants"]["declared"]["gelu"].update(
                fixed={"lr": 0.01, "weight_decay": 0.0, "batch_size": 512, "pos_weight": "none", "dropout": 0.1}
            ),
            "variants.declared.gelu.fixed holds every dimension of train.tune.space",
        ),
        (lambda raw: raw["variants"].update(reference="swish"), "variants.reference 'swish' is not declared"),
        (
            lambda raw: raw["train"].update(variants=["gelu"]),
            "variants.reference 'relu' is not in train.variants ['gelu']",
        ),
        (
            lambda raw: raw["train"].update(variants=["gelu", "relu", "swish"]),
            "train.variants names swish, not declared in variants.declared",
        ),
        (
            lambda raw: raw["variants"]["declared"].update({"Bad-Name": {"title": "x"}}),
            "names ['Bad-Name'] must be lower-case letters",
        ),
        (
            lambda raw: raw["variants"]["declared"]["gelu"].update(fixed={"pos_weight": "heavy"}),
            "variants.declared.gelu.fixed.pos_weight must be 'none', 'balanced' or a number > 0",
        ),
    ],
)
def test_a_declaration_the_params_refuse_is_one_line_naming_its_key(
    raw_params: dict[str, Any], change: Any, message: str
) -> None:
    raw = _gelu(raw_params)
    change(raw)
    with pytest.raises(ConfigError) as caught:
        parse(raw)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert "(got {" not in str(caught.value)  # a check across sections does not echo the whole params


def test_a_fixed_setting_that_shrinks_a_grid_below_the_budget_is_refused(raw_params: dict[str, Any]) -> None:
    """The small params tune a grid of two learning rates in two trials: holding lr leaves one setting."""
    with pytest.raises(ConfigError, match="leaves a grid of 1 settings, fewer than train.tune.trials \\(2\\)"):
        parse(_gelu(raw_params, fixed={"lr": 0.01}))


def test_two_variants_of_one_name_are_refused_not_merged(tmp_path: Path) -> None:
    """YAML keeps the last of two equal keys silently; params.yaml refuses them, naming the key and line."""
    text = (Path(__file__).resolve().parents[2] / "params.yaml").read_text()
    twice = text.replace("    layernorm:\n", "    batchnorm:\n", 1)
    (tmp_path / "params.yaml").write_text(twice)
    with pytest.raises(ConfigError, match="the key 'batchnorm' appears twice in one mapping \\(line \\d+\\)"):
        load_params(tmp_path / "params.yaml")
