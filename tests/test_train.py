"""The train stage: outputs, MLflow contents, determinism, failure handling."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch

from pipeline import tracking, train
from pipeline.config import Params, parse
from pipeline.errors import StageError
from pipeline.layout import Layout
from pipeline.model import from_checkpoint


def _train(params: Params, layout: Layout, variant: str = "batchnorm", seed: int = 0,
           track: bool = True) -> train.TrainResult:
    return train.run(params, variant, seed, layout, track=track)


def _copy_prepared(layout: Layout, root: Path) -> Layout:
    """A second layout sharing the prepared data (for runs that must not overwrite each other)."""
    other = Layout(root)
    other.prepared.parent.mkdir(parents=True)
    other.prepared.symlink_to(layout.prepared)
    return other


@pytest.mark.parametrize("variant", ["batchnorm", "baseline"])
def test_outputs_and_mlflow_run(variant: str, params: Params, prepared: Layout) -> None:
    result = _train(params, prepared, variant)
    history = pd.read_csv(result.history)
    assert history["epoch"].tolist() == [1, 2, 3]
    payload = torch.load(result.checkpoint, weights_only=True)
    assert payload["variant"] == variant and payload["config"]["batchnorm"] == (variant == "batchnorm")
    model = from_checkpoint(payload)
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules()) == (variant == "batchnorm")

    info = json.loads(result.run_file.read_text())
    client = mlflow.MlflowClient()
    run = client.get_run(info["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == f"{variant}-s0"
    for key in tracking.EPOCH_KEYS:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert steps == [1, 2, 3], key
    assert set(run.data.metrics) == {*tracking.EPOCH_KEYS, *tracking.SUMMARY_KEYS}
    assert run.data.params["train.lr"] == "0.01" and run.data.params["variant"] == variant
    assert run.data.params["data.rows_train"] == "2400"
    tags = run.data.tags
    for key in ("git.commit", "git.dirty", "data.sha256", "device", "torch_version", "mlflow_version",
                "pipeline.group"):
        assert tags.get(key), key
    assert "mlflow.parentRunId" not in tags  # not nested: visible in the runs table
    assert tags["mlflow.runColor"] == {"batchnorm": "#1f77b4", "baseline": "#ff7f0e"}[variant]
    pipeline_run = client.get_run(info["pipeline_run_id"])
    assert pipeline_run.data.tags["pipeline.role"] == "pipeline"
    assert pipeline_run.info.run_name == f"pipeline-{info['group']}" and len(info["group"]) == 12
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["train"]
    model_uri = f"runs:/{run.info.run_id}/model"
    logged = mlflow.pytorch.load_model(model_uri)
    x = torch.randn(4, payload["config"]["n_features"])
    torch.testing.assert_close(logged(x), model(x))
    assert mlflow.models.get_model_info(model_uri).signature is not None


def test_models_of_one_configuration_share_a_parent(params: Params, prepared: Layout) -> None:
    a = json.loads(_train(params, prepared, "batchnorm").run_file.read_text())
    b = json.loads(_train(params, prepared, "baseline").run_file.read_text())
    assert a["pipeline_run_id"] == b["pipeline_run_id"] and a["group"] == b["group"]
    other = parse({**params.model_dump(), "train": {**params.train.model_dump(), "lr": 0.02}})
    c = json.loads(_train(other, prepared, "baseline").run_file.read_text())
    assert c["group"] != a["group"]


def test_same_params_same_history_and_checkpoint(params: Params, prepared: Layout, tmp_path: Path) -> None:
    first = _train(params, prepared, track=False)
    second = _train(params, _copy_prepared(prepared, tmp_path / "b"), track=False)
    timing = ["epoch_seconds", "samples_per_second"]
    pd.testing.assert_frame_equal(pd.read_csv(first.history).drop(columns=timing),
                                  pd.read_csv(second.history).drop(columns=timing), check_exact=True)
    w1 = torch.load(first.checkpoint, weights_only=True)["model"]
    w2 = torch.load(second.checkpoint, weights_only=True)["model"]
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


def test_divergence_fails_run_and_leaves_no_outputs(raw_params: dict, prepared: Layout) -> None:
    raw_params["train"].update(lr=10.0, grad_clip=0.0)
    raw_params["train"]["optimizer"].update(name="sgd", momentum=0.9)
    raw_params["train"]["model"]["hidden"] = [256, 256]
    params = parse(raw_params)
    with pytest.raises(StageError, match=r"diverged at epoch \d+ .*lower train\.lr"):
        _train(params, prepared, "baseline")
    for folder in (prepared.models, prepared.histories):
        assert not folder.exists() or not any(folder.rglob("*"))
    runs = mlflow.search_runs(search_all_experiments=True, filter_string="tags.`pipeline.role` = 'model'")
    assert runs["status"].tolist() == ["FAILED"]


def test_cuda_requested_without_gpu_is_a_clear_error(raw_params: dict, prepared: Layout) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    raw_params["train"]["device"] = "cuda"
    with pytest.raises(StageError, match="no CUDA device is available"):
        _train(parse(raw_params), prepared)


def test_missing_prepare_outputs_are_a_clear_error(params: Params, layout: Layout) -> None:
    with pytest.raises(StageError, match="run the prepare stage first"):
        _train(params, layout)


def test_command_line_divergence_is_one_line_and_exit_2(raw_params: dict, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from pipeline import prepare

    raw_params["train"].update(lr=10.0, grad_clip=0.0)
    raw_params["train"]["optimizer"]["name"] = "sgd"
    raw_params["train"]["model"]["hidden"] = [256, 256]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw_params))
    prepare.run(parse(raw_params).prepare)
    assert train.main(["--variant", "baseline", "--seed", "0"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("train: error")]
    assert len(err) == 1 and "lower train.lr" in err[0]
    assert not (tmp_path / "models").exists() and not (tmp_path / "plots").exists()


def test_relative_sqlite_uri_keeps_artifacts_beside_the_store(params: Params, prepared: Layout,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(prepared.root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///relative.db")  # as `mlflow run` may pass it
    info = json.loads(_train(params, prepared).run_file.read_text())
    run = mlflow.MlflowClient(tracking_uri=f"sqlite:///{prepared.root / 'relative.db'}").get_run(info["run_id"])
    assert run.info.artifact_uri.startswith((prepared.root / "mlartifacts").as_uri())
