"""Training over 2 CPU processes (torchrun, gloo) against one process: the loop's sharding, the
all-reduced BatchNorm, and the train stage's relaunch through torchrun with one MLflow run per model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import torch
import yaml

from pipeline import prepare
from pipeline.project.layout import Layout
from pipeline.project.params import parse
from pipeline.training.distributed import World
from tests.helpers.distributed_fit import train
from tests.helpers.params import REPO, small_raw_params, space


def _torchrun(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args],
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def _largest_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


@pytest.fixture(scope="module")
def two_rank_weights(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, bool], dict[str, torch.Tensor]]:
    """2-rank weights after 2 epochs (global batch 64, SGD) per (variant, batchnorm_sync)."""
    folder = tmp_path_factory.mktemp("ranks")
    out = {}
    for variant, sync in (("baseline", True), ("batchnorm", True), ("batchnorm", False)):
        path = folder / f"{variant}-{int(sync)}.pt"
        _torchrun("-m", "tests.helpers.distributed_fit", variant, str(int(sync)), str(path))
        out[variant, sync] = torch.load(path)
    return out


@pytest.mark.slow  # torchrun processes: tens of seconds
@pytest.mark.parametrize("variant", ["baseline", "batchnorm"])
def test_two_ranks_train_what_one_process_trains(two_rank_weights: dict, variant: str) -> None:
    """Same global batches, the loss scaled to the global mean, BatchNorm over the global batch:
    the weights match single-process training to 1e-5. (SGD here: with Adam, the bias of a Linear
    layer right before BatchNorm has a zero gradient in exact arithmetic, and Adam turns its
    rounding noise into full-size steps, which differ with the reduction order.)"""
    single = train(variant, False, World())
    assert _largest_difference(two_rank_weights[variant, True], single) < 1e-5


@pytest.mark.slow  # torchrun processes: tens of seconds
def test_per_rank_batchnorm_statistics_train_another_model(two_rank_weights: dict) -> None:
    single = train("batchnorm", False, World())
    assert _largest_difference(two_rank_weights["batchnorm", False], single) > 1e-3


def test_global_statistics_are_batchnorms_own_in_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The all-reduced BatchNorm (the sums of one process here) normalises, trains and keeps its running
    statistics as torch's batch_norm does."""
    from pipeline.modeling.network import MLP, MLPConfig
    from pipeline.training import distributed

    monkeypatch.setattr(distributed._SumOverRanks, "apply", lambda tensor: tensor)  # one process: the sum is itself
    config = MLPConfig(5, (8,), 0.0, "relu", "batchnorm", "after")
    x = torch.randn(2, 64, 5) * 3 + 1
    plain, synced = MLP.initialised(config, [0, 1]), MLP.initialised(config, [0, 1])
    synced.batch_statistics = distributed.global_statistics
    torch.testing.assert_close(synced.train()(x), plain.train()(x))
    torch.testing.assert_close(synced.running_var_0, plain.running_var_0)
    torch.testing.assert_close(synced.running_mean_0, plain.running_mean_0)


def test_device_selection() -> None:
    from pipeline.training.distributed import resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device is available"):
            resolve_device("cuda")


