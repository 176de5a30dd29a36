"""The report's sections, one function each; they read the evidence and write to the document."""

from __future__ import annotations

import json
import platform
from importlib.metadata import version
from pathlib import Path

from pipeline import analysis, figures, ui
from pipeline.analysis import Claim, Evidence, at_epoch, label, mean_sd
from pipeline.diagnostics import diagnostics as findings
from pipeline.document import Document
from pipeline.layout import SPLITS, Layout, model_name
from pipeline.provenance import git_state, lock_hashes


def setup(doc: Document, ev: Evidence) -> None:
    """1. Data, model, training settings, seeds, versions."""
    p, s = ev.params, ev.summary
    devices = analysis.describe_runs(ev.runs)["devices"]
    doc.heading("1. Setup")
    doc.bullets([
        f"Data: `{s.source}` (SHA-256 `{s.source_sha256[:16]}…`), label `{s.label}`, "
        f"{s.n_features} features, {s.split_method} split; rows with NaN/inf dropped: {s.dropped_nonfinite}.",
        f"Model: MLP, hidden layers {p.train.model.hidden}, {p.train.model.activation}, dropout "
        f"{p.train.model.dropout}; the `batchnorm` variant adds BatchNorm1d {p.train.model.batchnorm_placement} each "
        "activation; nothing else differs, and shared layers start from the same weights.",
        f"Training: {p.train.epochs} epochs at most (early stopping patience {p.train.patience} on validation AP), "
        f"batch size {p.train.batch_size}, {p.train.optimizer.name} lr {p.train.lr:g}, weight decay "
        f"{p.train.optimizer.weight_decay:g}, pos_weight `{p.train.pos_weight}`, gradient clip {p.train.grad_clip:g}.",
        f"Seeds: {list(p.train.seeds)}. Device: {', '.join(devices)}. Threshold: `{p.evaluate.threshold.strategy}` "
        "on validation.",
        "Versions: " + ", ".join(f"{pkg} {version(pkg)}" for pkg in ("torch", "scikit-learn", "mlflow", "dvc",
                                                                    "numpy", "pandas")) +
        f", Python {platform.python_version()}.",
    ])
    doc.table(["Split", "Rows", "Frauds", "Prevalence"],
              [[n, f"{s.rows[n]:,}", f"{s.positives[n]:,}", f"{s.prevalence[n]:.4%}"] for n in SPLITS])


def curves(doc: Document, ev: Evidence, figure_dir: Path) -> None:
    """2. Train and validation loss by epoch, mean ± sd over seeds, and the loss figure."""
    seeds = ev.params.train.seeds
    doc.heading("2. Training curves")
    longest = max(len(h) for runs in ev.histories.values() for h in runs.values())
    for key, name in (("train_loss", "train loss"), ("val_loss", "validation loss")):
        rows = []
        for epoch in analysis.table_epochs(longest):
            cells = []
            for variant in ev.histories:
                values = at_epoch(ev.histories[variant], key, epoch)
                note = f" (n={len(values)})" if 0 < len(values) < len(seeds) else ""
                cells.append(mean_sd(values) + note)
            rows.append([str(epoch), *cells])
        doc.paragraph(f"**{name.capitalize()}**, mean ± standard deviation over {len(seeds)} seed(s); "
                      "n < seeds where early stopping ended a run before that epoch.")
        doc.table(["Epoch", *[f"{name} {label(v)}" for v in ev.histories]], rows)
    doc.figure(figures.loss_curves(ev.histories, analysis.VARIANT_LABELS, figure_dir / "loss_curves.png"),
               "Training (solid) and validation (dashed) loss")


def accuracy(doc: Document, ev: Evidence) -> None:
    """3. Validation accuracy next to the majority-class accuracy."""
    seeds = ev.params.train.seeds
    majority = 1 - ev.summary.prevalence["val"]
    doc.heading("3. Validation accuracy")
    rows = []
    for variant, runs in ev.histories.items():
        at_half = [float(h.loc[h["val_ap"].idxmax(), "val_accuracy"]) for h in runs.values()]  # the kept epoch
        rows.append([label(variant), mean_sd([ev.val_accuracy(model_name(variant, s)) for s in seeds]),
                     mean_sd(at_half), f"{majority:.4f}"])
    doc.table(["Model", "Val accuracy at chosen threshold", "Val accuracy at 0.5 (kept epoch)",
               "Majority-class accuracy"], rows)
    doc.paragraph("Accuracy is dominated by the majority class: predicting \"legit\" for every row already scores "
                  f"{majority:.2%}. Judge the models on the minority-class metrics below, not on accuracy.")


