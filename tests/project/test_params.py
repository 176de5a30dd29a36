from pathlib import Path

import pytest

from pipeline.project.params import load_params, parse
from pipeline.runtime.errors import ConfigError
from tests.helpers.params import REPO


def test_repository_params_are_valid() -> None:
    params = load_params(REPO / "params.yaml")
    assert params.prepare.source == "synthetic"
    assert params.prepare.label == "Class"
    assert params.prepare.synthetic.rows >= 200_000


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("prepare", "seed", -1, "prepare.seed must be >= 0 (got -1)"),
        ("prepare", "seed", "zero", "prepare.seed"),
        (
            "prepare",
            "nonfinite",
            "ignore",
            "prepare.nonfinite must be one of 'impute', 'error' or 'drop' (got 'ignore')",
        ),
        ("prepare", "source", "data.xlsx", "prepare.source must be 'synthetic' or a path ending in .csv"),
        ("prepare", "surprise", 1, "unknown key prepare.surprise"),
    ],
)
def test_bad_values_name_the_key(raw_params: dict, section: str, key: str, value: object, expected: str) -> None:
    raw_params[section][key] = value
    with pytest.raises(
        ConfigError, match="^params.yaml: " + expected.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")
    ):
        parse(raw_params)


def test_every_problem_is_named_in_one_line(raw_params: dict) -> None:
    """Two bad keys in two sections: one error, one line, both keys with their fixes."""
    raw_params["prepare"]["seed"] = -1
    raw_params["train"]["epochs"] = 0
    with pytest.raises(ConfigError) as caught:
        parse(raw_params)
    said = str(caught.value)
    assert said == "params.yaml: prepare.seed must be >= 0 (got -1); train.epochs must be >= 1 (got 0)"


def test_nested_out_of_range(raw_params: dict) -> None:
    raw_params["prepare"]["split"]["fractions"] = [0.5, 0.5, 0.5]
    with pytest.raises(ConfigError, match=r"prepare\.split\.fractions must be three positive fractions"):
        parse(raw_params)
    raw_params["prepare"]["split"]["fractions"] = [0.6, 0.2, 0.2]
    raw_params["prepare"]["synthetic"]["fraud_rate"] = 0.9
    with pytest.raises(ConfigError, match=r"prepare\.synthetic\.fraud_rate must be < 0\.5 \(got 0\.9\)"):
        parse(raw_params)


def test_missing_key(raw_params: dict) -> None:
    del raw_params["prepare"]["label"]
    with pytest.raises(ConfigError, match=r"prepare\.label is missing"):
        parse(raw_params)


def test_yaml_12_floats_and_bad_yaml(tmp_path: Path) -> None:
    text = (REPO / "params.yaml").read_text()
    path = tmp_path / "params.yaml"
    path.write_text(text.replace("fraud_rate: 0.002", "fraud_rate: 2e-3"))
    assert load_params(path).prepare.synthetic.fraud_rate == pytest.approx(0.002)
    path.write_text("prepare: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(path)
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
