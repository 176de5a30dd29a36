"""The evidence behind the report, and the claims it supports: each normalised variant (BatchNorm,
LayerNorm) against the baseline, both at their tuned learning rates, paired by seed."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score

from pipeline.config import Params
from pipeline.layout import PrepareSummary, RunInfo, model_name
from pipeline.stats import FirstToTarget, PairedTest, combine, first_to_target, paired_test

NAMES = {"batchnorm": "BatchNorm", "layernorm": "LayerNorm", "baseline": "the baseline"}
VARIANT_LABELS = {"batchnorm": "with BatchNorm", "baseline": "without normalisation", "layernorm": "with LayerNorm"}
SHORT_CLAIMS = {"loss": "training loss falls sooner", "accuracy": "higher validation accuracy",
                "minority": "higher fraud precision and recall", "speed": "reaches the target loss first"}


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
        return [v for v in variants if v != "baseline"] if "baseline" in variants else []


def label(variant: str) -> str:
    """How a variant is named in table headers."""
    return VARIANT_LABELS.get(variant, variant)


def table_epochs(max_epoch: int, every: int = 5) -> list[int]:
    """Epochs 1, 5, 10 and every fifth after, up to the longest run."""
    return [e for e in sorted({1, *range(every, max_epoch + 1, every)}) if e <= max_epoch]


def mean_sd(values: list[float], digits: int = 4, fmt: str = "f", noisy: bool = False) -> str:
    """`mean ± sd` over seeds (the mean alone for one value, – for none); with ``noisy``, a spread
    larger than the mean is marked so."""
    finite = [float(v) for v in values if math.isfinite(v)]
    if not finite:
        return "–"
    text = f"{np.mean(finite):,.{digits}{fmt}}"
    if len(finite) > 1:
        sd = float(np.std(finite, ddof=1))
        text += f" ± {sd:,.{digits}{fmt}}"
        if noisy and sd > abs(float(np.mean(finite))):
            text += " (noisy)"
    return text


def value_at(history: pd.DataFrame, key: str, epoch: int) -> float:
    """The value of ``key`` at ``epoch`` in one history."""
    return float(history.loc[history["epoch"] == epoch, key].iloc[0])


def at_epoch(histories: dict[int, pd.DataFrame], key: str, epoch: int) -> list[float]:
    """Values of ``key`` at ``epoch`` for every seed whose run got that far."""
    return [value_at(h, key, epoch) for h in histories.values() if epoch in set(h["epoch"])]


@dataclass(frozen=True)
class Reach:
    """When a run first reached a validation-loss target; censored runs never did."""

    epoch: int | None  # None: not reached within the run
    epochs_run: int
    seconds: float | None

    def text(self) -> str:
        """`7`, or `not reached (25 epochs)`: never a number for a censored run."""
        return str(self.epoch) if self.epoch is not None else f"not reached ({self.epochs_run} epochs)"


def reach(history: pd.DataFrame, target: float) -> Reach:
    """First epoch (and cumulative seconds) at which val_loss <= target."""
    reached = history.index[history["val_loss"] <= target + 1e-12]
    if len(reached) == 0:
        return Reach(None, len(history), None)
    row = history.index.get_loc(reached[0])
    return Reach(int(history["epoch"].iloc[row]), len(history), float(history["epoch_seconds"].iloc[: row + 1].sum()))


def first(ours: Reach, theirs: Reach) -> int | None:
    """1 if ours reached the target first, -1 if theirs did, 0 on the same epoch, None when a run
    stopped before the other one got there (censored: who would have been first is unknown)."""
    if ours.epoch is not None and theirs.epoch is not None:
        return int(np.sign(theirs.epoch - ours.epoch))
    if ours.epoch is None and theirs.epoch is None:
        return None
    if ours.epoch is None:
        return -1 if ours.epochs_run >= theirs.epoch else None
    return 1 if theirs.epochs_run >= ours.epoch else None


def targets(ev: Evidence, variant: str) -> dict[int, tuple[float, Reach, Reach]]:
    """Per seed: the baseline's best validation loss, and when each model first reached it."""
    out = {}
    for seed in ev.params.train.seeds:
        base, ours = ev.histories["baseline"][seed], ev.histories[variant][seed]
        target = float(base["val_loss"].min())
        out[seed] = (target, reach(ours, target), reach(base, target))
    return out


