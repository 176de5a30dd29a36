"""Every matplotlib figure: per model (evaluate), across models and seeds (report), across a sweep (study).

scikit-learn's Display classes draw the curves they have; they are imported where used, so that the
commands that draw no such curve (study) never load scikit-learn.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline.project.variants import CATALOGUE, VARIANTS, label  # noqa: E402

FIGURE_NAMES = ("pr_curve", "roc_curve", "confusion_matrix", "calibration", "score_histogram")


def save(fig: plt.Figure, path: Path) -> Path:
    """Write a figure as PNG (tight layout, fixed metadata) and close it."""
    fig.tight_layout()
    # Fixed metadata: the same data gives the same bytes (reproducible outputs and reports); a tight
    # box keeps a legend placed beside the axes.
    fig.savefig(path, dpi=90, metadata={"Software": None}, bbox_inches="tight")
    plt.close(fig)
    return path


def model_figures(name: str, y: np.ndarray, p: np.ndarray, threshold: float, out_dir: Path) -> list[Path]:
    """The five per-model evaluation figures on one split, as PNG files in out_dir."""
    from sklearn.calibration import CalibrationDisplay
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []

    fig, ax = plt.subplots(figsize=(5, 4))
    # sklearn's chance level for a PR curve is the prevalence line.
    PrecisionRecallDisplay.from_predictions(y, p, name=name, ax=ax, plot_chance_level=True,
                                            curve_kwargs={"drawstyle": "steps-post"})
    ax.set_title(f"{name}: precision-recall (test)")
    ax.legend(loc="upper right", fontsize=8)
    paths.append(save(fig, out_dir / "pr_curve.png"))

    fig, ax = plt.subplots(figsize=(5, 4))
    RocCurveDisplay.from_predictions(y, p, name=name, ax=ax, plot_chance_level=True)
    ax.set_title(f"{name}: ROC (test)")
    paths.append(save(fig, out_dir / "roc_curve.png"))

    fig, ax = plt.subplots(figsize=(4.5, 4))
    ConfusionMatrixDisplay.from_predictions(y, (p >= threshold).astype(int), labels=[0, 1],
                                            display_labels=["legit", "fraud"], ax=ax, colorbar=False)
    ax.set_title(f"{name}: threshold {threshold:.3g} (test)")
    paths.append(save(fig, out_dir / "confusion_matrix.png"))

    fig, ax = plt.subplots(figsize=(5, 4))
    CalibrationDisplay.from_predictions(y, p, n_bins=10, strategy="quantile", name=name, ax=ax)
    ax.set_title(f"{name}: calibration (test)")
    paths.append(save(fig, out_dir / "calibration.png"))

    fig, ax = plt.subplots(figsize=(5, 4))
    bins = np.linspace(0, 1, 41)
    ax.hist(p[y == 0], bins=bins, alpha=0.6, label="legit", log=True)
    ax.hist(p[y == 1], bins=bins, alpha=0.8, label="fraud", log=True)
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3g}")
    ax.set_xlabel("predicted fraud probability")
    ax.set_ylabel("rows (log scale)")
    ax.set_title(f"{name}: scores by class (test)")
    ax.legend(fontsize=8)
    paths.append(save(fig, out_dir / "score_histogram.png"))
    return paths


def overlaid_pr(curves: dict[str, tuple[np.ndarray, np.ndarray]], prevalence: float, path: Path) -> Path:
    """Precision-recall curves of several models on one chart (name -> (y, p)); the legend sits
    beside the axes, where it cannot cover a curve."""
    from sklearn.metrics import PrecisionRecallDisplay

    fig, ax = plt.subplots(figsize=(8.5, 5))
    for name, (y, p) in curves.items():
        variant = VARIANTS.get(name.split("-")[0])
        PrecisionRecallDisplay.from_predictions(y, p, name=name, ax=ax, curve_kwargs={
            "drawstyle": "steps-post", "linestyle": variant.linestyle if variant else ":",
            "color": variant.color if variant else None, "linewidth": 1.2 if variant else 1.8})
    ax.axhline(prevalence, color="grey", linestyle="--", linewidth=1, label=f"prevalence {prevalence:.4f}")
    ax.set_title("Precision-recall on the test split")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, borderaxespad=0)
    return save(fig, path)


def loss_curves(histories: dict[str, dict[int, pd.DataFrame]], path: Path) -> Path:
    """Mean training (solid) and validation (dashed) loss per variant, with the seed range shaded."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for variant, runs in histories.items():
        colour = VARIANTS[variant].color if variant in VARIANTS else "black"
        for key, style in (("train_loss", "-"), ("val_loss", "--")):
            frame = pd.concat(runs.values()).groupby("epoch")[key]
            mean, low, high = frame.mean(), frame.min(), frame.max()
            ax.plot(mean.index, mean.values, style, color=colour, label=f"{key} {label(variant)}")
            ax.fill_between(mean.index, low.values, high.values, color=colour, alpha=0.12)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (log scale)")
    ax.set_title("Loss by epoch: mean over seeds, shaded from min to max")
    ax.legend(fontsize=8)
    return save(fig, path)


