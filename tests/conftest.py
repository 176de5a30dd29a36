"""Shared fixtures: shrunk params, a tmp MLflow store, trained models to copy, the real ULB sample; and
the order in which the test files run.

Fixtures only: what tests call lives in tests/helpers/ (no test module imports this file)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from pipeline import evaluate, prepare
from pipeline.project.layout import Layout
from pipeline.project.params import Params, parse
from tests.helpers.params import sample_csv_path, small_raw_params
from tests.helpers.stages import save_model, train_all

# The longest test files first (their durations in `make test`, 2 cores): `make test` hands whole files to
# 2 xdist workers in this order (--dist loadfile --no-loadscope-reorder), and a long file handed out last
# would leave one worker running it alone at the end. The other files follow in their usual order.
LONGEST_FIRST = [
    "tests/e2e/test_team.py",
    "tests/e2e/test_dvc_workflow.py",
    "tests/e2e/test_experiments.py",
    "tests/e2e/test_security.py",
    "tests/e2e/test_end_to_end.py",
    "tests/e2e/test_cluster.py",
    "tests/e2e/test_variants.py",
    "tests/training/test_distributed.py",
    "tests/test_benchmarks.py",
    "tests/e2e/test_failures.py",
    "tests/e2e/test_suite.py",
    "tests/e2e/test_mixed_table.py",
    "tests/test_report.py",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the files of LONGEST_FIRST first, in that order (a stable sort: tests keep their order)."""
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


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
    prepare.run(params.prepare, layout)
    return layout


@pytest.fixture(scope="session")
def _untracked_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Prepared data and every small model (tuning and compared), trained once per session without MLflow."""
    params = parse(small_raw_params())
    root = tmp_path_factory.mktemp("trained")
    prepare.run(params.prepare, Layout(root))
    train_all(params, Layout(root), track=False)
    return root


@pytest.fixture
def trained(_untracked_models: Path, tmp_path: Path) -> Layout:
    """A private copy of the session's prepared data and untracked models (safe to modify)."""
    for name in ("data", "models", "tuning", "timing"):
        shutil.copytree(_untracked_models / name, tmp_path / name)
    return Layout(tmp_path)


@pytest.fixture(scope="session")
def _evaluated_models(_untracked_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's untracked models, evaluated once."""
    root = tmp_path_factory.mktemp("evaluated")
    for name in ("data", "models", "tuning", "timing"):
        shutil.copytree(_untracked_models / name, root / name)
    evaluate.run(parse(small_raw_params()), Layout(root), track=False)
    return root


@pytest.fixture
def evaluated(_evaluated_models: Path, tmp_path: Path) -> Layout:
    """A private copy of the session's evaluated models (everything the report reads)."""
    for name in ("data", "models", "tuning", "timing", "evaluation", "plots"):
        shutil.copytree(_evaluated_models / name, tmp_path / name)
    return Layout(tmp_path)


@pytest.fixture
def sample_csv() -> Path:
    """The 5,099-row ULB sample shared beside the repository."""
    return sample_csv_path()


@pytest.fixture(scope="session")
def served_model(_evaluated_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """batchnorm-s0 of the session's evaluated models, saved as a servable MLflow model folder."""
    return save_model(Layout(_evaluated_models), "batchnorm-s0", tmp_path_factory.mktemp("served") / "model")


@pytest.fixture(scope="session")
def evaluated_shared(_evaluated_models: Path) -> Layout:
    """The session's evaluated models themselves: read them, never modify them."""
    return Layout(_evaluated_models)