@pytest.fixture(scope="module")
def prepared_two_ways(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Two folders with the same prepared data, params nproc 1 and 2."""
    folders = {}
    for nproc in (1, 2):
        raw = space(small_raw_params(), lr=[0.01])  # one trial per variant
        raw["train"]["distributed"]["nproc"] = nproc
        folder = tmp_path_factory.mktemp(f"nproc{nproc}")
        (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        prepare.run(parse(raw).prepare, Layout(folder))
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}"}
        for variant in ("baseline", "batchnorm"):
            done = subprocess.run(
                [sys.executable, "-m", "pipeline.train", "--variant", variant, "--tune"],
                cwd=folder,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, done.stderr[-4000:]
        folders[nproc] = folder
    return folders


@pytest.mark.slow  # torchrun processes: tens of seconds
def test_the_train_stage_relaunches_itself_through_torchrun(prepared_two_ways: dict[int, Path]) -> None:
    """nproc 2: one MLflow run per model (rank 0 alone tracks and writes), the baseline's weights
    equal to one process's to 1e-5, the run file says how BatchNorm saw its batches."""
    one, two = prepared_two_ways[1], prepared_two_ways[2]
    client = mlflow.MlflowClient(f"sqlite:///{two / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("batchnorm-vs-baseline")
    runs = client.search_runs([experiment.experiment_id], "tags.`pipeline.role` = 'tuning'")
    assert sorted(r.info.run_name for r in runs) == ["baseline-t0-s100", "batchnorm-t0-s100"]
    assert all(r.info.status == "FINISHED" and r.data.params["train.distributed.nproc"] == "2" for r in runs)
    layout_one, layout_two = Layout(one), Layout(two)
    name = "baseline-t0-s100"
    weights = [
        torch.load(layout.checkpoint(name, tuning=True), weights_only=False)["model"]
        for layout in (layout_one, layout_two)
    ]
    assert _largest_difference(*weights) < 1e-5
    info = json.loads(layout_two.run_file("batchnorm-t0-s100", tuning=True).read_text())
    assert info["ranks"] == 2 and info["batchnorm_sync"] is True
    assert info["norm_batch_sizes"] == info["batch_sizes"]


RESTART_MODEL, RESTART_SEEDS, RESTART_EPOCHS = "batchnorm", (100, 101), 15


def _restartable_tune(folder: Path, kill_rank: int | None) -> str:
    """The tune stage with train.distributed nproc 2, max_restarts 1 (2 tuning seeds, dropout on); with
    ``kill_rank``, that worker gets SIGKILL once the second seed has a snapshot of epoch 3 or later.
    Returns torchrun's output. Output goes to a file and torchrun to its own session, so that a
    hang fails the test after a timeout instead of blocking the suite."""
    import signal
    import time

    raw = space(small_raw_params(), lr=[0.01], batch_size=[32], dropout=[0.1])  # dropout: the random state
    raw["train"].update(
        epochs=RESTART_EPOCHS,
        min_batch=16,
        patience=0,  # must be resumed too, per rank
        distributed={"nproc": 2, "max_restarts": 1},
    )
    raw["train"]["tune"]["seeds"] = list(RESTART_SEEDS)
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    prepare.run(parse(raw).prepare, Layout(folder))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}", "OMP_NUM_THREADS": "1"}
    log = folder / "torchrun.log"
    snapshot = Layout(folder).snapshot(f"{RESTART_MODEL}-t0-s{RESTART_SEEDS[1]}")
    with log.open("w") as out:
        # The stage becomes `torchrun --standalone --nproc_per_node 2 --max-restarts 1` (same pid).
        agent = subprocess.Popen(
            [sys.executable, "-m", "pipeline.train", "--variant", RESTART_MODEL, "--tune"],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.time() + 240
        while kill_rank is not None:
            if snapshot.is_file() and torch.load(snapshot, weights_only=False)["epoch"] >= 3:
                workers = Path(f"/proc/{agent.pid}/task/{agent.pid}/children").read_text().split()
                environs = {pid: Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") for pid in workers}
                (victim,) = [pid for pid, env in environs.items() if f"RANK={kill_rank}".encode() in env]
                os.kill(int(victim), signal.SIGKILL)
                break
            assert time.time() < deadline and agent.poll() is None, f"no snapshot came:\n{log.read_text()[-3000:]}"
            time.sleep(0.1)
        agent.wait(timeout=max(1.0, deadline - time.time()))
    except subprocess.TimeoutExpired:
        pytest.fail(f"torchrun did not finish in 240 s:\n{log.read_text()[-3000:]}")
    finally:
        if agent.poll() is None:
            os.killpg(agent.pid, signal.SIGKILL)
            agent.wait()
    output = log.read_text()
    assert agent.returncode == 0, output[-4000:]
    return output


@pytest.fixture(scope="module")
def uninterrupted_tune(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("uninterrupted")
    _restartable_tune(folder, kill_rank=None)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("kill_rank", [0, 1])
def test_torchrun_restart_resumes_from_the_last_epoch_in_the_same_run(
    tmp_path: Path, uninterrupted_tune: Path, kill_rank: int
) -> None:
    """A worker dies (SIGKILL) while the second tuning seed trains; torchrun (max_restarts 1)
    starts both ranks again: the first seed is not trained again, the second goes on from its last
    epoch snapshot in the same MLflow run, and the weights are those of a run that never crashed."""
    _restartable_tune(tmp_path, kill_rank)
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("batchnorm-vs-baseline")
    runs = {
        r.info.run_name: r for r in client.search_runs([experiment.experiment_id], "tags.`pipeline.role` = 'tuning'")
    }
    first, second = (f"{RESTART_MODEL}-t0-s{seed}" for seed in RESTART_SEEDS)
    assert sorted(runs) == [first, second]  # one run per model: none started again
    assert all(run.info.status == "FINISHED" for run in runs.values())
    steps = {
        name: [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] for name, run in runs.items()
    }
    every_epoch = list(range(1, RESTART_EPOCHS + 1))
    assert steps[first] == every_epoch  # finished before the crash: not trained again
    assert sorted(set(steps[second])) == every_epoch and len(steps[second]) <= RESTART_EPOCHS + 1  # one twice at most
    assert int(runs[second].data.tags["pipeline.resumed_after_epoch"]) >= 3
    layout, reference = Layout(tmp_path), Layout(uninterrupted_tune)
    for name in (first, second):
        resumed = torch.load(layout.checkpoint(name, tuning=True), weights_only=False)["model"]
        expected = torch.load(reference.checkpoint(name, tuning=True), weights_only=False)["model"]
        assert _largest_difference(resumed, expected) == 0.0, name
    assert not any(layout.snapshots.iterdir())  # removed once the stage wrote its outputs
    assert [p.name for p in (tmp_path / "tuning" / "models").iterdir()] == [RESTART_MODEL]
    assert not list(layout.variant_folder(RESTART_MODEL, tuning=True).rglob(".*"))  # no temporary file left
