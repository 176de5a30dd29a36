"""The fraud scorer: raw transactions in, the fraud probability and the 0/1 decision out.

``FraudScorer`` does the work with numpy, pandas and torch: it reads the raw rows by the source's
feature columns' names and roles (numbers of any numeric dtype; categories as text or numbers, unseen
ones and missing ones included; date-times as text or datetimes; other columns are ignored), encodes
them with the training split's encoder (data.encoder: its categories, date-time origins, imputer, log1p
and scaler), runs the network in eval mode and the threshold chosen on validation. A model trained with
``prepare.nonfinite: impute`` scores a row with empty or infinite numbers or date-times (a missing amount)
as the training rows were encoded: the training part's median and a "was missing" input.
``serving.pyfunc.FraudModel`` wraps it as an MLflow pyfunc, so that `mlflow models predict`,
`mlflow models serve` and ``pipeline.score`` all give the same numbers. Everything it needs travels
inside the logged model: the network, the encoder, the threshold, the non-finite policy and the
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

from pipeline.data.encoder import Encoder
from pipeline.data.values import Decoded
from pipeline.modeling.network import MLP, from_checkpoint, logits
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

    network: MLP  # one model (a stack of one), in eval mode
    encoder: Encoder
    threshold: float
    nonfinite: str  # "impute", "error" or "drop", as prepare.nonfinite was for training
    settings: dict[str, Any]

    @classmethod
    def load(cls, artifacts: dict[str, str]) -> FraudScorer:
        """Rebuild from the files a logged model carries (network, encoder, settings; models logged before
        encoders existed carry a scaler instead)."""
        settings = json.loads(Path(artifacts["settings"]).read_text())
        payload = torch.load(artifacts["network"], map_location="cpu", weights_only=True)
        encoder = Encoder.load(artifacts["encoder"] if "encoder" in artifacts else artifacts["scaler"])
        return cls(from_checkpoint(payload), encoder, float(settings["threshold"]), settings["nonfinite"], settings)

    @property
    def features(self) -> list[str]:
        """The raw columns a row must have, by name."""
        return self.encoder.features

    def check(self, frame: pd.DataFrame) -> tuple[Decoded, np.ndarray]:
        """The rows read by their columns' roles, and which rows to score (all, or those without missing
        or infinite numbers and date-times when the policy is `drop`: `impute` fills them, `error` refuses
        them); a problem raises ScoringError."""
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise ScoringError(
                f"input lacks feature columns {', '.join(missing)}; the model needs "
                f"{', '.join(self.features)} (other columns are ignored)"
            )
        try:
            decoded = self.encoder.decode(frame)
        except DataError as exc:
            raise ScoringError(str(exc)) from None
        if self.nonfinite == "impute" and self.encoder.imputer is not None:
            return decoded, np.ones(decoded.rows, dtype=bool)
        bad, columns = decoded.nonfinite()
        if bad.any() and self.nonfinite != "drop":
            raise ScoringError(
                f"{int(bad.sum()):,} rows hold NaN or infinite values (columns: "
                f"{', '.join(columns)}); clean them, or train with prepare.nonfinite: drop to skip "
                "such rows, or prepare.nonfinite: impute to score them"
            )
        return decoded, ~bad

    @torch.inference_mode()
    def probabilities(self, decoded: Decoded) -> np.ndarray:
        """Fraud probabilities of decoded rows, encoded and run BATCH_ROWS at a time: small blocks stay in
        cache (about 2x faster than 200,000 at once). A row the model cannot score (a value the scaler
        cannot represent, an output that is not a number) raises Unscorable with its position among the
        decoded rows: no row gets a label without a score."""
        out = np.empty(decoded.rows, dtype=np.float64)
        inputs = self.encoder.scaler.features  # the numeric inputs, first in the encoded matrix
        for start in range(0, decoded.rows, BATCH_ROWS):
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                x = self.encoder.transform(decoded, slice(start, start + BATCH_ROWS))
            self._check_scaled(decoded, x, start)
            scores = logits(self.network, torch.from_numpy(x))
            if not bool(torch.isfinite(scores).all()):  # values near float32's limit overflow inside
                row = int(torch.nonzero(~torch.isfinite(scores))[0, 0])
                column = int(np.argmax(np.abs(x[row, : len(inputs)])))
                raise Unscorable(
                    start + row,
                    f"the network overflows on this row (its output is "
                    f"{float(scores[row]):.3g}): {self._raw(decoded, start + row, inputs[column])} "
                    f"lies {abs(float(x[row, column])):.3g} standard deviations from the training mean",
                )
            out[start : start + len(x)] = torch.sigmoid(scores).numpy()
        return out

    def _check_scaled(self, decoded: Decoded, x: np.ndarray, start: int) -> None:
        """Raise Unscorable for the first row with an encoded value that is not a finite float32 (only the
        numeric inputs can be: category indices are small whole numbers)."""
        bad = ~np.isfinite(x)
        if not bad.any():
            return
        row, column = (int(i[0]) for i in np.nonzero(bad))
        scaler, name = self.encoder.scaler, self.encoder.scaler.features[column]
        if name in scaler.log1p:  # log1p of anything above -1 is far inside float32
            reason = f"the model applies log1p to {name}, which needs values above -1"
        else:
            limit = float(np.finfo(np.float32).max) * scaler.scale[column]
            reason = (
                f"scaled for the network it overflows float32; the model takes {name} within "
                f"{scaler.mean[column] - limit:.3g} .. {scaler.mean[column] + limit:.3g}"
            )
        raise Unscorable(
            start + row,
            f"{self._raw(decoded, start + row, name)} is outside what the model's scaler can represent: {reason}",
        )

    @staticmethod
    def _raw(decoded: Decoded, row: int, name: str) -> str:
        """``V1 = 1e+308``: a numeric input's raw value (a date-time part names its column's instant)."""
        column = name.split(":")[0]
        return f"{column} = {float(decoded.numbers[column][row]):.6g}"

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`fraud_probability` and `fraud` (0/1 at the chosen threshold) per row, indexed like the input;
        rows skipped under the `drop` policy are absent. A row the model cannot score stops the whole
        call with ScoringError naming its index label, column and reason."""
        decoded, finite = self.check(frame)
        everything = bool(finite.all())
        index = frame.index if everything else frame.index[finite]
        try:
            p = self.probabilities(decoded if everything else decoded.take(finite))
        except Unscorable as exc:
            raise ScoringError(
                f"row {index[exc.position]}: {exc.reason}; no row was scored (fix or remove that row)"
            ) from None
        return pd.DataFrame({"fraud_probability": p, "fraud": (p >= self.threshold).astype(np.int64)}, index=index)


def settings(threshold: float, nonfinite: str, data_sha256: str, **model: Any) -> dict[str, Any]:
    """What a logged model records besides its network and encoder."""
    return {"threshold": float(threshold), "nonfinite": nonfinite, "data_sha256": data_sha256, **model}
