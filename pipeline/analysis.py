"""Comparisons behind the report: the evidence, loss tables, epochs to target, paired verdicts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import accuracy_score

from pipeline.config import Params
from pipeline.layout import PrepareSummary, RunInfo, model_name

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
VARIANT_LABELS = {"batchnorm": "with BatchNorm", "baseline": "without BatchNorm"}


@dataclass
class Evidence:
    """Everything the report is built from: the outputs of prepare, train and evaluate."""

    params: Params
    summary: PrepareSummary
    histories: dict[str, dict[int, pd.DataFrame]]  # variant -> seed -> history
    metrics: dict[str, dict[str, float]]  # model or reference -> evaluate metrics
    scores: dict[str, pd.DataFrame]  # model or reference -> split, y_true, score
    runs: dict[str, RunInfo | None]
    scaled_means: dict[str, float]  # split -> largest |column mean| after scaling

    def split_scores(self, name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(labels, scores) that evaluate saved for one model on one split."""
        rows = self.scores[name][self.scores[name]["split"] == split]
        return rows["y_true"].to_numpy(), rows["score"].to_numpy()

    def val_accuracy(self, name: str) -> float:
        """Validation accuracy at the model's chosen threshold."""
        y, p = self.split_scores(name, "val")
        return float(accuracy_score(y, p >= self.metrics[name]["threshold"]))

    def paired_seeds(self) -> list[int]:
        """The seeds on which both variants were trained (empty unless both are)."""
        both = {"batchnorm", "baseline"} <= set(self.histories)
        return list(self.params.train.seeds) if both else []


def label(variant: str) -> str:
    """How a variant is named in prose and table headers."""
    return VARIANT_LABELS.get(variant, variant)


def table_epochs(max_epoch: int, every: int = 5) -> list[int]:
    """Epochs 1, 5, 10 and every fifth after, up to the longest run."""
    return [e for e in sorted({1, *range(every, max_epoch + 1, every)}) if e <= max_epoch]


def mean_sd(values: list[float], digits: int = 4, fmt: str = "f") -> str:
    """`mean ± sd` over seeds (sample standard deviation; the mean alone for one value, – for none)."""
    finite = [float(v) for v in values if math.isfinite(v)]
    if not finite:
        return "–"
    text = f"{np.mean(finite):.{digits}{fmt}}"
    if len(finite) > 1:
        text += f" ± {np.std(finite, ddof=1):.{digits}{fmt}}"
    return text


def value_at(history: pd.DataFrame, key: str, epoch: int) -> float:
    """The value of ``key`` at ``epoch`` in one history."""
    return float(history.loc[history["epoch"] == epoch, key].iloc[0])


def at_epoch(histories: dict[int, pd.DataFrame], key: str, epoch: int) -> list[float]:
    """Values of ``key`` at ``epoch`` for every seed whose run got that far."""
    return [value_at(h, key, epoch) for h in histories.values() if epoch in set(h["epoch"])]


@dataclass(frozen=True)
class ToTarget:
    """When a run first reached a validation-loss target."""

    epoch: int | None  # None: never reached
    seconds: float | None


def epochs_to_target(history: pd.DataFrame, target: float) -> ToTarget:
    """First epoch (and cumulative seconds) at which val_loss <= target."""
    reached = history.index[history["val_loss"] <= target + 1e-12]
    if len(reached) == 0:
        return ToTarget(None, None)
    row = history.index.get_loc(reached[0])
    return ToTarget(int(history["epoch"].iloc[row]), float(history["epoch_seconds"].iloc[: row + 1].sum()))


@dataclass(frozen=True)
class Verdict:
    """A claim checked by paired differences across seeds (positive favours BatchNorm)."""

    claim: str
    measure: str
    differences: list[float]
    mean: float
    low: float
    high: float
    status: str

    def numbers(self, digits: int = 4) -> str:
        """Mean paired difference with its 95% interval and the per-seed values."""
        per_seed = ", ".join(f"{d:+.{digits}f}" for d in self.differences)
        if len(self.differences) < 2:
            return f"{self.mean:+.{digits}f} (one seed: {per_seed})"
        return f"{self.mean:+.{digits}f} [95% CI {self.low:+.{digits}f}, {self.high:+.{digits}f}] (seeds: {per_seed})"


def paired_verdict(claim: str, measure: str, differences: list[float], level: float = 0.95) -> Verdict:
    """`supported` when the t-interval of the mean paired difference lies above 0, `not supported`
    when it lies below 0, `inconclusive` when it straddles 0 or when there is a single seed."""
    diffs = [float(d) for d in differences if math.isfinite(d)]
    if not diffs:
        return Verdict(claim, measure, [], float("nan"), float("nan"), float("nan"), INCONCLUSIVE)
    mean = float(np.mean(diffs))
    if len(diffs) < 2:
        return Verdict(claim, measure, diffs, mean, float("nan"), float("nan"), INCONCLUSIVE)
    half = float(stats.t.ppf(0.5 + level / 2, len(diffs) - 1) * np.std(diffs, ddof=1) / math.sqrt(len(diffs)))
    low, high = mean - half, mean + half
    status = SUPPORTED if low > 0 else NOT_SUPPORTED if high < 0 else INCONCLUSIVE
    return Verdict(claim, measure, diffs, mean, low, high, status)


