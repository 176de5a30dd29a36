"""The stacks on a Ray cluster (train.cluster.backend: ray), on this machine with loopback only: a tiny tune +
select + train on a two-node cluster writes what the local run writes, bit for bit, and the same MLflow runs
and curves; a node killed while its stack trains costs a retry and nothing else; an unreachable cluster is
one line within 15 s and no output.

The clusters run inside a network namespace that has only loopback (tests/helpers/ray_cluster.py): Ray
binds the machine's interface address otherwise."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
import yaml

from pipeline import prepare
from pipeline.project.layout import Layout
from pipeline.project.params import parse
from pipeline.runtime.errors import StageError
from pipeline.tracking import keys
from tests.helpers.params import REPO, small_raw_params
from tests.helpers.ray_cluster import in_namespace, namespace_problem

TIMING = {"epoch_seconds", "samples_per_second"}  # history columns that time the run, never equal twice
WHERE = {"run_id", "experiment_id", "tracking_uri", "pipeline_run_id"}  # run-file fields naming the store


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The helper's runs: local and on the cluster, undisturbed and with a node killed (~2 minutes)."""
    problem = namespace_problem()
    if problem is not None:
        pytest.skip(problem)
    out = tmp_path_factory.mktemp("cluster")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_"))}
    done = in_namespace(
        [sys.executable, "-m", "tests.helpers.ray_cluster", str(out)],
        {**env, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-6000:]
    return out


def _report(runs: Path) -> dict[str, Any]:
    return json.loads((runs / "report.json").read_text())


def _files(root: Path) -> dict[str, Path]:
    """Every output file the tune, select and train stages wrote, by its path under the layout's root."""
    return {
        p.relative_to(root).as_posix(): p
        for folder in ("tuning", "models")
        if (root / folder).is_dir()
        for p in (root / folder).rglob("*")
        if p.is_file() and p.name != "study.journal"  # the Optuna journal records when each trial ran
    }


def _assert_same_outputs(local: Path, cluster: Path) -> None:
    """Checkpoints byte for byte; histories, probes and run files equal but for timings and run ids."""
    mine, theirs = _files(local), _files(cluster)
    assert sorted(mine) == sorted(theirs)
    for name, path in mine.items():
        other = theirs[name]
        if name.endswith(".csv"):
            a, b = pd.read_csv(path), pd.read_csv(other)
            timing = sorted((TIMING | {"seconds"}) & set(a.columns))
            pd.testing.assert_frame_equal(a.drop(columns=timing), b.drop(columns=timing), check_exact=True)
        elif name.endswith(".run.json"):
            a, b = (json.loads(p.read_text()) for p in (path, other))
            assert {k: v for k, v in a.items() if k not in WHERE} == {k: v for k, v in b.items() if k not in WHERE}
        else:
            assert path.read_bytes() == other.read_bytes(), name


def _mlflow_runs(root: Path) -> dict[str, Any]:
    client = mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("batchnorm-vs-baseline")
    found = client.search_runs([experiment.experiment_id], "tags.`pipeline.role` != 'pipeline'")
    return {run.info.run_name: (client, run) for run in found}


def _curve(client: Any, run: Any, key: str) -> list[tuple[int, float, int]]:
    return sorted((m.step, m.value, m.timestamp) for m in client.get_metric_history(run.info.run_id, key))


def _assert_same_mlflow_runs(local: Path, cluster: Path) -> None:
    """The same runs with the same params, tag keys and values (but the driver's process), and curves equal
    step for step (timings aside); the cluster's epochs stamped when they ended on their node."""
    mine, theirs = _mlflow_runs(local), _mlflow_runs(cluster)
    assert sorted(mine) == sorted(theirs) and mine
    for name, (client, run) in mine.items():
        other_client, other = theirs[name]
        assert (run.info.status, run.data.params) == (other.info.status, other.data.params), name
        assert run.data.tags.keys() == other.data.tags.keys(), name
        differ = {k for k in run.data.tags if run.data.tags[k] != other.data.tags[k]}
        assert differ <= {keys.PROCESS}, (name, differ)
        assert run.data.metrics.keys() == other.data.metrics.keys(), name
        for key in set(keys.EPOCH_KEYS) - TIMING:
            assert [c[:2] for c in _curve(client, run, key)] == [c[:2] for c in _curve(other_client, other, key)]
        seconds = [value for _, value, _ in _curve(other_client, other, "epoch_seconds")]
        stamps = [stamp for _, _, stamp in _curve(other_client, other, "train_loss")]
        # each epoch stamped at its end on the node: the stamps lie an epoch's time apart, not all at the replay
        assert all(b - a >= 1000 * s - 2 for a, b, s in zip(stamps, stamps[1:], seconds[1:])), (name, stamps)


@pytest.mark.slow  # a Ray cluster in a network namespace and two tiny pipelines: about two minutes
def test_a_tiny_tune_and_train_on_a_two_node_cluster_equal_the_local_run(runs: Path) -> None:
    _assert_same_outputs(runs / "local", runs / "ray")
    _assert_same_mlflow_runs(runs / "local", runs / "ray")
    report = _report(runs)
    said = report["ray"]["said"]
    assert any("trained in" in line and "node 127.0.0.1" in line for line in said)
    entered = report["ray"]["entered"]  # every stack's task: tuning's two batch sizes, then the compared models
    assert len(entered) == 3
    assert {e["node"] for e in entered[:2]} == set(report["nodes"].values())  # tuning's stacks trained together
    # the nodes imported the stage's own code, shipped as the job's working directory, not this checkout
    assert all("working_dir_files" in e["code"] and not e["code"].startswith(str(REPO)) for e in entered)


@pytest.mark.slow  # see above (the same cluster)
def test_a_node_that_cannot_train_what_the_driver_would_is_one_line(runs: Path) -> None:
    """A node with other torch (the driver's torch version changed here, as if a node had another)
    refuses the stack before training; a stack no node has room for stops the stage at the start."""
    refusals = _report(runs)["refusals"]
    assert re.fullmatch(
        r"node 127\.0\.0\.1 \w{8} cannot train this stage's stacks: torch \S+ where the driver has 0\.0\.0 "
        r"\(see docs/cluster\.md\)",
        refusals["other_torch"],
    )
    assert refusals["no_fit"].startswith("no node of the Ray cluster at 127.0.0.1:") and (
        "has 2 CPUs for a stack (train.cluster.cpus, gpus); its largest has 1 CPUs and 0 GPUs" in refusals["no_fit"]
    )


@pytest.mark.slow  # see above (the same cluster)
def test_a_node_killed_mid_stage_costs_a_retry_and_loses_nothing(runs: Path) -> None:
    report = _report(runs)
    removed, kept = report["nodes"]["removed"], report["nodes"]["kept"]
    entered = report["removal-ray"]["entered"]
    assert [e["node"] for e in entered[:2]].count(removed) == 1  # one stack trained on the node killed
    assert entered[0]["at"] < report["removed_at"] and entered[1]["at"] < report["removed_at"]
    assert len(entered) == 3 and entered[2]["node"] == kept and entered[2]["at"] > report["removed_at"]
    _assert_same_outputs(runs / "removal-local", runs / "removal-ray")
    _assert_same_mlflow_runs(runs / "removal-local", runs / "removal-ray")
    found = _mlflow_runs(runs / "removal-ray")
    assert sorted(found) == ["batchnorm-s0", "batchnorm-s1"]  # every model once, FINISHED (compared above)
    for client, run in found.values():
        assert [step for step, _, _ in _curve(client, run, "train_loss")] == list(range(1, 121))


@pytest.fixture
def ray_params(tmp_path: Path) -> dict[str, Any]:
    """Shrunk params on the ray backend, prepared data under tmp_path, params.yaml written there."""
    raw = small_raw_params()
    raw["train"]["cluster"].update(backend="ray")
    prepare.run(parse(raw).prepare, Layout(tmp_path))
    return raw


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow  # the tune stage as a command: its imports take seconds
def test_an_unreachable_cluster_is_one_line_within_15_s_and_no_output(
    ray_params: dict[str, Any], tmp_path: Path
) -> None:
    address = f"127.0.0.1:{_closed_port()}"
    ray_params["train"]["cluster"]["address"] = address
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(ray_params, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_"))}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.train", "--variant", "batchnorm", "--tune"],
        cwd=tmp_path,
        env={**env, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert time.monotonic() - started < 15
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(f"train: error: the Ray cluster at {address} is unreachable (Connection refused); start it")
    )
    assert "Traceback" not in done.stderr and not (tmp_path / "tuning").exists()
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


@pytest.mark.slow  # waits for the connection's deadline
def test_an_address_that_never_answers_is_one_line_within_the_deadline(ray_params: dict[str, Any]) -> None:
    """Something accepts connections there but never answers as a Ray cluster (ray.init would retry for
    minutes): the stage stops at the deadline, before any output."""
    from pipeline.training.cluster import CONNECT_SECONDS, Cluster

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        ray_params["train"]["cluster"]["address"] = address
        started = time.monotonic()
        with pytest.raises(StageError, match=rf"^the Ray cluster at {address} did not let this process join"):
            Cluster.connect(parse(ray_params).train.cluster)
        assert time.monotonic() - started < CONNECT_SECONDS + 1
