"""DVC stage `select`: each variant's learning rate, chosen on validation from its tuning models.

Every variant tried the same grid (train.lr) on the same tuning seeds (train.tune_seeds). For each
(variant, lr) the score is the mean over tuning seeds of the best validation AP of the run (the
AP of the kept weights, in eval mode); the highest wins, the smaller lr on a tie. Test data never
takes part. Writes tuning/chosen/<variant>.json (only the choice: when adding a grid value does
not change it, no compared model retrains) and tuning/selection.json (the whole grid).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from pipeline.project.config import TrainParams
from pipeline.project.layout import Layout, RunInfo, lr_text, model_name, read_history
from pipeline.runtime.cli import stage_main
from pipeline.runtime.errors import StageError
from pipeline.runtime.outputs import staged, write_json
from pipeline.tracking import runs
from pipeline.tracking.tags import SELECTED

log = logging.getLogger("pipeline.select")


def grid(train: TrainParams, layout: Layout) -> dict[str, dict[str, Any]]:
    """Per variant and learning rate: the best validation AP of each tuning seed, their mean and sd;
    a grid point where any seed diverged has no score."""
    out: dict[str, dict[str, Any]] = {}
    for variant in train.variants:
        out[variant] = {}
        for lr in train.lr:
            best, diverged = {}, {}
            for seed in train.tune_seeds:
                name = model_name(variant, seed, lr)
                info = RunInfo.read(layout, name, tuning=True)
                if info.diverged_at is not None:
                    diverged[str(seed)] = info.diverged_at
                else:
                    best[str(seed)] = float(read_history(layout, name, tuning=True)["val_ap"].max())
            values = list(best.values())
            scored = bool(values) and not diverged
            out[variant][lr_text(lr)] = {
                "lr": lr, "val_ap_by_seed": best, "diverged_at_epoch_by_seed": diverged,
                "val_ap_mean": float(np.mean(values)) if scored else None,
                "val_ap_sd": float(np.std(values, ddof=1)) if scored and len(values) > 1 else None}
    return out


def choose(variant: str, settings: dict[str, Any]) -> float:
    """The learning rate with the best mean validation AP (the smaller one on a tie); grid points
    where a seed diverged are never chosen."""
    scored = [s for s in settings.values() if s["val_ap_mean"] is not None]
    if not scored:
        raise StageError(f"every learning rate in train.lr diverged for {variant} on some tuning seed; "
                         "add smaller values to train.lr")
    return float(max(scored, key=lambda s: (s["val_ap_mean"], -s["lr"]))["lr"])


def run(train: TrainParams, layout: Layout = Layout(), track: bool = True) -> dict[str, float]:
    """Choose every variant's learning rate; write the choices and the grid; tag the tuning runs."""
    table = grid(train, layout)
    chosen = {variant: choose(variant, settings) for variant, settings in table.items()}
    edges = {v: lr for v, lr in chosen.items() if len(train.lr) > 1 and lr in (min(train.lr), max(train.lr))}
    with staged(layout.chosen, layout.selection) as (tmp_chosen, tmp_selection):
        tmp_chosen.mkdir()
        for variant, lr in chosen.items():
            write_json(tmp_chosen / layout.chosen_setting(variant).name, {"lr": lr})
        write_json(tmp_selection, {"grid": table, "chosen": chosen, "at_grid_edge": edges,
                                   "tune_seeds": list(train.tune_seeds), "criterion": "mean best val_ap"})
    if track:
        _tag_runs(train, layout, chosen)
    for variant, lr in chosen.items():
        log.info("select[%s] lr %g (mean validation AP %.3f over tuning seeds %s)%s", variant, lr,
                 table[variant][lr_text(lr)]["val_ap_mean"], list(train.tune_seeds),
                 "  AT THE GRID EDGE: extend train.lr" if variant in edges else "")
    return chosen


def _tag_runs(train: TrainParams, layout: Layout, chosen: dict[str, float]) -> None:
    """`pipeline.selected` on every tuning run: true for the chosen learning rate of its variant."""
    for variant in train.variants:
        for lr in train.lr:
            for seed in train.tune_seeds:
                info = RunInfo.read(layout, model_name(variant, seed, lr), tuning=True)
                if info.run_id:
                    runs.set_tag(info.run_id, SELECTED, str(lr == chosen[variant]).lower())


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m pipeline.select [--params params.yaml]``."""
    return stage_main("select", __doc__, argv, lambda params, args: run(params.train))


if __name__ == "__main__":
    raise SystemExit(main())
