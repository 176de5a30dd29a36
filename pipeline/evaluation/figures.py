"""The five figures evaluate draws of each model on its test part: precision-recall, ROC, confusion matrix at
its threshold, calibration, and the scores by class. (The report's figures are ``reporting.figures``:
editing those re-runs only the report.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

FIGURE_NAMES = ("pr_curve", "roc_curve", "confusion_matrix", "calibration", "score_histogram")


def model_figures(name: str, y: np.ndarray, p: np.ndarray, threshold: float, out_dir: Path) -> list[Path]:
    """The five per-model evaluation figures on one split, as PNG files in out_dir."""
    from sklearn.calibration import CalibrationDisplay
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []

    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    # sklearn's chance level for a PR curve is the prevalence line.
    PrecisionRecallDisplay.from_predictions(
        y, p, name=name, ax=ax, plot_chance_level=True, curve_kwargs={"drawstyle": "steps-post"}
    )
    ax.set_title(f"{name}: precision-recall (test)")
    ax.legend(loc="upper right", fontsize=8)
    paths.append(_save(fig, out_dir / "pr_curve.png"))

    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    RocCurveDisplay.from_predictions(y, p, name=name, ax=ax, plot_chance_level=True)
    ax.set_title(f"{name}: ROC (test)")
    paths.append(_save(fig, out_dir / "roc_curve.png"))

    fig = Figure(figsize=(4.5, 4))
    ax = fig.subplots()
    ConfusionMatrixDisplay.from_predictions(
        y, (p >= threshold).astype(int), labels=[0, 1], display_labels=["legit", "fraud"], ax=ax, colorbar=False
    )
    ax.set_title(f"{name}: threshold {threshold:.3g} (test)")
    paths.append(_save(fig, out_dir / "confusion_matrix.png"))

    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    CalibrationDisplay.from_predictions(y, p, n_bins=10, strategy="quantile", name=name, ax=ax)
    ax.set_title(f"{name}: calibration (test)")
    paths.append(_save(fig, out_dir / "calibration.png"))

    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    bins = np.linspace(0, 1, 41)
    ax.hist(p[y == 0], bins=bins, alpha=0.6, label="legit", log=True)
    ax.hist(p[y == 1], bins=bins, alpha=0.8, label="fraud", log=True)
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3g}")
    ax.set_xlabel("predicted fraud probability")
    ax.set_ylabel("rows (log scale)")
    ax.set_title(f"{name}: scores by class (test)")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out_dir / "score_histogram.png"))
    return paths


def _save(fig: Figure, path: Path) -> Path:
    """Write a figure as PNG (tight layout, fixed metadata: the same scores give the same bytes)."""
    fig.tight_layout()
    fig.savefig(path, dpi=90, metadata={"Software": None}, bbox_inches="tight")
    return path
