"""What MLflow keeps of a model: the servable pyfunc, the training data it saw, the registry entry."""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline import store

PACKAGE_DIR = Path(__file__).resolve().parent
# What a logged model needs to load elsewhere (its code travels inside it, see code_paths).
REQUIREMENTS = ("torch", "mlflow", "numpy", "pandas", "pyarrow", "scikit-learn", "pydantic", "pyyaml")


def _requirements() -> list[str]:
    return [f"{name}=={version(name).split('+')[0]}" for name in REQUIREMENTS]


@contextmanager
def _fraud_model(network: Path, scaler: Path, settings: dict[str, Any], example: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """The arguments that make the servable pyfunc: model code (models from code, no pickling), its
    files, a signature naming the raw columns, the raw example rows and pinned requirements."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    from mlflow.types.schema import AnyType

    from pipeline.serving import OUTPUT_COLUMNS

    # Inputs are named, of type `any`: MLflow's own check refuses int64 for a double column (a CSV's
    # whole-number `Time`); the model checks that every feature is numeric and says so in one line.
    signature = ModelSignature(inputs=Schema([ColSpec(AnyType(), c) for c in example.columns]),
                               outputs=Schema([ColSpec("double", OUTPUT_COLUMNS[0]), ColSpec("long", OUTPUT_COLUMNS[1])]))
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        settings_file = Path(tmp) / "settings.json"
        settings_file.write_text(json.dumps(settings, indent=2))
        yield {"python_model": str(PACKAGE_DIR / "pyfunc_entry.py"), "signature": signature,
               "input_example": example, "code_paths": [str(PACKAGE_DIR)], "pip_requirements": _requirements(),
               "artifacts": {"network": str(network), "scaler": str(scaler), "settings": str(settings_file)}}


def log_fraud_model(run_id: str, network: Path, scaler: Path, settings: dict[str, Any],
                    example: pd.DataFrame) -> str:
    """Log the servable model (raw rows in, probability and decision out) into a finished run,
    keeping the run's status and end time; return its model URI."""
    import mlflow

    client = store.client()
    before = client.get_run(run_id).info
    try:
        with _fraud_model(network, scaler, settings, example) as model, mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(name="model", **model)
    finally:  # the run stays what training left it, even when this is interrupted
        client.set_terminated(run_id, before.status, end_time=before.end_time)
    return info.model_uri


def save_fraud_model(path: Path, network: Path, scaler: Path, settings: dict[str, Any], example: pd.DataFrame) -> None:
    """The same servable model as a local folder, outside any tracking store."""
    import mlflow

    with _fraud_model(network, scaler, settings, example) as model:
        mlflow.pyfunc.save_model(str(path), **model)


def log_training_data(source: Path, features: list[str], label: str, digest: str) -> None:
    """Record the training split as the active run's dataset input: its file, content hash and
    schema (declared, not inferred from 100,000s of rows: that took seconds per model)."""
    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.types import ColSpec, Schema

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "can be interpreted in multiple ways": a local file either way
        schema = Schema([ColSpec("float", name) for name in features] + [ColSpec("integer", label)])
        dataset = MetaDataset(resolve_dataset_source(str(source.resolve())), name="train", digest=digest[:20],
                              schema=schema)
        mlflow.log_input(dataset, context="training")


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
