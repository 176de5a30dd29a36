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


def train_all(params: Params, layout: Layout, track: bool = True) -> None:
    """The stages tune, select and train, in-process (prepare must have run)."""
    from pipeline import select, train

    for variant in params.train.variants:
        for lr in params.train.lr:
            train.tune(params, variant, lr, layout, track=track)
    select.run(params.train, layout, track=track)
    for variant in params.train.variants:
        for seed in params.train.seeds:
            train.run(params, variant, seed, layout, track=track)


def run_pipeline(params: Params, layout: Layout, track: bool = True) -> Path:
    """Every stage in-process, as `dvc repro` would run them; returns the report folder."""
    from pipeline import evaluate, prepare, report

    prepare.run(params.prepare, layout)
    train_all(params, layout, track)
    evaluate.run(params, layout, track=track)
    return report.run(params, layout, track=track)


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
    """Prepared data and every small model (tuning and compared), trained once per session without MLflow."""
    from pipeline import prepare

    params = parse(small_raw_params())
    root = tmp_path_factory.mktemp("trained")
    prepare.run(params.prepare, Layout(root))
    train_all(params, Layout(root), track=False)
    return root


@pytest.fixture
def trained(_untracked_models: Path, tmp_path: Path) -> Layout:
    """A private copy of the session's prepared data and untracked models (safe to modify)."""
    for name in ("data", "models", "tuning"):
        shutil.copytree(_untracked_models / name, tmp_path / name)
    return Layout(tmp_path)


@pytest.fixture(scope="session")
def _evaluated_models(_untracked_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's untracked models, evaluated once."""
    from pipeline import evaluate

    root = tmp_path_factory.mktemp("evaluated")
    for name in ("data", "models", "tuning"):
        shutil.copytree(_untracked_models / name, root / name)
    evaluate.run(parse(small_raw_params()), Layout(root), track=False)
    return root


@pytest.fixture
def evaluated(_evaluated_models: Path, tmp_path: Path) -> Layout:
    """A private copy of the session's evaluated models (everything the report reads)."""
    for name in ("data", "models", "tuning", "evaluation", "plots"):
        shutil.copytree(_evaluated_models / name, tmp_path / name)
    return Layout(tmp_path)


@pytest.fixture
def sample_csv() -> Path:
    """The 5,099-row ULB sample shared beside the repository."""
    return sample_csv_path()


def save_model(layout: Layout, name: str, dest: Path, nonfinite: str = "error") -> Path:
    """One evaluated model as a servable MLflow model folder (what evaluate logs, without a store)."""
    import json

    import pandas as pd

    from pipeline import packaging, serving
    from pipeline.layout import PrepareSummary

    summary = PrepareSummary.read(layout)
    threshold = json.loads(layout.model_metrics(name).read_text())["threshold"]
    example = pd.read_parquet(layout.raw_test).head(5)[summary.features]
    packaging.save_fraud_model(dest, layout.checkpoint(name), layout.scaler,
                               serving.settings(threshold, nonfinite, summary.source_sha256, model=name), example)
    return dest


@pytest.fixture(scope="session")
def served_model(_evaluated_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """batchnorm-s0 of the session's evaluated models, saved as a servable MLflow model folder."""
    return save_model(Layout(_evaluated_models), "batchnorm-s0", tmp_path_factory.mktemp("served") / "model")


@pytest.fixture(scope="session")
def evaluated_shared(_evaluated_models: Path) -> Layout:
    """The session's evaluated models themselves: read them, never modify them."""
    return Layout(_evaluated_models)
