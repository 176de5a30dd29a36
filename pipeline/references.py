"""Reference models from scikit-learn: what a practitioner tries first on tabular fraud data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

REFERENCES: dict[str, Callable[[int], Any]] = {
    "logistic_regression": lambda seed: LogisticRegression(class_weight="balanced", max_iter=2000,
                                                           random_state=seed),
    "hist_gradient_boosting": lambda seed: HistGradientBoostingClassifier(random_state=seed),
}


def fit_reference(name: str, x: Any, y: Any, seed: int) -> Any:
    """Fit one reference model on the training split."""
    return REFERENCES[name](seed).fit(x, y)


def describe(model: Any) -> dict[str, str]:
    """The estimator's class and its explicitly set parameters (for MLflow params)."""
    params = {k: str(v) for k, v in model.get_params().items() if v is not None}
    return {"estimator": type(model).__name__, **params}
