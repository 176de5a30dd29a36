"""The report's evidence sections, one function each: setup, tuning, curves, accuracy, minority
metrics, speed. (What is concluded from them is in ``conclusions``.)"""

from __future__ import annotations

import math
import platform
from importlib.metadata import version
from pathlib import Path

import numpy as np

from pipeline.data.encoder import embedding_dim
from pipeline.project.train_config import Setting
from pipeline.project.layout import SPLITS
from pipeline.project.variants import BASELINE, label, title
from pipeline.reporting import claims, figures, operations, shared
from pipeline.reporting.document import Document, mean_sd
from pipeline.reporting.evidence import Evidence, at_epoch, describe_runs, table_epochs
from pipeline.reporting.shared import Pair


def setup(doc: Document, ev: Evidence) -> None:
    """Data, model, training settings, replicates, versions."""
    p, s = ev.params, ev.summary
    devices = describe_runs(ev.runs)["devices"]
    doc.heading("2. Setup")
    doc.bullets([
        f"Data: `{s.source}` (SHA-256 `{s.source_sha256[:16]}…`), label `{s.label}`, {s.n_features} features, "
        f"{s.split_method} split; rows with NaN/inf dropped: {s.dropped_nonfinite:,}.",
        f"Model: MLP{' over the numeric inputs and one embedding per categorical column' if s.categories else ''}, "
        f"hidden layers {p.train.model.hidden}, {p.train.model.activation}; `batchnorm` adds "
        f"BatchNorm1d (`layernorm`: LayerNorm) {p.train.model.batchnorm_placement} each activation; nothing else "
        "differs, shared layers start from the same weights, and the output bias starts at the training prior's "
        "log-odds (the first predictions are the base rate).",
        f"Training: at most {p.train.epochs} epochs, early stopping after {p.train.patience} epochs without a better "
        f"validation AP (the best epoch's weights kept), {p.train.optimizer.name}, batches never below "
        f"{p.train.min_batch}; validation AP also at probe steps growing {p.train.probe_growth:g}x.",
        "Settings (tuned per variant, section 3): " + "; ".join(f"{label(v)}: {ev.setting(v).name()}"
                                                               for v in p.train.variants) + ".",
        f"Replicates: {len(ev.replicates)}; replicate r trains every variant with seed r on "
        + ("its own redrawn split" if s.redrawn else f"time window r mod {s.folds}") + ". Device: "
        f"{', '.join(devices)}. Threshold: `{p.evaluate.threshold.strategy}` on each model's validation part.",
        "Versions: " + ", ".join(f"{pkg} {version(pkg)}" for pkg in ("torch", "scikit-learn", "mlflow", "dvc",
                                                                    "optuna", "numpy", "pandas")) +
        f", Python {platform.python_version()}.",
    ])
    if s.blocks:
        operations.blocks(doc, ev)
    else:
        doc.table(["Part (every split)", "Rows", "Frauds", "Prevalence"],
                  [[n, f"{s.rows[n]:,}", f"{s.positives[n]:,}", f"{s.prevalence[n]:.4%}"] for n in SPLITS])
    _columns(doc, ev)


ROLE_INPUTS = {"numeric": "standardised (fitted on each split's training part)", "boolean": "0/1, standardised",
               "categorical": "an embedding each (rows x width), concatenated with the numeric inputs",
               "datetime": "five numbers each: hour of day and day of week as (sin, cos) pairs, days elapsed",
               "id": "never a feature", "constant": "dropped", "drop": "dropped (declared)"}


def _columns(doc: Document, ev: Evidence) -> None:
    """The column roles prepare gave (or was told), and what the network gets of each."""
    s, log1p = ev.summary, ev.params.prepare.log1p
    if not s.roles:
        return
    # The features in the table's order, then the ids and dropped columns (summary.json sorts its keys).
    ordered = sorted(s.roles, key=lambda n: s.features.index(n) if n in s.features else len(s.features))
    rows = []
    for role, what in ROLE_INPUTS.items():
        names = [n for n in ordered if s.roles[n] == role]
        if not names:
            continue
        if role == "categorical":
            shown = [f"`{n}` ({s.categories[n] - 2} categories, {s.categories[n]} x {embedding_dim(s.categories[n])})"
                     for n in names]
        else:
            shown = [f"`{n}`" + (" (the entity)" if n == s.entity else "") + (" (log1p)" if n in log1p else "")
                     for n in names]
        rows.append([role, str(len(names)), ", ".join(shown if len(shown) <= 8 else [*shown[:4], "…", *shown[-2:]]),
                     what])
    doc.paragraph("Column roles (inferred from values and names, or declared in `prepare.columns`); categories "
                  f"seen fewer than {ev.params.prepare.min_category_count} times in a training part, or first seen "
                  "later, share an \"other\" index, and missing categories have their own:")
    doc.table(["Role", "Columns", "Which", "What the network gets"], rows)


