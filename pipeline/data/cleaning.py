"""Validation of the source's rows: the label, the feature columns, and the non-finite policy."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.runtime.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cleaned:
    """Validated features and labels."""

    features: pd.DataFrame
    labels: np.ndarray
    dropped_nonfinite: int


def clean(frame: pd.DataFrame, label: str, nonfinite: str, drop_columns: list[str],
          log1p: list[str]) -> Cleaned:
    """Check the label and feature columns and apply the non-finite policy."""
    columns = list(map(str, frame.columns))
    if label not in columns:
        raise DataError(f"label column '{label}' not found (columns: {', '.join(columns[:12])}"
                        f"{', ...' if len(columns) > 12 else ''}); set prepare.label to the label column")
    for key, names in (("prepare.drop_columns", drop_columns), ("prepare.log1p", log1p)):
        missing = [c for c in names if c not in columns]
        if missing:
            raise DataError(f"{key} names columns not in the data: {', '.join(missing)}; fix {key}")
    features = frame.drop(columns=[label, *drop_columns])
    if features.shape[1] == 0:
        raise DataError("no feature columns left after removing the label and prepare.drop_columns")
    non_numeric = [str(c) for c in features.columns
                   if not (pd.api.types.is_numeric_dtype(features[c]) and not pd.api.types.is_bool_dtype(features[c]))]
    if non_numeric:
        raise DataError(f"non-numeric feature columns: {', '.join(non_numeric)}; encode them as numbers "
                        "or list them in prepare.drop_columns")
    raw_labels = frame[label]
    if not (pd.api.types.is_numeric_dtype(raw_labels) or pd.api.types.is_bool_dtype(raw_labels)):
        examples = ", ".join(repr(v) for v in raw_labels.dropna().unique()[:3])
        raise DataError(f"label column '{label}' must hold 0/1 values, found text such as {examples}")
    label_values = raw_labels.to_numpy(dtype=np.float64)
    bad, where = ~np.isfinite(label_values), []
    for column in features.columns:  # one column at a time: no float64 copy of the whole table
        column_bad = ~np.isfinite(features[column].to_numpy(dtype=np.float64))
        if column_bad.any():
            bad |= column_bad
            where.append(str(column))
    n_bad = int(bad.sum())
    if n_bad and nonfinite == "error":
        if not np.isfinite(label_values).all():
            where.append(label)
        raise DataError(f"{n_bad} rows hold NaN or infinite values (columns: {', '.join(where)}); "
                        "clean the data or set prepare.nonfinite: drop")
    if n_bad:
        log.warning("dropped %d rows with NaN or infinite values (prepare.nonfinite: drop)", n_bad)
        features, label_values = features.loc[~bad], label_values[~bad]
    classes = np.unique(label_values)
    if not set(classes.tolist()) <= {0.0, 1.0}:
        shown = ", ".join(f"{v:g}" for v in classes[:5])
        raise DataError(f"label column '{label}' must be binary 0/1, found {classes.size} distinct values "
                        f"({shown}{', ...' if classes.size > 5 else ''})")
    if classes.size < 2:
        raise DataError(f"label column '{label}' holds a single class ({classes[0]:g}); "
                        "fraud detection needs both 0 and 1 rows")
    negative = [c for c in log1p if (features[c] < 0).any()]
    if negative:
        raise DataError(f"prepare.log1p columns hold negative values: {', '.join(negative)}; "
                        "remove them from prepare.log1p")
    return Cleaned(features.reset_index(drop=True).astype(np.float64),
                   label_values.astype(np.int8), n_bad)
