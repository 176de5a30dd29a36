"""Shared fixtures: shrunk params, a tmp MLflow store, trained models to copy, the real ULB sample."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.config import Params, parse
from pipeline.layout import Layout

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CSV = REPO.parent / "shared" / "data" / "creditcard_sample.csv"


def small_raw_params() -> dict[str, Any]:
    """params.yaml shrunk to a few thousand rows and tiny models."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["prepare"]["synthetic"] = {"rows": 4000, "fraud_rate": 0.02}
    raw["prepare"]["split"]["min_positives"] = 5
    raw["train"].update(seeds=[0], epochs=3, batch_size=128, lr=0.01, device="cpu", patience=0)
    raw["train"]["model"]["hidden"] = [16, 8]
    raw["evaluate"]["bootstrap"]["resamples"] = 20
    return raw


def sample_csv_path() -> Path:
    """The 5,099-row ULB sample beside the repository; in CI its absence is a failure, not a skip."""
    if not SAMPLE_CSV.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{SAMPLE_CSV} is missing and CI is set: the real-data tests must run in CI")
        pytest.skip(f"{SAMPLE_CSV} not present")
    return SAMPLE_CSV


@pytest.fixture
def raw_params() -> dict[str, Any]:
    """A mutable dict of shrunk params (edit, then `parse`)."""
    return small_raw_params()


@pytest.fixture
def params(raw_params: dict[str, Any]) -> Params:
    """Validated shrunk params."""
    return parse(raw_params)


@pytest.fixture(autouse=True)
def _isolated_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    """Every artefact path under this test's temporary folder."""
    return Layout(tmp_path)


@pytest.fixture
def prepared(layout: Layout, params: Params) -> Layout:
    """Prepared small synthetic data (splits, scaler and summary) under the test's layout."""
    from pipeline import prepare

    prepare.run(params.prepare, layout)
    return layout


@pytest.fixture(scope="session")
def _untracked_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Prepared data and every small model, trained once per session without MLflow."""
    from pipeline import prepare, train

    params = parse(small_raw_params())
    root = tmp_path_factory.mktemp("trained")
    prepare.run(params.prepare, Layout(root))
    for variant in params.train.variants:
        for seed in params.train.seeds:
            train.run(params, variant, seed, Layout(root), track=False)
    return root


@pytest.fixture
def trained(_untracked_models: Path, tmp_path: Path) -> Layout:
    """A private copy of the session's prepared data and untracked models (safe to modify)."""
    for name in ("data", "models"):
        shutil.copytree(_untracked_models / name, tmp_path / name)
    return Layout(tmp_path)


@pytest.fixture
def sample_csv() -> Path:
    """The 5,099-row ULB sample shared beside the repository."""
    return sample_csv_path()
