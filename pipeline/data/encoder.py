"""The encoder: raw rows to the network's input, fitted on one split's training part only; shared by
prepare (one per split) and serving (inside every logged model). Its JSON file is the one format.

The network's input is one float32 matrix: first the **numeric inputs**, standardised by the encoder's
``Scaler`` (numeric and boolean columns, ``prepare.log1p`` columns log1p'd first; each date-time column as
five numbers: the hour of day and the day of week as (sin, cos) pairs, and days elapsed since the training
part's earliest instant, or three for a date-only column, which has no hour of day; a date of birth as the
age in years at the row's time; a 0/1 "was missing" input after each column the ``Imputer`` fills), then
one **category index** per categorical column (a whole number, exact in float32), which the network looks
up in that column's embedding:

- 0: other: a category seen fewer than ``prepare.min_category_count`` times in the training part, or
  first seen at validation, test or scoring time;
- 1: missing (a category of its own);
- 2, 3, ...: the training part's categories, most frequent first.

Missing or infinite numbers and date-times follow ``prepare.nonfinite``: with ``impute``, the encoder's
``Imputer`` (fitted on the training part only, like the scaler) puts the training part's median in their
place, at prepare and at scoring time alike. A table without categorical or date-time columns gives the
scaler's matrix alone, as before encoders existed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.data.values import NUMBER_ROLES, TIME_ROLES, Decoded, Keys, decode
from pipeline.runtime.errors import DataError

OTHER, MISSING, FIRST_LEVEL = 0, 1, 2  # category indices: rare or unseen, missing, then the levels
DATETIME_PARTS = ("hour_sin", "hour_cos", "weekday_sin", "weekday_cos", "days")
DATE_PARTS = DATETIME_PARTS[2:]  # a date-only column: no hour of day
DAY, WEEK = 86_400.0, 7 * 86_400.0
YEAR = 365.25 * DAY  # an age's unit
MONDAY = 4 * DAY  # 1970-01-01 was a Thursday: Monday 1970-01-05 starts the week
FORMAT = "bn-fraud encoder 1"


@dataclass(frozen=True)
class Scaler:
    """The numeric inputs' optional log1p, then standardisation, fitted on the training part only."""

    features: list[str]
    log1p: list[str]
    mean: list[float]
    scale: list[float]

    @classmethod
    def fit(
        cls, features: pd.DataFrame | Mapping[str, np.ndarray], log1p: list[str], rows: np.ndarray | None = None
    ) -> Scaler:
        """Fit on the training rows only (``rows`` of ``features``, a frame or named columns, default all):
        validation and test statistics never leak in. One column at a time, so memory stays near one column."""
        from sklearn.preprocessing import StandardScaler  # here: the scorer loads this module, never fits

        means, scales = [], []
        names = list(features.columns if isinstance(features, pd.DataFrame) else features)
        for column in names:
            values = _column(features, column, rows, log1p)
            fitted = StandardScaler().fit(values.reshape(-1, 1))
            means.append(float(fitted.mean_[0]))
            scales.append(float(fitted.scale_[0]))
        return cls(list(map(str, names)), list(log1p), means, scales)

    def transform(self, frame: pd.DataFrame, rows: np.ndarray | None = None) -> pd.DataFrame:
        """Scale new rows (``rows`` of ``frame``, default all) exactly as the training rows were
        scaled, one column at a time into one float32 table."""
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise DataError(f"rows to scale lack feature columns: {', '.join(missing)}")
        n = len(frame) if rows is None else len(rows)
        out = np.empty((n, len(self.features)), dtype=np.float32)
        for j, name in enumerate(self.features):
            out[:, j] = self._scaled(name, j, _column(frame, name, rows, []))
        return pd.DataFrame(out, columns=self.features, copy=False)

    def scaled(self, j: int, column: np.ndarray) -> np.ndarray:
        """Feature ``j``'s raw values (float64), log1p'd when listed, then standardised."""
        return self._scaled(self.features[j], j, np.asarray(column, dtype=np.float64))

    def _scaled(self, name: str, j: int, column: np.ndarray) -> np.ndarray:
        if name in self.log1p:
            column = np.log1p(column)
        return (column - self.mean[j]) / self.scale[j]

    def to_dict(self) -> dict[str, Any]:
        """Plain values (inside the encoder's file)."""
        return asdict(self)


