"""The model registry: the execution's best model becomes the registered model's `champion`."""

from __future__ import annotations

import os
import warnings

from pipeline.runtime.errors import StageError
from pipeline.tracking import store


class NotAllowed(StageError):
    """The signed-in user may not register versions or move the alias (a member, not a maintainer)."""


def register_champion(name: str, model_uri: str, tags: dict[str, str]) -> str:
    """Register the model under ``name`` with the alias `champion` (a new version only when the
    champion is another model); return the version."""
    import mlflow

    client = store.client()
    try:
        current = client.get_model_version_by_alias(name, "champion")
    except mlflow.exceptions.MlflowException:  # no such model or alias yet
        current = None
    try:
        return _register(client, name, model_uri, tags, current)
    except mlflow.exceptions.MlflowException as exc:
        if exc.get_http_status_code() != 403:
            raise
        who = os.environ.get("MLFLOW_TRACKING_USERNAME", "this user")
        stays = f"version {current.version}" if current is not None else "unset"
        raise NotAllowed(f"{who} may not register versions of {name} or move its `champion` alias: only maintainers "
                         f"may (the server's admin: `python -m pipeline.server user add NAME --role maintainer`); "
                         f"the champion stays {stays}") from None


def _register(client: object, name: str, model_uri: str, tags: dict[str, str], current: object) -> str:
    import mlflow

    if current is not None and current.source == model_uri:
        version_number = current.version
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            version_number = mlflow.register_model(model_uri, name).version
        client.set_registered_model_alias(name, "champion", version_number)
    for key, value in tags.items():
        client.set_model_version_tag(name, version_number, key, value)
    return str(version_number)
