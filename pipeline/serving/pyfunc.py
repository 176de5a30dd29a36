"""The MLflow pyfunc around the fraud scorer (what a logged model's code builds)."""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import pandas as pd

from pipeline.runtime.errors import DataError
from pipeline.serving.scorer import FraudScorer, ScoringError


class FraudModel(mlflow.pyfunc.PythonModel):
    """`predict` takes raw rows (a DataFrame) and returns ``FraudScorer.score``."""

    def load_context(self, context: Any) -> None:
        """Rebuild the scorer from the model's artifacts."""
        self.scorer = FraudScorer.load(context.artifacts)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Score raw rows; rows it cannot score are an MLflow input error (HTTP 400 with our message)."""
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        try:
            return self.scorer.score(pd.DataFrame(model_input))
        except ScoringError as exc:
            raise MlflowException(str(exc), INVALID_PARAMETER_VALUE) from None


def fraud_scorer(model: Any, uri: str) -> FraudScorer:
    """The scorer inside a loaded pyfunc model; DataError when it is not a fraud model this pipeline logged."""
    scorer = getattr(model.unwrap_python_model(), "scorer", None)
    if not isinstance(scorer, FraudScorer):
        raise DataError(f"{uri} is not a fraud model logged by this pipeline")
    return scorer
