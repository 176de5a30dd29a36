"""Ray clusters on this machine, loopback only, for the cluster tests and the cluster benchmark.

Ray binds the machine's interface address even when told 127.0.0.1; inside a network namespace that has
only loopback it binds 127.0.0.1. ``in_namespace`` runs a command in such a namespace (``unshare --net``, as
root), and ``localhost_cluster`` starts a cluster of one-CPU nodes there (a head without CPUs, so that every
stack trains on a node that can be removed).

``python -m tests.helpers.ray_cluster OUT`` (run by tests/e2e/test_cluster.py inside the namespace): a tiny
tune + select + train of one variant twice, here and on a two-node cluster, then the train stage again
with one stack per model, here and on the cluster with a node removed while both stacks train; each run in
its own folder and MLflow store under OUT, and OUT/report.json with what the driver said and did (and what
it says when a node runs other torch than it does, or when no node fits a stack).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.helpers.params import small_raw_params, space

NODE_MEMORY = 80 * 2**20  # each node's object store: the tests' rows are tiny


def namespace_problem() -> str | None:
    """Why a loopback-only network namespace cannot be made here (None: it can)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare and ip (util-linux, iproute2) are needed to run Ray on loopback only"
    tried = subprocess.run(
        ["unshare", "--net", "sh", "-c", "ip link set lo up"], capture_output=True, text=True, check=False
    )
    if tried.returncode != 0:
        return f"cannot make a network namespace (unshare --net needs root): {tried.stderr.strip()}"
    return None


def in_namespace(
    command: list[str], env: dict[str, str], timeout: int, capture: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in a new network namespace whose only interface, loopback, is up (its output
    captured, or shown as it comes)."""
    script = 'ip link set lo up && exec "$@"'
    return subprocess.run(
        ["unshare", "--net", "sh", "-c", script, "sh", *command],
        env=env,
        capture_output=capture,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextmanager
def localhost_cluster(workers: int) -> Iterator[Any]:
    """A Ray cluster of ``workers`` one-CPU nodes and a head without CPUs (inside the namespace)."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": NODE_MEMORY})
    for _ in range(workers):
        cluster.add_node(num_cpus=1, object_store_memory=NODE_MEMORY)
    cluster.wait_for_nodes()
    try:
        yield cluster
    finally:
        cluster.shutdown()


class _Said(logging.Handler):
    """Every message the pipeline logs."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def tiny_raw_params() -> dict[str, Any]:
    """One variant, two replicates, four trials in two batch sizes (two stacks at once), dropout in two."""
    raw = small_raw_params()
    raw["prepare"]["replicates"] = 2
    raw["train"]["variants"] = ["batchnorm"]
    raw["variants"]["reference"] = "batchnorm"  # the one variant (no candidate: the stages here need none)
    space(raw, batch_size=[64, 128], dropout=[0.0, 0.1])
    raw["train"]["tune"]["parallel"] = 4
    return raw


def _entering(marks: Path) -> None:
    """Have every stack's task, once it runs on its node (its worker started, its code imported), leave a
    file in ``marks`` saying which node it runs on, from which code and when. (A closure: Ray pickles it by
    value; it calls the package's own task, which the node imports from the stage's shipped code.)"""
    from pipeline.training import cluster as backend

    task = getattr(backend.train_stack, "__wrapped__", backend.train_stack)  # the package's own

    def entering(*args: Any) -> Any:
        import uuid

        import ray

        from pipeline.project import provenance

        entered = {
            "node": ray.get_runtime_context().get_node_id(),
            "code": str(provenance.PACKAGE_DIR),
            "at": time.time(),
        }
        (marks / f"{uuid.uuid4().hex}.json").write_text(json.dumps(entered))
        return task(*args)

    entering.__wrapped__ = task  # type: ignore[attr-defined]
    marks.mkdir(parents=True)
    backend.train_stack = entering  # type: ignore[assignment]


def _entered(marks: Path) -> list[dict[str, Any]]:
    return sorted((json.loads(p.read_text()) for p in marks.glob("*.json")), key=lambda e: e["at"])


def _remove_when_training(cluster: Any, node: Any, marks: Path, report: dict[str, Any]) -> None:
    """Kill ``node`` (every process of it) one second after both stacks' tasks began to train."""

    def watch() -> None:
        deadline = time.time() + 300
        while time.time() < deadline and len(_entered(marks)) < 2:
            time.sleep(0.05)
        time.sleep(1.0)
        cluster.remove_node(node, allow_graceful=False)
        report["removed_at"] = time.time()

    threading.Thread(target=watch, daemon=True).start()


