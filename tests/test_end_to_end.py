"""`dvc repro` for real, in a copy of the repository with shrunk params."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import small_raw_params
from tests.e2e import copy_repository, dvc

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repro(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One shared `dvc repro` of the whole pipeline in a fresh copy."""
    repo = copy_repository(tmp_path_factory.mktemp("repo"), small_raw_params())
    dvc(repo, "repro")
    return repo


def test_prepare_outputs_and_lock(repro: Path) -> None:
    summary = json.loads((repro / "metrics" / "prepare.json").read_text())
    assert summary["rows"] == {"train": 2400, "val": 800, "test": 800}
    for name in ("train", "val", "test"):
        assert (repro / "data" / "prepared" / f"{name}.parquet").is_file()
    lock = (repro / "dvc.lock").read_text()
    assert "data/prepared" in lock and "md5" in lock
    status = dvc(repro, "status")
    assert "up to date" in status.stdout.lower() or status.stdout.strip() == ""


def test_dvc_metrics_show_lists_prepare_summary(repro: Path) -> None:
    shown = dvc(repro, "metrics", "show", "--json").stdout
    assert "metrics/prepare.json" in shown