def _column(
    frame: pd.DataFrame | Mapping[str, np.ndarray], name: str, rows: np.ndarray | None, log1p: list[str]
) -> np.ndarray:
    """One column as float64 (``rows`` of it, log1p'd when listed): at most one column's copy."""
    column = frame[name]
    values = column.to_numpy(dtype=np.float64) if isinstance(column, pd.Series) else np.asarray(column, np.float64)
    if rows is not None:
        values = values[rows]
    return np.log1p(values) if name in log1p else values


def datetime_parts(seconds: np.ndarray, origin: float) -> list[np.ndarray]:
    """A date-time column's five numbers (seconds since 1970, UTC): the hour of day and the day of week as
    points on circles (23:59 sits next to 00:00, Sunday next to Monday), and the days since ``origin``."""
    day = 2 * np.pi * np.mod(seconds, DAY) / DAY
    week = 2 * np.pi * np.mod(seconds - MONDAY, WEEK) / WEEK
    return [np.sin(day), np.cos(day), np.sin(week), np.cos(week), (seconds - origin) / DAY]


@dataclass(frozen=True)
class Imputer:
    """What takes the place of a missing or infinite number, date-time or age: the training part's median of
    each such column, and which columns get a 0/1 "was missing" input (those with gaps in the training
    part). Fitted with scikit-learn's SimpleImputer and MissingIndicator on the training rows only, applied
    from these plain values (the encoder's file carries them), like the scaler."""

    median: dict[str, float]  # every numeric, boolean, date-time (seconds since 1970) and age column
    indicators: list[str]  # the columns with a "was missing" input

    @classmethod
    def fit(cls, sources: dict[str, np.ndarray]) -> Imputer:
        """Fit on the training rows' values (``sources``: each column's, non-finite ones missing)."""
        from sklearn.impute import MissingIndicator, SimpleImputer  # here: the scorer loads this module, never fits

        names = list(sources)
        matrix = np.column_stack([np.where(np.isfinite(sources[n]), sources[n], np.nan) for n in names])
        gappy = np.isnan(matrix).any(axis=0)
        medians = np.median(matrix, axis=0)  # the same as SimpleImputer's where no value is missing, 10x faster
        if gappy.any():
            medians[gappy] = (
                SimpleImputer(strategy="median", keep_empty_features=True).fit(matrix[:, gappy]).statistics_
            )
        gaps = MissingIndicator(features="missing-only").fit(matrix).features_
        return cls({n: float(m) for n, m in zip(names, medians)}, [names[i] for i in gaps])

    def fill(self, name: str, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A column's values with its median in place of the missing and infinite ones, and which those were."""
        missing = ~np.isfinite(values)
        return (np.where(missing, self.median[name], values) if missing.any() else values), missing


@dataclass(frozen=True)
class Encoder:
    """One split's fitted encoder: the feature columns' roles, date-time formats and origins, the
    training part's categories, and the scaler of the numeric inputs."""

    roles: dict[str, str]  # feature column -> numeric | boolean | categorical | datetime | age, in table order
    formats: dict[str, str]  # date-time and age column -> its text format (data.values.date_format)
    origins: dict[str, float]  # date-time column -> the training part's earliest instant (seconds since 1970)
    levels: dict[str, list[str]]  # categorical column -> its training categories, index FIRST_LEVEL onwards
    scaler: Scaler
    date_only: list[str] = field(default_factory=list)  # date-time columns without a time of day
    anchors: dict[str, str] = field(default_factory=dict)  # age column -> the time column it is measured at
    imputer: Imputer | None = None  # prepare.nonfinite: impute

    @property
    def features(self) -> list[str]:
        """The raw columns a row must have, by name."""
        return list(self.roles)

    @property
    def categorical(self) -> list[str]:
        """The categorical columns, in the order of their indices in the input."""
        return list(self.levels)

    @property
    def width(self) -> int:
        """Columns of the input matrix: the numeric inputs, then one index per categorical column."""
        return len(self.scaler.features) + len(self.levels)

    @classmethod
    def fit(
        cls,
        roles: dict[str, str],
        formats: dict[str, str],
        decoded: Decoded,
        rows: np.ndarray,
        log1p: list[str],
        min_count: int,
        date_only: list[str] | None = None,
        anchors: dict[str, str] | None = None,
        impute: bool = False,
    ) -> Encoder:
        """Fit on the training rows only: origins, categories (seen at least ``min_count`` times), the
        imputer's medians (``impute``) and the scaler's statistics; validation and test rows never take part."""
        origins = {name: _earliest(decoded.numbers[name][rows]) for name, role in roles.items() if role == "datetime"}
        levels = {
            name: _levels(decoded.keys[name], rows, min_count) for name, role in roles.items() if role == "categorical"
        }
        fitted = cls(roles, formats, origins, levels, Scaler([], [], [], []), date_only or [], anchors or {})
        if impute:
            fitted = replace(fitted, imputer=Imputer.fit(fitted._sources(decoded, rows)))
        return replace(fitted, scaler=Scaler.fit(fitted._numeric(decoded, rows), log1p))

    def decode(self, frame: pd.DataFrame) -> Decoded:
        """Read raw rows by the columns' roles (a DataError when a value does not fit its role)."""
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise DataError(f"rows to encode lack feature columns: {', '.join(missing)}")
        return decode(frame, self.roles, self.formats)

    def transform(self, decoded: Decoded, rows: np.ndarray | slice | None = None) -> np.ndarray:
        """The input matrix (float32) of decoded rows (``rows`` of them, default all)."""
        numeric = self._numeric(decoded, rows)
        n = _count(decoded.rows, rows)
        out = np.empty((n, self.width), dtype=np.float32)
        for j, name in enumerate(self.scaler.features):
            out[:, j] = self.scaler.scaled(j, numeric[name])
        for j, name in enumerate(self.levels, start=len(self.scaler.features)):
            keys = decoded.keys[name]
            codes = keys.codes if rows is None else keys.codes[rows]
            index = self._lookup(name, keys)
            out[:, j] = np.where(codes < 0, MISSING, index[np.maximum(codes, 0)]) if index.size else MISSING
        return out

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """Raw rows straight to the input matrix."""
        return self.transform(self.decode(frame))

    def _sources(self, decoded: Decoded, rows: np.ndarray | slice | None) -> dict[str, np.ndarray]:
        """One number per row (``rows`` of them) of every column the numeric inputs come from: numbers,
        date-times as seconds since 1970, ages in years; missing or infinite where the raw value is."""
        out = {}
        for name, role in self.roles.items():
            if role in NUMBER_ROLES or role in TIME_ROLES:
                out[name] = decoded.numbers[name] if rows is None else decoded.numbers[name][rows]
        for name, anchor in self.anchors.items():
            with np.errstate(invalid="ignore"):  # a missing birth date or time: a missing age
                out[name] = (out[anchor] - out[name]) / YEAR
        return out

    def _numeric(self, decoded: Decoded, rows: np.ndarray | slice | None) -> dict[str, np.ndarray]:
        """Every numeric input's raw values (``rows`` of them), imputed, before scaling."""
        out = {}
        for name, values in self._sources(decoded, rows).items():
            missing = None
            if self.imputer is not None:
                values, missing = self.imputer.fill(name, values)
            out.update(zip(self.inputs_of(name), self._parts(name, values)))
            if missing is not None and name in self.imputer.indicators:
                out[f"{name}:missing"] = missing.astype(np.float64)
        return out

    def inputs_of(self, name: str) -> list[str]:
        """The numeric inputs a column gives (its "was missing" input aside): ``amt``; ``t:hour_sin``, ...;
        ``dob:age``."""
        role = self.roles[name]
        if role == "datetime":
            return [f"{name}:{p}" for p in (DATE_PARTS if name in self.date_only else DATETIME_PARTS)]
        return [f"{name}:age"] if role == "age" else [name]

    def _parts(self, name: str, values: np.ndarray) -> list[np.ndarray]:
        if self.roles[name] != "datetime":
            return [values]
        parts = datetime_parts(values, self.origins[name])
        return parts[2:] if name in self.date_only else parts

    def imputed(self, decoded: Decoded, rows: np.ndarray | slice | None = None) -> np.ndarray | None:
        """Which cells of the input matrix (``rows`` of the decoded rows) hold an imputed value, or None when
        none does (a reference model that takes missing values natively reads NaN there)."""
        if self.imputer is None:
            return None
        columns = {name: j for j, name in enumerate(self.scaler.features)}
        mask = None
        for name, values in self._sources(decoded, rows).items():
            missing = ~np.isfinite(values)
            if missing.any():
                if mask is None:
                    mask = np.zeros((len(values), self.width), dtype=bool)
                for part in self.inputs_of(name):
                    mask[:, columns[part]] = missing
        return mask

    def gaps(self, decoded: Decoded, rows: np.ndarray | slice | None = None) -> dict[str, int]:
        """How many of the rows miss each column's value (missing or infinite), for the columns that do."""
        counts = {name: int((~np.isfinite(v)).sum()) for name, v in self._sources(decoded, rows).items()}
        return {name: n for name, n in counts.items() if n}

    def coverage(self, decoded: Decoded, rows: np.ndarray) -> dict[str, tuple[int, int, float]]:
        """Each categorical column in these rows: its distinct values, those kept (the levels) and the share of
        the rows at "other"."""
        out = {}
        for name, keys in decoded.keys.items():
            if name in self.levels:
                codes = keys.codes[rows]
                present = codes[codes >= 0]
                at_other = int(np.count_nonzero(self._lookup(name, keys)[present] == OTHER))
                out[name] = (int(np.unique(present).size), len(self.levels[name]), at_other / max(len(codes), 1))
        return out

    def _lookup(self, name: str, keys: Keys) -> np.ndarray:
        """Each of ``keys.names``' category index."""
        index = self._indices[name]
        return np.array([index.get(key, OTHER) for key in keys.names], dtype=np.int64)

    @cached_property
    def _indices(self) -> dict[str, dict[str, int]]:
        return {name: {key: FIRST_LEVEL + i for i, key in enumerate(keys)} for name, keys in self.levels.items()}

    def table_sizes(self) -> dict[str, int]:
        """The rows each categorical column's embedding needs: its levels and the two reserved indices."""
        return {name: FIRST_LEVEL + len(keys) for name, keys in self.levels.items()}

    def save(self, path: Path) -> None:
        """Write the encoder as JSON."""
        raw = {
            "format": FORMAT,
            "roles": self.roles,
            "formats": self.formats,
            "origins": self.origins,
            "levels": self.levels,
            "scaler": self.scaler.to_dict(),
        }
        # Written only when used, so that an encoder without them reads as before they existed.
        optional = {"date_only": self.date_only, "anchors": self.anchors}
        if self.imputer is not None:
            optional["imputer"] = asdict(self.imputer)
        raw.update({key: value for key, value in optional.items() if value})
        path.write_text(json.dumps(raw, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Encoder:
        """Read an encoder written by save() (or a scaler file of models logged before encoders existed:
        every feature numeric)."""
        raw = json.loads(Path(path).read_text())
        if "scaler" not in raw:
            scaler = Scaler(**raw)
            return cls(dict.fromkeys(scaler.features, "numeric"), {}, {}, {}, scaler)
        imputer = Imputer(**raw["imputer"]) if "imputer" in raw else None
        return cls(
            raw["roles"],
            raw["formats"],
            raw["origins"],
            raw["levels"],
            Scaler(**raw["scaler"]),
            raw.get("date_only", []),
            raw.get("anchors", {}),
            imputer,
        )


def _levels(keys: Keys, rows: np.ndarray, min_count: int) -> list[str]:
    """The categories of the training rows seen at least ``min_count`` times, most frequent first (ties by
    name)."""
    codes = keys.codes[rows]
    counts = np.bincount(codes[codes >= 0], minlength=len(keys.names))
    kept = [i for i in range(len(keys.names)) if counts[i] >= min_count]
    return [keys.names[i] for i in sorted(kept, key=lambda i: (-counts[i], keys.names[i]))]


def _earliest(seconds: np.ndarray) -> float:
    """The earliest instant among these (0, 1970, when none is known: a column missing in every training row)."""
    known = seconds[np.isfinite(seconds)]
    return float(known.min()) if known.size else 0.0


def _count(total: int, rows: np.ndarray | slice | None) -> int:
    if rows is None:
        return total
    if isinstance(rows, slice):
        return len(range(*rows.indices(total)))
    return int(np.count_nonzero(rows)) if rows.dtype == bool else len(rows)


def embedding_dim(levels: int) -> int:
    """The width of a categorical column's embedding in the network: fastai's rule, round(1.6 x
    levels^0.56), at most 16 (``levels`` counts every index, the reserved other and missing ones included)."""
    return min(16, max(1, round(1.6 * levels**0.56)))
