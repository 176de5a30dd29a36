"""The suite's figures: a forest plot per claim, and each model's rank per table."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.project.variants import REFERENCE_COLOR, VARIANTS, label, title
from pipeline.reporting.figures import plt, save
from pipeline.reporting.pooled import PooledClaim


def forest(claim: PooledClaim, text: str, unit: str, path: Path) -> Path:
    """Each table's effect with its interval, the pooled random-effects estimate (a diamond) below, the
    ROPE shaded and 0 marked."""
    rows = claim.tables
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * (len(rows) + 3) + 0.8))
    ys = np.arange(len(rows), 0, -1) + 1.0
    for y, e in zip(ys, rows):
        ax.errorbar(e.mean, y, xerr=[[e.mean - e.low], [e.high - e.mean]], fmt="s", color="#1f77b4", capsize=3)
    p = claim.pooled
    if np.isfinite(p.mean):
        ax.fill([p.low, p.mean, p.high, p.mean], [0.5, 0.8, 0.5, 0.2], color="#d62728")
    ax.axvspan(-claim.rope, claim.rope, color="#dddddd", alpha=0.6, label=f"ROPE ±{claim.rope:.3g}")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks([*ys, 0.5], [e.table for e in rows] + [f"pooled (I² {p.i2:.0%})" if np.isfinite(p.i2)
                                                          else "pooled"])
    ax.set_xlabel(f"{title(claim.variant)} minus the baseline, {unit} (positive favours the variant)")
    ax.set_ylim(-0.2, len(rows) + 1.6)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(f"{title(claim.variant)} {text}?")
    return save(fig, path)


def ranks(table_ranks: dict[str, dict[str, tuple[int, float]]], path: Path) -> Path:
    """A grid: tables as columns, models as rows, each cell the model's rank by test AP (1 best) and
    its mean test AP; variants in their colours, reference models grey."""
    tables = list(table_ranks)
    models = list(dict.fromkeys(m for t in tables for m in table_ranks[t]))
    grid = np.full((len(models), len(tables)), np.nan)
    for j, t in enumerate(tables):
        for i, m in enumerate(models):
            if m in table_ranks[t]:
                grid[i, j] = table_ranks[t][m][0]
    fig, ax = plt.subplots(figsize=(1.3 * len(tables) + 2.5, 0.55 * len(models) + 1.6))
    ax.imshow(grid, cmap="RdYlGn_r", vmin=1, vmax=max(len(models), 2), aspect="auto")
    for j, t in enumerate(tables):
        for i, m in enumerate(models):
            if m in table_ranks[t]:
                rank, ap = table_ranks[t][m]
                ax.text(j, i, f"#{rank}\n{ap:.3f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(tables)), tables, rotation=30, ha="right")
    ax.set_yticks(range(len(models)), [label(m) for m in models])
    for tick, m in zip(ax.get_yticklabels(), models):
        tick.set_color(VARIANTS[m].color if m in VARIANTS else REFERENCE_COLOR)
    ax.set_title("Rank by mean test AP per table (1 = best; cell: rank and test AP)")
    return save(fig, path)
