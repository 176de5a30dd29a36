"""How raw values become what the encoder works with: numbers (float64, NaN when missing), instants
(seconds since 1970-01-01 UTC) and category keys (canonical text), column by column. Shared by prepare
(role inference and training rows) and serving (the rows a user sends), so both read a value alike.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.runtime.errors import DataError

FEATURE_ROLES = ("numeric", "boolean", "categorical", "datetime", "age")  # the roles the network reads
NUMBER_ROLES = ("numeric", "boolean")  # one number each
TIME_ROLES = ("datetime", "age")  # read as instants (an age: a date of birth, measured at the time column)
DATE_LIKE = re.compile(r"^\s*\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}")  # 2019-01-31, 31/01/2019, 31.01.2019 ...
EPOCH = pd.Timestamp("1970-01-01", tz="UTC")


@dataclass(frozen=True)
class Keys:
    """A column's values as category keys: ``codes`` index ``names`` (-1: missing)."""

    codes: np.ndarray  # int64, one per row
    names: list[str]  # distinct keys, sorted

    def take(self, rows: Any) -> Keys:
        """These rows only (indices or a boolean mask)."""
        return Keys(self.codes[rows], self.names)


def _key(value: Any) -> str:
    """One value's key: whole numbers without a decimal point (3, 3.0 and '3' are one category), booleans
    as True/False, anything else as its text."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def category_keys(values: pd.Series) -> Keys:
    """Every value of a column as its key (missing values: code -1)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    names, merged = np.unique(np.array([_key(u) for u in uniques], dtype=object), return_inverse=True)
    if merged.size:
        codes = np.where(codes < 0, -1, merged.reshape(-1)[np.maximum(codes, 0)])
    return Keys(codes.astype(np.int64), [str(n) for n in names])


def is_text(values: pd.Series) -> bool:
    """A column of text (or of Python objects, as a frame built in memory may hold), not numbers or times."""
    return (
        pd.api.types.is_string_dtype(values)
        or pd.api.types.is_object_dtype(values)
        or isinstance(values.dtype, pd.CategoricalDtype)
    )


def numbers(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A column as float64 (booleans 0/1, missing NaN) and which present values are not numbers."""
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype=np.float64, na_value=np.nan), np.zeros(len(values), dtype=bool)
    if pd.api.types.is_datetime64_any_dtype(values):
        return np.full(len(values), np.nan), values.notna().to_numpy()
    parsed = pd.to_numeric(values.astype(object), errors="coerce")
    out = np.asarray(parsed, dtype=np.float64)
    return out, np.isnan(out) & values.notna().to_numpy()


def date_format(values: pd.Series) -> str:
    """The text format of a date-time column, guessed from its first value: month first (pandas' default),
    unless only day first reads every value (31/01/2019); ``mixed`` when no format fits the first value
    (each value parsed on its own), ``datetime`` for a datetime column, ``unix`` for numbers (seconds)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return "datetime"
    if pd.api.types.is_numeric_dtype(values):
        return "unix"
    from pandas.tseries.api import guess_datetime_format

    present = pd.Series(values.dropna().unique(), dtype=object)
    first = str(present.iloc[0]) if len(present) else ""
    with warnings.catch_warnings():  # "Parsing dates in %Y-%m-%d format when dayfirst=True": our probe, not the data
        warnings.simplefilter("ignore", UserWarning)
        guesses = (guess_datetime_format(first), guess_datetime_format(first, True))
    candidates = list(dict.fromkeys(f for f in guesses if f is not None)) or ["mixed"]
    for fmt in candidates:
        if not instants(present, fmt)[1].any():
            return fmt
    return candidates[0]


def instants(values: pd.Series, fmt: str) -> tuple[np.ndarray, np.ndarray]:
    """A date-time column as seconds since 1970-01-01 UTC (float64, NaN when missing; text in ``fmt``,
    numbers as Unix seconds, times without a zone taken as UTC) and which present values did not parse."""
    present = values.notna().to_numpy()
    if fmt == "unix" or (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)):
        seconds, bad = numbers(values)
        return seconds, bad
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = pd.to_datetime(values, utc=True)
    else:
        text = values.astype(object).where(values.notna(), None)
        stamps = pd.to_datetime(text, format=None if fmt == "datetime" else fmt, errors="coerce", utc=True)
    seconds = ((stamps - EPOCH) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64, na_value=np.nan)
    return seconds, np.isnan(seconds) & present


def date_like_share(values: pd.Series) -> float:
    """The share of a text column's distinct present values that look like dates (digits with - / .)."""
    distinct = pd.Series(values.dropna().unique()).astype(str)
    return float(distinct.str.match(DATE_LIKE).mean()) if len(distinct) else 0.0


def examples(values: pd.Series, bad: np.ndarray, k: int = 2) -> str:
    """A few of the offending values, quoted, for an error message."""
    shown = pd.Series(values[bad]).astype(str).unique()[:k]
    return ", ".join(repr(v) for v in shown)


@dataclass(frozen=True)
class Decoded:
    """A frame's feature columns read once: numbers (numeric and boolean columns, and date-time and age
    columns as seconds since 1970) and category keys (categorical columns)."""

    numbers: dict[str, np.ndarray]
    keys: dict[str, Keys]
    rows: int

    def take(self, rows: np.ndarray) -> Decoded:
        """These rows only (indices or a boolean mask)."""
        count = int(np.count_nonzero(rows)) if rows.dtype == bool else len(rows)
        return Decoded(
            {name: values[rows] for name, values in self.numbers.items()},
            {name: keys.take(rows) for name, keys in self.keys.items()},
            count,
        )

    def nonfinite(self) -> tuple[np.ndarray, list[str]]:
        """Rows with a missing or infinite number or date-time, and the columns that hold them."""
        bad, where = np.zeros(self.rows, dtype=bool), []
        for name, values in self.numbers.items():
            column_bad = ~np.isfinite(values)
            if column_bad.any():
                bad |= column_bad
                where.append(name)
        return bad, where


def decode(frame: pd.DataFrame, roles: dict[str, str], formats: dict[str, str]) -> Decoded:
    """Read every feature column of ``frame`` by its role (``formats``: each date-time column's text
    format). Values that do not fit their role raise one DataError naming the columns and examples."""
    numbers_out: dict[str, np.ndarray] = {}
    keys: dict[str, Keys] = {}
    not_numbers, not_dates = [], []
    for name, role in roles.items():
        if role in NUMBER_ROLES:
            numbers_out[name], bad = numbers(frame[name])
            if bad.any():
                not_numbers.append(f"{name} (e.g. {examples(frame[name], bad)})")
        elif role in TIME_ROLES:
            numbers_out[name], bad = instants(frame[name], formats[name])
            if bad.any():
                not_dates.append(
                    f"{name} ({int(bad.sum()):,} values such as {examples(frame[name], bad)}, format {formats[name]})"
                )
        elif role == "categorical":
            keys[name] = category_keys(frame[name])
    if not_numbers:
        raise DataError(
            f"non-numeric values in feature columns {', '.join(not_numbers)}; these columns hold "
            "numbers: fix those values"
        )
    if not_dates:
        raise DataError(f"date-time columns that do not parse: {', '.join(not_dates)}; fix those values")
    return Decoded(numbers_out, keys, len(frame))
