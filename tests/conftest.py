"""Shared fixtures: shrunk params, a tmp MLflow store, the real ULB sample."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.config import Params, parse

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
def prepared(tmp_path: Path, params: Params) -> Path:
    """A prepared data directory (small synthetic data) with its summary beside it."""
    from pipeline import prepare

    prepare.run(params.prepare, tmp_path / "prepared", tmp_path / "prepare.json")
    return tmp_path


@pytest.fixture
def sample_csv() -> Path:
    """The 5,099-row ULB sample shared beside the repository."""
    if not SAMPLE_CSV.is_file():
        pytest.skip(f"{SAMPLE_CSV} not present")
    return SAMPLE_CSV
