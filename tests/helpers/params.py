"""Shrunk params for tests, and where the repository and the real data sample are."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SAMPLE_CSV = REPO.parent / "shared" / "data" / "creditcard_sample.csv"


def small_raw_params() -> dict[str, Any]:
    """params.yaml shrunk to a few thousand rows, tiny models, a one-value grid, one tuning seed."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["prepare"]["synthetic"] = {"rows": 4000, "fraud_rate": 0.02}
    raw["prepare"]["split"]["min_positives"] = 5
    raw["train"].update(seeds=[0], lr=[0.01], tune_seeds=[100], epochs=3, batch_size=128, device="cpu", patience=0)
    raw["train"]["model"]["hidden"] = [16, 8]
    raw["evaluate"]["references"] = {"logistic_regression": {"C": [1.0]},
                                     "hist_gradient_boosting": {"learning_rate": [0.3], "max_leaf_nodes": [15]}}
    raw["evaluate"]["bootstrap"]["resamples"] = 20
    return raw


def sample_csv_path() -> Path:
    """The 5,099-row ULB sample beside the repository; in CI its absence is a failure, not a skip."""
    if not SAMPLE_CSV.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{SAMPLE_CSV} is missing and CI is set: the real-data tests must run in CI")
        pytest.skip(f"{SAMPLE_CSV} not present")
    return SAMPLE_CSV
