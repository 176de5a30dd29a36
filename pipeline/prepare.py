"""DVC stage `prepare`: load or generate data, validate it, draw the splits (tuning's and one per
replicate) and fit each one's scaler on its training part."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from pipeline.data.cleaning import clean
from pipeline.data.scaler import Scaler
from pipeline.data.sources import load_source
from pipeline.data.splits import split_indices
from pipeline.project.config import PrepareParams
from pipeline.project.layout import SPLITS, TUNING, Layout, replicate_names
from pipeline.runtime.cli import stage_main
from pipeline.runtime.outputs import staged, write_json

log = logging.getLogger("pipeline.prepare")


def run(params: PrepareParams, layout: Layout = Layout()) -> dict[str, Any]:
    """Validate the source's rows and write them once, with the tuning split and one split per
    replicate, each with the scaler fitted on its training part; return the summary."""
    frame, source_hash = load_source(params)
    cleaned = clean(frame, params.label, params.nonfinite, params.drop_columns, params.log1p)
    features, labels = cleaned.features, cleaned.labels
    times = features[params.split.time_column].to_numpy() if params.split.time_column in features.columns else None
    names = [TUNING, *replicate_names(params.replicates)]
    parts = {name: split_indices(labels, params.split, params.seed + i, times) for i, name in enumerate(names)}
    scalers = {name: Scaler.fit(features, params.log1p, rows=parts[name]["train"]) for name in names}
    first = parts[TUNING]
    summary: dict[str, Any] = {
        "source": params.source, "source_sha256": source_hash, "label": params.label,
        "features": scalers[TUNING].features, "n_features": len(scalers[TUNING].features),
        "split_method": params.split.method, "dropped_nonfinite": cleaned.dropped_nonfinite,
        "replicates": names[1:], "redrawn": params.split.method == "stratified",
        "rows": {s: int(first[s].size) for s in SPLITS},
        "positives": {s: int(labels[first[s]].sum()) for s in SPLITS},
        "prevalence": {s: round(float(np.mean(labels[first[s]])), 6) for s in SPLITS},
        "params": params.model_dump(),
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
             "" if summary["redrawn"] else " (a time split: every replicate has the same rows)")
    return summary


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m pipeline.prepare [--params params.yaml]``."""
    return stage_main("prepare", __doc__, argv, lambda params, args: run(params.prepare))


if __name__ == "__main__":
    raise SystemExit(main())