def minority(doc: Document, ev: Evidence, figure_dir: Path) -> None:
    """4. Precision, recall, F1 and AP with intervals; per-variant means; overlaid PR curves."""
    p, seeds = ev.params, ev.params.train.seeds
    doc.heading("4. Minority-class precision, recall, F1 and average precision")
    doc.paragraph(f"Test split, threshold chosen on validation (`{p.evaluate.threshold.strategy}`); 95% stratified "
                  f"bootstrap intervals ({p.evaluate.bootstrap.resamples} resamples). Test prevalence "
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
    """5. Epochs and seconds to the baseline's best validation loss; seconds per epoch."""
    devices = analysis.describe_runs(ev.runs)["devices"]
    doc.heading("5. Speed")
    reached = analysis.targets(ev)
    if reached:
        doc.paragraph("Target: each seed's baseline best validation loss. Epochs are deterministic; "
                      "seconds are timings on " + ", ".join(devices) + ".")
        rows = []
        for seed, (target, bn, base) in reached.items():
            speedup = f"{base.epoch / bn.epoch:.2f}x" if bn.epoch else "not reached"
            rows.append([str(seed), f"{target:.4f}", str(bn.epoch) if bn.epoch else "not reached", str(base.epoch),
                         speedup])
        doc.table(["Seed", "Target val loss", "Epochs with BatchNorm", "Epochs without BatchNorm",
                   "Speed-up (epochs)"], rows)
    rows = []
    for variant, runs in ev.histories.items():
        row = [label(variant), mean_sd([float(h["epoch_seconds"].median()) for h in runs.values()], 3),
               mean_sd([float(h["samples_per_second"].median()) for h in runs.values()], 0)]
        if reached:
            row.append(mean_sd(analysis.seconds_to_target(reached, variant), 2))
        rows.append(row)
    doc.table(["Variant", "Seconds per epoch", "Samples per second"] + (["Seconds to target"] if reached else []),
              rows, volatile=True)


def verdict(doc: Document, ev: Evidence, found: list[Claim]) -> None:
    """6. Each claim's paired verdict across seeds."""
    doc.heading("6. Verdict")
    if not found:
        doc.paragraph("Both variants are needed for a verdict; this run trained only "
                      + ", ".join(ev.histories) + ".")
        return
    if len(ev.params.train.seeds) < 2:
        doc.paragraph("**Only one seed was trained: the verdict cannot judge seed-to-seed noise.** Every claim is "
                      "`inconclusive`; add seeds to `train.seeds`.")
    doc.table(["Claim", "Verdict", "Measured (positive favours BatchNorm)"],
              [[c.text, f"**{c.status}**", "; ".join(f"{v.measure}: {v.numbers()}" for v in c.parts)]
               for c in found])
    doc.paragraph("A claim is `supported` when the 95% t-interval of the mean paired difference (BatchNorm minus "
                  "baseline, paired by seed) lies on BatchNorm's side of zero, `not supported` when it lies on the "
                  "other side, `inconclusive` when it contains zero or only one seed was trained.")


def provenance(doc: Document, ev: Evidence, layout: Layout) -> None:
    """8. Git state, params, DVC hashes, MLflow runs."""
    commit, dirty = git_state()
    doc.heading("8. Provenance")
    doc.bullets([f"Git commit `{commit}`{' with uncommitted changes (dirty)' if dirty else ''}.",
                 "Params: " + "; ".join(f"`{k}`: {json.dumps(v)}" for k, v in
                                        ev.params.model_dump(include={"prepare", "train", "evaluate"}).items())])
    hashes = [[f"`{path}`", f"`{md5}`"] for path, md5 in lock_hashes(layout.lock)]
    doc.table(["DVC output", "md5"], hashes or [["(not run under DVC: no dvc.lock)", ""]])
    links = sorted({ui.comparison_url(r.experiment_id, r.group) for r in ev.runs.values()
                    if r is not None and r.run_id and r.experiment_id})
    if links:
        doc.bullets([f"MLflow comparison of this execution's runs (after `mlflow ui`): {url}" for url in links],
                    volatile=True)
    runs = {n: r for n, r in ev.runs.items() if r is not None and r.run_id}
    rows = [[n, r.run_id, f"runs:/{r.run_id}/model", r.tracking_uri or ""] for n, r in runs.items()]
    for pipeline in analysis.describe_runs(ev.runs)["pipelines"]:
        rows.append(["pipeline run (holds this report and the verdict)", pipeline, "", rows[0][3]])
    if rows:
        doc.table(["Model", "MLflow run id", "Model URI", "Tracking URI"], rows, volatile=True)


def diagnostics(doc: Document, ev: Evidence) -> None:
    """7. Pitfall checks, each with its fix."""
    doc.heading("7. Diagnostics")
    doc.bullets(findings(ev))
