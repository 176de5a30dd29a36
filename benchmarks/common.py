"""What the benchmark scripts share: the data they train on and how they summarise repeats. The scripts run
with the project installed (`make install`, the environment activated): `python benchmarks/<script>.py`."""

from __future__ import annotations

import statistics

import numpy as np
import pandas as pd
import torch

from pipeline.data.encoder import Scaler
from pipeline.data.synthetic import synthetic_transactions
from pipeline.project.params import Params, Setting
from pipeline.project.variants import Catalogue, Variant

Rows = tuple[torch.Tensor, torch.Tensor]

# The one setting the benchmarks train at (no class weight: the counts fit_config takes do not matter).
SETTING = Setting(lr=1e-3, weight_decay=0.0, batch_size=1024, pos_weight="none", dropout=0.0)


def batchnorm(params: Params) -> Variant:
    """The variant the benchmarks train: BatchNorm as params.yaml declares it (its model and optimizer)."""
    return Catalogue(params)["batchnorm"]


def ulb_transactions(rows: int) -> pd.DataFrame:
    """The default source's generator, its ULB columns only (Time, V1..V28, Amount, Class): the numbers
    every benchmark measured before the categorical columns existed."""
    frame = synthetic_transactions(rows, 0.002, seed=0)
    return frame[[*frame.loc[:, "Time":"Amount"].columns, "Class"]]


def make_data(rows: int, train_share: float = 0.8) -> tuple[Rows, Rows]:
    """Synthetic transactions (ulb_transactions), scaled on the training part: ``train_share`` of the rows
    train, the rest validate."""
    frame = ulb_transactions(rows)
    rng = np.random.default_rng(0)
    order = rng.permutation(rows)
    cut = int(rows * train_share)
    features = frame.drop(columns="Class")
    scaler = Scaler.fit(features.iloc[order[:cut]], ["Amount"])

    def tensors(idx: np.ndarray) -> Rows:
        x = torch.from_numpy(scaler.transform(features.iloc[idx]).to_numpy().copy())
        return x, torch.from_numpy(frame["Class"].to_numpy()[idx].copy())

    return tensors(order[:cut]), tensors(order[cut:])


def spread(values: list[float]) -> dict[str, float]:
    """Median with min and max."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}
