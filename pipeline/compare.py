"""Side-by-side table of one pipeline execution, read from MLflow.

``python -m pipeline.compare [--group GROUP]``: models as columns (variants pooled over seeds,
reference models beside them), key metrics as rows, mean ± standard deviation over seeds. Each
model counts once: its newest FINISHED run in the group (re-runs replace, they do not add seeds).
Losses are the kept (best validation AP) epoch's, not the last epoch's.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.analysis.statistics import mean_sd
from pipeline.project.layout import variant_of
from pipeline.project.params import load_params
from pipeline.runtime.cli import run_stage
from pipeline.runtime.errors import StageError
from pipeline.tracking import runs, store
from pipeline.tracking.keys import GROUP, MODEL, ROLE, VARIANT

ROWS = (
    "test_ap",
    "test_precision",
    "test_recall",
    "test_f1",
    "test_roc_auc",
    "test_accuracy",
    "threshold",
    "best_val_ap",
    "best_epoch",
    "train_loss at best epoch",
    "val_loss at best epoch",
    "seconds per epoch",
)


def latest_group(experiment: str) -> str:
    """The group of the most recently started model run."""
    latest = runs.search(experiment, f"tags.`{ROLE}` = 'model'", order_by=["attributes.start_time DESC"], max_results=1)
    if not latest:
        raise StageError(
            f"no model runs in MLflow experiment '{experiment}' at {store.tracking_uri()}; "
            "run the pipeline first (dvc repro)"
        )
    return latest[0].data.tags[GROUP]


def newest_finished(found: Iterable[Any]) -> tuple[list[Any], list[Any], int]:
    """Per model name: the newest FINISHED run. Returns (kept, failed models' newest runs, ignored count)."""
    by_model: dict[str, list[Any]] = {}
    for run in found:
        by_model.setdefault(run.data.tags.get(MODEL, run.info.run_name), []).append(run)
    kept, failed, ignored = [], [], 0
    for versions in by_model.values():
        versions.sort(key=lambda r: r.info.start_time, reverse=True)
        finished = [r for r in versions if r.info.status == "FINISHED"]
        if finished:
            kept.append(finished[0])
            ignored += len(versions) - 1
        else:
            failed.append(versions[0])
            ignored += len(versions) - 1
    return kept, failed, ignored


def _cells(run: Any) -> dict[str, float]:
    metrics = dict(run.data.metrics)
    if run.data.tags.get(ROLE) == "model" and "best_epoch" in metrics:
        epoch = int(metrics["best_epoch"])
        for key in ("train_loss", "val_loss"):
            values = dict(runs.metric_steps(run.info.run_id, key))
            if epoch in values:
                metrics[f"{key} at best epoch"] = values[epoch]
        seconds = [v for _, v in runs.metric_steps(run.info.run_id, "epoch_seconds")]
        if seconds:
            metrics["seconds per epoch"] = float(pd.Series(seconds).median())
    return metrics


def _cell(values: list[float], n: int) -> str:
    """mean ± sd, saying how many runs it covers when some lack the metric (e.g. not evaluated yet)."""
    return mean_sd(values) + (f" (n={len(values)})" if values and len(values) < n else "")


def comparison(experiment: str, group: str) -> tuple[pd.DataFrame, list[str]]:
    """Key metrics (rows) by variant or reference model (columns), and notes on what was left out."""
    query = f"tags.`{GROUP}` = '{group}'"
    found = [r for r in runs.search(experiment, query) if r.data.tags.get(ROLE) in {"model", "reference"}]
    if not found:
        raise StageError(f"no runs in group '{group}' of experiment '{experiment}'")
    kept, failed, ignored = newest_finished(found)
    columns: dict[str, list[dict[str, float]]] = {}
    for run in kept:
        tags = run.data.tags
        column = tags.get(VARIANT) if tags.get(ROLE) == "model" else variant_of(tags[MODEL])  # pooled over replicates
        columns.setdefault(column, []).append(_cells(run))
    variants = {run.data.tags.get(VARIANT) for run in kept if run.data.tags.get(ROLE) == "model"}
    order = sorted(columns, key=lambda c: (c not in variants, c))  # the variants, then the reference models
    table = {
        f"{c} (n={len(columns[c])})": {
            key: _cell([m[key] for m in columns[c] if key in m], len(columns[c])) for key in ROWS
        }
        for c in order
    }
    notes = []
    if ignored:
        notes.append(
            f"{ignored} older run(s) of the same models ignored: each model counts once, its newest FINISHED run."
        )
    if failed:
        notes.append("no FINISHED run for: " + ", ".join(sorted(r.info.run_name for r in failed)))
    return pd.DataFrame(table), notes


def run(experiment: str, group: str | None = None) -> str:
    """The rendered comparison of one group (the latest when none is given).

    Under `mlflow run` (the MLproject's main entry point ends with this command) the launcher run
    is filed in the group and keeps the comparison as its artifact `comparison.txt`.
    """
    group = group or latest_group(experiment)
    frame, notes = comparison(experiment, group)
    header = f"MLflow experiment '{experiment}', pipeline group {group} ({store.tracking_uri()})"
    text = "\n".join([header, frame.to_string(), *notes]) + "\n"
    if runs.adopt_launcher(group):
        runs.log_text(os.environ["MLFLOW_RUN_ID"], text, "comparison.txt")
    return text


def main(argv: list[str] | None = None) -> int:
    """Command line: print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--experiment", help="MLflow experiment (default: mlflow.experiment in params.yaml)")
    parser.add_argument("--group", help="pipeline group id (default: the latest execution)")
    args = parser.parse_args(argv)

    def body() -> None:
        experiment = args.experiment or load_params(args.params).mlflow.experiment
        print(run(experiment, args.group), end="")

    return run_stage("compare", body)


if __name__ == "__main__":
    raise SystemExit(main())
