"""The file MLflow runs to build the logged model (models from code, no pickling): it names
``serving.FraudModel`` as the model."""

from mlflow.models import set_model

from pipeline.serving import FraudModel

set_model(FraudModel())
