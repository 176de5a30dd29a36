"""Where a stage's stacks train when ``train.cluster.backend`` is ``ray``: each stack a task of a running Ray
cluster, every stack of a call in flight at once (docs/cluster.md). The package's one home of Ray (an
import-linter contract in pyproject.toml keeps it so); Ray is imported only once a stage asks for it.

The stage's own process, the driver, keeps everything but the training: the Optuna study, the MLflow runs
and every output file. It connects before it touches an output (an unreachable cluster: one line within
``CONNECT_SECONDS``), puts each split's rows into the object store once per stage, and submits each stack
with its resources (``train.cluster.cpus``, its torch threads; one GPU with ``gpus: 1``). A task trains
the stack with the one loop (``training.loop.fit``) on its node and sends back what the loop reported, in
order: each epoch's records with the time the epoch ended, and each model's outcome (best weights,
history, probes). The driver replays them into the hooks the local backend calls while it trains
(training.runner), so the files, the MLflow runs, their curves (stamped with their own times), keys and
tags are the same whatever the backend. A task lost with its worker or node is trained again from the
start, up to ``train.cluster.retries`` times (Ray's task retries): the stage ends with every model once.

The code travels with the stage: the driver's ``pipeline`` package is the job's working directory on
every node, so a node needs the environment (Python, the locked dependencies, Ray) and no checkout; each
task checks that it runs the driver's code, torch and Python before it trains, since the same stack on
the same CPU with the same threads then gives the same models, bit for bit.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import torch

from pipeline.evaluation.ranking import epoch_metrics
from pipeline.project import provenance
from pipeline.project.params import ClusterParams
from pipeline.runtime.errors import StageError, UserError
from pipeline.training.distributed import resolve_device
from pipeline.training.loop import BatchError, FitData, FitEnv, FitHooks, Member, Outcome, fit

log = logging.getLogger("pipeline.train")
CONNECT_SECONDS = 9  # an address that does not let the stage join within this: one line and exit 2
REACH_SECONDS = 3  # of which the TCP connection to its port may take this long
DOCS = "docs/cluster.md"
Item = TypeVar("Item")


@dataclass(frozen=True)
class Epoch:
    """One epoch of a stack as the loop reported it: each model's record, and when the epoch ended."""

    epoch: int
    records: dict[int, dict[str, float]]
    at: float  # seconds since 1970, on the node's clock


@dataclass(frozen=True)
class Done:
    """One model of a stack finished (or diverged), as the loop reported it."""

    member: int
    outcome: Outcome


@dataclass(frozen=True)
class Trained:
    """What a stack's task sends back: the loop's reports in their order, and where and how it trained."""

    events: list[Epoch | Done]
    node: str  # the node's address and the start of its id
    device: str  # the torch device it trained on
    device_name: str  # cpu, or the GPU's name
    code: str  # the pipeline package it imported (the copy in the job's working directory)
    seconds: float  # from the task's start to its end, on the node


@dataclass(frozen=True)
class Runtime:
    """What a task must run with to train what the driver would: its code (the train stage's files), torch
    and Python."""

    code: str
    torch: str
    python: str

    @classmethod
    def here(cls) -> Runtime:
        """This process's runtime (found once: hashing the code takes a tenth of a second, a task's worker
        trains many stacks, and a process's code does not change under it)."""
        return _runtime()

    def differences(self, other: Runtime) -> list[str]:
        """What differs from ``other``, readably (empty: nothing)."""
        names = {"code": "the train stage's code (sha256)", "torch": "torch", "python": "Python"}
        return [
            f"{names[field]} {getattr(other, field)[:12]} where the driver has {getattr(self, field)[:12]}"
            for field in names
            if getattr(self, field) != getattr(other, field)
        ]


@functools.cache
def _runtime() -> Runtime:
    return Runtime(provenance.code_sha256("train"), torch.__version__, sys.version.split()[0])


