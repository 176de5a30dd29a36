"""DVC stage `prepare`: load or generate data, validate, split, scale, write Parquet splits."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.cli import stage_main
from pipeline.config import PrepareParams
from pipeline.data import Scaler, clean, file_sha256, frame_sha256, split_indices, \
    synthetic_transactions
from pipeline.layout import SPLITS, Layout
from pipeline.outputs import staged, write_json
from pipeline.tables import read_table

log = logging.getLogger("pipeline.prepare")


def run(params: PrepareParams, layout: Layout = Layout()) -> dict[str, Any]:
    """Build the train/val/test splits and the fitted scaler; return the summary."""
    if params.source == "synthetic":
        frame = synthetic_transactions(params.synthetic.rows, params.synthetic.fraud_rate, params.seed)
        source_hash = frame_sha256(frame)
    else:
        path = Path(params.source)
        frame = read_table(path)
        source_hash = file_sha256(path)
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
