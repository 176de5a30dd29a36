"""The fraud scorer: raw transactions in, the fraud probability and the 0/1 decision out.

``FraudScorer`` does the work with numpy, pandas and torch: it checks the raw rows (the source's
feature columns by name, any numeric dtype; other columns are ignored), applies the training
split's log1p and scaler, runs the network in eval mode and the threshold chosen on validation.
``serving.pyfunc.FraudModel`` wraps it as an MLflow pyfunc, so that `mlflow models predict`,
`mlflow models serve` and ``pipeline.score`` all give the same numbers. Everything it needs travels
inside the logged model: the network, the scaler, the threshold, the non-finite policy and the
training data's hash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pipeline.data.scaler import Scaler
from pipeline.modeling.model import from_checkpoint
from pipeline.runtime.errors import DataError

OUTPUT_COLUMNS = ("fraud_probability", "fraud")
BATCH_ROWS = 32_768  # rows per forward pass (see benchmarks/score_throughput.py)


class ScoringError(DataError):
    """Rows the model cannot score; the message names the problem and the fix."""


class Unscorable(Exception):
    """One row the network cannot score: its position among the scored values and why."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(reason)
        self.position, self.reason = position, reason


@dataclass
class FraudScorer:
    """A trained network with everything needed to score raw rows."""

    network: torch.nn.Module
    scaler: Scaler
    threshold: float
    nonfinite: str  # "error" or "drop", as prepare.nonfinite was for training
    settings: dict[str, Any]

    @classmethod
    def load(cls, artifacts: dict[str, str]) -> FraudScorer:
        """Rebuild from the files a logged model carries (network, scaler, settings)."""
        settings = json.loads(Path(artifacts["settings"]).read_text())
        payload = torch.load(artifacts["network"], map_location="cpu", weights_only=True)
        return cls(from_checkpoint(payload), Scaler.load(artifacts["scaler"]), float(settings["threshold"]),
                   settings["nonfinite"], settings)

    @property
    def features(self) -> list[str]:
        """The raw columns a row must have, by name."""
        return self.scaler.features

    def check(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The feature values as float64, and which rows to score (all, or the finite ones when the
        policy is `drop`); a problem raises ScoringError."""
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise ScoringError(f"input lacks feature columns {', '.join(missing)}; the model needs "
                               f"{', '.join(self.features)} (other columns are ignored)")
        bad = [c for c in self.features if not pd.api.types.is_numeric_dtype(frame[c])
               or pd.api.types.is_bool_dtype(frame[c])]
        if bad:
            raise ScoringError(f"non-numeric values in feature columns {', '.join(bad)}; every feature must be "
                               "a number")
        values = frame[self.features].to_numpy(dtype=np.float64)
        finite = np.isfinite(values).all(axis=1)
        if not finite.all() and self.nonfinite == "error":
            columns = [c for c, ok in zip(self.features, np.isfinite(values).all(axis=0)) if not ok]
            raise ScoringError(f"{int((~finite).sum()):,} rows hold NaN or infinite values (columns: "
                               f"{', '.join(columns)}); clean them, or train with prepare.nonfinite: drop to skip "
                               "such rows")
        return values, finite

    @torch.inference_mode()
    def probabilities(self, values: np.ndarray) -> np.ndarray:
        """Fraud probabilities of raw feature values (rows x features, float64), scaled and run
        BATCH_ROWS at a time: small blocks stay in cache (about 2x faster than 200,000 at once).
        A row the model cannot score (a value the scaler cannot represent, an output that is not a
        number) raises Unscorable with its position in ``values``: no row gets a label without a score."""
        out = np.empty(len(values), dtype=np.float64)
        for start in range(0, len(values), BATCH_ROWS):
            block = values[start:start + BATCH_ROWS]
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                scaled = self.scaler.apply(block)
            self._check_scaled(block, scaled, start)
            logits = self.network(torch.from_numpy(scaled)).float()
            if not bool(torch.isfinite(logits).all()):  # values near float32's limit overflow inside
                row = int(torch.nonzero(~torch.isfinite(logits))[0, 0])
                column = int(np.argmax(np.abs(scaled[row])))
                raise Unscorable(start + row, f"the network overflows on this row (its output is "
                                 f"{float(logits[row]):.3g}): {self.features[column]} = {block[row, column]:.6g} "
                                 f"lies {abs(float(scaled[row, column])):.3g} standard deviations from the training "
                                 "mean")
            p = torch.sigmoid(logits).numpy()
            out[start:start + len(block)] = p
        return out

    def _check_scaled(self, block: np.ndarray, scaled: np.ndarray, start: int) -> None:
        """Raise Unscorable for the first row whose scaled value is not a finite float32."""
        bad = ~np.isfinite(scaled)
        if not bad.any():
            return
        row, column = (int(i[0]) for i in np.nonzero(bad))
        name, value = self.features[column], float(block[row, column])
        if name in self.scaler.log1p:  # log1p of anything above -1 is far inside float32
            reason = f"the model applies log1p to {name}, which needs values above -1"
        else:
            mean, scale = self.scaler.mean[column], self.scaler.scale[column]
            limit = float(np.finfo(np.float32).max) * scale
            reason = (f"scaled for the network it overflows float32; the model takes {name} within "
                      f"{mean - limit:.3g} .. {mean + limit:.3g}")
        raise Unscorable(start + row, f"{name} = {value:.6g} is outside what the model's scaler can "
                         f"represent: {reason}")

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`fraud_probability` and `fraud` (0/1 at the chosen threshold) per row, indexed like the input;
        rows skipped under the `drop` policy are absent. A row the model cannot score stops the whole
        call with ScoringError naming its index label, column and reason."""
        values, finite = self.check(frame)
        everything = bool(finite.all())
        index = frame.index if everything else frame.index[finite]
        try:
            p = self.probabilities(values if everything else values[finite])
        except Unscorable as exc:
            raise ScoringError(f"row {index[exc.position]}: {exc.reason}; no row was scored (fix or "
                               "remove that row)") from None
        return pd.DataFrame({"fraud_probability": p, "fraud": (p >= self.threshold).astype(np.int64)}, index=index)


def settings(threshold: float, nonfinite: str, data_sha256: str, **model: Any) -> dict[str, Any]:
    """What a logged model records besides its network and scaler."""
    return {"threshold": float(threshold), "nonfinite": nonfinite, "data_sha256": data_sha256, **model}
