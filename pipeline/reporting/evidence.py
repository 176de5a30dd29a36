"""The evidence behind the report: the outputs of prepare, tune/select, train and evaluate, read once,
and the readings of it that sections and claims share."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score

from pipeline.project.config import Params
from pipeline.project.layout import (
    SPLITS,
    Layout,
    PrepareSummary,
    RunInfo,
    load_split,
    model_name,
    read_history,
    read_model_metrics,
    read_scores,
    read_selection,
)
from pipeline.project.variants import BASELINE


@dataclass
class Evidence:
    """Everything the report is built from: the outputs of prepare, tune/select, train and evaluate."""

    params: Params
    summary: PrepareSummary
    histories: dict[str, dict[int, pd.DataFrame]]  # variant -> seed -> history of a compared model
    metrics: dict[str, dict[str, Any]]  # compared or reference model -> evaluation metrics
    scores: dict[str, pd.DataFrame]  # compared or reference model -> split, y_true, score
    runs: dict[str, RunInfo]  # compared model -> run file
    selection: dict[str, Any]  # tuning/selection.json
    tuning: dict[str, dict[str, Any]]  # tuning model -> validation and test AP
    scaled_means: dict[str, float]  # split -> largest |column mean| after scaling
    logged: dict[str, Any]  # evaluation/runs.json: compared models' runs and model URIs, reference runs

    def best_on_validation(self) -> str:
        """The compared model with the best validation AP (never test): the champion."""
        names = [model_name(v, s) for v in self.params.train.variants for s in self.params.train.seeds]
        return max(names, key=lambda n: (self.metrics[n]["val_ap"], n))

    def split_scores(self, name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(labels, scores) that evaluate saved for one model on one split."""
        rows = self.scores[name][self.scores[name]["split"] == split]
        return rows["y_true"].to_numpy(), rows["score"].to_numpy()

    def val_accuracy(self, name: str) -> float:
        """Validation accuracy at the model's chosen threshold."""
        y, p = self.split_scores(name, "val")
        return float(accuracy_score(y, p >= self.metrics[name]["threshold"]))

    def chosen_lr(self, variant: str) -> float:
        """The learning rate select chose for a variant."""
        return float(self.selection["chosen"][variant])

    def compared(self) -> list[str]:
        """The normalised variants, each compared with the baseline (none without a baseline)."""
        variants = list(self.params.train.variants)
        return [v for v in variants if v != BASELINE] if BASELINE in variants else []


def gather(params: Params, layout: Layout) -> Evidence:
    """Read the outputs of prepare, select, train and evaluate."""
    summary = PrepareSummary.read(layout)
    train = params.train
    names = [model_name(v, s) for v in train.variants for s in train.seeds]
    evaluated = names + params.evaluate.references.names()
    histories = {v: {s: read_history(layout, model_name(v, s)) for s in train.seeds} for v in train.variants}
    scaled = {s: float(np.abs(load_split(layout.prepared, s, summary.label).x.mean(axis=0)).max()) for s in SPLITS}
    logged = json.loads(layout.reference_runs.read_text()) if layout.reference_runs.is_file() else {}
    return Evidence(params, summary, histories, {n: read_model_metrics(layout, n) for n in evaluated},
                    {n: read_scores(layout, n) for n in evaluated}, {n: RunInfo.read(layout, n) for n in names},
                    read_selection(layout), json.loads(layout.tuning_scores.read_text()), scaled, logged)


def table_epochs(max_epoch: int, every: int = 5) -> list[int]:
    """Epochs 1, 5, 10 and every fifth after, up to the longest run."""
    return [e for e in sorted({1, *range(every, max_epoch + 1, every)}) if e <= max_epoch]


def value_at(history: pd.DataFrame, key: str, epoch: int) -> float:
    """The value of ``key`` at ``epoch`` in one history."""
    return float(history.loc[history["epoch"] == epoch, key].iloc[0])


def at_epoch(histories: dict[int, pd.DataFrame], key: str, epoch: int) -> list[float]:
    """Values of ``key`` at ``epoch`` for every seed whose run got that far."""
    return [value_at(h, key, epoch) for h in histories.values() if epoch in set(h["epoch"])]


def variant_values(ev: Evidence, variant: str, key: str) -> list[float]:
    """One evaluation metric of a variant's compared models, seed by seed."""
    return [float(ev.metrics[model_name(variant, s)][key]) for s in ev.params.train.seeds]


def describe_runs(runs: dict[str, RunInfo]) -> dict[str, Any]:
    """Devices, groups and pipeline runs of the compared models."""
    infos = list(runs.values())
    return {"devices": sorted({r.device for r in infos}) or ["unknown"],
            "groups": sorted({r.group for r in infos if r.run_id}),
            "pipelines": sorted({r.pipeline_run_id for r in infos if r.pipeline_run_id})}
