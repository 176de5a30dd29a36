"""The MLflow store: where it is, how to reach it, its experiment, and links into its UI.

``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<repository root>/mlflow.db``, where the root is
``DVC_ROOT`` when DVC runs the stage (so that ``dvc exp run`` copies log into the same store), else
the enclosing git repository. Artifacts of a local store go to ``mlartifacts/`` beside it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.project import provenance
from pipeline.runtime.errors import StageError
from pipeline.tracking.keys import BATCH_LIMIT, NOTE

EXPERIMENT_NOTE = (
    "Candidate variants against a reference on imbalanced data (BatchNorm against the baseline unless params.yaml "
    "declares others). Every pipeline execution (one `pipeline.group`) holds one run per model (`batchnorm-s0`, "
    "...; each variant in its colour), one run per "
    "reference model (grey) and one run `pipeline-<group>` whose description gives the verdict and a "
    "link to the comparison, and whose artifacts hold the report."
)


# MLflow's HTTP client settings unless the user set them. With 5 retries and a backoff factor of 2
# the client waits 0, 4, 8, 16 and 32 s between attempts: a server outage of up to about a minute
# (a restart) is ridden out, and a dead server fails after about 1.5 minutes instead of 4.
ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
CHECK_SECONDS = 5  # the reachability check's own timeout, no retries
_checked: set[str] = set()
_held = threading.RLock()  # store_lock's holder in this process, so that it nests
_depth = 0


def use_project_defaults() -> None:
    """Set ENV_DEFAULTS for every variable the user did not set."""
    for key, value in ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)


def check_reachable(uri: str) -> None:
    """Fail at once, with the fix, when an HTTP tracking server does not answer (any HTTP answer,
    even an error status, means it is there); a local store's folder must be writable."""
    import urllib.error
    import urllib.request

    local = f"or unset MLFLOW_TRACKING_URI to use the local store sqlite:///{provenance.repo_root() / 'mlflow.db'}"
    if uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=CHECK_SECONDS).close()
        except urllib.error.HTTPError:
            pass
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise StageError(
                f"MLflow tracking server {uri} is unreachable ({reason}); start it (`make server` "
                f"for the team setup), fix MLFLOW_TRACKING_URI, {local}"
            ) from None
    elif uri.startswith("sqlite:///"):
        folder = Path(uri.removeprefix("sqlite:///")).resolve().parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise StageError(
                f"MLflow store {uri}: folder {folder} is missing or not writable; create it, "
                f"fix MLFLOW_TRACKING_URI, {local}"
            )


def tracking_uri() -> str:
    """Where runs go (see module docstring)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{provenance.repo_root() / 'mlflow.db'}"


@contextmanager
def store_lock(database: Path | None = None) -> Iterator[None]:
    """Serialise store creation and run/experiment creation between processes (e.g. `dvc queue start -j 2`,
    torchrun's ranks) on a local SQLite store (``database``, else this process's), so that none of them
    meets "database is locked". It nests: a holder may take it again."""
    global _depth
    store = database or _sqlite_store()
    if store is None:
        yield
        return
    import fcntl

    with _held:
        if _depth:
            _depth += 1
            try:
                yield
            finally:
                _depth -= 1
            return
        lock_path = store.with_suffix(".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            _depth = 1
            try:
                yield
            finally:
                _depth = 0
                fcntl.flock(handle, fcntl.LOCK_UN)


def sqlite_client(database: Path) -> Any:
    """A client of the local store ``database``, its tables created first under store_lock. MLflow creates
    a fresh store's tables on first use without a lock; two processes doing so at once (a queue's workers,
    torchrun's ranks, a watcher) break its migration: "expected to match one row ... 0 found"."""
    import mlflow

    uri = f"sqlite:///{database}"
    with store_lock(database):
        mlflow_client = mlflow.MlflowClient(uri)
        mlflow_client.search_experiments(max_results=1)  # creates the tables when there are none
    return mlflow_client


def _sqlite_store() -> Path | None:
    """The SQLite database file of the tracking store (absolute), or None for other stores."""
    uri = tracking_uri()
    return Path(uri.removeprefix("sqlite:///")).resolve() if uri.startswith("sqlite:///") else None


def client() -> Any:
    """An MLflow client of this store (the project's HTTP retry defaults set first), whose calls that may be
    repeated are repeated when the connection broke while the server answered (RepeatOnBrokenAnswer)."""
    import mlflow

    use_project_defaults()
    uri = tracking_uri()
    if uri not in _checked:
        check_reachable(uri)
        if (database := _sqlite_store()) is not None:
            sqlite_client(database)
        _checked.add(uri)
    mlflow.set_tracking_uri(uri)
    return RepeatOnBrokenAnswer(mlflow.MlflowClient())


# The client calls that give the same result when made twice (metrics logged twice are kept once; a tag,
# an end status or an artifact file set twice is set once), and so may be repeated.
REPEATABLE = frozenset(
    {
        "get_run",
        "get_experiment_by_name",
        "get_metric_history",
        "get_model_version_by_alias",
        "search_runs",
        "search_experiments",
        "log_batch",
        "log_artifact",
        "log_artifacts",
        "log_text",
        "set_tag",
        "set_experiment_tag",
        "set_terminated",
        "set_model_version_tag",
        "set_registered_model_alias",
    }
)
REPEAT_WAITS = (1.0, 4.0, 16.0)  # seconds before each repeat; each attempt has MLflow's own retries too


class RepeatOnBrokenAnswer:
    """An MLflow client whose REPEATABLE calls are made again when the connection broke mid-answer. MLflow's
    HTTP retries (ENV_DEFAULTS) cover a refused connection and error statuses, not a server that stops while
    sending its answer (a restart: "Connection broken: IncompleteRead"); a call that creates something is not
    repeated (it may have been created)."""

    def __init__(self, wrapped: Any) -> None:
        self._wrapped = wrapped

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._wrapped, name)
        if name not in REPEATABLE:
            return attribute

        def repeated(*args: Any, **kwargs: Any) -> Any:
            for wait in (*REPEAT_WAITS, None):
                try:
                    return attribute(*args, **kwargs)
                except Exception as error:
                    if wait is None or not broken_answer(error):
                        raise
                    time.sleep(wait)
            raise AssertionError("unreachable")

        return repeated


def broken_answer(error: BaseException) -> bool:
    """Whether a connection failure (refused, reset, or cut short mid-answer) lies in the error's chain (MLflow
    wraps the requests error it caught in its own exception)."""
    import requests

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def experiment_id(name: str) -> str:
    """Get or create the experiment (described, with artifacts beside a local store)."""
    from mlflow.exceptions import MlflowException

    found = client().get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    store = _sqlite_store()
    location = (store.parent / "mlartifacts").as_uri() if store else None
    try:
        return client().create_experiment(name, artifact_location=location, tags={NOTE: EXPERIMENT_NOTE})
    except MlflowException:  # created meanwhile by a parallel worker
        return client().get_experiment_by_name(name).experiment_id


def ui_base() -> str:
    """Where the MLflow UI of this store is: the server itself, or a local `mlflow ui`."""
    uri = tracking_uri()
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"


def log_metrics(run_id: str, metrics: list[Any], synchronous: bool = True) -> list[Any]:
    """Log MLflow ``Metric`` records in as few calls as the API allows (BATCH_LIMIT each); return the
    pending operations of asynchronous calls (to ``wait()`` on)."""
    mlflow_client = client()
    return [
        mlflow_client.log_batch(run_id, metrics=metrics[start : start + BATCH_LIMIT], synchronous=synchronous)
        for start in range(0, len(metrics), BATCH_LIMIT)
    ]
