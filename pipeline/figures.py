"""Matplotlib figures for evaluation and the report (sklearn's Display classes where they exist)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.calibration import CalibrationDisplay  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay  # noqa: E402

FIGURE_NAMES = ("pr_curve", "roc_curve", "confusion_matrix", "calibration", "score_histogram")


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    # Fixed metadata: the same data gives the same bytes (reproducible outputs and reports).
    fig.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(fig)
    return path


def model_figures(name: str, y: np.ndarray, p: np.ndarray, threshold: float, out_dir: Path) -> list[Path]:
    """The five per-model evaluation figures on one split, as PNG files in out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []

    fig, ax = plt.subplots(figsize=(5, 4))
    # sklearn's chance level for a PR curve is the prevalence line.
    PrecisionRecallDisplay.from_predictions(y, p, name=name, ax=ax, plot_chance_level=True,
                                            curve_kwargs={"drawstyle": "steps-post"})
    ax.set_title(f"{name}: precision-recall (test)")
    ax.legend(loc="upper right", fontsize=8)
    paths.append(_save(fig, out_dir / "pr_curve.png"))

    fig, ax = plt.subplots(figsize=(5, 4))
    RocCurveDisplay.from_predictions(y, p, name=name, ax=ax, plot_chance_level=True)
    ax.set_title(f"{name}: ROC (test)")
    paths.append(_save(fig, out_dir / "roc_curve.png"))

    fig, ax = plt.subplots(figsize=(4.5, 4))
    ConfusionMatrixDisplay.from_predictions(y, (p >= threshold).astype(int), labels=[0, 1],
                                            display_labels=["legit", "fraud"], ax=ax, colorbar=False)
    ax.set_title(f"{name}: threshold {threshold:.3g} (test)")
    paths.append(_save(fig, out_dir / "confusion_matrix.png"))

    fig, ax = plt.subplots(figsize=(5, 4))
    CalibrationDisplay.from_predictions(y, p, n_bins=10, strategy="quantile", name=name, ax=ax)
    ax.set_title(f"{name}: calibration (test)")
    paths.append(_save(fig, out_dir / "calibration.png"))

    fig, ax = plt.subplots(figsize=(5, 4))
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


def overlaid_pr(curves: dict[str, tuple[np.ndarray, np.ndarray]], prevalence: float, path: Path) -> Path:
    """Precision-recall curves of several models on one chart (name -> (y, p))."""
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for name, (y, p) in curves.items():
        style = "-" if "batchnorm" in name else ("--" if "baseline" in name else ":")
        PrecisionRecallDisplay.from_predictions(y, p, name=name, ax=ax,
                                                curve_kwargs={"drawstyle": "steps-post", "linestyle": style})
    ax.axhline(prevalence, color="grey", linestyle="--", linewidth=1, label=f"prevalence {prevalence:.4f}")
    ax.set_title("Precision-recall on the test split")
    ax.legend(loc="upper right", fontsize=7)
    return _save(fig, path)
