"""Validation of the source's rows: the label, every column's role (data.roles), and the non-finite policy."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.data.roles import Columns, infer_roles
from pipeline.data.values import NUMBER_ROLES, Decoded, decode
from pipeline.project.params import PrepareParams
from pipeline.runtime.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cleaned:
    """The validated rows: the kept columns (features and ids; numbers as float64, other columns as they
    came), the labels, every column's role, and the features read once (``decoded``)."""

    table: pd.DataFrame
    labels: np.ndarray
    columns: Columns
    decoded: Decoded
    dropped_nonfinite: int


def clean(frame: pd.DataFrame, params: PrepareParams) -> Cleaned:
    """Check the label, give every column its role, and apply the non-finite policy."""
    label = params.label
    columns = list(map(str, frame.columns))
    if label not in columns:
        raise DataError(
            f"label column '{label}' not found (columns: {', '.join(columns[:12])}"
            f"{', ...' if len(columns) > 12 else ''}); set prepare.label to the label column"
        )
    for key, names in (
        ("prepare.drop_columns", params.drop_columns),
        ("prepare.log1p", params.log1p),
        ("prepare.columns", list(params.columns)),
    ):
        missing = [c for c in names if c not in columns]
        if missing:
            raise DataError(f"{key} names columns not in the data: {', '.join(missing)}; fix {key}")
    if label in params.columns:
        raise DataError(f"prepare.columns names the label column '{label}'; remove it from prepare.columns")
    raw_labels = frame[label]
    if not (pd.api.types.is_numeric_dtype(raw_labels) or pd.api.types.is_bool_dtype(raw_labels)):
        examples = ", ".join(repr(v) for v in raw_labels.dropna().unique()[:3])
        raise DataError(f"label column '{label}' must hold 0/1 values, found text such as {examples}")
    train_rows = round(len(frame) * params.split.fractions[0])
    roles = infer_roles(
        frame.drop(columns=[label]), params.columns, params.drop_columns, train_rows, params.min_category_count
    )
    features = roles.features
    if not features:
        raise DataError(
            "no feature columns left after removing the label, the id, constant and dropped columns; "
            "declare some in prepare.columns"
        )
    not_numbers = [c for c in params.log1p if features.get(c) not in NUMBER_ROLES]
    if not_numbers:
        raise DataError(
            f"prepare.log1p names columns that are not numeric features: {', '.join(not_numbers)} "
            f"({', '.join(roles.roles[c] for c in not_numbers)}); remove them from prepare.log1p"
        )
    kept = frame[roles.kept]
    decoded = decode(kept, features, roles.formats)
    label_values = raw_labels.to_numpy(dtype=np.float64, na_value=np.nan)
    bad, where = decoded.nonfinite()
    bad |= ~np.isfinite(label_values)
    n_bad = int(bad.sum())
    if n_bad and params.nonfinite == "error":
        if not np.isfinite(label_values).all():
            where.append(label)
        raise DataError(
            f"{n_bad} rows hold NaN or infinite values (columns: {', '.join(where)}); "
            "clean the data or set prepare.nonfinite: drop"
        )
    if n_bad:
        log.warning("dropped %d rows with NaN or infinite values (prepare.nonfinite: drop)", n_bad)
        kept, label_values, decoded = kept.loc[~bad], label_values[~bad], decoded.take(~bad)
    _check_labels(label, label_values)
    negative = [c for c in params.log1p if (decoded.numbers[c] < 0).any()]
    if negative:
        raise DataError(
            f"prepare.log1p columns hold negative values: {', '.join(negative)}; remove them from prepare.log1p"
        )
    table = pd.DataFrame(
        {
            name: pd.Series(decoded.numbers[name])
            if features.get(name) in NUMBER_ROLES
            else kept[name].reset_index(drop=True)
            for name in roles.kept
        }
    )
    return Cleaned(table, label_values.astype(np.int8), roles, decoded, n_bad)


def _check_labels(label: str, values: np.ndarray) -> None:
    """Binary 0/1 labels with both classes."""
    classes = np.unique(values)
    if not set(classes.tolist()) <= {0.0, 1.0}:
        shown = ", ".join(f"{v:g}" for v in classes[:5])
        raise DataError(
            f"label column '{label}' must be binary 0/1, found {classes.size} distinct values "
            f"({shown}{', ...' if classes.size > 5 else ''})"
        )
    if classes.size < 2:
        raise DataError(
            f"label column '{label}' holds a single class ({classes[0]:g}); fraud detection needs both 0 and 1 rows"
        )
