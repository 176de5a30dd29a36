"""What a model run packages in MLflow: the logged model and the training data it saw."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any


def log_torch_model(model: Any, example: Any, extra_files: list[Path] | None = None) -> str:
    """Log the model (signature and input example included) to the active run; return its URI."""
    import mlflow
    import mlflow.pytorch
    import torch
    from mlflow.models import infer_signature

    with torch.inference_mode():
        output = model(torch.as_tensor(example)).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = mlflow.pytorch.log_model(model, name="model", signature=infer_signature(example, output),
                                        input_example=example, pip_requirements=[f"torch=={torch.__version__}"])
    for path in extra_files or []:
        mlflow.log_artifact(str(path))
    return info.model_uri


def log_training_data(frame: Any, source: Path, label: str, digest: str) -> None:
    """Record the training split as the run's dataset input."""
    import mlflow
    import mlflow.data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ambiguous local-source and integer-label schema hints
        dataset = mlflow.data.from_pandas(frame, source=str(source.resolve()), targets=label, name="train",
                                          digest=digest[:20])
        mlflow.log_input(dataset, context="training")
