"""The evidence behind the report: the outputs of prepare, tune/select, train and evaluate, read once,
and the readings of it that sections and claims share. Replicate r's models are named ``<variant>-s<r>``
(references ``<reference>-s<r>``), each trained and evaluated on replicate r's split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.data.prepared import Prepared
from pipeline.evaluation.money import Transactions
from pipeline.project.artefacts import (
    Logged,
    ModelMetrics,
    PrepareSummary,
    RunFile,
    Selection,
    StepTimes,
    TuningScore,
    TuningScores,
)
from pipeline.project.layout import SPLITS, TUNING, Layout, model_name
from pipeline.project.params import Params, Setting
from pipeline.project.variants import Catalogue
from pipeline.runtime.errors import StageError


@dataclass
class Evidence:
    """Everything the report is built from: the outputs of prepare, tune/select, train and evaluate."""

    params: Params
    summary: PrepareSummary
    histories: dict[str, dict[int, pd.DataFrame]]  # variant -> replicate -> history of a compared model
    probes: dict[str, dict[int, pd.DataFrame]]  # variant -> replicate -> its validation probes
    metrics: dict[str, ModelMetrics]  # compared or reference model -> evaluation metrics
    scores: dict[str, pd.DataFrame]  # compared or reference model -> split, y_true, score
    runs: dict[str, RunFile]  # compared model -> run file
    selection: Selection  # tuning/selection.json
    scaled_means: dict[str, float]  # part of the tuning split -> largest |column mean| after scaling
    logged: Logged  # evaluation/runs.json: compared models' runs and model URIs, reference runs
    shared: dict[str, tuple[pd.DataFrame, pd.DataFrame]]  # tuning model of a shared trial -> history, probes
    tuning: dict[str, TuningScore]  # tuning model -> its test AP and accuracy on the tuning split
    timing: StepTimes  # each variant's seconds per training step, trained alone, interleaved rounds
    catalogue: Catalogue  # the declared variants: names, words, colours, recipes; the reference

    @property
    def reference(self) -> str:
        """The variant every candidate is compared with."""
        return self.catalogue.reference

    @property
    def replicates(self) -> list[int]:
        """Every replicate, 0 .. n-1."""
        return list(range(len(self.summary.replicates)))

    def names(self, variant: str) -> list[str]:
        """A variant's (or a reference's) models, replicate by replicate."""
        return [model_name(variant, r) for r in self.replicates]

    def best_on_validation(self) -> str:
        """The compared model with the best validation AP (never test): the champion."""
        names = [n for v in self.params.train.variants for n in self.names(v)]
        return max(names, key=lambda n: (self.metrics[n]["val_ap"], n))

    def split_scores(self, name: str, part: str) -> tuple[np.ndarray, np.ndarray]:
        """(labels, scores) that evaluate saved for one model on one part of its split."""
        rows = self.scores[name][self.scores[name]["split"] == part]
        return rows["y_true"].to_numpy(), rows["score"].to_numpy()

    def ledger(self, name: str) -> Transactions | None:
        """One model's test part as money (amounts, days, the daily alert budgets), when it has them."""
        rows = self.scores[name][self.scores[name]["split"] == "test"]
        if "amount" not in rows.columns:
            return None
        budget = dict(self.metrics[name].alert_budget_by_day)
        return Transactions(
            rows["y_true"].to_numpy().astype(bool),
            rows["amount"].to_numpy(dtype=np.float64),
            rows["day"].to_numpy(dtype=np.int64),
            budget,
            rows["entity"].astype(str).to_numpy() if "entity" in rows.columns else None,  # alerts per card-day
        )

    def setting(self, variant: str) -> Setting:
        """The setting select chose for a variant."""
        return self.selection.setting(variant)

    def compared(self) -> list[str]:
        """The candidates, each compared with the reference (the primary one first)."""
        return self.catalogue.candidates

    def values(self, model: str, key: str) -> list[float]:
        """One evaluation metric of a variant's (or reference's) models, replicate by replicate."""
        return [float(self.metrics[name][key]) for name in self.names(model)]