SHORT_CLAIMS = {"loss": "training loss falls sooner", "accuracy": "higher validation accuracy",
                "minority": "higher fraud precision and recall", "speed": "reaches the target loss faster"}


@dataclass(frozen=True)
class Claim:
    """One of the report's claims: a short key (metrics/summary.json), its text, its measurements."""

    key: str
    text: str
    parts: list[Verdict]
    status: str


def combine(parts: list[Verdict]) -> str:
    """All parts supported: supported; any part contradicted: not supported; else inconclusive."""
    statuses = {p.status for p in parts}
    if statuses == {SUPPORTED}:
        return SUPPORTED
    return NOT_SUPPORTED if NOT_SUPPORTED in statuses else INCONCLUSIVE


def targets(ev: Evidence) -> dict[int, tuple[float, ToTarget, ToTarget]]:
    """Per seed: the baseline's best val_loss, and when each variant first reached it."""
    out = {}
    for seed in ev.paired_seeds():
        base, bn = ev.histories["baseline"][seed], ev.histories["batchnorm"][seed]
        target = float(base["val_loss"].min())
        out[seed] = (target, epochs_to_target(bn, target), epochs_to_target(base, target))
    return out


def verdicts(ev: Evidence) -> list[Claim]:
    """Each claim with its paired measurements and combined status."""
    seeds = ev.paired_seeds()
    if not seeds:
        return []
    early = min(ev.params.report.early_epoch, *(len(h) for v in ev.histories.values() for h in v.values()))
    bn = {s: model_name("batchnorm", s) for s in seeds}
    base = {s: model_name("baseline", s) for s in seeds}

    def test_gain(key: str) -> list[float]:
        return [ev.metrics[bn[s]][key] - ev.metrics[base[s]][key] for s in seeds]

    loss = paired_verdict("BatchNorm lowers training loss sooner", f"baseline minus BatchNorm train loss at epoch {early}",
                          [value_at(ev.histories["baseline"][s], "train_loss", early)
                           - value_at(ev.histories["batchnorm"][s], "train_loss", early) for s in seeds])
    acc = paired_verdict("BatchNorm raises validation accuracy",
                         "BatchNorm minus baseline validation accuracy at the chosen threshold",
                         [ev.val_accuracy(bn[s]) - ev.val_accuracy(base[s]) for s in seeds])
    prec = paired_verdict("BatchNorm raises minority-class precision", "BatchNorm minus baseline test precision",
                          test_gain("test_precision"))
    rec = paired_verdict("BatchNorm raises minority-class recall", "BatchNorm minus baseline test recall",
                         test_gain("test_recall"))
    reached = targets(ev)
    penalty = {s: (t.epoch if t.epoch is not None else len(ev.histories["batchnorm"][s]) + 1)
               for s, (_, t, _) in reached.items()}
    faster = paired_verdict("BatchNorm reaches the target loss faster",
                            "baseline minus BatchNorm epochs to reach the baseline's best validation loss",
                            [float(reached[s][2].epoch - penalty[s]) for s in seeds])
    return [Claim("loss", loss.claim, [loss], loss.status), Claim("accuracy", acc.claim, [acc], acc.status),
            Claim("minority", "BatchNorm raises minority-class precision and recall", [prec, rec],
                  combine([prec, rec])),
            Claim("speed", faster.claim, [faster], faster.status)]


def variant_mean(ev: Evidence, variant: str, key: str) -> float:
    """Mean of one evaluation metric over a variant's seeds."""
    return float(np.mean([ev.metrics[model_name(variant, s)][key] for s in ev.params.train.seeds]))


def headline(ev: Evidence, claims: list[Claim]) -> dict[str, Any]:
    """metrics/summary.json, answer first: test AP per variant, the verdicts, then the rest.

    `dvc exp show` keeps this key order and fits the table to the terminal, so what comes first is
    what a user sees.
    """
    variants = list(ev.histories)

    def per_variant(key: str) -> dict[str, float]:
        return {v: round(variant_mean(ev, v, key), 4) for v in variants}

    out: dict[str, Any] = {"test_ap": per_variant("test_ap")}
    if claims:
        out["verdict"] = {c.key: c.status for c in claims}
    out.update({key: per_variant(key) for key in ("test_recall", "test_precision", "test_f1")})
    references = ev.params.evaluate.references
    if references:
        out["reference_test_ap"] = {r: round(ev.metrics[r]["test_ap"], 4) for r in references}
    out["threshold"] = ev.params.evaluate.threshold.strategy
    out["seeds"] = len(ev.params.train.seeds)
    return out


def seconds_to_target(reached: dict[int, tuple[float, ToTarget, ToTarget]], variant: str) -> list[float]:
    """Seconds each seed's run of a variant needed to reach its target (seeds that reached it)."""
    picked = [(bn if variant == "batchnorm" else base).seconds for _, bn, base in reached.values()]
    return [x for x in picked if x is not None]


def describe_runs(runs: dict[str, RunInfo | None]) -> dict[str, Any]:
    """Devices, groups and pipeline runs of the trained models."""
    infos = [r for r in runs.values() if r is not None]
    return {"devices": sorted({r.device for r in infos}) or ["unknown"],
            "groups": sorted({r.group for r in infos if r.run_id}),
            "pipelines": sorted({r.pipeline_run_id for r in infos if r.pipeline_run_id})}
