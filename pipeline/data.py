"""The synthetic source, validation, splits, scaling, and split I/O."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import SplitParams
from pipeline.errors import DataError

log = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400


# ---------------------------------------------------------------- synthetic source


def synthetic_transactions(rows: int, fraud_rate: float, seed: int) -> pd.DataFrame:
    """Credit-card-like transactions with the ULB schema (Time, V1..V28, Amount, Class).

    Legitimate rows: 28 independent Gaussian "PCA components" with decreasing spread, and a
    log-normal Amount, at times that follow a day/night cycle over two days. Fraud rows come
    from two overlapping patterns, each moving three or four components by two to three standard
    deviations on average (pattern B also widens V7, a non-linear cue), with small or large amounts and no
    day/night cycle. Label noise keeps the classes overlapping: 10% of frauds look legitimate
    and 0.02% of legitimate rows look like fraud.
    """
    rng = np.random.default_rng(seed)
    n_pos = max(1, round(rows * fraud_rate))
    y = np.zeros(rows, dtype=np.int8)
    y[rng.choice(rows, size=n_pos, replace=False)] = 1

    scales = np.linspace(2.0, 0.3, 28)
    x = rng.standard_normal((rows, 28)) * scales

    looks_fraud = y == 1
    looks_fraud[rng.random(rows) < 0.10] &= False  # camouflaged frauds: legit-looking features
    decoys = (y == 0) & (rng.random(rows) < 0.0002)  # legit rows with fraud-like features
    looks_fraud |= decoys
    idx = np.flatnonzero(looks_fraud)
    pattern_b = rng.random(idx.size) < 0.4
    shifts_a = {13: -3.0, 11: -2.5, 9: -2.0, 3: 2.0}  # V14, V12, V10, V4
    shifts_b = {16: -3.0, 10: 2.5, 2: -2.0}  # V17, V11, V3
    for shifts, rows_of in ((shifts_a, idx[~pattern_b]), (shifts_b, idx[pattern_b])):
        for col, shift in shifts.items():
            x[rows_of, col] = scales[col] * (shift + 1.0 * rng.standard_normal(rows_of.size))
    x[idx[pattern_b], 6] *= 2.5  # V7

    amount = rng.lognormal(3.0, 1.3, rows)
    small = rng.random(idx.size) < 0.4
    amount[idx] = np.where(small, rng.uniform(0.0, 2.0, idx.size), rng.lognormal(4.5, 1.2, idx.size))

    day_phase = rng.random(rows)
    # Legit activity follows a day/night cycle (inverse-CDF of 1 - 0.8*cos); fraud does not.
    grid = np.linspace(0, 1, 2001)
    cdf = grid - 0.8 * np.sin(2 * np.pi * grid) / (2 * np.pi)
    cycle = np.interp(day_phase, cdf, grid)
    phase = np.where(looks_fraud, day_phase, cycle)
    time = np.floor((rng.integers(0, 2, rows) + phase) * SECONDS_PER_DAY)

    # Rows in time order. Permute column by column, in place: a sorted copy of x would double the
    # memory at 10^7 rows.
    order = np.argsort(time, kind="stable")
    for j in range(x.shape[1]):
        x[:, j] = x[order, j]
    frame = pd.DataFrame(x, columns=[f"V{i}" for i in range(1, 29)], copy=False)
    frame.insert(0, "Time", time[order])
    frame["Amount"] = np.round(amount, 2)[order]
    frame["Class"] = y[order]
    return frame


def frame_sha256(frame: pd.DataFrame) -> str:
    """A content hash of a data frame (columns and values)."""
    digest = hashlib.sha256(json.dumps(list(map(str, frame.columns))).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """A content hash of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- file source


# ---------------------------------------------------------------- validation


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


# ---------------------------------------------------------------- splits


def split_indices(labels: np.ndarray, params: SplitParams, seed: int,
                  times: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Row indices of train/val/test: stratified and seeded, or ordered by time."""
    n = labels.size
    f_train, f_val, _ = params.fractions
    if params.method == "time":
        if times is None:
            raise DataError(f"prepare.split.time_column '{params.time_column}' not found; "
                            "set it to a numeric time column or use prepare.split.method: stratified")
        order = np.argsort(times, kind="stable")
        cut1, cut2 = round(n * f_train), round(n * (f_train + f_val))
        parts = {"train": order[:cut1], "val": order[cut1:cut2], "test": order[cut2:]}
    else:
        from sklearn.model_selection import train_test_split  # here: serving imports this module too

        total = int(labels.sum())
        if total < 3 * params.min_positives:
            raise DataError(f"only {total} positives in the data, fewer than 3 splits x "
                            f"prepare.split.min_positives={params.min_positives}; use more data "
                            "or lower prepare.split.min_positives")
        every = np.arange(n)
        rest, test = train_test_split(every, test_size=params.fractions[2], stratify=labels,
                                      random_state=seed)
        train, val = train_test_split(rest, test_size=f_val / (f_train + f_val),
                                      stratify=labels[rest], random_state=seed)
        parts = {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}
    for name, rows in parts.items():
        positives = int(labels[rows].sum())
        if positives < params.min_positives:
            raise DataError(f"split '{name}' holds {positives} positives, fewer than "
                            f"prepare.split.min_positives={params.min_positives}; use more data, lower "
                            "prepare.split.min_positives or change prepare.split.fractions")
        if positives == rows.size:
            raise DataError(f"split '{name}' holds no negatives; change prepare.split.fractions")
    return parts


# ---------------------------------------------------------------- scaling


@dataclass(frozen=True)
class Scaler:
    """Optional log1p then standardisation, fitted on the training split only."""

    features: list[str]
    log1p: list[str]
    mean: list[float]
    scale: list[float]

    @classmethod
    def fit(cls, features: pd.DataFrame, log1p: list[str], rows: np.ndarray | None = None) -> Scaler:
        """Fit on the training rows only (``rows`` of ``features``, default all): validation and
        test statistics never leak in. One column at a time, so memory stays near one column."""
        from sklearn.preprocessing import StandardScaler

        means, scales = [], []
        for column in features.columns:
            values = _column(features, column, rows, log1p)
            fitted = StandardScaler().fit(values.reshape(-1, 1))
            means.append(float(fitted.mean_[0]))
            scales.append(float(fitted.scale_[0]))
        return cls(list(map(str, features.columns)), list(log1p), means, scales)

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

    def _scaled(self, name: str, j: int, column: np.ndarray) -> np.ndarray:
        if name in self.log1p:
            column = np.log1p(column)
        return (column - self.mean[j]) / self.scale[j]

    def save(self, path: Path) -> None:
        """Write the scaler as JSON."""
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Scaler:
        """Read a scaler written by save()."""
        return cls(**json.loads(Path(path).read_text()))


def _column(frame: pd.DataFrame, name: str, rows: np.ndarray | None, log1p: list[str]) -> np.ndarray:
    """One column as float64 (``rows`` of it, log1p'd when listed): at most one column's copy."""
    values = frame[name].to_numpy(dtype=np.float64)
    if rows is not None:
        values = values[rows]
    return np.log1p(values) if name in log1p else values
