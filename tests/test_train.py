"""The train stage (and tune, its tuning role): outputs, MLflow contents, models kept between runs,
stacked and one at a time alike, determinism, failure handling."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch
import yaml

from pipeline import prepare, train
from pipeline.data.prepared import Prepared
from pipeline.modeling.network import from_checkpoint, initial_state
from pipeline.project.artefacts import PrepareSummary
from pipeline.project.layout import Layout
from pipeline.project.params import Params, Setting, parse
from pipeline.project.variants import Catalogue
from pipeline.runtime.errors import StageError
from pipeline.tracking import keys
from pipeline.training.jobs import TrainResult, prior_logit
from tests.helpers.params import chosen as write_chosen
from tests.helpers.params import space


@pytest.fixture
def chosen(prepared: Layout, params: Params) -> Layout:
    """Prepared data plus each variant's chosen setting, as the select stage writes it."""
    for variant in params.train.variants:
        write_chosen(prepared, variant)
    return prepared


def _train(
    params: Params, layout: Layout, variant: str = "batchnorm", replicate: int = 0, track: bool = True
) -> TrainResult:
    (result,) = train.run(params, variant, layout, track=track, seeds=[replicate])
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
    assert payload["variant"] == variant and payload["config"]["norm"] == Catalogue(params)[variant].model.norm
    assert payload["setting"]["batch_size"] == 128
    model = from_checkpoint(payload)
    assert model.batchnorm == (variant == "batchnorm") and model.k == 1
    probes = pd.read_csv(chosen.probes(result.name))
    assert probes["step"].tolist()[:4] == [1, 2, 4, 8] and probes["seconds"].is_monotonic_increasing
    assert probes["step"].iloc[-1] == 3 * 19  # every epoch's end, the last included

    info = json.loads(result.run_file.read_text())
    assert info["setting"]["lr"] == 0.01 and info["batch_sizes"] == [128] * 18 + [96] and info["epochs_run"] == 3
    assert info["best_val_ap"] == pytest.approx(history["val_ap"].max())
    client = mlflow.MlflowClient()
    run = client.get_run(info["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == f"{variant}-s0"
    for key in keys.EPOCH_KEYS:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert steps == [1, 2, 3], key
    assert set(run.data.metrics) == {*keys.EPOCH_KEYS, *keys.SUMMARY_KEYS}
    assert run.data.params["train.lr"] == "0.01" and run.data.params["train.batch_size"] == "128"
    assert run.data.params["variant"] == variant and run.data.params["data.rows_train"] == "2400"
    run_tags = run.data.tags
    for key in (
        "git.commit",
        "git.dirty",
        "data.sha256",
        "device",
        "torch_version",
        "mlflow_version",
        "pipeline.group",
    ):
        assert run_tags.get(key), key
    assert run_tags["pipeline.role"] == "model" and run_tags["pipeline.lr"] == "0.01"
    assert "mlflow.parentRunId" not in run_tags  # not nested: visible in the runs table
    assert run_tags["mlflow.runColor"] == {"batchnorm": "#1f77b4", "baseline": "#ff7f0e"}[variant]
    pipeline_run = client.get_run(info["pipeline_run_id"])
    assert pipeline_run.data.tags["pipeline.role"] == "pipeline"
    assert pipeline_run.info.run_name == f"pipeline-{info['group']}" and len(info["group"]) == 12
    (dataset,) = run.inputs.dataset_inputs
    assert dataset.dataset.name == f"r{info['seed']}/train" and "V14" in dataset.dataset.schema
    assert "data/prepared/table.parquet" in dataset.dataset.source  # the rows are the table's, by the split file


def test_the_output_bias_starts_at_the_training_prior(params: Params, chosen: Layout) -> None:
    """2% frauds: the first prediction of every variant is the base rate, log(48/2352)."""
    train_part = Prepared(chosen, PrepareSummary.read(chosen.prepare_summary, "prepare")).parts("r0", ("train",))[
        "train"
    ]
    positives = int(train_part.y.sum())
    setting = Setting(lr=0.01, weight_decay=0.0, batch_size=128, pos_weight="none", dropout=0.0)
    logit = prior_logit(setting, train_part.y.size - positives, positives)
    assert logit == pytest.approx(torch.log(torch.tensor(positives / (train_part.y.size - positives))).item())
    assert prior_logit(setting.model_copy(update={"pos_weight": "balanced"}), 2352, 48) == pytest.approx(0.0)
    config = from_checkpoint(torch.load(_train(params, chosen, "baseline").checkpoint, weights_only=True)).config
    assert initial_state(config, 0, logit)["head.bias"].item() == pytest.approx(logit)


def test_a_variants_trials_train_their_setting_on_every_tuning_seed(raw_params: dict, prepared: Layout) -> None:
    raw_params["train"]["tune"]["seeds"] = [100, 101]
    params = parse(space(raw_params, lr=[0.003, 0.01]))
    results = train.tune(params, "baseline", prepared)
    folder = prepared.tuning / "baseline"
    assert [r.checkpoint for r in results] == [folder / f"baseline-t{t}-s{s}.pt" for t in (0, 1) for s in (100, 101)]
    assert results[0].history == folder / "history" / "baseline-t0-s100.csv"
    assert all(r.checkpoint.is_file() and r.run_file.is_file() for r in results) and not prepared.models.exists()
    trials = json.loads(prepared.trials("baseline").read_text())["trials"]
    assert sorted(t["setting"]["lr"] for t in trials) == [0.003, 0.01] and prepared.study("baseline").is_file()
    info = json.loads(results[0].run_file.read_text())
    assert info["stack_size"] == 4  # every model of the round trained together
    assert trials[0]["val_ap"] == pytest.approx(
        (info["best_val_ap"] + json.loads(results[1].run_file.read_text())["best_val_ap"]) / 2
    )
    run = mlflow.MlflowClient().get_run(info["run_id"])
    assert run.data.tags["pipeline.role"] == "tuning" and run.data.tags["pipeline.trial"] == "0"
    assert run.data.params["train.lr"] == str(trials[0]["setting"]["lr"])
    assert run.info.run_name == "baseline-t0-s100" and run.info.status == "FINISHED"


def test_more_trials_train_only_the_new_ones(raw_params: dict, prepared: Layout) -> None:
    params = parse(space(raw_params, lr=[0.003, 0.01, 0.001]))
    raw_params["train"]["tune"]["trials"] = 2
    first = train.tune(parse(raw_params), "baseline", prepared)
    stamps = {r.name: r.checkpoint.stat().st_mtime_ns for r in first}
    second = train.tune(params, "baseline", prepared)
    assert [r.name for r in second] == ["baseline-t0-s100", "baseline-t1-s100", "baseline-t2-s100"]
    assert [r.fit is None for r in second] == [True, True, False]  # the first two kept, the third trained
    assert {r.name: r.checkpoint.stat().st_mtime_ns for r in second[:2]} == stamps
    assert len(json.loads(prepared.trials("baseline").read_text())["trials"]) == 3
    raw_params["train"]["epochs"] = 2  # other params: a fresh study, every trial trained again
    third = train.tune(parse(raw_params), "baseline", prepared)
    assert len(third) == 2 and all(r.fit is not None for r in third)
    assert not (prepared.tuning / "baseline" / "baseline-t2-s100.pt").exists()


def test_a_diverged_trial_is_a_result_not_a_failure(raw_params: dict, prepared: Layout) -> None:
    """Too high a learning rate in the space: the tuning run is FAILED and says where it diverged; the
    stage succeeds (select will skip that trial), and the stack's other models train on."""
    params = _diverging(raw_params, lr=[10.0, 0.001])
    results = train.tune(params, "baseline", prepared)
    trials = {t["setting"]["lr"]: t for t in json.loads(prepared.trials("baseline").read_text())["trials"]}
    assert trials[10.0]["state"] == "FAIL" and trials[10.0]["val_ap"] is None and trials[0.001]["val_ap"] > 0
    diverged = next(r for r in results if r.name == f"baseline-t{trials[10.0]['trial']}-s100")
    info = json.loads(diverged.run_file.read_text())
    assert diverged.checkpoint is None and info["diverged_at"] >= 1 and diverged.history.is_file()
    run = mlflow.MlflowClient().get_run(info["run_id"])
    assert run.info.status == "FAILED" and run.data.tags["pipeline.diverged_at"] == str(info["diverged_at"])


def test_a_new_replicate_trains_only_its_models_and_a_removed_one_leaves(raw_params: dict, layout: Layout) -> None:
    def with_replicates(n: int) -> list[TrainResult]:
        raw_params["prepare"]["replicates"] = n
        params = parse(raw_params)
        prepare.run(params.prepare, layout)
        write_chosen(layout, "baseline")
        return train.run(params, "baseline", layout)

    first = with_replicates(2)
    stamps = {r.name: (r.checkpoint.stat().st_mtime_ns, json.loads(r.run_file.read_text())["run_id"]) for r in first}
    second = with_replicates(3)
    assert [r.name for r in second] == ["baseline-s0", "baseline-s1", "baseline-s2"]
    assert [r.fit is None for r in second] == [True, True, False]  # r0, r1 kept: their splits did not move
    assert {
        r.name: (r.checkpoint.stat().st_mtime_ns, json.loads(r.run_file.read_text())["run_id"]) for r in second[:2]
    } == stamps
    with_replicates(1)
    assert sorted(p.name for p in (layout.models / "baseline").iterdir()) == [
        "baseline-s0.probes.csv",
        "baseline-s0.pt",
        "baseline-s0.run.json",
    ]
    assert sorted(p.name for p in (layout.histories / "baseline").iterdir()) == ["baseline-s0.csv"]


def test_stacked_and_one_at_a_time_train_the_same_models(raw_params: dict, layout: Layout, tmp_path: Path) -> None:
    """train.stack: 1 trains each model as a stack of one (as torchrun does); a stack of three gives the same
    histories and weights to float32 rounding (each replicate its own split: the stack's members have rows of
    their own)."""
    raw_params["prepare"]["replicates"] = 3
    prepare.run(parse(raw_params).prepare, layout)
    write_chosen(layout, "batchnorm")
    stacked = train.run(parse(raw_params), "batchnorm", layout, track=False)
    raw_params["train"]["stack"] = 1
    alone = train.run(parse(raw_params), "batchnorm", _copy_prepared(layout, tmp_path / "alone"), track=False)
    assert json.loads(stacked[0].run_file.read_text())["stack_size"] == 3
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
    pd.testing.assert_frame_equal(
        pd.read_csv(first.history).drop(columns=timing),
        pd.read_csv(second.history).drop(columns=timing),
        check_exact=True,
    )
    w1 = torch.load(first.checkpoint, weights_only=True)["model"]
    w2 = torch.load(second.checkpoint, weights_only=True)["model"]
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


def _diverging(raw_params: dict, lr: list[float] | None = None) -> Params:
    space(raw_params, lr=lr or [10.0])
    raw_params["train"].update(grad_clip=0.0)
    raw_params["train"]["optimizer"].update(name="sgd", momentum=0.9)
    raw_params["train"]["model"]["hidden"] = [256, 256]
    return parse(raw_params)


def test_divergence_fails_run_and_leaves_no_outputs(raw_params: dict, prepared: Layout) -> None:
    params = _diverging(raw_params)
    write_chosen(prepared, "baseline", lr=10.0)
    with pytest.raises(StageError, match=r"diverged at epoch \d+ .*lower train\.tune\.space\.lr"):
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


def test_command_line_divergence_is_one_line_and_exit_2(
    raw_params: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    params = _diverging(raw_params)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params.model_dump()))
    prepare.run(params.prepare)
    write_chosen(Layout(), "baseline", lr=10.0)
    assert train.main(["--variant", "baseline", "--seed", "0"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("train: error")]
    assert len(err) == 1 and "lower train.tune.space.lr" in err[0]
    assert not (tmp_path / "models").exists() or not [p for p in (tmp_path / "models").rglob("*") if p.is_file()]


def test_relative_sqlite_uri_keeps_artifacts_beside_the_store(
    params: Params, chosen: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(chosen.root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///relative.db")  # as `mlflow run` may pass it
    info = json.loads(_train(params, chosen).run_file.read_text())
    run = mlflow.MlflowClient(tracking_uri=f"sqlite:///{chosen.root / 'relative.db'}").get_run(info["run_id"])
    assert run.info.artifact_uri.startswith((chosen.root / "mlartifacts").as_uri())
