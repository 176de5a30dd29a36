"""The prepared data: the validated table, read once, and any split's rows from it, raw (what a
scorer is given) or scaled with that split's scaler (what the network takes)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.data.scaler import Scaler
from pipeline.project.layout import Layout, PrepareSummary
from pipeline.runtime.errors import StageError


@dataclass(frozen=True)
class Split:
    """One part of a split as arrays."""

    x: np.ndarray  # float32, (rows, features), scaled
    y: np.ndarray  # int8, (rows,)


class Prepared:
    """The prepare stage's outputs under a layout."""

    def __init__(self, layout: Layout, summary: PrepareSummary) -> None:
        if not layout.table.is_file():
            raise StageError(f"{layout.table}: prepared data not found; run the prepare stage first (dvc repro prepare)")
        self.layout, self.summary = layout, summary
        self.table = pd.read_parquet(layout.table)
        self._features = self.table[summary.features]

    def indices(self, split: str) -> dict[str, np.ndarray]:
        """The row indices of each part (train, val, test) of a split."""
        path = self.layout.split_file(split)
        if not path.is_file():
            raise StageError(f"{path}: split not found; run the prepare stage first (dvc repro prepare)")
        with np.load(path) as parts:
            return {name: parts[name] for name in parts.files}

    def scaler(self, split: str) -> Scaler:
        """The scaler fitted on the split's training part."""
        return Scaler.load(self.layout.scaler(split))

    def parts(self, split: str, names: tuple[str, ...] = ("train", "val", "test")) -> dict[str, Split]:
        """The split's parts, scaled by its own scaler."""
        scaler, rows = self.scaler(split), self.indices(split)
        labels = self.table[self.summary.label].to_numpy(dtype=np.int8)
        return {name: Split(scaler.transform(self._features, rows[name]).to_numpy(copy=True),
                            labels[rows[name]].copy()) for name in names}

    def raw(self, split: str, part: str) -> pd.DataFrame:
        """A part's rows as they came (the label included): what a scorer is given."""
        return self.table.iloc[self.indices(split)[part]].reset_index(drop=True)
