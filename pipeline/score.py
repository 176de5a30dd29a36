"""Score raw transactions with a logged model: ``python -m pipeline.score --model URI --input FILE
--output FILE.parquet``.

The model is any MLflow URI of a model this pipeline logged (``models:/bn-fraud@champion``,
``runs:/<run>/model``, ``models:/<model id>``). The input is CSV (plain or compressed) or Parquet,
read and scored in chunks, so memory does not grow with the file. The output (Parquet) has one row
per scored input row: ``row`` (its 0-based position in the input), any ``--keep`` columns, then
``fraud_probability`` and ``fraud`` (0/1 at the threshold chosen on validation). It is written to a
temporary file and renamed only when every row was scored: bad input leaves no output.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.data.sources import KIND_NAMES, check_header
from pipeline.project.params import table_kind
from pipeline.runtime.cli import run_stage
from pipeline.runtime.errors import DataError
from pipeline.serving.pyfunc import fraud_scorer
from pipeline.serving.scorer import FraudScorer, ScoringError
from pipeline.tracking.lifecycle import load_model

log = logging.getLogger("pipeline.score")
CHUNK_ROWS = 200_000


def load_scorer(uri: str) -> FraudScorer:
    """The scorer inside a logged model (its network, encoder, threshold and policy)."""
    return fraud_scorer(load_model(uri), uri)


def check_input(path: Path) -> str:
    """Fail before loading the model when the input is missing, empty, of an unknown type or has a
    header pandas would mangle; return its kind ('csv' or 'parquet')."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty; nothing to score")
    kind = table_kind(path)
    if kind is None:
        raise DataError(f"{path}: unknown file type; give a .csv (or .csv.gz, .csv.zip, ...) or .parquet file")
    try:
        check_header(path, kind)
    except (
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        pa.ArrowException,
        UnicodeDecodeError,
        OSError,
        EOFError,
    ) as exc:
        raise DataError(
            f"{path}: cannot be read as {KIND_NAMES[kind]} (corrupt or truncated file?): "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    return kind


def chunks(path: Path, rows: int) -> Iterator[pd.DataFrame]:
    """The input file, ``rows`` rows at a time (CSV, compressed CSV or Parquet)."""
    kind = check_input(path)
    try:
        if kind == "parquet":
            for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
                yield batch.to_pandas()
        else:
            yield from pd.read_csv(path, chunksize=rows, low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, pa.ArrowException, UnicodeDecodeError) as exc:
        raise DataError(
            f"{path}: cannot be read as {KIND_NAMES[kind]} "
            f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        ) from None


def prefetched(items: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """The same chunks, the next one read in a thread while this one is scored (reading and
    parsing release the GIL); an error reading is raised here, in order."""
    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(next, items, None)
        while (chunk := pending.result()) is not None:
            pending = reader.submit(next, items, None)
            yield chunk


def score_file(
    scorer: FraudScorer, source: Path, target: Path, keep: list[str] | None = None, rows: int = CHUNK_ROWS
) -> int:
    """Score every row of ``source`` into ``target`` (Parquet); return the rows written."""
    keep = keep or []
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    writer, written, seen, dropped = None, 0, 0, 0
    progress = _progress(source)
    try:
        for chunk in prefetched(chunks(source, rows)):
            if chunk.empty:  # a header-only file: its empty chunk has no dtypes to check
                continue
            chunk.index = pd.RangeIndex(seen, seen + len(chunk))  # each row's position in the file
            missing = [c for c in keep if c not in chunk.columns]
            if missing:
                raise DataError(f"--keep names columns not in the input: {', '.join(missing)}")
            try:
                scored = scorer.score(chunk)
            except ScoringError as exc:
                raise ScoringError(f"{source} (rows {seen:,} to {seen + len(chunk) - 1:,}): {exc}") from None
            out = pd.concat(
                [pd.DataFrame({"row": scored.index}, index=scored.index), chunk.loc[scored.index, keep], scored], axis=1
            )
            table = pa.Table.from_pandas(out.reset_index(drop=True), preserve_index=False)
            # dictionary encoding only where it pays (copied columns): on probabilities it costs 3x the time
            writer = writer or pq.ParquetWriter(partial, table.schema, use_dictionary=list(keep))
            writer.write_table(table)
            written, seen, dropped = written + len(out), seen + len(chunk), dropped + len(chunk) - len(out)
            progress(len(chunk))
        if seen == 0:
            raise DataError(f"{source}: has a header but no rows; nothing to score")
        writer.close()
        writer = None
        os.replace(partial, target)
    finally:
        if writer is not None:
            writer.close()
        partial.unlink(missing_ok=True)
    if dropped:
        log.warning("score: skipped %d rows with NaN or infinite values (the model's non-finite policy: drop)", dropped)
    return written


def _progress(source: Path) -> Callable[[int], object]:
    """A progress bar over rows on a terminal; nothing otherwise."""
    if not sys.stderr.isatty():
        return lambda n: None
    from tqdm import tqdm

    bar = tqdm(desc=f"score {source.name}", unit=" rows", unit_scale=True, file=sys.stderr)
    return bar.update


def run(model: str, source: Path, target: Path, keep: list[str] | None = None, rows: int = CHUNK_ROWS) -> int:
    """Load the model, score the file, report."""
    check_input(source)
    scorer = load_scorer(model)
    written = score_file(scorer, source, target, keep, rows)
    log.info("score: %d rows scored by %s (threshold %.3g) into %s", written, model, scorer.threshold, target)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.score", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="e.g. models:/bn-fraud@champion")
    parser.add_argument("--input", required=True, type=Path, help="CSV (also .csv.gz, ...) or Parquet")
    parser.add_argument("--output", required=True, type=Path, help="Parquet file to write")
    parser.add_argument("--keep", action="append", default=[], help="an input column to copy to the output")
    parser.add_argument("--chunk-rows", type=int, default=CHUNK_ROWS, help="rows read and scored at a time")
    args = parser.parse_args(argv)
    return run_stage("score", lambda: run(args.model, args.input, args.output, args.keep, args.chunk_rows))


if __name__ == "__main__":
    raise SystemExit(main())