def tuning(doc: Document, ev: Evidence, figure_dir: Path) -> None:
    """Each variant's trials: the best so far after each trial, the chosen setting, the best few."""
    p = ev.params
    doc.heading("3. Tuning: the same budget for every variant")
    doc.paragraph(f"Every variant had {p.train.tune.trials} trials (`{p.train.tune.sampler}`, seeded) over the same "
                  f"space (`train.tune.space`); each trial trained its setting on the tuning seeds "
                  f"{list(p.train.tune.seeds)}, on a split of its own, and scored the mean of their best validation "
                  "AP; test data never took part. The best trial is the variant's setting.")
    rows = []
    for variant in p.train.variants:
        entry = ev.selection["variants"][variant]
        curve = [v for v in entry["best_so_far"] if v is not None]
        quarter = max(1, len(curve) // 4)
        gain = curve[-1] - curve[-quarter - 1] if len(curve) > quarter else math.nan
        state = "still climbing" if gain > p.report.saturation else "saturated"
        edges = ", ".join(f"{k} ({v} end)" for k, v in entry["at_edge"].items()) or "none"
        rows.append([label(variant), f"{entry['val_ap']:.3f}", f"trial {entry['chosen']['trial']}",
                     ev.setting(variant).name(), f"{state} (last {quarter}: {gain:+.3f})", edges])
    doc.table(["Variant", "Best validation AP", "Chosen", "Setting", "Budget", "At the edge of the space"], rows)
    doc.figure(figures.tuning_curves({v: ev.selection["variants"][v]["best_so_far"] for v in p.train.variants},
                                     figure_dir / "tuning.png"), "Best mean validation AP after each trial")
    for variant in p.train.variants:
        trials = sorted((t for t in ev.selection["variants"][variant]["trials"] if t["val_ap"] is not None),
                        key=lambda t: -t["val_ap"])[:5]
        doc.paragraph(f"Best trials {label(variant)}:")
        doc.table(["Trial", "Validation AP (mean over tuning seeds)", "Setting"],
                  [[str(t["trial"]), f"{t['val_ap']:.3f}", _setting(t["setting"])] for t in trials])


def _setting(raw: dict) -> str:
    return Setting.from_dict(raw).name()


def curves(doc: Document, ev: Evidence, figure_dir: Path) -> None:
    """Train and validation loss by epoch, mean ± sd over replicates, and the loss figure."""
    n = len(ev.replicates)
    doc.heading("4. Training curves")
    longest = max(len(h) for runs in ev.histories.values() for h in runs.values())
    for key, name in (("train_loss", "train loss"), ("val_loss", "validation loss")):
        rows = []
        for epoch in table_epochs(longest):
            cells = []
            for variant in ev.histories:
                values = at_epoch(ev.histories[variant], key, epoch)
                cells.append(mean_sd(values) + (f" (n={len(values)})" if 0 < len(values) < n else ""))
            rows.append([str(epoch), *cells])
        doc.paragraph(f"**{name.capitalize()}** of the compared models (each variant at its tuned setting), mean ± "
                      f"standard deviation over {n} replicate(s); n < replicates where early stopping ended a run "
                      "before that epoch.")
        doc.table(["Epoch", *[f"{name} {label(v)}" for v in ev.histories]], rows)
    doc.figure(figures.loss_curves(ev.histories, figure_dir / "loss_curves.png"),
               "Training (solid) and validation (dashed) loss")


def accuracy(doc: Document, ev: Evidence) -> None:
    """Test accuracy at each model's threshold and at 0.5, balanced accuracy, MCC, the majority class."""
    majority = 1 - ev.summary.prevalence["test"]
    doc.heading("5. Accuracy, on data that chose neither the threshold nor the kept epoch")
    rows = []
    for model in [*ev.histories, *ev.params.evaluate.references.names()]:
        at_half = [_accuracy_at(ev, n, 0.5) for n in ev.names(model)]
        rows.append([label(model), mean_sd(ev.values(model, "test_accuracy")), mean_sd(at_half),
                     mean_sd(ev.values(model, "test_balanced_accuracy"), 3), mean_sd(ev.values(model, "test_mcc"), 3)])
    doc.table(["Model (mean ± sd over replicates)", "Test accuracy at its threshold", "At 0.5",
               "Balanced accuracy", "MCC"], rows)
    doc.paragraph("Accuracy is dominated by the majority class: predicting \"legit\" for every row already scores "
                  f"{majority:.2%}, and moving the threshold trades a few frauds caught for many more rows "
                  "flagged, so accuracy moves little while recall moves a lot. Balanced accuracy and MCC weigh the "
                  "fraud class; judge the models on the minority-class metrics below.")


def _accuracy_at(ev: Evidence, name: str, threshold: float) -> float:
    y, p = ev.split_scores(name, "test")
    return float(np.mean((p >= threshold) == (y > 0)))


def minority(doc: Document, ev: Evidence, figure_dir: Path) -> None:
    """AP, precision, recall and F1 per variant and reference; at 0.5; calibration; PR curves."""
    p = ev.params
    doc.heading("6. Minority class: average precision, precision, recall, calibration")
    doc.paragraph(f"Each replicate's test part ({ev.summary.rows['test']:,} rows, {ev.summary.positives['test']:,} "
                  f"frauds), each model's threshold chosen on its validation part (`{p.evaluate.threshold.strategy}`). "
                  f"Mean ± sd over {len(ev.replicates)} replicate(s); test prevalence "
                  f"{ev.summary.prevalence['test']:.4f} is the AP of a random ranking. Precision and recall hold "
                  "the chosen threshold fixed; Brier score and the reliability plot say how far the probabilities "
                  "can be read as such.")
    keys = ("ap", "precision", "recall", "f1", "brier")
    models = [*ev.histories, *p.evaluate.references.names()]
    doc.table(["Model", "Average precision", "Precision", "Recall", "F1", "Brier", "Recall at 0.5"],
              [[label(m)] + [mean_sd(ev.values(m, f"test_{k}"), 3) for k in keys]
               + [mean_sd([_recall_at(ev, n, 0.5) for n in ev.names(m)], 3)] for m in models])
    pooled = {m: tuple(np.concatenate(a) for a in zip(*(ev.split_scores(n, "test") for n in ev.names(m))))
              for m in models}
    operations.money(doc, ev)
    doc.figure(figures.reliability(pooled, figure_dir / "reliability.png"),
               "Reliability on the test parts, every replicate pooled")
    first = {n: ev.split_scores(n, "test") for m in models for n in ev.names(m)[:1]}
    doc.figure(figures.overlaid_pr(first, ev.summary.prevalence["test"], figure_dir / "precision_recall.png"),
               "Precision-recall curves on replicate 0's test part")


def _recall_at(ev: Evidence, name: str, threshold: float) -> float:
    y, p = ev.split_scores(name, "test")
    return float(np.mean(p[y > 0] >= threshold)) if (y > 0).any() else math.nan


def speed(doc: Document, ev: Evidence, paired: dict[str, list[Pair]]) -> None:
    """Training time and steps to validation-AP targets both variants reach, replicate by replicate; the
    same at shared settings."""
    doc.heading("7. Speed: time to validation-AP targets both variants reach")
    rungs = ", ".join(f"{f:.0%}" for f in ev.params.report.speed_rungs)
    doc.paragraph(f"Targets: {rungs} of the lower of the two variants' best validation AP in each replicate, so "
                  "both reach every target; times are interpolated between validation probes (steps 1, 2, 3, ... "
                  "growing geometrically, and every epoch end) and count training steps only (a stack's step time "
                  "shared among its models). Each variant at its own tuned setting: a different batch size makes "
                  "a step do different work, so training seconds decide, and steps are shown beside.")
    for variant in ev.compared():
        rows = []
        for r in ev.replicates:
            seconds = claims.rung_times(ev, variant, r, "seconds")
            steps = claims.rung_times(ev, variant, r, "step")
            rows.append([str(r)] + [f"{a:.1f}s/{b:.1f}s ({sa:.0f}/{sb:.0f} steps)" for (_, a, b), (_, sa, sb)
                                    in zip(seconds, steps)])
        doc.table(["Replicate", *[f"{f:.0%} target: {title(variant)}/{title(BASELINE)}"
                                  for f in ev.params.report.speed_rungs]], rows, volatile=True)
    doc.paragraph("Seconds per epoch (wall time of the epoch, shared by the models trained together; they vary "
                  "between runs of the same params):")
    doc.table(["Variant", "Seconds per epoch", "Models per stack"],
              [[label(v), mean_sd([float(h["epoch_seconds"].median()) for h in runs.values()], 3, noisy=True),
                mean_sd([float(h["stack_size"].iloc[0]) for h in runs.values()], 0)]
               for v, runs in ev.histories.items()], volatile=True)
    for variant in ev.compared():
        if not paired[variant]:
            continue
        doc.paragraph(f"**At shared settings**: the tuning trials {title(variant)} and {title(BASELINE)} both trained "
                      "(the sampler's seeded first round, or the whole grid), on the tuning split, paired by tuning "
                      "seed. One learning rate and batch for both: here a step does the same work, so steps "
                      "compare the optimisation itself. Speed-up: the baseline's steps over the variant's, "
                      "geometric mean over the targets; loss fall as in the loss claim.")
        doc.table(["Setting", "Seed", "Speed-up in steps", "Loss fall, baseline minus variant",
                   f"Best validation AP {title(variant)} / {title(BASELINE)}"], shared.table_rows(paired[variant]))
        doc.bullets([shared.seconds_note(paired[variant], title(variant)) + "."], volatile=True)
