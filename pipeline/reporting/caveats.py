"""What weakens the verdict, said where the verdict is read: a variant worse than a linear model, runs
cut off while improving, a tuning choice at the edge of its space or a budget still paying off, too
few replicates for the family of claims, a split that could not be redrawn."""

from __future__ import annotations

import numpy as np

from pipeline.evaluation.stats import fewest_replicates, outer_bootstrap, smallest_p
from pipeline.project.variants import title
from pipeline.reporting.claims import FAMILY, Claim, test_measures
from pipeline.reporting.evidence import Evidence

YARDSTICK = "logistic_regression"


# The kinds of caveat, in the report's order; the first three say the comparison itself is weak (a suite
# reads them from each table's metrics/summary.json, ``caveat_kinds``, to pool without such tables).
KINDS = ("below_yardstick", "cut_off", "tuning_climbing", "at_edge", "few_replicates", "fixed_split")
WEAK_COMPARISON = KINDS[:3]


def by_kind(ev: Evidence, found: dict[str, list[Claim]]) -> dict[str, list[str]]:
    """Every caveat that applies, by kind (every kind present, possibly with no sentence)."""
    return {"below_yardstick": below_yardstick(ev), "cut_off": capped(ev), "tuning_climbing": climbing(ev),
            "at_edge": at_edge(ev), "few_replicates": replicates(ev, found), "fixed_split": split(ev)}


def sentences(found_kinds: dict[str, list[str]]) -> list[str]:
    """Every caveat of ``by_kind``, in a fixed order (the same list goes to metrics/summary.json)."""
    return [c for said in found_kinds.values() for c in said]


def kinds(found_kinds: dict[str, list[str]]) -> list[str]:
    """The kinds of ``by_kind`` that apply, in KINDS' order."""
    return [k for k in KINDS if found_kinds.get(k)]


def below_yardstick(ev: Evidence) -> list[str]:
    """A compared variant below the class-weighted logistic regression, when their paired interval
    (replicates and test rows for AP, replicates for ROC-AUC) lies wholly below zero."""
    if YARDSTICK not in ev.params.evaluate.references.names():
        return []
    out, b, level = [], ev.params.report.bootstrap, ev.params.report.confidence
    for variant in ev.histories:
        ap = test_measures(ev, variant, YARDSTICK, money=False)["ap"]
        auc = [x - y for x, y in zip(ev.values(variant, "test_roc_auc"), ev.values(YARDSTICK, "test_roc_auc"))]
        auc_low, auc_high = outer_bootstrap(auc, b.resamples, b.seed, level)
        for what, mean, high, low in (("average precision", ap.mean, ap.high, ap.low),
                                      ("ROC-AUC", float(np.mean(auc)), auc_high, auc_low)):
            if high < 0:
                out.append(f"{_start(title(variant))} ranks below the logistic regression on test {what} "
                           f"({mean:+.3f} [{low:+.3f}, {high:+.3f}], paired by replicate): a comparison of MLPs "
                           "worse than a linear model says little; check its tuning and training.")
    return out


def capped(ev: Evidence) -> list[str]:
    """Compared runs whose best epoch was the last one allowed: still improving when cut off."""
    cap = ev.params.train.epochs
    out = []
    for variant, runs in ev.histories.items():
        stopped = [r for r, h in runs.items() if int(h.loc[h["val_ap"].idxmax(), "epoch"]) == cap]
        if stopped:
            out.append(f"{_start(title(variant))}: replicate(s) {stopped} had their best validation AP at the "
                       f"epoch cap ({cap}): still improving when stopped; raise train.epochs.")
    return out


def at_edge(ev: Evidence) -> list[str]:
    """A chosen value at the edge of the space."""
    return [f"{_start(title(variant))}'s tuned {name} sits at the {end} end of train.tune.space.{name}: the best "
            "may lie beyond it; widen the space."
            for variant, entry in ev.selection["variants"].items() for name, end in entry["at_edge"].items()]


def climbing(ev: Evidence) -> list[str]:
    """A search whose last quarter still raised the best validation AP by more than report.saturation."""
    out, tolerance = [], ev.params.report.saturation
    for variant, entry in ev.selection["variants"].items():
        curve = [v for v in entry["best_so_far"] if v is not None]
        quarter = max(1, len(curve) // 4)
        if len(curve) > quarter and curve[-1] - curve[-quarter - 1] > tolerance:
            out.append(f"{_start(title(variant))}'s tuning was still climbing: its last {quarter} trial(s) raised "
                       f"the best validation AP by {curve[-1] - curve[-quarter - 1]:.3f} (> {tolerance:g}); raise "
                       "train.tune.trials.")
    return out


def replicates(ev: Evidence, found: dict[str, list[Claim]]) -> list[str]:
    """Too few replicates: no claim can pass the corrected level, or too little power at the practical size."""
    n, alpha = len(ev.replicates), 1 - ev.params.report.confidence
    strictest = alpha / len(FAMILY)
    if smallest_p(n) > strictest:
        return [f"With {n} replicate(s) the permutation test cannot go below p = {smallest_p(n):.3g}, above Holm's "
                f"{strictest:.3g} for {len(FAMILY)} claims: no claim can be supported; use at least "
                f"{fewest_replicates(strictest)} (prepare.replicates)."]
    out = []
    for variant, claims in found.items():
        weak = [c for c in claims if c.power.power < c.power.target]  # the design's power, whatever the outcome
        for c in weak:
            need = f"about {c.power.replicates_needed}" if c.power.replicates_needed else "more than 64"
            out.append(f"{_start(title(variant))}, {c.key}: {n} replicates give {c.power.power:.0%} power to "
                       f"support an effect of the practical size; {need} would give {c.power.target:.0%}.")
    return out


def split(ev: Evidence) -> list[str]:
    """A time split in one window is the same for every replicate: intervals cannot cover the split."""
    if ev.summary.redrawn or ev.summary.folds > 1:
        return []
    return ["The split is by time and the same for every replicate: the intervals cover seeds and test rows, "
            "not the choice of split (prepare.split.folds > 1 evaluates on several consecutive windows)."]


def _start(text: str) -> str:
    """A name at the start of a sentence (capitalize() would write "Batchnorm")."""
    return text[:1].upper() + text[1:]
