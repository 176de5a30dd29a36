"""Loading a logged fraud model by URI, for the commands that score with one (score, serve)."""

from __future__ import annotations

from pipeline.runtime.errors import DataError
from pipeline.tracking import store


def load_fraud_model(uri: str) -> object:
    """The pyfunc model at ``uri``, checked to be a fraud model this pipeline logged; a model that
    cannot be loaded, or another kind of model, raises DataError naming the fix."""
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    from pipeline.serving.scorer import FraudScorer

    store.client()  # points MLflow at this project's store
    try:
        model = mlflow.pyfunc.load_model(uri)
    except (MlflowException, OSError) as exc:
        raise DataError(f"cannot load model {uri} ({str(exc).splitlines()[0]}); check the URI, and "
                        f"MLFLOW_TRACKING_URI ({store.tracking_uri()})") from None
    if not isinstance(getattr(model.unwrap_python_model(), "scorer", None), FraudScorer):
        raise DataError(f"{uri} is not a fraud model logged by this pipeline")
    return model
