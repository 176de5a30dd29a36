"""Every figure, drawn with matplotlib's object API (no global state, no display): per model (evaluate),
across models and replicates (report), across a sweep (study), across a suite's tables (suite).

scikit-learn's Display classes draw the curves they have; they are imported where used, so that the
commands that draw no such curve (study) never load scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from pipeline.project.variants import REFERENCE_COLOR, Catalogue

if TYPE_CHECKING:  # the study draws no suite figure: it never loads the suite's statistics
    from pipeline.analysis.pooling import PooledClaim


def save(fig: Figure, path: Path) -> Path:
    """Write a figure as PNG (tight layout, fixed metadata)."""
    fig.tight_layout()
    # Fixed metadata: the same data gives the same bytes (reproducible outputs and reports); a tight
    # box keeps a legend placed beside the axes.
    fig.savefig(path, dpi=90, metadata={"Software": None}, bbox_inches="tight")
    return path


@dataclass(frozen=True)
class ClaimPanel:
    """One claim as drawn on the first screen: its readings (label, estimate, low, high, tested) in the
    unit of ``xlabel``, and the practical-size band."""

    title: str
    xlabel: str
    band: tuple[float, float]
    rows: list[tuple[str, float, float, float, bool]]
    log_x: bool = False


def claim_effects(panels: list[ClaimPanel], path: Path) -> Path:
    """A panel a claim, each reading's estimate and interval one above the other (filled marker: the tested
    reading), the practical-size band shaded and no effect marked: the verdict words checked at a glance."""
    fig = Figure(figsize=(9, 1.15 * len(panels) + 0.6))
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, panel in zip(axes, panels):
        ys = np.arange(len(panel.rows), 0, -1, dtype=float)
        for y, (_, mean, low, high, tested) in zip(ys, panel.rows):
            ax.errorbar(
                mean,
                y,
                xerr=[[max(mean - low, 0.0)], [max(high - mean, 0.0)]],
                fmt="o",
                capsize=3,
                color="#1f77b4",
                markerfacecolor="#1f77b4" if tested else "white",
            )
        ax.axvspan(*panel.band, color="#dddddd", alpha=0.7)
        ax.axvline(1.0 if panel.log_x else 0.0, color="black", linewidth=0.8)
        if panel.log_x:  # ratios: 0.2x, 0.5x, 1x, 2x, ... (no e-notation, no crowded minor labels)
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_yticks(ys, [f"{name} (tested)" if tested else name for name, *_, tested in panel.rows])
        ax.set_ylim(0.4, len(panel.rows) + 0.6)
        ax.set_title(panel.title, fontsize=9, loc="left")
        ax.set_xlabel(panel.xlabel, fontsize=8)
        ax.tick_params(labelsize=8)
    return save(fig, path)


def overlaid_pr(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], prevalence: float, cat: Catalogue, path: Path
) -> Path:
    """Precision-recall curves of several models on one chart (name -> (y, p)); the legend sits
    beside the axes, where it cannot cover a curve; variants in their colours and line styles."""
    from sklearn.metrics import PrecisionRecallDisplay

    fig = Figure(figsize=(8.5, 5))
    ax = fig.subplots()
    for name, (y, p) in curves.items():
        variant = cat.variants.get(name.split("-")[0])
        PrecisionRecallDisplay.from_predictions(
            y,
            p,
            name=name,
            ax=ax,
            curve_kwargs={
                "drawstyle": "steps-post",
                "linestyle": variant.linestyle if variant else ":",
                "color": variant.color if variant else None,
                "linewidth": 1.2 if variant else 1.8,
            },
        )
    ax.axhline(prevalence, color="grey", linestyle="--", linewidth=1, label=f"prevalence {prevalence:.4f}")
    ax.set_title("Precision-recall on the test split")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, borderaxespad=0)
    return save(fig, path)


def loss_curves(histories: dict[str, dict[int, pd.DataFrame]], cat: Catalogue, path: Path) -> Path:
    """Mean training (solid) and validation (dashed) loss per variant, with the seed range shaded."""
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    for variant, runs in histories.items():
        colour = cat.color(variant)
        for key, style in (("train_loss", "-"), ("val_loss", "--")):
            frame = pd.concat(runs.values()).groupby("epoch")[key]
            mean, low, high = frame.mean(), frame.min(), frame.max()
            ax.plot(mean.index, mean.values, style, color=colour, label=f"{key} {cat.label(variant)}")
            ax.fill_between(mean.index, low.values, high.values, color=colour, alpha=0.12)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (log scale)")
    ax.set_title("Loss by epoch: mean over seeds, shaded from min to max")
    ax.legend(fontsize=8)
    return save(fig, path)


def tuning_curves(best_so_far: dict[str, list[float | None]], cat: Catalogue, path: Path) -> Path:
    """Each variant's best mean validation AP after each trial: saturated or still climbing."""
    fig = Figure(figsize=(7, 3.8))
    ax = fig.subplots()
    for variant, curve in best_so_far.items():
        colour = cat.color(variant)
        trials = [i + 1 for i, v in enumerate(curve) if v is not None]
        ax.step(trials, [v for v in curve if v is not None], where="post", color=colour, label=cat.label(variant))
    ax.set_xlabel("trials")
    ax.set_ylabel("best mean validation AP")
    ax.set_title("Tuning: the best setting found after each trial")
    ax.legend(fontsize=8)
    return save(fig, path)


