"""Pitfall checks on the evidence: each finding says what to change."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from pipeline.project.layout import model_name
from pipeline.project.variants import VARIANTS, label
from pipeline.reporting.document import mean_sd
from pipeline.reporting.evidence import Evidence


def noisy_share(history: pd.DataFrame) -> float:
    """Share of epochs (after the first) in which validation loss went up."""
    rises = np.diff(history["val_loss"].to_numpy()) > 0
    return float(rises.mean()) if rises.size else 0.0


def loss_drop(history: pd.DataFrame) -> float:
    """Relative fall of the training loss from epoch 2 to the last epoch."""
    losses = history["train_loss"].to_numpy()
    if losses.size < 3:
        return float("nan")
    return float((losses[1] - losses[-1]) / losses[1])


def val_loss_rise(history: pd.DataFrame) -> float:
    """How far the last validation loss sits above the best one (relative): a sign of overfitting."""
    best = float(history["val_loss"].min())
    return float(history["val_loss"].iloc[-1] / best - 1) if best > 0 else 0.0


def training_findings(ev: Evidence) -> list[str]:
    """Noisy or stuck losses, early-stopping plateaus and the train/test gap, per variant."""
    p, found = ev.params, []
    for variant, runs in ev.histories.items():
        name = label(variant)
        noisy = [noisy_share(h) for h in runs.values()]
        drops = [d for d in (loss_drop(h) for h in runs.values()) if np.isfinite(d)]
        rises = [val_loss_rise(h) for h in runs.values()]
        plateaued = [seed for seed, h in runs.items() if len(h) < p.train.epochs]
        capped = [seed for seed, h in runs.items() if int(h.loc[h["val_ap"].idxmax(), "epoch"]) == p.train.epochs]
        if np.mean(noisy) > 0.4:
            found.append(f"Validation loss {name} is noisy (rises in {np.mean(noisy):.0%} of epochs): narrow "
                         "`train.tune.space.lr` to lower rates or its batch sizes to larger ones.")
        if drops and min(drops) < 0.05:
            found.append(f"Training loss {name} is stuck in some seed (falls by only {min(drops):.1%} after "
                         "epoch 2): widen `train.tune.space.lr` upwards, or check the feature scaling.")
        if plateaued:
            found.append(f"Early stopping ended the runs {name} for replicate(s) {plateaued} after {p.train.patience} epochs "
                         "without a better validation AP; the kept weights are each run's best epoch.")
        if capped:
            found.append(f"Still improving at the last epoch {name} for replicate(s) {capped}: the best validation AP came "
                         f"at epoch {p.train.epochs}, the cap. More epochs could change the comparison: raise "
                         "`train.epochs`.")
        gaps = [ev.metrics[model_name(variant, r)]["train_ap"] - ev.metrics[model_name(variant, r)]["test_ap"]
                for r in runs]
        verdict = "a sign of overfitting: add weight decay or dropout, or stop earlier" if np.mean(gaps) > 0.1 \
            else "no strong overfitting"
        found.append(f"Train versus test average precision gap {name}: {mean_sd(gaps, 3)}; validation loss ends "
                     f"{np.mean(rises):.0%} above its best. {verdict[0].upper()}{verdict[1:]}.")
    return found


def batch_finding(ev: Evidence) -> list[str]:
    """BatchNorm's real batches: the smallest it saw, and how many steps an epoch took."""
    p = ev.params
    runs = [r for r in ev.runs.values() if VARIANTS[r.variant].norm == "batchnorm"]
    if not runs:
        return []
    sizes = [size for r in runs for size in r.batch_sizes]
    seen = [size for r in runs for size in (r.norm_batch_sizes or r.batch_sizes)]  # per process when not synced
    smallest, steps = min(seen), min(len(r.batch_sizes) for r in runs)
    chosen = max(int((r.setting or {}).get("batch_size", 0)) for r in runs)
    found = []
    per_rank = [r for r in runs if r.ranks > 1 and not r.batchnorm_sync]
    if per_rank:
        ranks = max(r.ranks for r in per_rank)
        found.append(f"BatchNorm statistics were per process: {ranks} training processes "
                     f"(`train.distributed.nproc`) each normalised over only its share of every batch, as few as "
                     f"{smallest:,} rows of {min(sizes):,} (`train.batchnorm_sync: false`), the small-batch pitfall "
                     "in disguise; set `train.batchnorm_sync: true` to use the global batch's statistics.")
    if smallest < p.report.small_batch:
        found.append(f"BatchNorm trained on batches of only {smallest:,} rows (< {p.report.small_batch}): batch "
                     "statistics are noisy and its running estimates unreliable; tune larger batch sizes.")
    else:
        found.append(f"BatchNorm's smallest batch held {smallest:,} rows, enough for stable statistics (warning "
                     f"below {p.report.small_batch}); no batch is smaller than `train.min_batch` = "
                     f"{p.train.min_batch}, a shorter last batch joins the one before it.")
    if chosen and max(sizes) > chosen:
        found.append(f"The last {max(sizes) - chosen:,} training rows joined the batch before them "
                     f"(a batch of {max(sizes):,} rows): alone they would have been below `train.min_batch`.")
    if steps < 10:
        found.append(f"Only {steps} optimisation step(s) per epoch: with few steps BatchNorm's running statistics "
                     "lag the weights; tune smaller batch sizes or use more data.")
    return found


def eval_mode_finding(ev: Evidence) -> list[str]:
    """Each history's best val_ap must equal the AP evaluate recomputed in eval mode from the kept weights."""
    mismatched = []
    for variant, runs in ev.histories.items():
        for replicate, history in runs.items():
            name = model_name(variant, replicate)
            recomputed = float(average_precision_score(*ev.split_scores(name, "val")))
            if abs(recomputed - float(history["val_ap"].max())) > 1e-4:
                mismatched.append(name)
    if mismatched:
        return ["Validation metrics in the histories were computed in train mode or on other weights for "
                f"{mismatched}: rerun training."]
    return ["Validation metrics were computed in eval mode: each history's best val_ap equals the AP that "
            "evaluate recomputed from the kept weights in eval mode."]


def accuracy_trap_finding(ev: Evidence) -> list[str]:
    """High accuracy with low fraud recall."""
    target = ev.params.evaluate.recall_target
    trapped = [n for n, m in ev.metrics.items() if m.get("test_accuracy_trap")]
    if trapped:
        return [f"Accuracy trap: {', '.join(trapped)} score at least the majority-class accuracy while test recall "
                f"is below {target:.0%}; high accuracy here says nothing about catching fraud."]
    return [f"No model falls in the accuracy trap (recall target {target:.0%})."]


def leakage_finding(ev: Evidence) -> list[str]:
    """The encoder's statistics come from the training split only."""
    m = ev.scaled_means
    return [f"Leakage guard: each split's encoder (categories, date-time origins, scaling) was fitted on its "
            f"training part only (the tuning split's largest |numeric input mean| after scaling: train "
            f"{m['train']:.1e}, validation {m['val']:.1e}, test {m['test']:.1e}); validation and test never inform "
            "the encoding or the threshold's choice on test."]


def diagnostics(ev: Evidence) -> list[str]:
    """Every finding, in the report's order."""
    return [*training_findings(ev), *batch_finding(ev), *eval_mode_finding(ev), *accuracy_trap_finding(ev),
            *leakage_finding(ev)]
