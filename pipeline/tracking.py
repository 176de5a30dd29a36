"""MLflow runs: store, experiment, run lifecycle, epoch logging, searches.

Store: ``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<repository root>/mlflow.db``, where the
root is ``DVC_ROOT`` when DVC runs the stage (so that ``dvc exp run`` copies log into the same
store), else the enclosing git repository. Runs of one pipeline configuration are grouped under
a parent run tagged ``pipeline.group``. What a model run packages lives in ``packaging``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from pipeline import provenance

log = logging.getLogger(__name__)

ROLE, GROUP, MODEL = "pipeline.role", "pipeline.group", "pipeline.model"


def tracking_uri() -> str:
    """Where runs go (see module docstring)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{provenance.repo_root() / 'mlflow.db'}"


def environment_tags() -> dict[str, str]:
    """Tags every run carries: git state, DVC experiment, library versions."""
    import mlflow
    import torch

    commit, dirty = provenance.git_state()
    tags = {"mlflow.source.git.commit": commit, "git.commit": commit, "git.dirty": str(dirty).lower(),
            "torch_version": torch.__version__, "mlflow_version": mlflow.__version__}
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc.exp_name"] = os.environ["DVC_EXP_NAME"]
        changed = provenance.changed_params()
        tags["dvc.changed_params"] = ", ".join(f"{k}={v}" for k, v in changed.items()) or "(none)"
    return tags