def tuning_curves(best_so_far: dict[str, list[float | None]], path: Path) -> Path:
    """Each variant's best mean validation AP after each trial: saturated or still climbing."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for variant, curve in best_so_far.items():
        colour = VARIANTS[variant].color if variant in VARIANTS else "black"
        trials = [i + 1 for i, v in enumerate(curve) if v is not None]
        ax.step(trials, [v for v in curve if v is not None], where="post", color=colour, label=label(variant))
    ax.set_xlabel("trials")
    ax.set_ylabel("best mean validation AP")
    ax.set_title("Tuning: the best setting found after each trial")
    ax.legend(fontsize=8)
    return save(fig, path)


def reliability(scores: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> Path:
    """Reliability (calibration) curves of several models on one chart (name -> (y, p)), quantile bins."""
    from sklearn.calibration import CalibrationDisplay

    fig, ax = plt.subplots(figsize=(6.5, 5))
    for name, (y, p) in scores.items():
        variant = VARIANTS.get(name)
        CalibrationDisplay.from_predictions(y, p, n_bins=10, strategy="quantile", name=label(name), ax=ax,
                                            color=variant.color if variant else None)
    ax.set_title("Reliability on the test parts")
    ax.legend(fontsize=7, loc="upper left")
    return save(fig, path)


def sweep(summary: pd.DataFrame, param: str, path: Path) -> Path:
    """Three panels against a swept param: test AP, final train loss, seconds per epoch, per variant."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    panels = (("test_ap", "test average precision"), ("final_train_loss", "final training loss"),
              ("seconds_per_epoch", "seconds per epoch"))
    for ax, (key, heading) in zip(axes, panels):
        for variant in CATALOGUE:
            rows = summary[summary["variant"] == variant.name].sort_values("value")
            if rows.empty:
                continue
            mean = rows[f"{key}_mean"]
            spread = [mean - rows[f"{key}_min"], rows[f"{key}_max"] - mean]
            ax.errorbar(rows["value"], mean, yerr=spread, marker="o", capsize=3, color=variant.color,
                        label=variant.name)
            failed = rows[rows["failed"] > 0]
            if not failed.empty:
                ax.scatter(failed["value"], [ax.get_ylim()[0]] * len(failed), marker="x", s=80, color=variant.color,
                           label=f"{variant.name}: FAILED run(s)")
        ax.set_xscale("log")
        if key == "final_train_loss":
            ax.set_yscale("log")
        ax.set_xlabel(param)
        ax.set_title(heading)
    axes[0].legend(fontsize=8)
    fig.suptitle("Mean over seeds; bars span min to max; x marks values with FAILED runs")
    return save(fig, path)