def _shared_curves(
    params: Params, layout: Layout, selection: Selection
) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """History and probes of every tuning model of a shared trial that did not diverge."""
    out, reference = {}, params.variants.reference
    for variant in params.train.variants:
        for _, ours, theirs in selection.shared_trials(variant, reference):
            for seed in params.train.tune.seeds:
                for name in (model_name(variant, seed, ours), model_name(reference, seed, theirs)):
                    if layout.probes(name, tuning=True).is_file() and layout.checkpoint(name, tuning=True).is_file():
                        out[name] = (read_history(layout, name, tuning=True), read_probes(layout, name, tuning=True))
    return out


def gather(params: Params, layout: Layout) -> Evidence:
    """Read the outputs of prepare, select, train and evaluate."""
    summary = PrepareSummary.read(layout.prepare_summary, "prepare")
    selection = Selection.read(layout.selection, "select")
    replicates = range(len(summary.replicates))
    variants = params.train.variants
    names = [model_name(v, r) for v in variants for r in replicates]
    evaluated = names + [model_name(ref, r) for ref in params.evaluate.references.names() for r in replicates]
    parts = Prepared(layout, summary).parts(TUNING)
    numeric = len(summary.numeric_inputs)  # the standardised inputs (category indices follow them)
    scaled = {s: float(np.abs(parts[s].x[:, :numeric].mean(axis=0)).max()) for s in SPLITS}
    logged = Logged.read(layout.logged, "evaluate") if layout.logged.is_file() else Logged()
    tuning = TuningScores.read(layout.tuning_scores, "evaluate").models
    timing = StepTimes.read(layout.step_times, "timing")
    return Evidence(
        params,
        summary,
        {v: {r: read_history(layout, model_name(v, r)) for r in replicates} for v in variants},
        {v: {r: read_probes(layout, model_name(v, r)) for r in replicates} for v in variants},
        {n: ModelMetrics.read(layout.model_metrics(n), "evaluate") for n in evaluated},
        {n: read_scores(layout, n) for n in evaluated},
        {n: RunFile.read(layout.run_file(n), "train") for n in names},
        selection,
        scaled,
        logged,
        _shared_curves(params, layout, selection),
        tuning,
        timing,
        Catalogue(params),
    )


def read_history(layout: Layout, name: str, tuning: bool = False) -> pd.DataFrame:
    """One model's per-epoch history (a CSV the train stage writes)."""
    return pd.read_csv(_need(layout.history(name, tuning), "train"))


def read_probes(layout: Layout, name: str, tuning: bool = False) -> pd.DataFrame:
    """One model's validation probes (a CSV the train stage writes)."""
    return pd.read_csv(_need(layout.probes(name, tuning), "train"))


def read_scores(layout: Layout, name: str) -> pd.DataFrame:
    """The validation and test scores evaluate saved for one model (split, y_true, score)."""
    return pd.read_parquet(_need(layout.scores(name), "evaluate"))


def _need(path: Path, stage: str) -> Path:
    if not path.exists():
        raise StageError(f"{path} not found; run the {stage} stage first (dvc repro {stage})")
    return path


def table_epochs(max_epoch: int, every: int = 5) -> list[int]:
    """Epochs 1, 5, 10 and every fifth after, up to the longest run."""
    return [e for e in sorted({1, *range(every, max_epoch + 1, every)}) if e <= max_epoch]


def value_at(history: pd.DataFrame, key: str, epoch: int) -> float:
    """The value of ``key`` at ``epoch`` in one history."""
    return float(history.loc[history["epoch"] == epoch, key].iloc[0])


def at_epoch(histories: dict[int, pd.DataFrame], key: str, epoch: int) -> list[float]:
    """Values of ``key`` at ``epoch`` for every replicate whose run got that far."""
    return [value_at(h, key, epoch) for h in histories.values() if epoch in set(h["epoch"])]


def describe_runs(runs: dict[str, RunFile]) -> dict[str, Any]:
    """Devices, groups and pipeline runs of the compared models."""
    infos = list(runs.values())
    return {
        "devices": sorted({r.device for r in infos}) or ["unknown"],
        "groups": sorted({r.group for r in infos if r.run_id}),
        "pipelines": sorted({r.pipeline_run_id for r in infos if r.pipeline_run_id}),
    }
