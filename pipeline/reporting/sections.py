"""The report's evidence sections, one function each: setup, tuning, curves, accuracy, minority
metrics, speed. (What is concluded from them is in ``conclusions``.)"""

from __future__ import annotations

import platform
from importlib.metadata import version
from pathlib import Path

from pipeline.project.layout import SPLITS, lr_text, model_name
from pipeline.project.variants import BASELINE, label, title
from pipeline.reporting import claims, figures
from pipeline.reporting.document import Document, mean_sd
from pipeline.reporting.evidence import Evidence, at_epoch, describe_runs, table_epochs


def setup(doc: Document, ev: Evidence) -> None:
    """Data, model, training settings, seeds, versions."""
    p, s = ev.params, ev.summary
    devices = describe_runs(ev.runs)["devices"]
    total = sum(s.rows.values())
    doc.heading("2. Setup")
    doc.bullets([
        f"Data: `{s.source}` (SHA-256 `{s.source_sha256[:16]}…`), {total:,} rows, label `{s.label}`, "
        f"{s.n_features} features, {s.split_method} split; rows with NaN/inf dropped: {s.dropped_nonfinite:,}.",
        f"Model: MLP, hidden layers {p.train.model.hidden}, {p.train.model.activation}, dropout "
        f"{p.train.model.dropout}; `batchnorm` adds BatchNorm1d (`layernorm`: LayerNorm) "
        f"{p.train.model.batchnorm_placement} each activation; nothing else differs, and shared layers start "
        "from the same weights.",
        f"Training: {p.train.epochs} epochs at most (early stopping patience {p.train.patience} on validation AP), "
        f"batch size {p.train.batch_size:,} (never below {p.train.min_batch}), {p.train.optimizer.name}, "
        f"weight decay {p.train.optimizer.weight_decay:g}, pos_weight `{p.train.pos_weight}`, gradient clip "
        f"{p.train.grad_clip:g}; learning rate tuned per variant (section 3).",
        f"Compared models: seeds {list(p.train.seeds)} per variant. Device: {', '.join(devices)}. Threshold: "
        f"`{p.evaluate.threshold.strategy}` on validation.",
        "Versions: " + ", ".join(f"{pkg} {version(pkg)}" for pkg in ("torch", "scikit-learn", "mlflow", "dvc",
                                                                    "numpy", "pandas")) +
        f", Python {platform.python_version()}.",
    ])
    doc.table(["Split", "Rows", "Frauds", "Prevalence"],
              [[n, f"{s.rows[n]:,}", f"{s.positives[n]:,}", f"{s.prevalence[n]:.4%}"] for n in SPLITS])


def tuning(doc: Document, ev: Evidence) -> None:
    """The learning-rate grid on validation (the choice), and both variants at every shared setting."""
    p, grid = ev.params, ev.selection["grid"]
    variants = list(p.train.variants)
    doc.heading("3. Tuning: the same budget for every variant")
    doc.paragraph(f"Every variant trained at each learning rate of `train.lr` on the tuning seeds "
                  f"{list(p.train.tune_seeds)}, kept apart from the compared models. Each variant keeps the rate "
                  "with the best mean validation AP (marked **chosen**); test data never takes part. Cells: mean "
                  "± sd over the tuning seeds.")
    rows = []
    for lr in p.train.lr:
        cells = []
        for variant in variants:
            entry = grid[variant][lr_text(lr)]
            diverged = entry["diverged_at_epoch_by_seed"]
            text = (f"diverged (seed {', '.join(f'{s} at epoch {e}' for s, e in diverged.items())})" if diverged
                    else mean_sd(list(entry["val_ap_by_seed"].values()), 3))
            cells.append(f"**{text} chosen**" if lr == ev.chosen_lr(variant) else text)
        rows.append([f"{lr:g}", *cells])
    doc.table(["Learning rate", *[f"Validation AP {label(v)}" for v in variants]], rows)
    doc.paragraph("**Shared settings** (secondary): both variants at the same learning rate, test AP of the tuning "
                  "models. The headline compares each variant at its own chosen rate instead.")
    rows = []
    for lr in p.train.lr:
        rows.append([f"{lr:g}", *[mean_sd([ev.tuning[model_name(v, s, lr)].get("test_ap", float("nan"))
                                           for s in p.train.tune_seeds], 3) for v in variants]])
    doc.table(["Learning rate", *[f"Test AP {label(v)}" for v in variants]], rows)


