"""Reference models from scikit-learn, configured for a rare class and tuned on the validation split.

Both weigh the classes inversely to their frequency (``class_weight="balanced"``). Gradient boosting
stops early on the project's own validation split (not an internal random one) and uses 63 bins
(as accurate here as 255, three times faster). Each grid point is fitted on the training split and
scored by validation average precision; the best one is kept. Test data never takes part.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score

from pipeline.project.config import ReferenceParams


def _logistic_regression(seed: int, C: float) -> LogisticRegression:  # noqa: N803 (sklearn's name)
    return LogisticRegression(C=C, class_weight="balanced", max_iter=2000, random_state=seed)


def _gradient_boosting(seed: int, learning_rate: float, max_leaf_nodes: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes, max_bins=63,
                                          class_weight="balanced", early_stopping=True, scoring="loss",
                                          n_iter_no_change=10, max_iter=500, random_state=seed)


BUILDERS = {"logistic_regression": _logistic_regression, "hist_gradient_boosting": _gradient_boosting}


@dataclass(frozen=True)
class Tuned:
    """A reference model fitted at its best grid point, and the whole grid's validation AP."""

    name: str
    model: Any
    chosen: dict[str, Any]
    grid: list[dict[str, Any]]  # each point's settings and val_ap


def fit_at(name: str, point: dict[str, Any], train: tuple[np.ndarray, np.ndarray],
           val: tuple[np.ndarray, np.ndarray], seed: int) -> Any:
    """One reference model at one grid point, fitted on train (gradient boosting stops early on val)."""
    model = BUILDERS[name](seed, **point)
    if name == "hist_gradient_boosting":
        model.fit(*train, X_val=val[0], y_val=val[1])
    else:
        model.fit(*train)
    return model


def fit_reference(name: str, params: ReferenceParams, train: tuple[np.ndarray, np.ndarray],
                  val: tuple[np.ndarray, np.ndarray], seed: int) -> Tuned:
    """Fit every grid point on train, keep the best on validation AP."""
    space = getattr(params, name).model_dump()
    points = [dict(zip(space, values)) for values in itertools.product(*space.values())]
    best, grid = None, []
    for point in points:
        model = fit_at(name, point, train, val, seed)
        val_ap = float(average_precision_score(val[1], model.predict_proba(val[0])[:, 1]))
        grid.append({**point, "val_ap": val_ap})
        if best is None or val_ap > best[1]:
            best = (model, val_ap, point)
    assert best is not None
    return Tuned(name, best[0], best[2], grid)


def describe(tuned: Tuned) -> dict[str, str]:
    """The estimator, its chosen grid point and its set parameters (for MLflow params)."""
    settings = {k: str(v) for k, v in tuned.model.get_params().items() if v is not None}
    extra = {"iterations": str(tuned.model.n_iter_)} if hasattr(tuned.model, "n_iter_") else {}
    return {"estimator": type(tuned.model).__name__, **settings, **extra,
            **{f"chosen.{k}": str(v) for k, v in tuned.chosen.items()}}
