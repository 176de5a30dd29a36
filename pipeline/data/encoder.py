"""The encoder: raw rows to the network's input, fitted on one split's training part only; shared by
prepare (one per split) and serving (inside every logged model). Its JSON file is the one format.

The network's input is one float32 matrix: first the **numeric inputs**, standardised by the encoder's
``Scaler`` (numeric and boolean columns, ``prepare.log1p`` columns log1p'd first; each date-time column as
five numbers: the hour of day and the day of week as (sin, cos) pairs, and days elapsed since the training
part's earliest instant), then one **category index** per categorical column (a whole number, exact in
float32), which the network looks up in that column's embedding:

- 0: other: a category seen fewer than ``prepare.min_category_count`` times in the training part, or
  first seen at validation, test or scoring time;
- 1: missing (a category of its own);
- 2, 3, ...: the training part's categories, most frequent first.

Missing or infinite numbers and date-times follow ``prepare.nonfinite``. A table without categorical or
date-time columns gives the scaler's matrix alone, as before encoders existed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.data.values import NUMBER_ROLES, Decoded, Keys, decode
from pipeline.runtime.errors import DataError

OTHER, MISSING, FIRST_LEVEL = 0, 1, 2  # category indices: rare or unseen, missing, then the levels
DATETIME_PARTS = ("hour_sin", "hour_cos", "weekday_sin", "weekday_cos", "days")
DAY, WEEK = 86_400.0, 7 * 86_400.0
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


def numeric_inputs(roles: dict[str, str]) -> list[str]:
    """The names of the numeric inputs, in order (a date-time column ``t`` gives ``t:hour_sin``, ...)."""
    out = []
    for name, role in roles.items():
        if role in NUMBER_ROLES:
            out.append(name)
        elif role == "datetime":
            out += [f"{name}:{part}" for part in DATETIME_PARTS]
    return out


@dataclass(frozen=True)
class Encoder:
    """One split's fitted encoder: the feature columns' roles, date-time formats and origins, the
    training part's categories, and the scaler of the numeric inputs."""

    roles: dict[str, str]  # feature column -> numeric | boolean | categorical | datetime, in table order
    formats: dict[str, str]  # date-time column -> its text format (data.values.date_format)
    origins: dict[str, float]  # date-time column -> the training part's earliest instant (seconds since 1970)
    levels: dict[str, list[str]]  # categorical column -> its training categories, index FIRST_LEVEL onwards
    scaler: Scaler

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
    ) -> Encoder:
        """Fit on the training rows only: origins, categories (seen at least ``min_count`` times) and the
        scaler's statistics; validation and test rows never take part."""
        origins = {
            name: float(np.nanmin(decoded.numbers[name][rows])) for name, role in roles.items() if role == "datetime"
        }
        levels = {
            name: _levels(decoded.keys[name], rows, min_count) for name, role in roles.items() if role == "categorical"
        }
        partial = cls(roles, formats, origins, levels, Scaler([], [], [], []))
        return cls(roles, formats, origins, levels, Scaler.fit(partial._numeric(decoded, rows), log1p))

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

    def _numeric(self, decoded: Decoded, rows: np.ndarray | slice | None) -> dict[str, np.ndarray]:
        """Every numeric input's raw values (``rows`` of them), before scaling."""
        out = {}
        for name, role in self.roles.items():
            if role in NUMBER_ROLES or role == "datetime":
                values = decoded.numbers[name] if rows is None else decoded.numbers[name][rows]
                if role == "datetime":
                    out.update(zip((f"{name}:{p}" for p in DATETIME_PARTS), datetime_parts(values, self.origins[name])))
                else:
                    out[name] = values
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
        path.write_text(json.dumps(raw, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Encoder:
        """Read an encoder written by save() (or a scaler file of models logged before encoders existed:
        every feature numeric)."""
        raw = json.loads(Path(path).read_text())
        if "scaler" not in raw:
            scaler = Scaler(**raw)
            return cls(dict.fromkeys(scaler.features, "numeric"), {}, {}, {}, scaler)
        return cls(raw["roles"], raw["formats"], raw["origins"], raw["levels"], Scaler(**raw["scaler"]))


def _levels(keys: Keys, rows: np.ndarray, min_count: int) -> list[str]:
    """The categories of the training rows seen at least ``min_count`` times, most frequent first (ties by
    name)."""
    codes = keys.codes[rows]
    counts = np.bincount(codes[codes >= 0], minlength=len(keys.names))
    kept = [i for i in range(len(keys.names)) if counts[i] >= min_count]
    return [keys.names[i] for i in sorted(kept, key=lambda i: (-counts[i], keys.names[i]))]


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
