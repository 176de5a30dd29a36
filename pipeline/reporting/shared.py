"""The comparison at shared settings, beside the tuned one: tuning trials whose setting both variants
trained (TPE's seeded first round is the same for every variant; a grid is shared whole), paired by
tuning seed on the tuning split. There a step does the same work for both and the learning rate is
the same, so "faster" and "loss falls sooner" cannot come from one variant being tuned to a larger
step; the tuned comparison answers the practical question, this one the mechanism."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.project.train_config import Setting
from pipeline.project.layout import model_name
from pipeline.project.variants import BASELINE
from pipeline.reporting.claims import log_speedup, rungs
from pipeline.reporting.evidence import Evidence, shared_trials, value_at


@dataclass(frozen=True)
class Pair:
    """One shared setting on one tuning seed: the variant's tuning model against the baseline's."""

    setting: Setting
    seed: int
    steps: float  # log(baseline's steps / ours) to the rungs, mean over rungs
    seconds: float  # the same in training seconds
    loss_fall: float  # relative fall of the training loss after report.early_epoch, baseline minus ours
    val_ap: tuple[float, float]  # best validation AP: ours, the baseline's


def pairs(ev: Evidence, variant: str) -> list[Pair]:
    """Every shared setting and tuning seed where both models trained without diverging."""
    out, start = [], ev.summary.prevalence["val"]
    for raw, ours, theirs in shared_trials(ev.selection, variant):
        for seed in ev.params.train.tune.seeds:
            a, b = model_name(variant, seed, ours), model_name(BASELINE, seed, theirs)
            if a not in ev.shared or b not in ev.shared:
                continue
            (hist_a, probe_a), (hist_b, probe_b) = ev.shared[a], ev.shared[b]
            fractions = ev.params.report.speed_rungs
            steps = log_speedup(rungs(probe_a, probe_b, start, fractions, "step"))
            seconds = log_speedup(rungs(probe_a, probe_b, start, fractions, "seconds"))
            epoch = min(ev.params.report.early_epoch, len(hist_a), len(hist_b))
            base = value_at(hist_b, "train_loss", epoch)
            fall = (base - value_at(hist_a, "train_loss", epoch)) / base
            out.append(Pair(Setting.from_dict(raw), seed, steps, seconds, fall,
                            (float(probe_a["val_ap"].max()), float(probe_b["val_ap"].max()))))
    return out


def steady_note(found: list[Pair], key: str, name: str) -> str:
    """One clause on the shared settings for the loss claim or the steps to the targets (both
    deterministic)."""
    if not found:
        return ""
    values = [getattr(p, key) for p in found]
    ahead = sum(v > 0 for v in values)
    if key == "loss_fall":
        return (f"relative fall of the training loss {np.median(values):+.3f} (median of {len(found)} pairs; "
                f"{name} ahead in {ahead})")
    return (f"validation-AP targets {math.exp(np.median(values)):.2f}x as fast in steps (median of {len(found)}; "
            f"{name} sooner in {ahead})")


def seconds_note(found: list[Pair], name: str) -> str:
    """The shared settings in training seconds (volatile: timings differ between runs)."""
    if not found:
        return ""
    values = [p.seconds for p in found]
    return (f"{name} at shared settings: {math.exp(np.median(values)):.2f}x as fast in training seconds (median "
            f"of {len(found)} pairs; sooner in {sum(v > 0 for v in values)})")


def table_rows(found: list[Pair]) -> list[list[str]]:
    """One row per shared setting and seed (steps, loss and validation AP: deterministic)."""
    return [[p.setting.name(), str(p.seed), f"{math.exp(p.steps):.2f}x", f"{p.loss_fall:+.3f}",
             f"{p.val_ap[0]:.3f} / {p.val_ap[1]:.3f}"] for p in found]


def headline(found: dict[str, list[Pair]]) -> dict[str, dict[str, float | int]]:
    """metrics/summary.json's shared-setting figures per compared variant (steps and loss only)."""
    return {variant: {"pairs": len(items),
                      "steps_speedup": round(math.exp(float(np.median([p.steps for p in items]))), 4),
                      "loss_fall": round(float(np.median([p.loss_fall for p in items])), 5)}
            for variant, items in found.items() if items}
