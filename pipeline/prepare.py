"""DVC stage `prepare`: load or generate data, give every column its role, validate it, draw the splits
(tuning's and one per replicate) and fit each one's encoder on its training part."""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pandas as pd

from pipeline.data.cleaning import clean
from pipeline.data.encoder import Encoder
from pipeline.data.roles import role_table
from pipeline.data.sources import load_source
from pipeline.data.splits import split_indices
from pipeline.data.values import NUMBER_ROLES
from pipeline.project.artefacts import PrepareSummary, TimeBlock
from pipeline.project.layout import SPLITS, TUNING, Layout, replicate_names
from pipeline.project.params import PrepareParams, load_params
from pipeline.runtime.cli import stage_main
from pipeline.runtime.errors import DataError
from pipeline.runtime.outputs import staged

log = logging.getLogger("pipeline.prepare")


def run(params: PrepareParams, layout: Layout = Layout()) -> PrepareSummary:
    """Validate the source's rows and write them once, with the tuning split and one split per
    replicate, each with the encoder fitted on its training part; return the summary."""
    frame, source_hash = load_source(params)
    cleaned = clean(frame, params)
    columns, labels, decoded = cleaned.columns, cleaned.labels, cleaned.decoded
    log.info(
        "prepare: column roles (prepare.columns declares any of them)\n%s", "\n".join(role_table(columns, params.label))
    )
    names = [TUNING, *replicate_names(params.replicates)]
    times = decoded.numbers.get(params.split.time_column)  # seconds (date-times: since 1970)
    # Replicate r: seed prepare.seed + 1 + r (stratified), or time window r mod folds; tuning: window 0.
    parts = {
        name: split_indices(labels, params.split, params.seed + i, times, fold=max(0, i - 1))
        for i, name in enumerate(names)
    }
    encoders = {
        name: Encoder.fit(
            columns.features, columns.formats, decoded, parts[name]["train"], params.log1p, params.min_category_count
        )
        for name in names
    }
    first, tuning = parts[TUNING], encoders[TUNING]
    dates = columns.roles.get(params.split.time_column) == "datetime"
    summary = PrepareSummary(
        source=params.source,
        source_sha256=source_hash,
        label=params.label,
        features=tuning.features,
        n_features=len(tuning.features),
        split_method=params.split.method,
        dropped_nonfinite=cleaned.dropped_nonfinite,
        replicates=names[1:],
        redrawn=params.split.method == "stratified",
        folds=params.split.folds if params.split.method == "time" else 0,
        blocks=blocks(parts, labels, times, dates) if params.split.method == "time" else {},
        rows={s: int(first[s].size) for s in SPLITS},
        positives={s: int(labels[first[s]].sum()) for s in SPLITS},
        prevalence={s: round(float(np.mean(labels[first[s]])), 6) for s in SPLITS},
        params=params.model_dump(),
        amount=amount_column(cleaned.table, columns.roles, params.amount),
        roles=columns.roles,
        entity=columns.entity,
        inputs=tuning.scaler.features,
        # Every split's models share one architecture (one stack): each embedding has the rows of the largest
        # vocabulary among the splits' training parts; a split never uses the rows beyond its own.
        categories={c: max(e.table_sizes()[c] for e in encoders.values()) for c in tuning.categorical},
    )
    with staged(layout.prepared) as (tmp_dir,):
        (tmp_dir / "splits").mkdir(parents=True)
        (tmp_dir / "encoders").mkdir()
        table = cleaned.table.copy()  # as they came (validated): every split is rows of this one table
        table[params.label] = labels
        table.to_parquet(tmp_dir / layout.table.name, index=False)
        for name in names:
            np.savez(tmp_dir / "splits" / f"{name}.npz", **parts[name])
            encoders[name].save(tmp_dir / "encoders" / f"{name}.json")
        summary.write(tmp_dir / layout.prepare_summary.name)
    log.info(
        "prepared %s: %s rows, %s positives (train/val/test), the tuning split and %d replicate split(s)%s",
        params.source,
        "/".join(str(summary.rows[s]) for s in SPLITS),
        "/".join(str(summary.positives[s]) for s in SPLITS),
        params.replicates,
        "" if summary.redrawn else f" (by time: {params.split.folds} window(s), delay {params.split.delay})",
    )
    return summary


def amount_column(table: pd.DataFrame, roles: dict[str, str], name: str | None) -> str | None:
    """The amount column when the data has it (money metrics follow); its values must be amounts."""
    if name is None or name not in table.columns:
        if name is not None:
            log.info("prepare: no column %r: money metrics are off (set prepare.amount to the amount column)", name)
        return None
    if roles.get(name) not in NUMBER_ROLES:
        raise DataError(
            f"prepare.amount column '{name}' is {roles.get(name)}, not numbers; declare it numeric in "
            "prepare.columns, or set prepare.amount to another column or null"
        )
    negative = int((table[name] < 0).sum())
    if negative:
        raise DataError(
            f"prepare.amount column '{name}' holds {negative} negative values; "
            "money caught and missed need amounts >= 0: set prepare.amount to another column or null"
        )
    return name


def blocks(
    parts: dict[str, dict[str, np.ndarray]], labels: np.ndarray, times: np.ndarray, dates: bool
) -> dict[str, dict[str, TimeBlock]]:
    """Each time split's parts (gap included): rows, positives, the times they span (seconds) and the same
    as the time column reads them (a date-time, or a number of seconds)."""

    def text(value: float) -> str:
        return str(pd.Timestamp(value, unit="s")) if dates else f"{value:,.0f}"

    def block(rows: np.ndarray) -> TimeBlock:
        if not rows.size:
            return TimeBlock(rows=0, positives=0)
        start, end = float(times[rows].min()), float(times[rows].max())
        return TimeBlock(
            rows=int(rows.size),
            positives=int(labels[rows].sum()),
            start=start,
            end=end,
            start_text=text(start),
            end_text=text(end),
        )

    return {name: {part: block(rows) for part, rows in split.items()} for name, split in parts.items()}


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m pipeline.prepare [--params params.yaml]``."""

    def body(args: argparse.Namespace) -> object:
        return run(load_params(args.params).prepare)

    return stage_main("prepare", __doc__, argv, body)


if __name__ == "__main__":
    raise SystemExit(main())
