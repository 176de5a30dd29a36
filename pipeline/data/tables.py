"""Users' table files: which suffixes are tables, header checks, and reading them whole."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow
import pyarrow.parquet

from pipeline.runtime.errors import DataError

COMPRESSIONS = (".gz", ".bz2", ".zip", ".xz", ".zst")  # what pandas decompresses by suffix
KIND_NAMES = {"csv": "CSV", "parquet": "Parquet"}
UNNAMED = re.compile(r"^(Unnamed: \d+|__index_level_\d+__|)$")  # index columns written by pandas


def table_kind(path: str | Path) -> str | None:
    """'csv' for .csv and compressed .csv.gz/.bz2/.zip/.xz/.zst, 'parquet' for .parquet, else None."""
    name = Path(path).name.lower()
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".csv") or any(name.endswith(".csv" + c) for c in COMPRESSIONS):
        return "csv"
    return None


TABLE_FIX = ("set prepare.source to an existing .csv (or compressed: .csv.gz, .csv.zip, .csv.bz2, .csv.xz, "
             ".csv.zst) or .parquet file, or to 'synthetic'")


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
                    raise DataError(f"{path}: looks {word}-delimited (one column '{names[0][:30]}...'); save it "
                                    f"comma-separated, e.g. pd.read_csv(path, sep='{shown}').to_csv(new_path, "
                                    "index=False)")
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise DataError(f"{path}: column name(s) {', '.join(duplicated)} appear more than once; rename or "
                        "drop the duplicates so each column has one name")


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
    except (pd.errors.ParserError, UnicodeDecodeError, pyarrow.ArrowException, OSError, EOFError,
            zipfile.BadZipFile) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: cannot be read as {KIND_NAMES[kind]} (corrupt or truncated file?): {reason}; re-export "
                        f"or re-download it, or point prepare.source at another copy") from None
    frame = frame.drop(columns=[c for c in frame.columns if UNNAMED.match(str(c))])
    if frame.empty:
        raise DataError(f"{path}: has a header but no data rows; {TABLE_FIX}")
    return frame


