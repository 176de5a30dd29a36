"""The model registry: the execution's best model becomes the registered model's `champion`."""

from __future__ import annotations

import warnings

from pipeline.tracking import store


def register_champion(name: str, model_uri: str, tags: dict[str, str]) -> str:
    """Register the model under ``name`` with the alias `champion` (a new version only when the
    champion is another model); return the version."""
    import mlflow

    client = store.client()
    try:
        current = client.get_model_version_by_alias(name, "champion")
    except mlflow.exceptions.MlflowException:  # no such model or alias yet
        current = None
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
