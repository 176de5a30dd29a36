"""Scoring raw transactions with a trained network: the scorer, its MLflow pyfunc and how it is logged.

Models logged before the code moved into sub-packages build themselves with
``from pipeline.serving import FraudModel``: that name stays here, so that every registered champion
keeps loading.
"""

from pipeline.serving.pyfunc import FraudModel

__all__ = ["FraudModel"]
