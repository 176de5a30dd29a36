"""Validation of the source's rows: the label, every column's role (data.roles) and the columns with a part to
play, and the non-finite policy. Every problem found is named, with its fix, in one DataError."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from pipeline.data.roles import Columns, infer_roles, special_columns
from pipeline.data.values import NUMBER_ROLES, Decoded, decode
from pipeline.project.params import PrepareParams
from pipeline.runtime.errors import Problems

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


@dataclass(frozen=True)
class Inspection:
    """One pass over the source's rows: every problem found (each naming its fix) and what could be read."""

    problems: Problems
    rest: pd.DataFrame  # the rows without the label column
    labels: np.ndarray | None  # float64 (NaN: empty); None when the label column is missing or text
    columns: Columns | None  # None when a column could not be read
    decoded: Decoded | None
    bad: np.ndarray  # the rows the drop policy drops (nothing under impute and error)

    def kept_labels(self) -> np.ndarray | None:
        """The labels of the rows kept (the drop policy's rows and empty labels left out), if readable."""
        return None if self.labels is None else self.labels[~(self.bad | ~np.isfinite(self.labels))]

    def cleaned(self) -> Cleaned:
        """The validated rows (raises every problem found, if any)."""
        self.problems.raise_any()
        assert self.columns is not None and self.decoded is not None and self.labels is not None  # else raised
        columns, labels, decoded = self.columns, self.labels, self.decoded
        kept = self.rest[columns.kept]
        bad = self.bad | ~np.isfinite(labels)  # empty labels are left only under the drop policy
        n_bad = int(bad.sum())
        if n_bad:
            log.warning("dropped %d rows with NaN or infinite values (prepare.nonfinite: drop)", n_bad)
            kept, labels, decoded = kept.loc[~bad], labels[~bad], decoded.take(~bad)
        features = columns.features
        table = pd.DataFrame(
            {
                name: pd.Series(decoded.numbers[name])
                if features.get(name) in NUMBER_ROLES
                else kept[name].reset_index(drop=True)
                for name in columns.kept
            }
        )
        return Cleaned(table, labels.astype(np.int8), columns, decoded, n_bad)


def clean(frame: pd.DataFrame, params: PrepareParams) -> Cleaned:
    """The validated rows: every problem ``inspect_rows`` finds raised in one DataError."""
    return inspect_rows(frame, params).cleaned()


def inspect_rows(frame: pd.DataFrame, params: PrepareParams) -> Inspection:
    """Check the label and the params that name columns, give every column its role, find the amount and time
    columns, and apply the non-finite policy; every problem is kept, none raised."""
    problems = Problems()
    label = params.label
    names = list(map(str, frame.columns))
    if label not in names:
        problems.add(
            f"label column '{label}' not found (columns: {', '.join(names[:12])}"
            f"{', ...' if len(names) > 12 else ''}); set prepare.label to the label column"
        )
    follows = [params.amount] if params.amount not in names else []  # log1p's amount entry follows the amount found
    for key, listed in (
        ("prepare.drop_columns", params.drop_columns),
        ("prepare.log1p", [c for c in params.log1p if c not in follows]),
        ("prepare.columns", list(params.columns)),
    ):
        missing = [c for c in listed if c not in names]
        if missing:
            problems.add(f"{key} names columns not in the data: {', '.join(missing)}; fix {key}")
    if label in params.columns:
        problems.add(f"prepare.columns names the label column '{label}'; remove it from prepare.columns")
    labels = _labels(frame, label, problems)
    train_rows = round(len(frame) * params.split.fractions[0])
    rest = frame.drop(columns=[label], errors="ignore")
    columns = problems.collect(
        partial(infer_roles, rest, params.columns, params.drop_columns, train_rows, params.min_category_count)
    )
    if columns is not None:
        columns = problems.collect(partial(special_columns, rest, columns, params))
    decoded = _features(rest, columns, problems) if columns is not None else None
    bad = np.zeros(len(frame), dtype=bool)
    if decoded is not None and labels is not None:
        bad, where = decoded.nonfinite()
        if params.nonfinite == "error" and (bad.any() or not np.isfinite(labels).all()):
            where += [label] if not np.isfinite(labels).all() else []
            problems.add(
                f"{int((bad | ~np.isfinite(labels)).sum())} rows hold NaN or infinite values (columns: "
                f"{', '.join(where)}); clean the data or set prepare.nonfinite: impute (the training medians, with "
                "a was-missing input) or drop"
            )
        bad = bad if params.nonfinite == "drop" else np.zeros_like(bad)
    if labels is not None:
        empty = ~np.isfinite(labels)
        if params.nonfinite == "impute" and empty.any():
            problems.add(
                f"label column '{label}' has {int(empty.sum()):,} empty cells and a label cannot be imputed; "
                "fill them, or set prepare.nonfinite: drop to drop those rows"
            )
        _check_labels(label, labels[~(bad | empty)], problems)
    return Inspection(problems, rest, labels, columns, decoded, bad)


def _labels(frame: pd.DataFrame, label: str, problems: Problems) -> np.ndarray | None:
    """The label column as float64 (NaN where empty), or None (a problem) when it is absent or text."""
    if label not in frame.columns:
        return None
    raw = frame[label]
    if not (pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw)):
        examples = ", ".join(repr(v) for v in raw.dropna().unique()[:3])
        problems.add(f"label column '{label}' must hold 0/1 values, found text such as {examples}")
        return None
    return raw.to_numpy(dtype=np.float64, na_value=np.nan)


def _features(frame: pd.DataFrame, columns: Columns, problems: Problems) -> Decoded | None:
    """The feature columns read by their roles, after the checks of what params say of them."""
    features = columns.features
    if not features:
        problems.add(
            "no feature columns left after removing the label, the id, constant, rare and dropped columns; "
            "declare some in prepare.columns"
        )
        return None
    not_numbers = [c for c in columns.log1p if c in columns.roles and features.get(c) not in NUMBER_ROLES]
    if not_numbers:
        problems.add(
            f"prepare.log1p names columns that are not numeric features: {', '.join(not_numbers)} "
            f"({', '.join(columns.roles[c] for c in not_numbers)}); remove them from prepare.log1p"
        )
    decoded = problems.collect(partial(decode, frame[columns.kept], features, columns.formats))
    if decoded is None:
        return None
    negative = [c for c in columns.log1p if c in decoded.numbers and (decoded.numbers[c] < 0).any()]
    if negative:
        problems.add(
            f"prepare.log1p columns hold negative values: {', '.join(negative)}; remove them from prepare.log1p"
        )
    return decoded


def _check_labels(label: str, values: np.ndarray, problems: Problems) -> None:
    """Binary 0/1 labels with both classes."""
    classes = np.unique(values)
    if not set(classes.tolist()) <= {0.0, 1.0}:
        shown = ", ".join(f"{v:g}" for v in classes[:5])
        problems.add(
            f"label column '{label}' must be binary 0/1, found {classes.size} distinct values "
            f"({shown}{', ...' if classes.size > 5 else ''})"
        )
    elif classes.size < 2:
        problems.add(
            f"label column '{label}' holds a single class ({classes[0]:g}); fraud detection needs both 0 and 1 rows"
            if classes.size
            else f"label column '{label}' holds no labels; fraud detection needs both 0 and 1 rows"
        )
