"""The claims the report tests, each normalised variant (BatchNorm, LayerNorm) against the baseline,
both at their tuned learning rates, paired by seed; and the headline they make."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.evaluation.stats import FirstToTarget, PairedTest, combine, first_to_target, paired_test
from pipeline.project.layout import model_name
from pipeline.project.variants import BASELINE, PRIMARY, title
from pipeline.reporting.evidence import Evidence, value_at, variant_values

SHORT_CLAIMS = {"loss": "training loss falls sooner", "accuracy": "higher validation accuracy",
                "minority": "higher fraud precision and recall", "speed": "reaches the target loss first"}


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
        base, ours = ev.histories[BASELINE][seed], ev.histories[variant][seed]
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
    p, seeds, name = ev.params, ev.params.train.seeds, title(variant)
    level, power = p.report.confidence, p.report.power
    ours = {s: model_name(variant, s) for s in seeds}
    base = {s: model_name(BASELINE, s) for s in seeds}
    early = min(p.report.early_epoch, *(len(h) for v in (variant, BASELINE) for h in ev.histories[v].values()))

    def test_gain(key: str) -> PairedTest:
        return paired_test([ev.metrics[ours[s]][key] - ev.metrics[base[s]][key] for s in seeds], level, power)

    loss = paired_test([value_at(ev.histories[BASELINE][s], "train_loss", early)
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
        key = "verdict" if variant == PRIMARY else f"verdict_{variant}"
        out[key] = {c.key: c.status for c in variant_claims}
    out.update({key: per_variant(key) for key in ("test_recall", "test_precision", "test_f1")})
    out["lr"] = {v: ev.chosen_lr(v) for v in variants}
    references = ev.params.evaluate.references.names()
    if references:
        out["reference_test_ap"] = {r: round(float(ev.metrics[r]["test_ap"]), 4) for r in references}
    out["threshold"] = ev.params.evaluate.threshold.strategy
    out["seeds"] = len(ev.params.train.seeds)
    return out
