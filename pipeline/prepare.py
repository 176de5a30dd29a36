"""DVC stage `prepare`: load or generate data, validate it, draw the splits (tuning's and one per
replicate) and fit each one's scaler on its training part."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from pipeline.data.cleaning import clean
from pipeline.data.scaler import Scaler
from pipeline.data.sources import load_source
from pipeline.data.splits import as_seconds, split_indices
from pipeline.project.config import PrepareParams
from pipeline.project.layout import SPLITS, TUNING, Layout, replicate_names
from pipeline.runtime.cli import stage_main
from pipeline.runtime.errors import DataError
from pipeline.runtime.outputs import staged, write_json

log = logging.getLogger("pipeline.prepare")


def run(params: PrepareParams, layout: Layout = Layout()) -> dict[str, Any]:
    """Validate the source's rows and write them once, with the tuning split and one split per
    replicate, each with the scaler fitted on its training part; return the summary."""
    frame, source_hash = load_source(params)
    cleaned = clean(frame, params.label, params.nonfinite, params.drop_columns, params.log1p)
    features, labels = cleaned.features, cleaned.labels
    column = params.split.time_column
    times = as_seconds(features[column].to_numpy()) if column in features.columns else None
    names = [TUNING, *replicate_names(params.replicates)]
    # Replicate r: seed prepare.seed + 1 + r (stratified), or time window r mod folds; tuning: window 0.
    parts = {name: split_indices(labels, params.split, params.seed + i, times, fold=max(0, i - 1))
             for i, name in enumerate(names)}
    scalers = {name: Scaler.fit(features, params.log1p, rows=parts[name]["train"]) for name in names}
    first = parts[TUNING]
    summary: dict[str, Any] = {
        "source": params.source, "source_sha256": source_hash, "label": params.label,
        "features": scalers[TUNING].features, "n_features": len(scalers[TUNING].features),
        "split_method": params.split.method, "dropped_nonfinite": cleaned.dropped_nonfinite,
        "replicates": names[1:], "redrawn": params.split.method == "stratified",
        "folds": params.split.folds if params.split.method == "time" else 0,
        "blocks": (blocks(parts, labels, times, np.issubdtype(features[column].dtype, np.datetime64))
                   if params.split.method == "time" else {}),
        "rows": {s: int(first[s].size) for s in SPLITS},
        "positives": {s: int(labels[first[s]].sum()) for s in SPLITS},
        "prevalence": {s: round(float(np.mean(labels[first[s]])), 6) for s in SPLITS},
        "params": params.model_dump(),
        "amount": amount_column(features, params.amount),
    }
    with staged(layout.prepared) as (tmp_dir,):
        (tmp_dir / "splits").mkdir(parents=True)
        (tmp_dir / "scalers").mkdir()
        table = features.copy()  # as they came (validated): every split is rows of this one table
        table[params.label] = labels
        table.to_parquet(tmp_dir / layout.table.name, index=False)
        for name in names:
            np.savez(tmp_dir / "splits" / f"{name}.npz", **parts[name])
            scalers[name].save(tmp_dir / "scalers" / f"{name}.json")
        write_json(tmp_dir / layout.prepare_summary.name, summary)
    log.info("prepared %s: %s rows, %s positives (train/val/test), the tuning split and %d replicate split(s)%s",
             params.source, "/".join(str(summary["rows"][s]) for s in SPLITS),
             "/".join(str(summary["positives"][s]) for s in SPLITS), params.replicates,
             "" if summary["redrawn"] else f" (by time: {params.split.folds} window(s), delay {params.split.delay})")
    return summary


def amount_column(features: pd.DataFrame, name: str | None) -> str | None:
    """The amount column when the data has it (money metrics follow); its values must be amounts."""
    if name is None or name not in features.columns:
        if name is not None:
            log.info("prepare: no column %r: money metrics are off (set prepare.amount to the amount column)", name)
        return None
    if (features[name] < 0).any():
        raise DataError(f"prepare.amount column '{name}' holds {int((features[name] < 0).sum())} negative values; "
                        "money caught and missed need amounts >= 0: set prepare.amount to another column or null")
    return name


def blocks(parts: dict[str, dict[str, np.ndarray]], labels: np.ndarray, times: np.ndarray,
           dates: bool) -> dict[str, Any]:
    """Each time split's parts (gap included): rows, positives, the times they span (seconds) and
    the same as the time column reads them (a date-time, or a number of seconds)."""
    def text(value: float) -> str:
        return str(pd.Timestamp(value, unit="s")) if dates else f"{value:,.0f}"

    def block(rows: np.ndarray) -> dict[str, Any]:
        out: dict[str, Any] = {"rows": int(rows.size), "positives": int(labels[rows].sum())}
        if rows.size:
            start, end = float(times[rows].min()), float(times[rows].max())
            out.update(start=start, end=end, start_text=text(start), end_text=text(end))
        return out

    return {name: {part: block(rows) for part, rows in split.items()} for name, split in parts.items()}


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m pipeline.prepare [--params params.yaml]``."""
    return stage_main("prepare", __doc__, argv, lambda params, args: run(params.prepare))


if __name__ == "__main__":
    raise SystemExit(main())