def train_stack(members: list[Member], runtime: Runtime, device: str, threads: int, *data: FitData) -> Trained:
    """A stack's task, on a node: check the runtime, train the stack on one set of rows (``data``: one) or
    each member on its own (one each), and report every epoch and outcome in order."""
    import ray

    started = time.time()
    node = f"{ray.util.get_node_ip_address()} {ray.get_runtime_context().get_node_id()[:8]}"
    problems = runtime.differences(Runtime.here())
    if problems:
        raise StageError(f"node {node} cannot train this stage's stacks: {'; '.join(problems)} (see {DOCS})")
    torch.set_num_threads(threads)
    events: list[Epoch | Done] = []
    hooks = FitHooks(
        epoch_metrics,
        on_epoch=lambda epoch, records: events.append(Epoch(epoch, records, time.time())),
        on_done=lambda member, outcome: events.append(Done(member, outcome)),
    )
    try:
        on = resolve_device(device)
    except RuntimeError as exc:
        raise StageError(f"node {node}: {exc}") from None
    fit(members, data[0] if len(data) == 1 else list(data), FitEnv(on), hooks)
    name = torch.cuda.get_device_name(on) if on.type == "cuda" else "cpu"
    return Trained(events, node, str(on), name, str(provenance.PACKAGE_DIR), time.time() - started)


def cluster_address(params: ClusterParams, environ: dict[str, str] | None = None) -> str:
    """The cluster the stage connects to: ``train.cluster.address``, else RAY_ADDRESS; host:port or auto."""
    environ = dict(os.environ) if environ is None else environ
    address = params.address or environ.get("RAY_ADDRESS", "").strip()
    if not address:
        raise StageError(
            "train.cluster.backend is ray but no cluster is named: export RAY_ADDRESS=HEAD:6379 (the head "
            f"node's address; auto on a node of the cluster) or set train.cluster.address (see {DOCS})"
        )
    if "://" in address:
        raise StageError(
            f"Ray cluster address {address}: Ray Client and dashboard addresses are not supported; run the stage "
            f"on a node of the cluster (`ray start --address HEAD:6379` makes this machine one) with HEAD:6379 "
            f"or auto (see {DOCS})"
        )
    host, _, port = address.rpartition(":")
    if address != "auto" and not (host and port.isdigit()):
        raise StageError(f"Ray cluster address {address!r} is not host:port or auto (see {DOCS})")
    return address


def _reach(address: str) -> None:
    """One line, and no wait beyond CONNECT_SECONDS, when the address does not answer as a Ray cluster this
    process may join. (``ray.init`` itself retries an unreachable address for minutes: a child process tries
    it first, under a deadline.)"""
    started = time.monotonic()
    fix = f"start it (`ray start --head`), or fix RAY_ADDRESS or train.cluster.address (see {DOCS})"
    if address != "auto":
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=REACH_SECONDS).close()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise StageError(f"the Ray cluster at {address} is unreachable ({reason}); {fix}") from None
    trial = (
        "import logging, sys, ray\n"
        "ray.init(address=sys.argv[1], logging_level=logging.ERROR, log_to_driver=False)\n"
        "ray.shutdown()\n"
    )
    left = max(1.0, CONNECT_SECONDS - (time.monotonic() - started))
    try:
        tried = subprocess.run(
            [sys.executable, "-c", trial, address], capture_output=True, text=True, timeout=left, check=False
        )
    except subprocess.TimeoutExpired:
        raise StageError(
            f"the Ray cluster at {address} did not let this process join within {CONNECT_SECONDS} s (is "
            f"something else listening there, or is this machine not one of its nodes?); {fix}"
        ) from None
    if tried.returncode != 0:
        lines = [line.strip() for line in tried.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if "Error" in line.split(":")[0]] or lines or ["no reason given"]
        raise StageError(f"the Ray cluster at {address} refused this process: {errors[-1]}; {fix}")


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise StageError(
            "train.cluster.backend is ray but Ray is not installed: pip install -c requirements.lock '.[cluster]'"
        ) from None
    return ray


