"""DVC stage `prepare`: load or generate data, give every column its role, validate it, draw the splits
(tuning's and one per replicate) and fit each one's encoder on its training part."""

from __future__ import annotations

import argparse
import logging
from functools import partial

import numpy as np
import pandas as pd

from pipeline.data.cleaning import inspect_rows
from pipeline.data.encoder import Encoder
from pipeline.data.roles import role_table
from pipeline.data.sources import load_source
from pipeline.data.splits import split_indices
from pipeline.data.values import Decoded
from pipeline.project.artefacts import Coverage, PrepareSummary, TimeBlock
from pipeline.project.layout import SPLITS, TUNING, Layout, replicate_names
from pipeline.project.params import PrepareParams, load_params
from pipeline.runtime.cli import stage_main
from pipeline.runtime.errors import Problems
from pipeline.runtime.outputs import staged

log = logging.getLogger("pipeline.prepare")


def run(params: PrepareParams, layout: Layout = Layout()) -> PrepareSummary:
    """Validate the source's rows and write them once, with the tuning split and one split per
    replicate, each with the encoder fitted on its training part; return the summary."""
    frame, source_hash = load_source(params)
    names = [TUNING, *replicate_names(params.replicates)]
    inspection = inspect_rows(frame, params)
    if inspection.problems.found:  # the splits' problems too, where the labels alone tell them
        kept = inspection.kept_labels()
        if kept is not None and params.split.method == "stratified" and set(np.unique(kept)) == {0, 1}:
            split_all(kept.astype(np.int8), params, None, names, inspection.problems)
    cleaned = inspection.cleaned()
    columns, labels, decoded = cleaned.columns, cleaned.labels, cleaned.decoded
    log.info(
        "prepare: column roles (prepare.columns declares any of them)\n%s", "\n".join(role_table(columns, params.label))
    )
    if columns.amount is None and params.amount is not None:
        log.info(
            "prepare: no column %r nor one named like an amount: money metrics are off (set prepare.amount to the "
            "amount column)",
            params.amount,
        )
    if columns.time is None:
        log.info("prepare: no time column: %s (daily alert budgets are off)", columns.no_time)
    times = decoded.numbers[columns.time] if columns.time is not None else None  # seconds (date-times: since 1970)
    problems = Problems()
    splits = split_all(labels, params, times, names, problems)
    problems.raise_any()
    encoders = {
        name: Encoder.fit(
            columns.features,
            columns.formats,
            decoded,
            splits[name]["train"],
            columns.log1p,
            params.min_category_count,
            columns.date_only,
            columns.anchors,
            impute=params.nonfinite == "impute",
        )
        for name in names
    }
    first, tuning = splits[TUNING], encoders[TUNING]
    dates = columns.roles.get(columns.time or "") == "datetime"
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
        blocks=blocks(splits, labels, times, dates) if params.split.method == "time" and times is not None else {},
        rows={s: int(first[s].size) for s in SPLITS},
        positives={s: int(labels[first[s]].sum()) for s in SPLITS},
        prevalence={s: round(float(np.mean(labels[first[s]])), 6) for s in SPLITS},
        params=params.model_dump(),
        amount=columns.amount,
        time_column=columns.time,
        inferred=columns.inferred,
        log1p=columns.log1p,
        roles=columns.roles,
        entity=columns.entity,
        inputs=tuning.scaler.features,
        # Every split's models share one architecture (one stack): each embedding has the rows of the largest
        # vocabulary among the splits' training parts; a split never uses the rows beyond its own.
        categories={c: max(e.table_sizes()[c] for e in encoders.values()) for c in tuning.categorical},
        coverage={
            name: Coverage(values=values, kept=kept, other=round(other, 6))
            for name, (values, kept, other) in tuning.coverage(decoded, first["train"]).items()
        },
        imputed=imputed_cells(tuning, decoded, first),
    )
    if summary.imputed:
        log.info(
            "prepare: imputed missing or infinite cells with the training part's median (train/val/test of the "
            "tuning split): %s",
            ", ".join(f"{c} {'/'.join(str(by_part[p]) for p in SPLITS)}" for c, by_part in summary.imputed.items()),
        )
    with staged(layout.prepared) as (tmp_dir,):
        (tmp_dir / "splits").mkdir(parents=True)
        (tmp_dir / "encoders").mkdir()
        table = cleaned.table.copy()  # as they came (validated): every split is rows of this one table
        table[params.label] = labels
        table.to_parquet(tmp_dir / layout.table.name, index=False)
        for name in names:
            np.savez(tmp_dir / "splits" / f"{name}.npz", **splits[name])
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


def imputed_cells(encoder: Encoder, decoded: Decoded, parts: dict[str, np.ndarray]) -> dict[str, dict[str, int]]:
    """The cells an imputing encoder fills in each part, per column (the columns with any); none without an
    imputer."""
    if encoder.imputer is None:
        return {}
    gaps = {part: encoder.gaps(decoded, parts[part]) for part in SPLITS}
    columns = dict.fromkeys(name for counts in gaps.values() for name in counts)
    return {name: {part: gaps[part].get(name, 0) for part in SPLITS} for name in columns}


def split_all(
    labels: np.ndarray, params: PrepareParams, times: np.ndarray | None, names: list[str], problems: Problems
) -> dict[str, dict[str, np.ndarray]]:
    """Every split's parts: replicate r seeded by prepare.seed + 1 + r (stratified), or time window r mod folds;
    tuning by prepare.seed, window 0. A split that cannot be drawn is a problem (and absent)."""
    parts = {
        name: problems.collect(partial(split_indices, labels, params.split, params.seed + i, times, max(0, i - 1)))
        for i, name in enumerate(names)
    }
    return {name: rows for name, rows in parts.items() if rows is not None}


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
