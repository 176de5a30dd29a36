"""The prepared data: the validated table, read once, and any split's rows from it, raw (what a
scorer is given) or encoded with that split's encoder (what the network takes)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from pipeline.data.encoder import Encoder
from pipeline.data.values import Decoded, decode
from pipeline.project.artefacts import PrepareSummary
from pipeline.project.layout import TUNING, Layout
from pipeline.runtime.errors import StageError


@dataclass(frozen=True)
class Split:
    """One part of a split as arrays."""

    x: np.ndarray  # float32, (rows, inputs): the scaled numeric inputs, then one category index per column
    y: np.ndarray  # int8, (rows,)
    imputed: np.ndarray | None = None  # bool, like x: the cells that hold an imputed value (None: no cell does)


class Prepared:
    """The prepare stage's outputs under a layout."""

    def __init__(self, layout: Layout, summary: PrepareSummary) -> None:
        if not layout.table.is_file():
            raise StageError(
                f"{layout.table}: prepared data not found; run the prepare stage first (dvc repro prepare)"
            )
        self.layout, self.summary = layout, summary
        self.table = pd.read_parquet(layout.table)

    def indices(self, split: str) -> dict[str, np.ndarray]:
        """The row indices of each part (train, val, test) of a split."""
        path = self.layout.split_file(split)
        if not path.is_file():
            raise StageError(f"{path}: split not found; run the prepare stage first (dvc repro prepare)")
        with np.load(path) as parts:
            return {name: parts[name] for name in parts.files}

    def encoder(self, split: str) -> Encoder:
        """The encoder fitted on the split's training part."""
        return Encoder.load(self.layout.encoder(split))

    @cached_property
    def _decoded(self) -> Decoded:
        """The table's feature columns read once (every split's encoder reads them alike)."""
        encoder = self.encoder(TUNING)
        return decode(self.table, encoder.roles, encoder.formats)

    def seconds(self, column: str) -> np.ndarray | None:
        """A numeric or date-time feature column of the whole table as seconds (date-times since 1970), or
        None when no feature has that name."""
        return self._decoded.numbers.get(column)

    def parts(self, split: str, names: tuple[str, ...] = ("train", "val", "test")) -> dict[str, Split]:
        """The split's parts, encoded by its own encoder (and which cells it imputed)."""
        encoder, rows = self.encoder(split), self.indices(split)
        labels = self.table[self.summary.label].to_numpy(dtype=np.int8)
        return {
            name: Split(
                encoder.transform(self._decoded, rows[name]),
                labels[rows[name]].copy(),
                encoder.imputed(self._decoded, rows[name]),
            )
            for name in names
        }

    def raw(self, split: str, part: str) -> pd.DataFrame:
        """A part's rows as they came (the label and the id columns included): what a scorer is given."""
        return self.table.iloc[self.indices(split)[part]].reset_index(drop=True)