def _stage_code() -> Path:
    """A folder holding a copy of the package (its Python files): the job's working directory on the nodes."""
    folder = Path(tempfile.mkdtemp(prefix="bn-fraud-code-"))
    shutil.copytree(provenance.PACKAGE_DIR, folder / "pipeline", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return folder


class Cluster:
    """A stage's connection to a Ray cluster: its slots, the rows it holds, the stacks it trains."""

    def __init__(self, params: ClusterParams, address: str) -> None:
        self.params, self.address = params, address
        self._ray = _ray()
        self._shipped: dict[str, tuple[Any, tuple[int, int]]] = {}
        self.runtime = Runtime.here()
        self.device = "cuda" if params.gpus else "cpu"  # what each task asks for on its node
        self.slots = 0
        self._advised: set[str] = set()
        self._task = self._ray.remote(train_stack).options(
            num_cpus=params.cpus, num_gpus=params.gpus, max_retries=params.retries, retry_exceptions=False
        )

    @classmethod
    def connect(cls, params: ClusterParams) -> Cluster:
        """Join the cluster (train.cluster.address, else RAY_ADDRESS), shipping this stage's code; one line
        when it cannot be reached or has no node that fits a stack."""
        cluster = cls(params, cluster_address(params))
        _reach(cluster.address)
        code, sigterm = _stage_code(), signal.getsignal(signal.SIGTERM)
        try:
            cluster._ray.init(
                address=cluster.address,
                runtime_env={"working_dir": str(code)},
                logging_level=logging.WARNING,
                log_to_driver=False,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise StageError(f"the Ray cluster at {cluster.address} refused this process: {exc}") from None
        finally:
            signal.signal(signal.SIGTERM, sigterm)  # ray.init takes SIGTERM over: the stage's handler ends runs
            shutil.rmtree(code, ignore_errors=True)  # uploaded by init
        try:
            cluster._fit_check()
        except UserError:
            cluster.close()
            raise
        return cluster

    def _fit_check(self) -> None:
        """Some node holds a stack's resources (else its tasks would wait for ever); count the slots."""
        cpus, gpus = self.params.cpus, self.params.gpus
        nodes = [n["Resources"] for n in self._ray.nodes() if n.get("Alive")]
        fits = [n for n in nodes if n.get("CPU", 0) >= cpus and n.get("GPU", 0) >= gpus]
        if not fits:
            largest = max((f"{n.get('CPU', 0):g} CPUs and {n.get('GPU', 0):g} GPUs" for n in nodes), default="none")
            raise StageError(
                f"no node of the Ray cluster at {self.address} has {cpus} CPUs{' and a GPU' if gpus else ''} for "
                f"a stack (train.cluster.cpus, gpus); its largest has {largest} (see {DOCS})"
            )
        self.slots = int(sum(min(n["CPU"] // cpus, n["GPU"] // gpus if gpus else n["CPU"]) for n in fits))
        log.info(
            "train: Ray cluster at %s: %d node(s), room for %d stack(s) at a time",
            self._ray.get_runtime_context().gcs_address,
            len(nodes),
            self.slots,
        )

    def environment(self) -> FitEnv:
        """Where the stacks train, as the driver records it: one process, and a node's CPU or the one GPU Ray
        shows a task (cuda:0)."""
        return FitEnv(torch.device("cuda", 0) if self.params.gpus else torch.device("cpu"))

    def advise(self, advice: str) -> None:
        """Log a piece of advice once per stage."""
        if advice not in self._advised:
            self._advised.add(advice)
            log.info(advice)

    def ship(self, split: str, rows: Callable[[], tuple[FitData, tuple[int, int]]]) -> tuple[Any, tuple[int, int]]:
        """A split's rows in the object store (put there once per stage) and its training negatives and
        positives; ``rows`` reads them the first time."""
        if split not in self._shipped:
            data, counts = rows()
            self._shipped[split] = (self._ray.put(data), counts)
        return self._shipped[split]

    def submit(self, members: list[Member], data: Any) -> Any:
        """Send a stack (its rows: one shipped split, or a list of them, one per member); its result's
        reference."""
        rows = data if isinstance(data, list) else [data]
        return self._task.remote(members, self.runtime, self.device, self.params.cpus, *rows)

    def completed(self, pending: dict[Any, Item]) -> Iterator[tuple[Item, Trained]]:
        """Each submitted stack's result as it comes (the first finished first); whatever has not come when
        the caller stops (an error, a signal) is cancelled."""
        try:
            while pending:
                done, _ = self._ray.wait(list(pending), num_returns=1, timeout=1.0)  # signals get through
                for ref in done:
                    yield pending.pop(ref), self._result(ref)
        finally:
            for ref in pending:
                self._ray.cancel(ref, force=True)

    def _result(self, ref: Any) -> Trained:
        """A task's result; a user's problem on the node as one line, a stack lost beyond its retries too."""
        exceptions = self._ray.exceptions
        try:
            return self._ray.get(ref)
        except exceptions.RayTaskError as exc:
            if isinstance(exc.cause, UserError | BatchError):
                raise exc.cause from None
            raise
        except exceptions.RayError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StageError(
                f"a stack was lost with its worker or node {self.params.retries + 1} time(s) "
                f"(train.cluster.retries {self.params.retries}): {first}; `dvc repro` trains it again, keeping "
                "every model written so far"
            ) from None

    def close(self) -> None:
        """Leave the cluster (tasks still running end with this driver)."""
        if self._ray.is_initialized():
            self._ray.shutdown()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
