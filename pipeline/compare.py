"""Side-by-side table of the latest pipeline execution, read from MLflow.

``python -m pipeline.compare [--group GROUP]``: models as columns (variants pooled over seeds,
reference models beside them), key metrics as rows, mean ± standard deviation over seeds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from pipeline import tracking
from pipeline.analysis import mean_sd
from pipeline.cli import run_stage
from pipeline.config import load_params
from pipeline.errors import StageError

ROWS = ("test_ap", "test_precision", "test_recall", "test_f1", "test_roc_auc", "test_mcc", "test_accuracy",
        "threshold", "best_val_ap", "best_epoch", "train_loss", "val_loss", "epoch_seconds")


def latest_group(experiment: str) -> str:
    """The group of the most recently started model run."""
    runs = tracking.search(experiment, f"tags.`{tracking.ROLE}` = 'model'", order_by=["attributes.start_time DESC"],
                           max_results=1)
    if not runs:
        raise StageError(f"no model runs in MLflow experiment '{experiment}' at {tracking.tracking_uri()}; "
                         "run the pipeline first (dvc repro)")
    return runs[0].data.tags[tracking.GROUP]


def comparison(experiment: str, group: str) -> pd.DataFrame:
    """Key metrics (rows) by variant or reference model (columns), mean ± sd over seeds."""
    query = f"tags.`{tracking.GROUP}` = '{group}' and tags.`{tracking.ROLE}` != 'parent'"
    runs = [r for r in tracking.search(experiment, query) if r.data.tags.get(tracking.ROLE) in {"model", "reference"}]
    if not runs:
        raise StageError(f"no runs in group '{group}' of experiment '{experiment}'")
    columns: dict[str, list] = {}
    for run in runs:
        tags = run.data.tags
        column = tags.get("pipeline.variant") if tags.get(tracking.ROLE) == "model" else tags[tracking.MODEL]
        columns.setdefault(column, []).append(run)
    order = [c for c in ("batchnorm", "baseline") if c in columns] + sorted(c for c in columns
                                                                             if c not in ("batchnorm", "baseline"))
    table = {}
    for column in order:
        cells = {}
        failed = sum(r.info.status == "FAILED" for r in columns[column])
        for key in ROWS:
            values = [r.data.metrics[key] for r in columns[column] if key in r.data.metrics]
            cells[key] = mean_sd(values) + (f" ({failed} failed)" if failed and key == ROWS[0] else "")
        label = f"{column} (n={len(columns[column])})"
        table[label] = cells
    return pd.DataFrame(table)


def run(experiment: str, group: str | None = None) -> str:
    """The rendered comparison of one group (the latest when none is given)."""
    group = group or latest_group(experiment)
    frame = comparison(experiment, group)
    header = f"MLflow experiment '{experiment}', pipeline group {group} ({tracking.tracking_uri()})"
    return header + "\n" + frame.to_string() + "\n"


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