@contextmanager
def store_lock() -> Iterator[None]:
    """Serialise run/experiment creation between parallel workers (e.g. `dvc queue start -j 2`)
    on a local SQLite store, so that none of them meets "database is locked"."""
    store = _sqlite_store()
    if store is None:
        yield
        return
    import fcntl

    lock_path = store.with_suffix(".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sqlite_store() -> Path | None:
    """The SQLite database file of the tracking store (absolute), or None for other stores."""
    uri = tracking_uri()
    return Path(uri.removeprefix("sqlite:///")).resolve() if uri.startswith("sqlite:///") else None


def _client() -> Any:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    return mlflow.MlflowClient()


def experiment_id(name: str) -> str:
    """Get or create the experiment, with artifacts beside the store (not in a temp copy)."""
    from mlflow.exceptions import MlflowException

    client = _client()
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    store = _sqlite_store()
    location = (store.parent / "mlartifacts").as_uri() if store else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # created meanwhile by a parallel worker
        return client.get_experiment_by_name(name).experiment_id


def find_or_create_run(exp_id: str, tags: Mapping[str, str], run_name: str, match: tuple[str, ...],
                       params: Mapping[str, Any] | None = None) -> str:
    """The finished run whose tags named in ``match`` equal ``tags``; created (with params) if none.

    Call under store_lock() so that parallel workers never create the same run twice.
    """
    from mlflow.entities import Param

    client = _client()
    query = " and ".join(f"tags.`{key}` = '{tags[key]}'" for key in match)
    found = client.search_runs([exp_id], filter_string=query, max_results=1)
    if found:
        return found[0].info.run_id
    run = client.create_run(exp_id, run_name=run_name, tags=dict(tags))
    if params:
        client.log_batch(run.info.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def parent_run(exp_id: str, group: str, run_name: str, tags: Mapping[str, str]) -> str:
    """The group's parent run, created (and marked finished) on first use."""
    return find_or_create_run(exp_id, {**tags, GROUP: group, ROLE: "parent"}, run_name, (GROUP, ROLE))


def adopt_launcher(group: str, parent: str) -> None:
    """Under `mlflow run`, file the launcher's own run inside this pipeline's group.

    `mlflow run` creates a run and announces it in MLFLOW_RUN_ID. Our model runs are never logged
    into it; it is tagged as this group's launcher and nested under the group's parent, so the
    UI shows one pipeline execution, not a stray extra run.
    """
    launcher = os.environ.get("MLFLOW_RUN_ID")
    if not launcher or launcher == parent:
        return
    client = _client()
    client.set_tag(launcher, GROUP, group)
    client.set_tag(launcher, ROLE, "launcher")
    client.set_tag(launcher, "mlflow.parentRunId", parent)


class Tracker(Protocol):
    """What the train stage reports to; MLflow or nothing."""

    run_id: str | None

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Record one epoch's metrics at step=epoch."""

    def flush(self) -> None:
        """Make sure everything recorded so far is stored."""


class NullTracker:
    """Tracking off: every call does nothing."""

    run_id: str | None = None

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Do nothing."""

    def flush(self) -> None:
        """Do nothing."""


class MlflowTracker:
    """One MLflow run. Every epoch is recorded with step=epoch; records are sent asynchronously in
    one batch at most every ``send_every`` seconds (the UI stays live, the loop never waits)."""

    def __init__(self, run_id: str, send_every: float = 2.0) -> None:
        self.run_id = run_id
        self.send_every = send_every
        self._client = _client()
        self._buffer: list[Any] = []
        self._pending: list[Any] = []
        self._last_send = time.monotonic()

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Record one epoch's metrics; send the buffer when it is due."""
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        self._buffer.extend(Metric(key, float(value), stamp, epoch) for key, value in metrics.items())
        if time.monotonic() - self._last_send >= self.send_every:
            self._send()

    def _send(self) -> None:
        for start in range(0, len(self._buffer), 1000):  # the tracking API takes 1000 metrics a call
            chunk = self._buffer[start:start + 1000]
            self._pending.append(self._client.log_batch(self.run_id, metrics=chunk, synchronous=False))
        self._buffer = []
        self._last_send = time.monotonic()

    def flush(self) -> None:
        """Send what is buffered and wait until everything is stored."""
        if self._buffer:
            self._send()
        for operation in self._pending:
            operation.wait()
        self._pending.clear()


@contextmanager
def model_run(experiment: str, run_name: str, group: str, params: Mapping[str, Any],
              tags: Mapping[str, str]) -> Iterator[MlflowTracker]:
    """An MLflow run nested under the group's parent; FAILED if the block raises."""
    import mlflow

    base = environment_tags()
    with store_lock():
        exp_id = experiment_id(experiment)
        parent = parent_run(exp_id, group, f"pipeline-{group[:8]}", base)
        adopt_launcher(group, parent)
        created = _client().create_run(exp_id, run_name=run_name,
                                       tags={**base, **tags, GROUP: group, "mlflow.parentRunId": parent})
    # Explicit run_id: never resume the run that `mlflow run` announces in MLFLOW_RUN_ID.
    run = mlflow.start_run(run_id=created.info.run_id)
    tracker = MlflowTracker(run.info.run_id)
    status = "FAILED"
    try:
        mlflow.log_params({k: str(v) for k, v in params.items()})
        yield tracker
        status = "FINISHED"
    finally:
        try:
            tracker.flush()
        finally:
            mlflow.end_run(status=status)


def run_info(run_id: str) -> dict[str, Any]:
    """What other stages need to find a run again."""
    client = _client()
    run = client.get_run(run_id)
    return {"run_id": run_id, "experiment_id": run.info.experiment_id, "tracking_uri": tracking_uri(),
            "parent_run_id": run.data.tags.get("mlflow.parentRunId"), "group": run.data.tags.get(GROUP),
            "run_name": run.info.run_name}


def log_summary(metrics: Mapping[str, float]) -> None:
    """Log step-less summary metrics to the active run in one call."""
    import mlflow

    mlflow.log_metrics({k: float(v) for k, v in metrics.items()})


def log_evaluation(run_id: str, metrics: Mapping[str, float], artifacts: tuple[Path, ...] = (),
                   artifact_path: str = "evaluation") -> None:
    """Add evaluation metrics (batched) and artifact files or folders to an existing run."""
    from mlflow.entities import Metric

    client = _client()
    stamp = int(time.time() * 1000)
    batch = [Metric(k, float(v), stamp, 0) for k, v in metrics.items()]
    for start in range(0, len(batch), 1000):
        client.log_batch(run_id, metrics=batch[start:start + 1000])
    for path in artifacts:
        if path.is_dir():
            client.log_artifacts(run_id, str(path), artifact_path)
        else:
            client.log_artifact(run_id, str(path), artifact_path)


def reference_run(experiment: str, group: str, parent_run_id: str, name: str, params: Mapping[str, Any],
                  tags: Mapping[str, str]) -> str:
    """The group's run for a reference model: reused if present, else created under the parent."""
    all_tags = {**environment_tags(), **tags, GROUP: group, ROLE: "reference", MODEL: name,
                "mlflow.parentRunId": parent_run_id}
    with store_lock():
        return find_or_create_run(experiment_id(experiment), all_tags, name, (GROUP, MODEL, ROLE), params)


def search(experiment: str, filter_string: str, order_by: list[str] | None = None,
           max_results: int = 10_000) -> list[Any]:
    """Runs of an experiment matching a filter (empty when the experiment does not exist)."""
    client = _client()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return client.search_runs([found.experiment_id], filter_string=filter_string, order_by=order_by,
                              max_results=max_results)


def metric_history(run_id: str, key: str) -> list[float]:
    """Every logged value of one metric, in step order."""
    history = _client().get_metric_history(run_id, key)
    return [m.value for m in sorted(history, key=lambda m: m.step)]
