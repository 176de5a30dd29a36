"""`dvc repro` for real, in a copy of the repository with shrunk params."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mlflow
import pandas as pd
import torch
import yaml
from sklearn.metrics import average_precision_score

from tests.conftest import sample_csv_path, small_raw_params
from tests.e2e import copy_repository, dvc

MODELS = ["batchnorm-s0", "batchnorm-s1", "baseline-s0", "baseline-s1"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repro(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One shared `dvc repro` of the whole pipeline in a fresh copy."""
    raw = small_raw_params()
    raw["train"]["seeds"] = [0, 1]
    repo = copy_repository(tmp_path_factory.mktemp("repo"), raw)
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


def _client(repo: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")


def test_one_complete_mlflow_run_per_model(repro: Path) -> None:
    client = _client(repro)
    experiment = client.get_experiment_by_name("batchnorm-vs-baseline")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`pipeline.role` = 'model'")
    assert sorted(r.info.run_name for r in runs) == sorted(MODELS)
    groups = {r.data.tags["pipeline.group"] for r in runs}
    assert len(groups) == 1
    for run in runs:
        assert run.info.status == "FINISHED"
        epochs = [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")]
        assert sorted(epochs) == [1, 2, 3]
        info = json.loads((repro / "models" / f"{run.info.run_name}.run.json").read_text())
        assert info["run_id"] == run.info.run_id
    assert (repro / "mlartifacts").is_dir()  # artifacts live beside the store, in the repository


def test_history_plots_render(repro: Path) -> None:
    shown = json.loads(dvc(repro, "plots", "show", "--json").stdout)
    assert not shown.get("errors")
    for name in MODELS:
        (plot,) = [v for k, v in shown["data"].items() if k.endswith(f"plots/history/{name}.csv")]
        fields = {row["field"] for row in plot[0]["content"]["data"]["values"]}
        assert fields == {"train_loss", "val_loss"}


def test_adding_a_seed_only_adds_its_models(repro: Path) -> None:
    params_file = repro / "params.yaml"
    before = params_file.read_text()
    raw = yaml.safe_load(before)
    raw["train"]["seeds"] = [0, 1, 2]
    params_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    try:
        changed = json.loads(dvc(repro, "status", "--json").stdout)
    finally:
        params_file.write_text(before)
    trains = sorted(name for name in changed if name.startswith("train@"))
    assert trains == ["train@baseline-2", "train@batchnorm-2"]  # existing models are not retrained


def test_dvc_metrics_show_lists_every_model(repro: Path) -> None:
    shown = json.loads(dvc(repro, "metrics", "show", "--json").stdout)
    (workspace,) = shown.values()
    files = workspace["data"]
    names = MODELS + ["logistic_regression", "hist_gradient_boosting"]
    for name in names:
        (key,) = [k for k in files if k.endswith(f"metrics/evaluate/{name}.json")]
        assert {"test_precision", "test_recall", "test_ap", "threshold"} <= set(files[key]["data"])
    (combined,) = [k for k in files if k.endswith("metrics/evaluate.json")]
    assert set(files[combined]["data"]["models"]) == set(names)


def test_overlay_plots_have_every_model(repro: Path) -> None:
    shown = json.loads(dvc(repro, "plots", "show", "--json").stdout)
    (pr,) = [v for k, v in shown["data"].items() if "Precision-recall" in k]
    models = {row["model"] for row in pr[0]["content"]["data"]["values"]}
    assert models == set(MODELS) | {"logistic_regression", "hist_gradient_boosting"}
    assert pr[0]["content"]["encoding"]["color"]["field"] == "model"


def test_report_written_and_logged(repro: Path) -> None:
    md = (repro / "reports" / "report.md").read_text()
    assert "## 6. Verdict" in md and "## 8. Provenance" in md
    assert "models/batchnorm-s0.pt" in md  # DVC hashes from dvc.lock
    html = (repro / "reports" / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "data:image/png;base64," in html
    client = _client(repro)
    info = json.loads((repro / "models" / "batchnorm-s0.run.json").read_text())
    assert "report/report.html" in {a.path for a in client.list_artifacts(info["parent_run_id"], "report")}


def test_training_and_evaluation_agree_on_the_kept_model(repro: Path) -> None:
    """The best epoch's val_ap in the history equals the AP evaluate recomputes from the checkpoint."""
    for name in MODELS:
        history = pd.read_csv(repro / "plots" / "history" / f"{name}.csv")
        best = history.loc[history["val_ap"].idxmax()]
        checkpoint = torch.load(repro / "models" / f"{name}.pt", weights_only=True)
        assert checkpoint["best_epoch"] == int(best["epoch"]), name
        scores = pd.read_parquet(repro / "scores" / f"{name}.parquet")
        val = scores[scores["split"] == "val"]
        recomputed = average_precision_score(val["y_true"], val["score"])
        assert recomputed == pytest.approx(best["val_ap"], abs=1e-6), name


def test_real_ulb_sample_end_to_end(tmp_path: Path) -> None:
    """The whole pipeline on the 5,099-row ULB sample (unnamed index column, 96 frauds)."""
    sample = sample_csv_path()
    raw = small_raw_params()
    raw["prepare"]["source"] = str(sample)
    raw["prepare"]["split"]["min_positives"] = 10
    repo = copy_repository(tmp_path, raw)
    dvc(repo, "repro")
    summary = json.loads((repo / "metrics" / "prepare.json").read_text())
    assert sum(summary["positives"].values()) == 96 and summary["n_features"] == 30
    metrics = json.loads((repo / "metrics" / "evaluate.json").read_text())
    assert set(metrics["models"]) == {"batchnorm-s0", "baseline-s0", "logistic_regression", "hist_gradient_boosting"}
    md = (repo / "reports" / "report.md").read_text()
    assert str(sample) in md and "cannot judge seed-to-seed noise" in md
