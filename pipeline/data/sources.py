"""Where prepare's rows come from: the embedded synthetic generator or the user's table file (CSV,
compressed CSV or Parquet, read whole after header checks), and the content hash that identifies them."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow
import pyarrow.parquet

from pipeline.data.synthetic import synthetic_transactions
from pipeline.project.params import PrepareParams, table_kind
from pipeline.runtime.errors import DataError

KIND_NAMES = {"csv": "CSV", "parquet": "Parquet"}
UNNAMED = re.compile(r"^(Unnamed: \d+|__index_level_\d+__|)$")  # index columns written by pandas


TABLE_FIX = (
    "set prepare.source to an existing .csv (or compressed: .csv.gz, .csv.zip, .csv.bz2, .csv.xz, "
    ".csv.zst) or .parquet file, or to 'synthetic'"
)


def check_header(path: Path, kind: str) -> None:
    """Refuse what pandas would silently mangle: a duplicated column name (read as 'V1.1') and a
    file delimited by something other than commas (read as one column)."""
    if kind == "parquet":
        names = pyarrow.parquet.read_schema(path).names
    else:
        names = list(pd.read_csv(path, nrows=1, header=None, dtype=str, keep_default_na=False).iloc[0])
        if len(names) == 1:
            for sep, shown, word in ((";", ";", "semicolon"), ("\t", "\\t", "tab"), ("|", "|", "pipe")):
                if sep in names[0]:
                    raise DataError(
                        f"{path}: looks {word}-delimited (one column '{names[0][:30]}...'); save it "
                        f"comma-separated, e.g. pd.read_csv(path, sep='{shown}').to_csv(new_path, "
                        "index=False)"
                    )
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise DataError(
            f"{path}: column name(s) {', '.join(duplicated)} appear more than once; rename or "
            "drop the duplicates so each column has one name"
        )


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV (optionally compressed) or Parquet file, dropping unnamed index columns."""
    kind = table_kind(path)
    if kind is None:
        raise DataError(f"{path}: unsupported file type '{''.join(path.suffixes[-2:])}'; {TABLE_FIX}")
    if not path.is_file():
        raise DataError(f"{path}: file not found; {TABLE_FIX}")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty; {TABLE_FIX}")
    try:
        if kind == "csv" and path.suffix.lower() == ".csv":
            with path.open("rb") as handle:
                if b"\0" in handle.read(8192):
                    raise DataError(f"{path}: not a text CSV file (binary content); {TABLE_FIX}")
        check_header(path, kind)
        frame = pd.read_csv(path, low_memory=False) if kind == "csv" else pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty; {TABLE_FIX}") from None
    except (
        pd.errors.ParserError,
        UnicodeDecodeError,
        pyarrow.ArrowException,
        OSError,
        EOFError,
        zipfile.BadZipFile,
    ) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"{path}: cannot be read as {KIND_NAMES[kind]} (corrupt or truncated file?): {reason}; re-export "
            f"or re-download it, or point prepare.source at another copy"
        ) from None
    frame = frame.drop(columns=[c for c in frame.columns if UNNAMED.match(str(c))])
    if frame.empty:
        raise DataError(f"{path}: has a header but no data rows; {TABLE_FIX}")
    return frame


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
