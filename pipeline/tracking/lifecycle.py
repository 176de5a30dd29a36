"""A trained model's life in MLflow, one home: logged as a servable model into its run, loaded back by URI
(to score or serve), the best one registered as the `champion`, and the runs of an execution marked FAILED
when its champion could not be crowned.

What the servable model packages (the pyfunc, its files, signature and requirements) is
``serving.packaging``'s (``fraud_model``, the arguments of ``log_model`` here); this module puts it into
MLflow and takes it out again, knowing nothing of what it holds.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from pipeline.runtime.errors import DataError, StageError
from pipeline.tracking import store

CHAMPION = "champion"  # the alias of the registered model's best version


class NotAllowed(StageError):
    """The signed-in user may not register versions or move the alias (a member, not a maintainer)."""


def log_model(run_id: str, model: dict[str, Any]) -> str:
    """Log a servable pyfunc model (``model``: the arguments of ``mlflow.pyfunc.log_model``) into a finished
    run, keeping the run's status and end time; return its model URI."""
    import mlflow

    client = store.client()
    before = client.get_run(run_id).info
    try:
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(name="model", **model)
    finally:  # the run stays what training left it, even when this is interrupted
        client.set_terminated(run_id, before.status, end_time=before.end_time)
    return info.model_uri


def load_model(uri: str) -> Any:
    """The pyfunc model at ``uri`` (any MLflow model URI: ``models:/bn-fraud@champion``, ``runs:/<run>/model``);
    a model that cannot be loaded raises DataError naming the fix."""
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    store.client()  # points MLflow at this project's store
    try:
        return mlflow.pyfunc.load_model(uri)
    except (MlflowException, OSError) as exc:
        raise DataError(
            f"cannot load model {uri} ({str(exc).splitlines()[0]}); check the URI, and "
            f"MLFLOW_TRACKING_URI ({store.tracking_uri()})"
        ) from None


def crown_champion(name: str, model_uri: str, tags: dict[str, str], pipeline_runs: list[str]) -> str:
    """Register the model under ``name`` with the alias `champion` (a new version only when the champion is
    another model); return the version. A user who may not move it fails the execution's pipeline runs
    (``pipeline_runs``, marked FAILED) before anything else is published, and the stage with one line."""
    import mlflow

    client = store.client()
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except mlflow.exceptions.MlflowException:  # no such model or alias yet
        current = None
    try:
        return _register(client, name, model_uri, tags, current)
    except mlflow.exceptions.MlflowException as exc:
        if exc.get_http_status_code() != 403:
            raise
        for run_id in pipeline_runs:
            client.set_terminated(run_id, "FAILED")
        who = os.environ.get("MLFLOW_TRACKING_USERNAME", "this user")
        stays = f"version {current.version}" if current is not None else "unset"
        raise NotAllowed(
            f"{who} may not register versions of {name} or move its `{CHAMPION}` alias: only "
            "maintainers may (the server's admin: `python -m pipeline.server user add NAME --role "
            f"maintainer`); the champion stays {stays}"
        ) from None


def _register(client: Any, name: str, model_uri: str, tags: dict[str, str], current: Any) -> str:
    import mlflow

    if current is not None and current.source == model_uri:
        version_number = current.version
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            version_number = mlflow.register_model(model_uri, name).version
        client.set_registered_model_alias(name, CHAMPION, version_number)
    for key, value in tags.items():
        client.set_model_version_tag(name, version_number, key, value)
    return str(version_number)
