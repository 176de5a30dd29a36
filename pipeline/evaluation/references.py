"""Reference models from scikit-learn, configured for a rare class and tuned on the validation split.

Both weigh the classes inversely to their frequency (``class_weight="balanced"``). Gradient boosting
stops early on the project's own validation split (not an internal random one) and uses 63 bins
(as accurate here as 255, three times faster). Each grid point is fitted on the training split and
scored by validation average precision; the best one is kept. Test data never takes part.

They see what the network sees: the encoded numeric inputs and the category indices (data.encoder).
The logistic regression one-hot encodes each categorical column (an index unseen in its training rows
gets no column); gradient boosting splits them natively (``categorical_features``), except a column with
more indices than its 63 bins, which it reads as ordinal numbers (scikit-learn's limit). Missing values
(``prepare.nonfinite: impute``): the logistic regression reads the imputed values and the "was missing"
inputs, as the network does; gradient boosting reads NaN where a value was imputed, and learns where
missing values go at each split itself (``reference_inputs``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder

from pipeline.data.prepared import Split
from pipeline.project.params import ReferenceParams

BINS = 63
Categories = dict[int, int]  # input column -> how many category indices it holds (data.encoder)


def _logistic_regression(seed: int, categories: Categories, **point: float) -> Any:
    """``point``: the grid point, by scikit-learn's names (``C``, the inverse regularisation strength)."""
    model = LogisticRegression(**point, class_weight="balanced", max_iter=2000, random_state=seed)
    if not categories:
        return model
    one_hot = ColumnTransformer(
        [("categories", OneHotEncoder(handle_unknown="ignore"), list(categories))], remainder="passthrough"
    )
    return make_pipeline(one_hot, model)


def _gradient_boosting(
    seed: int, categories: Categories, learning_rate: float, max_leaf_nodes: int
) -> HistGradientBoostingClassifier:
    native = [column for column, size in categories.items() if size <= BINS]
    return HistGradientBoostingClassifier(
        learning_rate=learning_rate,
        max_leaf_nodes=max_leaf_nodes,
        max_bins=BINS,
        categorical_features=native or None,
        class_weight="balanced",
        early_stopping=True,
        scoring="loss",
        n_iter_no_change=10,
        max_iter=500,
        random_state=seed,
    )


BUILDERS = {"logistic_regression": _logistic_regression, "hist_gradient_boosting": _gradient_boosting}
NATIVE_MISSING = ("hist_gradient_boosting",)  # the references that take missing values as NaN


def reference_inputs(name: str, part: Split) -> np.ndarray:
    """What a reference model reads of a part: the network's input, with NaN in the imputed cells for a model
    that takes missing values natively."""
    if name in NATIVE_MISSING and part.imputed is not None:
        return np.where(part.imputed, np.float32(np.nan), part.x)
    return part.x


@dataclass(frozen=True)
class Tuned:
    """A reference model fitted at its best grid point, and the whole grid's validation AP."""

    name: str
    model: Any
    chosen: dict[str, Any]
    grid: list[dict[str, Any]]  # each point's settings and val_ap


def fit_at(
    name: str,
    point: dict[str, Any],
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    seed: int,
    categories: Categories | None = None,
) -> Any:
    """One reference model at one grid point, fitted on train (gradient boosting stops early on val)."""
    model = BUILDERS[name](seed, categories or {}, **point)
    if name == "hist_gradient_boosting":
        model.fit(*train, X_val=val[0], y_val=val[1])
    else:
        model.fit(*train)
    return model


def fit_reference(
    name: str,
    params: ReferenceParams,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    seed: int,
    categories: Categories | None = None,
) -> Tuned:
    """Fit every grid point on train, keep the best on validation AP."""
    space = getattr(params, name).model_dump()
    points = [dict(zip(space, values)) for values in itertools.product(*space.values())]
    best, grid = None, []
    for point in points:
        model = fit_at(name, point, train, val, seed, categories)
        val_ap = float(average_precision_score(val[1], model.predict_proba(val[0])[:, 1]))
        grid.append({**point, "val_ap": val_ap})
        if best is None or val_ap > best[1]:
            best = (model, val_ap, point)
    assert best is not None
    return Tuned(name, best[0], best[2], grid)


def estimator_params(tuned: Tuned) -> dict[str, str]:
    """The estimator, its chosen grid point and its set parameters (for MLflow params)."""
    model = tuned.model[-1] if isinstance(tuned.model, Pipeline) else tuned.model  # after the one-hot encoding
    settings = {k: str(v) for k, v in model.get_params().items() if v is not None}
    extra = {"iterations": str(model.n_iter_)} if hasattr(model, "n_iter_") else {}
    return {
        "estimator": type(model).__name__,
        **settings,
        **extra,
        **{f"chosen.{k}": str(v) for k, v in tuned.chosen.items()},
    }