def curves(doc: Document, ev: Evidence, figure_dir: Path) -> None:
    """Train and validation loss by epoch, mean ± sd over seeds, and the loss figure."""
    seeds = ev.params.train.seeds
    doc.heading("4. Training curves")
    longest = max(len(h) for runs in ev.histories.values() for h in runs.values())
    for key, name in (("train_loss", "train loss"), ("val_loss", "validation loss")):
        rows = []
        for epoch in table_epochs(longest):
            cells = []
            for variant in ev.histories:
                values = at_epoch(ev.histories[variant], key, epoch)
                note = f" (n={len(values)})" if 0 < len(values) < len(seeds) else ""
                cells.append(mean_sd(values) + note)
            rows.append([str(epoch), *cells])
        doc.paragraph(f"**{name.capitalize()}** of the compared models (each variant at its chosen learning rate), "
                      f"mean ± standard deviation over {len(seeds)} seed(s); n < seeds where early stopping ended "
                      "a run before that epoch.")
        doc.table(["Epoch", *[f"{name} {label(v)}" for v in ev.histories]], rows)
    doc.figure(figures.loss_curves(ev.histories, figure_dir / "loss_curves.png"),
               "Training (solid) and validation (dashed) loss")


def accuracy(doc: Document, ev: Evidence) -> None:
    """Validation accuracy next to the majority-class accuracy."""
    seeds = ev.params.train.seeds
    majority = 1 - ev.summary.prevalence["val"]
    doc.heading("5. Validation accuracy")
    rows = []
    for variant, runs in ev.histories.items():
        at_half = [float(h.loc[h["val_ap"].idxmax(), "val_accuracy"]) for h in runs.values()]  # the kept epoch
        rows.append([label(variant), mean_sd([ev.val_accuracy(model_name(variant, s)) for s in seeds]),
                     mean_sd(at_half), f"{majority:.4f}"])
    doc.table(["Model", "At the chosen threshold", "At 0.5 (kept epoch)", "Majority class"], rows)
    doc.paragraph("Accuracy is dominated by the majority class: predicting \"legit\" for every row already scores "
                  f"{majority:.2%}. Judge the models on the minority-class metrics below, not on accuracy.")


def minority(doc: Document, ev: Evidence, figure_dir: Path) -> None:
    """Precision, recall, F1 and AP with intervals; per-variant means; overlaid PR curves."""
    p, seeds = ev.params, ev.params.train.seeds
    doc.heading("6. Minority-class precision, recall, F1 and average precision")
    doc.paragraph(f"Test split ({ev.summary.rows['test']:,} rows, {ev.summary.positives['test']:,} frauds), "
                  f"threshold chosen on validation (`{p.evaluate.threshold.strategy}`); 95% stratified bootstrap "
                  f"intervals ({p.evaluate.bootstrap.resamples:,} resamples). Test prevalence "
                  f"{ev.summary.prevalence['test']:.4f} is the average precision of a random ranking.")

    def ci(m: dict[str, float], key: str) -> str:
        return f"{m[f'test_{key}']:.3f} [{m[f'test_{key}_ci_low']:.3f}, {m[f'test_{key}_ci_high']:.3f}]"

    doc.table(["Model", "Threshold", "Precision", "Recall", "F1", "Average precision", "ROC-AUC"],
              [[n, f"{m['threshold']:.3g}", ci(m, "precision"), ci(m, "recall"), ci(m, "f1"), ci(m, "ap"),
                f"{m['test_roc_auc']:.3f}"] for n, m in ev.metrics.items()])
    keys = ("precision", "recall", "f1", "ap")
    doc.table(["Variant (mean ± sd over seeds)", "Precision", "Recall", "F1", "Average precision"],
              [[label(v)] + [mean_sd([ev.metrics[model_name(v, s)][f"test_{k}"] for s in seeds], 3) for k in keys]
               for v in ev.histories])
    pr = {n: ev.split_scores(n, "test") for n in ev.scores}
    doc.figure(figures.overlaid_pr(pr, ev.summary.prevalence["test"], figure_dir / "precision_recall.png"),
               "Precision-recall curves on the test split, every model")


def speed(doc: Document, ev: Evidence) -> None:
    """Epochs to the baseline's best validation loss, censored runs shown as such; seconds per epoch."""
    devices = describe_runs(ev.runs)["devices"]
    doc.heading("7. Speed")
    for variant in ev.compared():
        name = title(variant)
        doc.paragraph(f"**{name} versus the baseline.** Target: each seed's baseline best validation loss. A run "
                      "that never got there is *not reached*, never given a number; who got there first is "
                      "undecided when a run stopped before the other one reached the target.")
        rows = []
        for seed, (target, ours, base) in claims.targets(ev, variant).items():
            winner = {1: name, -1: "baseline", 0: "same epoch", None: "undecided"}[claims.first(ours, base)]
            rows.append([str(seed), f"{target:.4f}", ours.text(), base.text(), winner])
        doc.table(["Seed", "Target", f"Epochs {label(variant)}", f"Epochs {label(BASELINE)}", "First"], rows)
    rows = []
    for variant, runs in ev.histories.items():
        rows.append([label(variant), mean_sd([float(h["epoch_seconds"].median()) for h in runs.values()], 3, noisy=True),
                     mean_sd([float(h["samples_per_second"].median()) for h in runs.values()], 0, noisy=True)])
    doc.paragraph("Timings on " + ", ".join(devices) + " (they vary between runs of the same params; a spread "
                  "larger than the mean is marked noisy):")
    doc.table(["Variant", "Seconds per epoch", "Samples per second"], rows, volatile=True)
