"""Suite files: strict models, each table's settings as `dvc exp run -S` items, bad tables named."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.project.params import read_yaml
from pipeline.project.suites import load_suite, override_items, overrides, params_for
from pipeline.runtime.errors import ConfigError
from tests.helpers.params import REPO


def test_the_default_suite_is_valid_and_every_table_parses() -> None:
    suite = load_suite(REPO / "suites" / "default.yaml")
    base = read_yaml((REPO / "params.yaml").read_text())
    assert len(suite.tables) >= 6
    rates = set()
    for table in suite.tables:
        params = params_for(base, overrides(suite, table, REPO), table.name)
        assert params.prepare.replicates == 4
        rates.add(params.prepare.synthetic.fraud_rate)
    assert min(rates) == 0.001 and max(rates) == 0.02


def test_overrides_become_hydra_items(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "name: s\nparams: {train.epochs: 3, prepare: {split: {min_positives: 4}}}\n"
        "tables:\n  - {name: mine, source: data/x.csv, label: is_fraud, prepare: {drop_columns: [id, 'a b']}}\n"
    )
    suite = load_suite(tmp_path / "s.yaml")
    sets = overrides(suite, suite.tables[0], tmp_path)
    assert sets["prepare.source"] == str(tmp_path / "data" / "x.csv")
    assert override_items(sets)[:2] == ["train.epochs=3", "prepare.split.min_positives=4"]
    assert override_items(sets)[-2:] == ["prepare.label=is_fraud", "prepare.drop_columns=[id,'a b']"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: s\ntables: []\n", "tables"),
        ("name: s\ntables:\n  - {name: a, source: synthetic}\n  - {name: a, source: synthetic}\n", "twice: a"),
        ("name: S!\ntables:\n  - {name: a, source: synthetic}\n", "name"),
        ("name: s\ntables:\n  - {name: a, source: synthetic, colour: red}\n", "unknown key tables[0].colour"),
    ],
)
def test_bad_suite_files_fail_with_one_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "s.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_suite(tmp_path / "s.yaml")


def test_a_bad_table_setting_names_the_table_and_the_key() -> None:
    base = read_yaml((REPO / "params.yaml").read_text())
    with pytest.raises(ConfigError, match=r"table rare: prepare\.synthetic\.fraud_rate must be > 0"):
        params_for(base, {"prepare.synthetic.fraud_rate": -1}, "rare")
    with pytest.raises(ConfigError, match="table rare: unknown key prepare.nope.x"):
        params_for(base, {"prepare.nope.x": 1}, "rare")
