"""Optional log1p then standardisation, fitted on the training split only; shared by prepare and serving."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.runtime.errors import DataError


@dataclass(frozen=True)
class Scaler:
    """Optional log1p then standardisation, fitted on the training split only."""

    features: list[str]
    log1p: list[str]
    mean: list[float]
    scale: list[float]

    @classmethod
    def fit(cls, features: pd.DataFrame | Mapping[str, np.ndarray], log1p: list[str],
            rows: np.ndarray | None = None) -> Scaler:
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

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Scale raw feature values, columns in ``features`` order: log1p where listed, then
        standardise; float64 arithmetic, float32 out (what the network takes)."""
        out = np.empty(values.shape, dtype=np.float32)
        for j, name in enumerate(self.features):
            column = np.asarray(values[:, j], dtype=np.float64)
            out[:, j] = self._scaled(name, j, column)
        return out

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
        """Plain values (the JSON file's, and the encoder's)."""
        return asdict(self)

    def save(self, path: Path) -> None:
        """Write the scaler as JSON."""
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Scaler:
        """Read a scaler written by save()."""
        return cls(**json.loads(Path(path).read_text()))


def _column(frame: pd.DataFrame | Mapping[str, np.ndarray], name: str, rows: np.ndarray | None,
            log1p: list[str]) -> np.ndarray:
    """One column as float64 (``rows`` of it, log1p'd when listed): at most one column's copy."""
    column = frame[name]
    values = column.to_numpy(dtype=np.float64) if isinstance(column, pd.Series) else np.asarray(column, np.float64)
    if rows is not None:
        values = values[rows]
    return np.log1p(values) if name in log1p else values
