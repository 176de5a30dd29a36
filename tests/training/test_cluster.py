"""The ray backend's parts that need no cluster: which cluster a stage joins, what a node must run with,
the params that cannot go together, and what stays the same whatever the backend. (The backend on a
real cluster: tests/e2e/test_cluster.py.)"""

from __future__ import annotations

import pickle
import sys
from typing import Any

import pytest

from pipeline.project.params import ClusterParams, parse
from pipeline.runtime.errors import ConfigError, StageError
from pipeline.training.cluster import Cluster, Runtime, cluster_address
from pipeline.training.jobs import training_config
from pipeline.training.loop import DivergedError


def _cluster(**given: Any) -> ClusterParams:
    return ClusterParams(**{"backend": "ray", "address": None, "cpus": 1, "gpus": 0, "retries": 3, **given})


@pytest.mark.parametrize(
    ("address", "environ", "expected"),
    [
        ("head:6379", {"RAY_ADDRESS": "other:6379"}, "head:6379"),  # the param wins
        (None, {"RAY_ADDRESS": "10.0.0.5:6379"}, "10.0.0.5:6379"),
        (None, {"RAY_ADDRESS": "auto"}, "auto"),
        ("auto", {}, "auto"),
    ],
)
def test_the_cluster_is_the_params_address_else_ray_address(
    address: str | None, environ: dict[str, str], expected: str
) -> None:
    assert cluster_address(_cluster(address=address), environ) == expected


@pytest.mark.parametrize(
    ("address", "environ", "message"),
    [
        (None, {}, r"^train.cluster.backend is ray but no cluster is named: export RAY_ADDRESS=HEAD:6379"),
        (None, {"RAY_ADDRESS": " "}, r"no cluster is named"),
        ("ray://head:10001", {}, r"Ray Client and dashboard addresses are not supported"),
        ("head", {}, r"'head' is not host:port or auto"),
        ("head:port", {}, r"'head:port' is not host:port or auto"),
    ],
)
def test_no_or_a_wrong_address_is_one_line(address: str | None, environ: dict[str, str], message: str) -> None:
    with pytest.raises(StageError, match=message):
        cluster_address(_cluster(address=address), environ)


def test_a_node_with_other_code_torch_or_python_is_named_what_differs() -> None:
    here = Runtime.here()
    assert here.differences(here) == []
    other = Runtime(code="f" * 64, torch="2.5.1", python=here.python)
    assert here.differences(other) == [
        f"the train stage's code (sha256) ffffffffffff where the driver has {here.code[:12]}",
        f"torch 2.5.1 where the driver has {here.torch}",
    ]


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"distributed": {"nproc": 2, "max_restarts": 0}}, "backend ray trains each stack in one process"),
        ({"device": "cuda"}, "backend ray with train.device cuda needs gpus 1"),
        ({"device": "cpu", "gpus": 1}, "gpus 1 with train.device cpu would hold a GPU per stack unused"),
    ],
)
def test_params_the_ray_backend_cannot_honour_stop_at_start(raw_params: dict, train: dict, message: str) -> None:
    cluster = raw_params["train"]["cluster"]
    cluster.update(backend="ray", gpus=train.pop("gpus", 0))
    raw_params["train"].update(train)
    with pytest.raises(ConfigError, match=rf"^params.yaml: train.cluster {message}"):
        parse(raw_params)
    cluster["backend"] = "local"  # the same settings train here
    parse(raw_params)


def test_where_the_stacks_train_is_neither_in_a_models_key_nor_in_its_mlflow_params(raw_params: dict) -> None:
    """Keys, groups and MLflow params come from training_config: the same for both backends, so models
    trained on a cluster count as done here and the other way round."""
    local = parse(raw_params)
    raw_params["train"]["cluster"].update(backend="ray", address="head:6379", cpus=4, retries=0)
    assert training_config(parse(raw_params).train) == training_config(local.train)
    assert "cluster" not in training_config(local.train)


def test_a_divergence_crosses_processes_whole() -> None:
    """A stack trained as a Ray task sends its diverged models' errors back pickled."""
    error = pickle.loads(pickle.dumps(DivergedError(4, float("inf"), 0.3)))
    assert (error.epoch, error.loss, error.lr) == (4, float("inf"), 0.3)
    assert str(error) == str(DivergedError(4, float("inf"), 0.3))


def test_the_ray_backend_without_ray_installed_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without the cluster extra imports
    with pytest.raises(StageError, match=r"Ray is not installed: pip install -c requirements.lock '\.\[cluster\]'"):
        Cluster.connect(_cluster(address="head:6379"))