def reliability(scores: dict[str, tuple[np.ndarray, np.ndarray]], cat: Catalogue, path: Path) -> Path:
    """Reliability (calibration) curves of several models on one chart (name -> (y, p)), quantile bins."""
    from sklearn.calibration import CalibrationDisplay

    fig = Figure(figsize=(6.5, 5))
    ax = fig.subplots()
    for name, (y, p) in scores.items():
        CalibrationDisplay.from_predictions(
            y,
            p,
            n_bins=10,
            strategy="quantile",
            name=cat.label(name),
            ax=ax,
            color=cat.color(name) if name in cat else None,
        )
    ax.set_title("Reliability on the test parts")
    ax.legend(fontsize=7, loc="upper left")
    return save(fig, path)


def sweep(summary: pd.DataFrame, param: str, cat: Catalogue, path: Path) -> Path:
    """Three panels against a swept param: test AP, final train loss, seconds per epoch, per variant."""
    fig = Figure(figsize=(13, 3.8))
    axes = fig.subplots(1, 3)
    panels = (
        ("test_ap", "test average precision"),
        ("final_train_loss", "final training loss"),
        ("seconds_per_epoch", "seconds per epoch"),
    )
    for ax, (key, heading) in zip(axes, panels):
        for variant in cat.variants.values():
            rows = summary[summary["variant"] == variant.name].sort_values("value")
            if rows.empty:
                continue
            mean = rows[f"{key}_mean"]
            spread = [mean - rows[f"{key}_min"], rows[f"{key}_max"] - mean]
            ax.errorbar(
                rows["value"], mean, yerr=spread, marker="o", capsize=3, color=variant.color, label=variant.name
            )
            failed = rows[rows["failed"] > 0]
            if not failed.empty:
                ax.scatter(
                    failed["value"],
                    [ax.get_ylim()[0]] * len(failed),
                    marker="x",
                    s=80,
                    color=variant.color,
                    label=f"{variant.name}: FAILED run(s)",
                )
        ax.set_xscale("log")
        if key == "final_train_loss":
            ax.set_yscale("log")
        ax.set_xlabel(param)
        ax.set_title(heading)
    axes[0].legend(fontsize=8)
    fig.suptitle("Mean over seeds; bars span min to max; x marks values with FAILED runs")
    return save(fig, path)


# ---------------------------------------------------------------- the suite


def forest(claim: PooledClaim, text: str, unit: str, path: Path) -> Path:
    """Each table's effect with its interval, the pooled random-effects estimate (a diamond) below, the
    ROPE shaded and 0 marked."""
    rows = claim.tables
    fig = Figure(figsize=(7.5, 0.45 * (len(rows) + 3) + 0.8))
    ax = fig.subplots()
    ys = np.arange(len(rows), 0, -1) + 1.0
    for y, e in zip(ys, rows):
        ax.errorbar(e.mean, y, xerr=[[e.mean - e.low], [e.high - e.mean]], fmt="s", color="#1f77b4", capsize=3)
    p = claim.pooled
    if np.isfinite(p.mean):
        ax.fill([p.low, p.mean, p.high, p.mean], [0.5, 0.8, 0.5, 0.2], color="#d62728")
    ax.axvspan(-claim.rope, claim.rope, color="#dddddd", alpha=0.6, label=f"ROPE ±{claim.rope:.3g}")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks([*ys, 0.5], [e.table for e in rows] + [f"pooled (I² {p.i2:.0%})" if np.isfinite(p.i2) else "pooled"])
    ax.set_xlabel(f"{claim.title} minus {claim.reference}, {unit} (positive favours the variant)")
    ax.set_ylim(-0.2, len(rows) + 1.6)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(f"{claim.title} {text}?")
    return save(fig, path)


def rank_grid(
    table_ranks: dict[str, dict[str, tuple[int, float]]], styles: dict[str, tuple[str, str]], path: Path
) -> Path:
    """A grid: tables as columns, models as rows, each cell the model's rank by test AP (1 best) and
    its mean test AP; variants (``styles``: name -> label, colour) in their colours, reference models grey."""
    tables = list(table_ranks)
    models = list(dict.fromkeys(m for t in tables for m in table_ranks[t]))
    grid = np.full((len(models), len(tables)), np.nan)
    for j, t in enumerate(tables):
        for i, m in enumerate(models):
            if m in table_ranks[t]:
                grid[i, j] = table_ranks[t][m][0]
    fig = Figure(figsize=(1.3 * len(tables) + 2.5, 0.55 * len(models) + 1.6))
    ax = fig.subplots()
    ax.imshow(grid, cmap="RdYlGn_r", vmin=1, vmax=max(len(models), 2), aspect="auto")
    for j, t in enumerate(tables):
        for i, m in enumerate(models):
            if m in table_ranks[t]:
                rank, ap = table_ranks[t][m]
                ax.text(j, i, f"#{rank}\n{ap:.3f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(tables)), tables, rotation=30, ha="right")
    ax.set_yticks(range(len(models)), [styles[m][0] if m in styles else m.replace("_", " ") for m in models])
    for tick, m in zip(ax.get_yticklabels(), models):
        tick.set_color(styles[m][1] if m in styles else REFERENCE_COLOR)
    ax.set_title("Rank by mean test AP per table (1 = best; cell: rank and test AP)")
    return save(fig, path)