@dataclass(frozen=True)
class Measure:
    """One measured difference behind a claim."""

    text: str
    test: PairedTest | FirstToTarget


@dataclass(frozen=True)
class Claim:
    """A claim about one normalised variant against the baseline."""

    key: str  # loss | accuracy | minority | speed (metrics/summary.json)
    variant: str
    text: str
    measures: list[Measure]
    status: str


def claims(ev: Evidence, variant: str) -> list[Claim]:
    """The four claims for one normalised variant, paired by seed with the baseline."""
    p, seeds, name = ev.params, ev.params.train.seeds, NAMES[variant]
    level, power = p.report.confidence, p.report.power
    ours = {s: model_name(variant, s) for s in seeds}
    base = {s: model_name("baseline", s) for s in seeds}
    early = min(p.report.early_epoch, *(len(h) for v in (variant, "baseline") for h in ev.histories[v].values()))

    def test_gain(key: str) -> PairedTest:
        return paired_test([ev.metrics[ours[s]][key] - ev.metrics[base[s]][key] for s in seeds], level, power)

    loss = paired_test([value_at(ev.histories["baseline"][s], "train_loss", early)
                        - value_at(ev.histories[variant][s], "train_loss", early) for s in seeds], level, power)
    accuracy = paired_test([ev.val_accuracy(ours[s]) - ev.val_accuracy(base[s]) for s in seeds], level, power)
    precision, recall = test_gain("test_precision"), test_gain("test_recall")
    speed = first_to_target([first(mine, theirs) for _, mine, theirs in targets(ev, variant).values()], level)
    return [
        Claim("loss", variant, f"{name} lowers training loss sooner",
              [Measure(f"baseline minus {name} training loss at epoch {early}", loss)], loss.status),
        Claim("accuracy", variant, f"{name} raises validation accuracy",
              [Measure(f"{name} minus baseline validation accuracy at the chosen threshold", accuracy)],
              accuracy.status),
        Claim("minority", variant, f"{name} raises fraud precision and recall",
              [Measure(f"{name} minus baseline test precision", precision),
               Measure(f"{name} minus baseline test recall", recall)], combine([precision.status, recall.status])),
        Claim("speed", variant, f"{name} reaches the target loss first",
              [Measure(f"seeds where {name} reached the baseline's best validation loss first", speed)],
              speed.status),
    ]


def variant_values(ev: Evidence, variant: str, key: str) -> list[float]:
    """One evaluation metric of a variant's compared models, seed by seed."""
    return [float(ev.metrics[model_name(variant, s)][key]) for s in ev.params.train.seeds]


def headline(ev: Evidence, found: dict[str, list[Claim]]) -> dict[str, Any]:
    """metrics/summary.json, answer first: test AP per variant, the verdicts, then the rest.

    `dvc exp show` keeps this key order and fits the table to the terminal, so what comes first is
    what a user sees.
    """
    variants = list(ev.histories)

    def per_variant(key: str) -> dict[str, float]:
        return {v: round(float(np.mean(variant_values(ev, v, key))), 4) for v in variants}

    out: dict[str, Any] = {"test_ap": per_variant("test_ap")}
    for variant, variant_claims in found.items():
        key = "verdict" if variant == "batchnorm" else f"verdict_{variant}"
        out[key] = {c.key: c.status for c in variant_claims}
    out.update({key: per_variant(key) for key in ("test_recall", "test_precision", "test_f1")})
    out["lr"] = {v: ev.chosen_lr(v) for v in variants}
    references = ev.params.evaluate.references.names()
    if references:
        out["reference_test_ap"] = {r: round(float(ev.metrics[r]["test_ap"]), 4) for r in references}
    out["threshold"] = ev.params.evaluate.threshold.strategy
    out["seeds"] = len(ev.params.train.seeds)
    return out


def describe_runs(runs: dict[str, RunInfo]) -> dict[str, Any]:
    """Devices, groups and pipeline runs of the compared models."""
    infos = list(runs.values())
    return {"devices": sorted({r.device for r in infos}) or ["unknown"],
            "groups": sorted({r.group for r in infos if r.run_id}),
            "pipelines": sorted({r.pipeline_run_id for r in infos if r.pipeline_run_id})}
