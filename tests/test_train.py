"""The train stage (and tune, its tuning role): outputs, MLflow contents, models kept between runs,
stacked and one at a time alike, determinism, failure handling."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch

from pipeline import train
from pipeline.tracking import tags
from pipeline.project.config import Params
from pipeline.project.loading import parse
from pipeline.runtime.errors import StageError
from pipeline.project.layout import Layout
from pipeline.project.variants import variant as variant_entry
from pipeline.modeling.model import from_checkpoint
from pipeline.runtime.outputs import write_json
from pipeline.training.jobs import TrainResult


@pytest.fixture
def chosen(prepared: Layout, params: Params) -> Layout:
    """Prepared data plus each variant's chosen learning rate, as the select stage writes it."""
    for variant in params.train.variants:
        write_json(prepared.chosen_setting(variant), {"lr": params.train.lr[0]})
    return prepared


def _train(params: Params, layout: Layout, variant: str = "batchnorm", seed: int = 0,
           track: bool = True) -> TrainResult:
    (result,) = train.run(params, variant, layout, track=track, seeds=[seed])
    return result


def _copy_prepared(layout: Layout, root: Path) -> Layout:
    """A second layout sharing the prepared data and choices (runs that must not overwrite each other)."""
    other = Layout(root)
    for path in (layout.prepared, layout.chosen):
        target = other.root / path.relative_to(layout.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(path)
    return other


@pytest.mark.parametrize("variant", ["batchnorm", "baseline"])
def test_outputs_and_mlflow_run(variant: str, params: Params, chosen: Layout) -> None:
    result = _train(params, chosen, variant)
    history = pd.read_csv(result.history)
    assert history["epoch"].tolist() == [1, 2, 3]
    payload = torch.load(result.checkpoint, weights_only=True)
    assert payload["variant"] == variant and payload["config"]["norm"] == variant_entry(variant).norm
    model = from_checkpoint(payload)
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules()) == (variant == "batchnorm")

    info = json.loads(result.run_file.read_text())
    assert info["lr"] == 0.01 and info["batch_sizes"] == [128] * 18 + [96] and info["epochs_run"] == 3
    client = mlflow.MlflowClient()
    run = client.get_run(info["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == f"{variant}-s0"
    for key in tags.EPOCH_KEYS:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert steps == [1, 2, 3], key
    assert set(run.data.metrics) == {*tags.EPOCH_KEYS, *tags.SUMMARY_KEYS}
    assert run.data.params["train.lr"] == "0.01" and run.data.params["variant"] == variant
    assert run.data.params["data.rows_train"] == "2400"
    run_tags = run.data.tags
    for key in ("git.commit", "git.dirty", "data.sha256", "device", "torch_version", "mlflow_version",
                "pipeline.group"):
        assert run_tags.get(key), key
    assert run_tags["pipeline.role"] == "model" and run_tags["pipeline.lr"] == "0.01"
    assert "mlflow.parentRunId" not in run_tags  # not nested: visible in the runs table
    assert run_tags["mlflow.runColor"] == {"batchnorm": "#1f77b4", "baseline": "#ff7f0e"}[variant]
    pipeline_run = client.get_run(info["pipeline_run_id"])
    assert pipeline_run.data.tags["pipeline.role"] == "pipeline"
    assert pipeline_run.info.run_name == f"pipeline-{info['group']}" and len(info["group"]) == 12
    (dataset,) = run.inputs.dataset_inputs
    assert dataset.dataset.name == "train" and "V14" in dataset.dataset.schema


def test_a_variants_tuning_models_are_its_grid_times_its_tuning_seeds_in_its_own_folder(
        raw_params: dict, prepared: Layout) -> None:
    raw_params["train"].update(tune_seeds=[100, 101], lr=[0.003, 0.01])
    results = train.tune(parse(raw_params), "baseline", prepared)
    folder = prepared.tuning / "baseline"
    assert [r.checkpoint for r in results] == [folder / f"baseline-lr{lr}-s{s}.pt" for lr in (0.003, 0.01)
                                               for s in (100, 101)]
    assert results[0].history == folder / "history" / "baseline-lr0.003-s100.csv"
    assert all(r.checkpoint.is_file() and r.run_file.is_file() for r in results) and not prepared.models.exists()
    info = json.loads(results[0].run_file.read_text())
    assert info["stack_size"] == 4  # trained together
    run = mlflow.MlflowClient().get_run(info["run_id"])
    assert run.data.tags["pipeline.role"] == "tuning" and run.data.params["train.lr"] == "0.003"
    assert run.info.run_name == "baseline-lr0.003-s100" and run.info.status == "FINISHED"


def test_a_diverged_grid_point_is_a_result_not_a_failure(raw_params: dict, prepared: Layout) -> None:
    """Too high a learning rate in the grid: the tuning run is FAILED and says where it diverged; the
    stage succeeds (select will skip that point), and the stack's other models train on."""
    params = _diverging(raw_params, lr=[10.0, 0.001])
    diverged, fine = train.tune(params, "baseline", prepared)
    info = json.loads(diverged.run_file.read_text())
    assert diverged.checkpoint is None and info["diverged_at"] >= 1 and diverged.history.is_file()
    run = mlflow.MlflowClient().get_run(info["run_id"])
    assert run.info.status == "FAILED" and run.data.tags["pipeline.diverged_at"] == str(info["diverged_at"])
    assert fine.checkpoint.is_file()
    assert mlflow.MlflowClient().get_run(json.loads(fine.run_file.read_text())["run_id"]).info.status == "FINISHED"


def test_a_new_seed_trains_only_its_model_and_a_removed_one_leaves(raw_params: dict, chosen: Layout) -> None:
    raw_params["train"]["seeds"] = [0, 1]
    first = train.run(parse(raw_params), "baseline", chosen)
    stamps = {r.name: (r.checkpoint.stat().st_mtime_ns, json.loads(r.run_file.read_text())["run_id"]) for r in first}
    raw_params["train"]["seeds"] = [1, 2]
    second = train.run(parse(raw_params), "baseline", chosen)
    assert [r.name for r in second] == ["baseline-s1", "baseline-s2"]
    assert second[0].fit is None and second[1].fit is not None  # s1 kept, s2 trained
    assert (second[0].checkpoint.stat().st_mtime_ns, json.loads(second[0].run_file.read_text())["run_id"]) == \
        stamps["baseline-s1"]
    assert sorted(p.name for p in (chosen.models / "baseline").iterdir()) == [
        "baseline-s1.pt", "baseline-s1.run.json", "baseline-s2.pt", "baseline-s2.run.json"]
    assert sorted(p.name for p in (chosen.histories / "baseline").iterdir()) == ["baseline-s1.csv", "baseline-s2.csv"]
    raw_params["train"]["epochs"] = 2  # other params: every model trains again
    third = train.run(parse(raw_params), "baseline", chosen)
    assert all(r.fit is not None for r in third)


def test_stacked_and_one_at_a_time_train_the_same_models(raw_params: dict, chosen: Layout, tmp_path: Path) -> None:
    """train.stack: 1 is the loop that torchrun uses; a stack gives the same histories and weights to
    float32 rounding."""
    raw_params["train"]["seeds"] = [0, 1, 2]
    stacked = train.run(parse(raw_params), "batchnorm", chosen, track=False)
    raw_params["train"]["stack"] = 1
    alone = train.run(parse(raw_params), "batchnorm", _copy_prepared(chosen, tmp_path / "alone"), track=False)
    for a, b in zip(alone, stacked):
        ha, hb = pd.read_csv(a.history), pd.read_csv(b.history)
        for key in ("train_loss", "val_loss", "val_ap"):
            assert ha[key].to_numpy() == pytest.approx(hb[key].to_numpy(), rel=1e-4, abs=1e-5), (a.name, key)
        assert json.loads(a.run_file.read_text())["best_epoch"] == json.loads(b.run_file.read_text())["best_epoch"]
        wa, wb = (torch.load(r.checkpoint, weights_only=True)["model"] for r in (a, b))
        assert all(torch.allclose(wa[k].float(), wb[k].float(), atol=1e-4) for k in wa), a.name


def test_a_compared_model_needs_the_select_stage(params: Params, prepared: Layout) -> None:
    with pytest.raises(StageError, match=r"tuning/chosen/batchnorm\.json not found; run the select stage first"):
        _train(params, prepared)


@pytest.mark.slow  # trains several models: over the fast suite's budget
def test_models_of_one_configuration_share_a_group(params: Params, chosen: Layout) -> None:
    a = json.loads(_train(params, chosen, "batchnorm").run_file.read_text())
    b = json.loads(_train(params, chosen, "baseline").run_file.read_text())
    tuning = json.loads(train.tune(params, "baseline", chosen)[0].run_file.read_text())
    assert a["pipeline_run_id"] == b["pipeline_run_id"] and a["group"] == b["group"] == tuning["group"]
    other = parse({**params.model_dump(), "train": {**params.train.model_dump(), "epochs": 2}})
    c = json.loads(_train(other, chosen, "baseline").run_file.read_text())
    assert c["group"] != a["group"]


def test_same_params_same_history_and_checkpoint(params: Params, chosen: Layout, tmp_path: Path) -> None:
    first = _train(params, chosen, track=False)
    second = _train(params, _copy_prepared(chosen, tmp_path / "b"), track=False)
    timing = ["epoch_seconds", "samples_per_second"]
    pd.testing.assert_frame_equal(pd.read_csv(first.history).drop(columns=timing),
                                  pd.read_csv(second.history).drop(columns=timing), check_exact=True)
    w1 = torch.load(first.checkpoint, weights_only=True)["model"]
    w2 = torch.load(second.checkpoint, weights_only=True)["model"]
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


def _diverging(raw_params: dict, lr: list[float] | None = None) -> Params:
    raw_params["train"].update(lr=lr or [10.0], grad_clip=0.0)
    raw_params["train"]["optimizer"].update(name="sgd", momentum=0.9)
    raw_params["train"]["model"]["hidden"] = [256, 256]
    return parse(raw_params)


def test_divergence_fails_run_and_leaves_no_outputs(raw_params: dict, prepared: Layout) -> None:
    params = _diverging(raw_params)
    write_json(prepared.chosen_setting("baseline"), {"lr": 10.0})
    with pytest.raises(StageError, match=r"diverged at epoch \d+ .*lower train\.lr"):
        _train(params, prepared, "baseline")
    assert not prepared.models.exists() or not any(prepared.models.rglob("*.*"))
    runs = mlflow.search_runs(search_all_experiments=True, filter_string="tags.`pipeline.role` = 'model'")
    assert runs["status"].tolist() == ["FAILED"]


def test_cuda_requested_without_gpu_is_a_clear_error(raw_params: dict, chosen: Layout) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    raw_params["train"]["device"] = "cuda"
    with pytest.raises(StageError, match="no CUDA device is available"):
        _train(parse(raw_params), chosen)


def test_missing_prepare_outputs_are_a_clear_error(params: Params, layout: Layout) -> None:
    with pytest.raises(StageError, match="run the prepare stage first"):
        _train(params, layout)


def test_command_line_divergence_is_one_line_and_exit_2(raw_params: dict, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from pipeline import prepare

    params = _diverging(raw_params)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params.model_dump()))
    prepare.run(params.prepare)
    write_json(Layout().chosen_setting("baseline"), {"lr": 10.0})
    assert train.main(["--variant", "baseline", "--seed", "0"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("train: error")]
    assert len(err) == 1 and "lower train.lr" in err[0]
    assert not (tmp_path / "models").exists() or not [p for p in (tmp_path / "models").rglob("*") if p.is_file()]


def test_relative_sqlite_uri_keeps_artifacts_beside_the_store(params: Params, chosen: Layout,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(chosen.root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///relative.db")  # as `mlflow run` may pass it
    info = json.loads(_train(params, chosen).run_file.read_text())
    run = mlflow.MlflowClient(tracking_uri=f"sqlite:///{chosen.root / 'relative.db'}").get_run(info["run_id"])
    assert run.info.artifact_uri.startswith((chosen.root / "mlartifacts").as_uri())
