"""Where prepare's rows come from (the synthetic generator or the user's file), and their content hash."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from pipeline.data.synthetic import synthetic_transactions
from pipeline.data.tables import read_table
from pipeline.project.config import PrepareParams


def load_source(params: PrepareParams) -> tuple[pd.DataFrame, str]:
    """The source's rows as a frame, and the SHA-256 that identifies them (of the generated frame, or of
    the file's bytes)."""
    if params.source == "synthetic":
        s = params.synthetic
        frame = synthetic_transactions(s.rows, s.fraud_rate, params.seed, s.signal, s.extra_features)
        return frame, frame_sha256(frame)
    path = Path(params.source)
    return read_table(path), file_sha256(path)


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
