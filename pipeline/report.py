"""DVC stage `report`: the BatchNorm-versus-baseline report, from the other stages' outputs only."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import platform
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import accuracy_score, average_precision_score

from pipeline import analysis, figures, tracking
from pipeline.analysis import Verdict, at_epoch, epochs_to_target, mean_sd, paired_verdict, value_at
from pipeline.cli import StageError, run_stage
from pipeline.config import Params, load_params
from pipeline.data import load_split
from pipeline.document import Document
from pipeline.evaluate import COMBINED, METRICS_DIR, SCORES_DIR
from pipeline.outputs import staged
from pipeline.prepare import DATA_DIR, SUMMARY
from pipeline.train import HISTORY_DIR, MODELS_DIR, model_name

log = logging.getLogger("pipeline.report")

REPORT_DIR = Path("reports")
VARIANTS = {"batchnorm": "with BatchNorm", "baseline": "without BatchNorm"}


@dataclass(frozen=True)
class Sources:
    """Where the report reads (the other stages' outputs)."""

    data: Path = DATA_DIR
    summary: Path = SUMMARY
    models: Path = MODELS_DIR
    history: Path = HISTORY_DIR
    metrics: Path = METRICS_DIR
    combined: Path = COMBINED
    scores: Path = SCORES_DIR
    lock: Path = Path("dvc.lock")


@dataclass
class Inputs:
    """Everything the report is built from."""

    params: Params
    summary: dict[str, Any]
    histories: dict[str, dict[int, pd.DataFrame]]  # variant -> seed -> history
    metrics: dict[str, dict[str, float]]  # model or reference -> evaluate metrics
    scores: dict[str, pd.DataFrame]
    runs: dict[str, dict[str, Any]]
    lock: dict[str, Any] | None
    scaled_means: dict[str, float]  # split -> largest |column mean| after scaling


def _need(path: Path) -> Path:
    if not path.exists():
        raise StageError(f"{path} not found; run the earlier stages first (dvc repro)")
    return path


def gather(params: Params, src: Sources) -> Inputs:
    """Read the outputs of prepare, train and evaluate."""
    summary = json.loads(_need(src.summary).read_text())
    histories: dict[str, dict[int, pd.DataFrame]] = {v: {} for v in params.train.variants}
    metrics, scores, runs = {}, {}, {}
    names = [model_name(v, s) for v in params.train.variants for s in params.train.seeds]
    for variant in params.train.variants:
        for seed in params.train.seeds:
            histories[variant][seed] = pd.read_csv(_need(src.history / f"{model_name(variant, seed)}.csv"))
    for name in names + list(params.evaluate.references):
        metrics[name] = json.loads(_need(src.metrics / f"{name}.json").read_text())
        scores[name] = pd.read_parquet(_need(src.scores / f"{name}.parquet"))
    for name in names:
        run_file = src.models / f"{name}.run.json"
        runs[name] = json.loads(run_file.read_text()) if run_file.is_file() else {}
    lock = yaml.safe_load(src.lock.read_text()) if src.lock.is_file() else None
    scaled = {s: float(np.abs(load_split(src.data, s, summary["label"]).x.mean(axis=0)).max())
              for s in ("train", "val", "test")}
    return Inputs(params, summary, histories, metrics, scores, runs, lock, scaled)


# ---------------------------------------------------------------- figures


def loss_figure(inputs: Inputs, path: Path) -> Path:
    """Mean training (solid) and validation (dashed) loss per variant, with the seed range shaded."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for colour, (variant, runs) in zip(("tab:blue", "tab:orange"), inputs.histories.items()):
        for key, style in (("train_loss", "-"), ("val_loss", "--")):
            frame = pd.concat(runs.values()).groupby("epoch")[key]
            mean, low, high = frame.mean(), frame.min(), frame.max()
            ax.plot(mean.index, mean.values, style, color=colour, label=f"{key} {VARIANTS.get(variant, variant)}")
            ax.fill_between(mean.index, low.values, high.values, color=colour, alpha=0.12)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (log scale)")
    ax.set_title("Loss by epoch: mean over seeds, shaded from min to max")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(fig)
    return path


# ---------------------------------------------------------------- numbers


def split_scores(inputs: Inputs, name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels, scores) that evaluate saved for one model on one split."""
    scores = inputs.scores[name]
    rows = scores[scores["split"] == split]
    return rows["y_true"].to_numpy(), rows["score"].to_numpy()


def _val_accuracy(inputs: Inputs, name: str) -> float:
    y, p = split_scores(inputs, name, "val")
    return float(accuracy_score(y, p >= inputs.metrics[name]["threshold"]))


def _pairs(inputs: Inputs) -> list[int]:
    both = {"batchnorm", "baseline"} <= set(inputs.histories)
    return list(inputs.params.train.seeds) if both else []


def targets(inputs: Inputs) -> dict[int, tuple[float, analysis.ToTarget, analysis.ToTarget]]:
    """Per seed: the baseline's best val_loss, and when each variant first reached it."""
    out = {}
    for seed in _pairs(inputs):
        base, bn = inputs.histories["baseline"][seed], inputs.histories["batchnorm"][seed]
        target = float(base["val_loss"].min())
        out[seed] = (target, epochs_to_target(bn, target), epochs_to_target(base, target))
    return out


def verdicts(inputs: Inputs) -> list[tuple[str, list[Verdict], str]]:
    """Each claim with its paired measurements and combined status."""
    seeds = _pairs(inputs)
    if not seeds:
        return []
    early = min(inputs.params.report.early_epoch, *(len(h) for v in inputs.histories.values() for h in v.values()))
    bn = {s: model_name("batchnorm", s) for s in seeds}
    base = {s: model_name("baseline", s) for s in seeds}
    loss = paired_verdict("BatchNorm lowers training loss sooner", f"baseline minus BatchNorm train loss at epoch {early}",
                          [value_at(inputs.histories["baseline"][s], "train_loss", early)
                           - value_at(inputs.histories["batchnorm"][s], "train_loss", early) for s in seeds])
    acc = paired_verdict("BatchNorm raises validation accuracy",
                         "BatchNorm minus baseline validation accuracy at the chosen threshold",
                         [_val_accuracy(inputs, bn[s]) - _val_accuracy(inputs, base[s]) for s in seeds])
    prec = paired_verdict("BatchNorm raises minority-class precision", "BatchNorm minus baseline test precision",
                          [inputs.metrics[bn[s]]["test_precision"] - inputs.metrics[base[s]]["test_precision"]
                           for s in seeds])
    rec = paired_verdict("BatchNorm raises minority-class recall", "BatchNorm minus baseline test recall",
                         [inputs.metrics[bn[s]]["test_recall"] - inputs.metrics[base[s]]["test_recall"]
                          for s in seeds])
    reached = targets(inputs)
    penalty = {s: (t.epoch if t.epoch is not None else len(inputs.histories["batchnorm"][s]) + 1)
               for s, (_, t, _) in reached.items()}
    faster = paired_verdict("BatchNorm reaches the target loss faster",
                            "baseline minus BatchNorm epochs to reach the baseline's best validation loss",
                            [float(reached[s][2].epoch - penalty[s]) for s in seeds])
    return [(loss.claim, [loss], loss.status), (acc.claim, [acc], acc.status),
            ("BatchNorm raises minority-class precision and recall", [prec, rec], analysis.combine("", [prec, rec])),
            (faster.claim, [faster], faster.status)]


# ---------------------------------------------------------------- the document


def build(inputs: Inputs, figure_dir: Path, generated: str) -> Document:
    """Assemble every section of the report."""
    p, s = inputs.params, inputs.summary
    doc = Document("Does BatchNorm help on this imbalanced data? BatchNorm versus baseline")
    doc.paragraph(f"Generated {generated}.", volatile=True)
    seeds = list(p.train.seeds)
    devices = sorted({r.get("device", "?") for r in inputs.runs.values()}) or ["unknown"]

    doc.heading("1. Setup")
    doc.bullets([
        f"Data: `{s['source']}` (SHA-256 `{s['source_sha256'][:16]}…`), label `{s['label']}`, "
        f"{s['n_features']} features, {s['split_method']} split; rows with NaN/inf dropped: {s['dropped_nonfinite']}.",
        f"Model: MLP, hidden layers {p.train.model.hidden}, {p.train.model.activation}, dropout "
        f"{p.train.model.dropout}; the `batchnorm` variant adds BatchNorm1d {p.train.model.batchnorm_placement} each "
        "activation; nothing else differs, and shared layers start from the same weights.",
        f"Training: {p.train.epochs} epochs at most (early stopping patience {p.train.patience} on validation AP), "
        f"batch size {p.train.batch_size}, {p.train.optimizer.name} lr {p.train.lr:g}, weight decay "
        f"{p.train.optimizer.weight_decay:g}, pos_weight `{p.train.pos_weight}`, gradient clip {p.train.grad_clip:g}.",
        f"Seeds: {seeds}. Device: {', '.join(devices)}. Threshold: `{p.evaluate.threshold.strategy}` on validation.",
        "Versions: " + ", ".join(f"{pkg} {version(pkg)}" for pkg in ("torch", "scikit-learn", "mlflow", "dvc",
                                                                    "numpy", "pandas")) +
        f", Python {platform.python_version()}.",
    ])
    doc.table(["Split", "Rows", "Frauds", "Prevalence"],
              [[n, f"{s['rows'][n]:,}", f"{s['positives'][n]:,}", f"{s['prevalence'][n]:.4%}"]
               for n in ("train", "val", "test")])

    doc.heading("2. Training curves")
    longest = max(len(h) for runs in inputs.histories.values() for h in runs.values())
    epochs = analysis.table_epochs(longest)
    variants = list(inputs.histories)
    for key, label in (("train_loss", "train loss"), ("val_loss", "validation loss")):
        rows = []
        for epoch in epochs:
            cells = []
            for variant in variants:
                values = at_epoch(inputs.histories[variant], key, epoch)
                note = f" (n={len(values)})" if 0 < len(values) < len(seeds) else ""
                cells.append(mean_sd(values) + note)
            rows.append([str(epoch), *cells])
        doc.paragraph(f"**{label.capitalize()}**, mean ± standard deviation over {len(seeds)} seed(s); "
                      "n < seeds where early stopping ended a run before that epoch.")
        doc.table(["Epoch", *[f"{label} {VARIANTS.get(v, v)}" for v in variants]], rows)
    doc.figure(loss_figure(inputs, figure_dir / "loss_curves.png"), "Training (solid) and validation (dashed) loss")

    doc.heading("3. Validation accuracy")
    majority = 1 - s["prevalence"]["val"]
    rows = []
    for variant in variants:
        names = [model_name(variant, seed) for seed in seeds]
        kept = [inputs.histories[variant][seed] for seed in seeds]  # the best-val_ap epoch is the one kept
        at_half = [float(h.loc[h["val_ap"].idxmax(), "val_accuracy"]) for h in kept]
        rows.append([VARIANTS.get(variant, variant), mean_sd([_val_accuracy(inputs, n) for n in names]),
                     mean_sd(at_half), f"{majority:.4f}"])
    doc.table(["Model", "Val accuracy at chosen threshold", "Val accuracy at 0.5 (kept epoch)",
               "Majority-class accuracy"], rows)
    doc.paragraph("Accuracy is dominated by the majority class: predicting \"legit\" for every row already scores "
                  f"{majority:.2%}. Judge the models on the minority-class metrics below, not on accuracy.")

    doc.heading("4. Minority-class precision, recall, F1 and average precision")
    doc.paragraph(f"Test split, threshold chosen on validation (`{p.evaluate.threshold.strategy}`); 95% stratified "
                  f"bootstrap intervals ({p.evaluate.bootstrap.resamples} resamples). Test prevalence "
                  f"{s['prevalence']['test']:.4f} is the average precision of a random ranking.")
    rows = []
    for name, m in inputs.metrics.items():
        def ci(key: str, m: dict[str, float] = m) -> str:
            return f"{m[f'test_{key}']:.3f} [{m[f'test_{key}_ci_low']:.3f}, {m[f'test_{key}_ci_high']:.3f}]"

        rows.append([name, f"{m['threshold']:.3g}", ci("precision"), ci("recall"), ci("f1"), ci("ap"),
                     f"{m['test_roc_auc']:.3f}"])
    doc.table(["Model", "Threshold", "Precision", "Recall", "F1", "Average precision", "ROC-AUC"], rows)
    summary_rows = []
    for variant in variants:
        names = [model_name(variant, seed) for seed in seeds]
        summary_rows.append([VARIANTS.get(variant, variant)] + [mean_sd([inputs.metrics[n][f"test_{k}"] for n in names], 3)
                                                                for k in ("precision", "recall", "f1", "ap")])
    doc.table(["Variant (mean ± sd over seeds)", "Precision", "Recall", "F1", "Average precision"], summary_rows)
    curves = {n: split_scores(inputs, n, "test") for n in inputs.scores}
    doc.figure(figures.overlaid_pr(curves, s["prevalence"]["test"], figure_dir / "precision_recall.png"),
               "Precision-recall curves on the test split, every model")

    doc.heading("5. Speed")
    reached = targets(inputs)
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
    for variant in variants:
        runs = inputs.histories[variant].values()
        rows.append([VARIANTS.get(variant, variant), mean_sd([float(h["epoch_seconds"].median()) for h in runs], 3),
                     mean_sd([float(h["samples_per_second"].median()) for h in runs], 0)])
    if reached:
        for row, key in zip(rows, variants):
            secs = [(bn if key == "batchnorm" else base).seconds for _, bn, base in reached.values()]
            row.append(mean_sd([x for x in secs if x is not None], 2))
    doc.table(["Variant", "Seconds per epoch", "Samples per second"] + (["Seconds to target"] if reached else []),
              rows, volatile=True)

    doc.heading("6. Verdict")
    found = verdicts(inputs)
    if not found:
        doc.paragraph("Both variants are needed for a verdict; this run trained only " + ", ".join(variants) + ".")
    if len(seeds) < 2 and found:
        doc.paragraph("**Only one seed was trained: the verdict cannot judge seed-to-seed noise.** Every claim is "
                      "`inconclusive`; add seeds to `train.seeds`.")
    rows = []
    for claim, parts, status in found:
        rows.append([claim, f"**{status}**", "; ".join(f"{v.measure}: {v.numbers()}" for v in parts)])
    if rows:
        doc.table(["Claim", "Verdict", "Measured (positive favours BatchNorm)"], rows)
        doc.paragraph("A claim is `supported` when the 95% t-interval of the mean paired difference (BatchNorm minus "
                      "baseline, paired by seed) lies on BatchNorm's side of zero, `not supported` when it lies on the "
                      "other side, `inconclusive` when it contains zero or only one seed was trained.")

    doc.heading("7. Diagnostics")
    doc.bullets(diagnostics(inputs))

    doc.heading("8. Provenance")
    commit, dirty = tracking.git_state()
    doc.bullets([f"Git commit `{commit}`{' with uncommitted changes (dirty)' if dirty else ''}.",
                 "Params: " + "; ".join(f"`{k}`: {json.dumps(v)}" for k, v in
                                        p.model_dump(include={"prepare", "train", "evaluate"}).items())])
    doc.table(["DVC output", "md5"], lock_hashes(inputs.lock) or [["(not run under DVC: no dvc.lock)", ""]])
    run_rows = [[name, r["run_id"], f"runs:/{r['run_id']}/model", r.get("tracking_uri", "")]
                for name, r in inputs.runs.items() if r.get("run_id")]
    for parent in sorted({r["parent_run_id"] for r in inputs.runs.values() if r.get("parent_run_id")}):
        run_rows.append(["pipeline (parent run, holds this report)", parent, "", run_rows[0][3]])
    if run_rows:
        doc.table(["Model", "MLflow run id", "Model URI", "Tracking URI"], run_rows, volatile=True)
    return doc


def lock_hashes(lock: dict[str, Any] | None) -> list[list[str]]:
    """md5 of the prepared data and the model checkpoints recorded in dvc.lock.

    Only deterministic outputs: run files (run ids) and histories (timings) differ between runs.
    """
    if not lock:
        return []
    rows = []
    for _, entry in sorted(lock.get("stages", {}).items()):
        for out in entry.get("outs", []):
            path = str(out["path"])
            if out.get("md5") and (path == "data/prepared" or path.endswith(".pt")):
                rows.append([f"`{path}`", f"`{out['md5']}`"])
    return rows


def diagnostics(inputs: Inputs) -> list[str]:
    """Findings from the histories and metrics, each with what to change."""
    p, found = inputs.params, []
    for variant, runs in inputs.histories.items():
        label = VARIANTS.get(variant, variant)
        noisy = [analysis.noisy_share(h) for h in runs.values()]
        drops = [d for d in (analysis.loss_drop(h) for h in runs.values()) if np.isfinite(d)]
        rises = [analysis.val_loss_rise(h) for h in runs.values()]
        plateaued = [seed for seed, h in runs.items() if len(h) < p.train.epochs]
        if np.mean(noisy) > 0.4:
            found.append(f"Validation loss {label} is noisy (rises in {np.mean(noisy):.0%} of epochs): lower `train.lr` "
                         "or raise `train.batch_size`.")
        if drops and min(drops) < 0.05:
            found.append(f"Training loss {label} is stuck in some seed (falls by only {min(drops):.1%} after "
                         "epoch 2): raise `train.lr`, or check the feature scaling.")
        if plateaued:
            found.append(f"Early stopping ended {label} for seed(s) {plateaued}: validation AP stopped improving for "
                         f"{p.train.patience} epochs (a plateau; raise `train.patience` or `train.lr` if it came early).")
        gaps = [inputs.metrics[model_name(variant, s)]["train_ap"] - inputs.metrics[model_name(variant, s)]["test_ap"]
                for s in runs]
        verdict = "a sign of overfitting: add weight decay or dropout, or stop earlier" if np.mean(gaps) > 0.1 \
            else "no strong overfitting"
        found.append(f"Train versus test average precision gap {label}: {mean_sd(gaps, 3)}; validation loss ends "
                     f"{np.mean(rises):.0%} above its best. {verdict[0].upper()}{verdict[1:]}.")
    if "batchnorm" in inputs.histories:
        if p.train.batch_size < p.report.small_batch:
            found.append(f"BatchNorm with batch size {p.train.batch_size} (< {p.report.small_batch}): batch statistics "
                         "are noisy and its running estimates unreliable; raise `train.batch_size`.")
        else:
            found.append(f"Batch size {p.train.batch_size} is large enough for stable BatchNorm statistics "
                         f"(warning below {p.report.small_batch}).")
    mismatched = []
    for variant, runs in inputs.histories.items():
        for seed, history in runs.items():
            name = model_name(variant, seed)
            recomputed = float(average_precision_score(*split_scores(inputs, name, "val")))
            if abs(recomputed - float(history["val_ap"].max())) > 1e-4:
                mismatched.append(name)
    found.append("Validation metrics in the histories were computed in train mode or on other weights for "
                 f"{mismatched}: rerun training." if mismatched else
                 "Validation metrics were computed in eval mode: each history's best val_ap equals the AP that "
                 "evaluate recomputed from the kept weights in eval mode.")
    trapped = [n for n, m in inputs.metrics.items() if m.get("test_accuracy_trap")]
    if trapped:
        found.append(f"Accuracy trap: {', '.join(trapped)} score at least the majority-class accuracy while test recall "
                     f"is below {p.evaluate.recall_target:.0%}; high accuracy here says nothing about catching fraud.")
    else:
        found.append(f"No model falls in the accuracy trap (recall target {p.evaluate.recall_target:.0%}).")
    m = inputs.scaled_means
    found.append(f"Leakage guard: the scaler was fitted on the training split only (largest |column mean| after "
                 f"scaling: train {m['train']:.1e}, validation {m['val']:.1e}, test {m['test']:.1e}); validation and "
                 "test never inform scaling or the threshold's choice on test.")
    return found


def run(params: Params, src: Sources = Sources(), out_dir: Path = REPORT_DIR, track: bool = True) -> Path:
    """Write reports/report.md, reports/report.html and reports/figures/."""
    inputs = gather(params, src)
    with staged(out_dir) as (tmp,):
        (tmp / "figures").mkdir(parents=True)
        generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        doc = build(inputs, tmp / "figures", generated)
        (tmp / "report.md").write_text(doc.markdown(tmp))
        (tmp / "report.html").write_text(doc.html())
        parents = {r["parent_run_id"] for r in inputs.runs.values() if r.get("parent_run_id")}
        if track:
            for parent in sorted(parents):
                tracking.log_evaluation(parent, {}, (tmp,), "report")
    log.info("report: wrote %s and %s", out_dir / "report.md", out_dir / "report.html")
    return out_dir


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m pipeline.report``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    return run_stage("report", lambda: run(load_params(args.params)))


if __name__ == "__main__":
    raise SystemExit(main())