def _refusals(address: str) -> dict[str, str]:
    """What the driver says when a node runs other torch than it does, and when no node fits a stack."""
    import ray

    from pipeline.project.params import ClusterParams
    from pipeline.runtime.errors import StageError
    from pipeline.training.cluster import Cluster, Runtime

    said = {}
    params = ClusterParams(backend="ray", address=address, cpus=1, gpus=0, retries=0)
    with Cluster.connect(params) as cluster:
        here = Runtime.here()
        cluster.runtime = Runtime(here.code, "0.0.0", here.python)  # the driver's torch, as if it were another
        try:
            list(cluster.completed({cluster.submit([], ray.put(None)): None}))
        except StageError as exc:
            said["other_torch"] = str(exc)
    try:
        Cluster.connect(params.model_copy(update={"cpus": 2}))
    except StageError as exc:
        said["no_fit"] = str(exc)
    return said


def main(out: Path) -> None:
    """The runs tests/e2e/test_cluster.py compares (see the module's docstring)."""
    import torch

    from pipeline import prepare, select, train
    from pipeline.project.layout import Layout
    from pipeline.project.params import parse
    from pipeline.runtime.cli import setup_logging
    from tests.helpers.params import chosen

    torch.set_num_threads(1)  # the threads of a one-CPU task
    setup_logging()
    said = _Said()
    logging.getLogger("pipeline").addHandler(said)
    report: dict[str, Any] = {}
    with localhost_cluster(workers=2) as cluster:
        workers = sorted(cluster.worker_nodes, key=lambda node: node.node_id)
        report["nodes"] = {"removed": workers[1].node_id, "kept": workers[0].node_id}
        raw = tiny_raw_params()
        for where in ("local", "ray"):
            if where == "ray":
                raw["train"]["cluster"].update(backend="ray", address=cluster.address)
                _entering(out / "entered-ray")
            params, layout = parse(raw), Layout(out / where)
            os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{out / where / 'mlflow.db'}"
            started, first = time.time(), len(said.lines)
            prepare.run(params.prepare, layout)
            train.tune(params, "batchnorm", layout)
            select.run(params, layout)
            train.run(params, "batchnorm", layout)
            report[where] = {"seconds": time.time() - started, "said": said.lines[first:]}
        report["ray"]["entered"] = _entered(out / "entered-ray")
        report["refusals"] = _refusals(cluster.address)

        raw = tiny_raw_params()
        raw["train"].update(stack=1, epochs=120)
        for where in ("removal-local", "removal-ray"):
            if where == "removal-ray":
                raw["train"]["cluster"].update(backend="ray", address=cluster.address)
                _entering(out / "entered-removal")
                _remove_when_training(cluster, workers[1], out / "entered-removal", report)
            params, layout = parse(raw), Layout(out / where)
            os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{out / where / 'mlflow.db'}"
            prepare.run(params.prepare, layout)
            chosen(layout, "batchnorm", batch_size=128)
            started, first = time.time(), len(said.lines)
            train.run(params, "batchnorm", layout)
            report[where] = {"seconds": time.time() - started, "said": said.lines[first:], "ended_at": time.time()}
        report["removal-ray"]["entered"] = _entered(out / "entered-removal")
    (out / "report.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
