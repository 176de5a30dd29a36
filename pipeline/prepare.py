"""DVC stage `prepare`: load or generate data, validate, split, scale, write Parquet splits."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from pipeline.data.cleaning import clean
from pipeline.data.scaler import Scaler
from pipeline.data.sources import load_source
from pipeline.data.splits import split_indices
from pipeline.project.config import PrepareParams
from pipeline.project.layout import SPLITS, Layout
from pipeline.runtime.cli import stage_main
from pipeline.runtime.outputs import staged, write_json

log = logging.getLogger("pipeline.prepare")


def run(params: PrepareParams, layout: Layout = Layout()) -> dict[str, Any]:
    """Build the train/val/test splits and the fitted scaler; return the summary."""
    frame, source_hash = load_source(params)
    cleaned = clean(frame, params.label, params.nonfinite, params.drop_columns, params.log1p)
    features, labels = cleaned.features, cleaned.labels
    times = None
    if params.split.time_column in features.columns:
        times = features[params.split.time_column].to_numpy()
    parts = split_indices(labels, params.split, params.seed, times)
    scaler = Scaler.fit(features, params.log1p, rows=parts["train"])

    summary: dict[str, Any] = {
        "source": params.source,
        "source_sha256": source_hash,
        "label": params.label,
        "features": scaler.features,
        "n_features": len(scaler.features),
        "split_method": params.split.method,
        "dropped_nonfinite": cleaned.dropped_nonfinite,
        "rows": {}, "positives": {}, "prevalence": {},
        "params": params.model_dump(),
    }
    with staged(layout.prepared) as (tmp_dir,):
        tmp_dir.mkdir()
        for name in SPLITS:
            rows = parts[name]
            split = scaler.transform(features, rows)
            split[params.label] = labels[rows]
            split.to_parquet(tmp_dir / f"{name}.parquet", index=False)
            summary["rows"][name] = int(rows.size)
            summary["positives"][name] = int(labels[rows].sum())
            summary["prevalence"][name] = round(float(np.mean(labels[rows])), 6)
        raw_test = features.iloc[parts["test"]].reset_index(drop=True)  # as they came: what a scorer is given
        raw_test[params.label] = labels[parts["test"]]
        raw_test.to_parquet(tmp_dir / layout.raw_test.name, index=False)
        scaler.save(tmp_dir / "scaler.json")
        write_json(tmp_dir / layout.prepare_summary.name, summary)
    log.info("prepared %s: %s rows, %s positives (train/val/test)", params.source,
             "/".join(str(summary["rows"][s]) for s in SPLITS),
             "/".join(str(summary["positives"][s]) for s in SPLITS))
    return summary


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m pipeline.prepare [--params params.yaml]``."""
    return stage_main("prepare", __doc__, argv, lambda params, args: run(params.prepare))


if __name__ == "__main__":
    raise SystemExit(main())
