"""Shrunk params for tests, and where the repository and the real data sample are."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SAMPLE_CSV = REPO.parent / "shared" / "data" / "creditcard_sample.csv"


def small_raw_params() -> dict[str, Any]:
    """params.yaml shrunk to a few thousand rows, one replicate, tiny models, a two-trial grid on one
    tuning seed."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["prepare"]["synthetic"].update(rows=4000, fraud_rate=0.02)
    raw["prepare"]["split"]["min_positives"] = 5
    raw["prepare"]["replicates"] = 1
    raw["train"].update(epochs=3, device="cpu", patience=0)
    raw["train"]["tune"].update(trials=2, seeds=[100], parallel=2, sampler="grid")
    space(raw, lr=[0.01, 0.003], batch_size=[128])
    raw["train"]["model"]["hidden"] = [16, 8]
    raw["train"]["probe_growth"] = 2.0
    raw["evaluate"]["references"] = {
        "logistic_regression": {"C": [1.0]},
        "hist_gradient_boosting": {"learning_rate": [0.3], "max_leaf_nodes": [15]},
    }
    raw["evaluate"]["bootstrap"]["resamples"] = 20
    raw["report"]["bootstrap"].update(resamples=500, inner=40)
    raw["timing"].update(repeats=2, steps=5)
    return raw


def space(
    raw: dict[str, Any],
    lr: list[float] | None = None,
    weight_decay: list[float] | None = None,
    batch_size: list[int] | None = None,
    pos_weight: list[Any] | None = None,
    dropout: list[float] | None = None,
) -> dict[str, Any]:
    """Set tuning's space to these choices (those not given: one choice, the small params' default),
    its sampler to the grid and its trials to the grid's size."""
    dims = {
        "lr": lr or [0.01],
        "weight_decay": weight_decay or [0.0],
        "batch_size": batch_size or [128],
        "pos_weight": pos_weight or ["none"],
        "dropout": dropout or [0.0],
    }
    raw["train"]["tune"]["space"] = {name: {"choices": values} for name, values in dims.items()}
    raw["train"]["tune"].update(sampler="grid", trials=math.prod(len(v) for v in dims.values()))
    return raw


def chosen(layout: Any, variant: str, lr: float = 0.01, batch_size: int = 128, **other: Any) -> None:
    """Write a variant's chosen setting as select does (for tests that train compared models alone)."""
    from pipeline.project.artefacts import Chosen
    from pipeline.project.params import Setting

    setting = Setting(
        **{"lr": lr, "weight_decay": 0.0, "batch_size": batch_size, "pos_weight": "none", "dropout": 0.0, **other}
    )
    Chosen(setting=setting, trial=0).write(layout.chosen_setting(variant))


def sample_csv_path() -> Path:
    """The 5,099-row ULB sample beside the repository; in CI its absence is a failure, not a skip."""
    if not SAMPLE_CSV.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{SAMPLE_CSV} is missing and CI is set: the real-data tests must run in CI")
        pytest.skip(f"{SAMPLE_CSV} not present")
    return SAMPLE_CSV
