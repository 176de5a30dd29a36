"""The servable model of a trained network, one definition: a pyfunc from code, its files, signature and
requirements (``tracking.lifecycle`` logs it into a run; ``save_fraud_model`` writes it to a folder)."""

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

from pipeline.data.encoder import Encoder
from pipeline.data.values import TIME_ROLES, is_text
from pipeline.serving.scorer import OUTPUT_COLUMNS

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # pipeline/: the model's code travels inside it
ENTRY = Path(__file__).resolve().with_name("pyfunc_entry.py")
# What a logged model needs to load elsewhere (its code travels inside it, see code_paths).
REQUIREMENTS = ("torch", "mlflow", "numpy", "pandas", "pyarrow", "scikit-learn", "pydantic", "pyyaml")


def _requirements() -> list[str]:
    return [f"{name}=={version(name).split('+')[0]}" for name in REQUIREMENTS]


def signature(encoder: Encoder, example: pd.DataFrame) -> Any:
    """The model's signature: every raw feature column by name, text columns (categories, date-times
    as text) typed `string`, the others `any`; the outputs."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    from mlflow.types.schema import AnyType

    # Numbers are of type `any`: MLflow's own check refuses int64 for a double column (a CSV's whole-number
    # `Time`), and its `datetime` refuses text; the model reads each column by its role (the model's
    # metadata names them: numeric, boolean, categorical, datetime, age) and says in one line what does not fit.
    def kind(name: str) -> Any:
        return "string" if encoder.roles[name] in ("categorical", *TIME_ROLES) and is_text(example[name]) else AnyType()

    return ModelSignature(
        inputs=Schema([ColSpec(kind(c), c) for c in encoder.features]),
        outputs=Schema([ColSpec("double", OUTPUT_COLUMNS[0]), ColSpec("long", OUTPUT_COLUMNS[1])]),
    )


@contextmanager
def fraud_model(
    network: Path, encoder: Path, settings: dict[str, Any], example: pd.DataFrame
) -> Iterator[dict[str, Any]]:
    """The arguments that make the servable pyfunc: model code (models from code, no pickling), its
    files, a signature naming the raw columns, the raw example rows and pinned requirements."""
    fitted = Encoder.load(encoder)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        settings_file = Path(tmp) / "settings.json"
        settings_file.write_text(json.dumps(settings, indent=2))
        yield {
            "python_model": str(ENTRY),
            "signature": signature(fitted, example),
            "input_example": example,
            "code_paths": [str(PACKAGE_DIR)],
            "pip_requirements": _requirements(),
            "metadata": {"roles": fitted.roles},
            "artifacts": {"network": str(network), "encoder": str(encoder), "settings": str(settings_file)},
        }


def save_fraud_model(path: Path, network: Path, encoder: Path, settings: dict[str, Any], example: pd.DataFrame) -> None:
    """The same servable model as a local folder, outside any tracking store."""
    import mlflow

    with fraud_model(network, encoder, settings, example) as model:
        mlflow.pyfunc.save_model(str(path), **model)
