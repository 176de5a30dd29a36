"""Every check of the evidence, each finding one sentence with what to change: the **caveats** (what
weakens the verdict, said on the report's first screen and in metrics/summary.json, by kind) and the
**diagnostics** (the pitfalls: noisy or stuck losses, the train/test gap, BatchNorm's batches, eval
mode, the accuracy trap, leakage; the report's section 9).

Caveats: a variant worse than a linear model, runs cut off while improving, a tuning budget still paying
off, a tuning choice at the edge of its space, a search whose end cannot be told from its noise, too few
replicates for the family of claims or for an inconclusive claim's practical size, a split that could not
be redrawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.analysis.claims import FAMILY, Claim, in_words, test_measures
from pipeline.analysis.evidence import Evidence
from pipeline.analysis.statistics import INCONCLUSIVE, fewest_replicates, mean_sd, outer_bootstrap, smallest_p
from pipeline.evaluation.ranking import average_precision
from pipeline.project.artefacts import Trial
from pipeline.project.layout import model_name

# ---------------------------------------------------------------- caveats: what weakens the verdict

YARDSTICK = "logistic_regression"


# The kinds of caveat, in the report's order; the first three say the comparison itself is weak (a suite
# reads them from each table's metrics/summary.json, ``caveat_kinds``, to pool without such tables).
KINDS = (
    "below_yardstick",
    "cut_off",
    "tuning_climbing",
    "at_edge",
    "tuning_unsettled",
    "few_replicates",
    "fixed_split",
)
WEAK_COMPARISON = KINDS[:3]


def by_kind(ev: Evidence, found: dict[str, list[Claim]]) -> dict[str, list[str]]:
    """Every caveat that applies, by kind (every kind present, possibly with no sentence)."""
    budgets = {v: tuning_budget(ev, v) for v in ev.selection.variants}
    return {
        "below_yardstick": below_yardstick(ev),
        "cut_off": cut_off(ev),
        "tuning_climbing": [b.caveat() for v, b in budgets.items() if b.state == CLIMBING],
        "at_edge": at_edge(ev),
        "tuning_unsettled": unsettled(budgets),
        "few_replicates": few_replicates(ev, found),
        "fixed_split": fixed_split(ev),
    }


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
        for what, mean, high, low in (
            ("average precision", ap.mean, ap.high, ap.low),
            ("ROC-AUC", float(np.mean(auc)), auc_high, auc_low),
        ):
            if high < 0:
                out.append(
                    f"{_start(ev.catalogue.title(variant))} ranks below the logistic regression on test {what} "
                    f"({mean:+.3f} [{low:+.3f}, {high:+.3f}], paired by replicate): a comparison of MLPs "
                    "worse than a linear model says little; check its tuning and training."
                )
    return out


def cut_off(ev: Evidence) -> list[str]:
    """Compared runs whose best epoch was the last one allowed: still improving when cut off."""
    cap = ev.params.train.epochs
    out = []
    for variant, runs in ev.histories.items():
        stopped = at_the_cap(runs, cap)
        if stopped:
            out.append(
                f"{_start(ev.catalogue.title(variant))}: replicate(s) {stopped} had their best validation AP at the "
                f"epoch cap ({cap}): still improving when stopped; raise train.epochs."
            )
    return out


def at_edge(ev: Evidence) -> list[str]:
    """A chosen value at the edge of the space."""
    return [
        f"{_start(ev.catalogue.title(variant))}'s tuned {name} sits at the {end} end of train.tune.space.{name}: "
        "the best may lie beyond it; widen the space."
        for variant, entry in ev.selection.variants.items()
        for name, end in entry.at_edge.items()
    ]


CLIMBING, SATURATED, UNSETTLED = "still climbing", "saturated", "not established"


@dataclass(frozen=True)
class Budget:
    """Whether a variant's search stopped improving, weighed against its own noise.

    A trial's score is the mean of its tuning seeds' best validation AP; the seeds disagree, so two trials
    whose scores differ by less than that disagreement cannot be told apart. ``noise`` is the standard
    error of a trial's score (the within-trial variance of the seeds' scores over the better half of the
    trials, over the number of seeds; NaN with one seed), and the search is

    - **still climbing** when its last quarter of trials raised the best score by more than the tolerance
      (report.saturation) and by more than twice the noise;
    - **saturated** when the last quarter raised it by at most the tolerance, twice the noise is itself
      within the tolerance (a gain of that size could have been seen), and that quarter came after the
      sampler's random start-up (so it searched where the best was);
    - **not established** otherwise: the search cannot tell a gain of the tolerance's size from its noise.

    ``tied`` are the trials whose score lies within twice the noise of the best (the best first): their
    order is not established either.
    """

    variant: str
    title: str  # the variant in a sentence
    state: str
    quarter: int  # the trials of the last quarter
    gain: float  # how much they raised the best score
    noise: float  # the standard error of one trial's score
    tolerance: float
    tied: list[Trial]

    def caveat(self) -> str:
        """The caveat for a search still climbing, or not established (one variant's clause for the latter)."""
        name = _start(self.title)
        if self.state == CLIMBING:
            return (
                f"{name}'s tuning was still climbing: its last {self.quarter} trial(s) raised the best validation "
                f"AP by {self.gain:.3f}, more than the tolerance {self.tolerance:g} and the tuning seeds' noise "
                f"(twice the standard error of a trial: {2 * self.noise:.3f}); raise train.tune.trials."
            )
        return f"{self.title} (last {self.quarter} trial(s): {self.gain:+.3f}; noise ±{2 * self.noise:.3f})"

    @property
    def words(self) -> str:
        """The state with its evidence, for the tuning section's table."""
        noise = f"noise ±{2 * self.noise:.3f}" if math.isfinite(self.noise) else "one tuning seed: noise unknown"
        return f"{self.state} (last {self.quarter}: {self.gain:+.3f}; {noise})"


def trial_noise(trials: list[Trial]) -> float:
    """The standard error of a trial's score (mean of its seeds' validation AP): the within-trial variance of
    the seeds' scores, pooled over the better half of the scored trials (where the choice is made: a poor
    setting's unstable seeds say little about the best ones'), over the seeds per trial (NaN with one seed or
    no scored trial)."""
    scored = sorted(
        (t for t in trials if t.val_ap is not None and len(t.val_ap_by_seed) > 1), key=lambda t: -(t.val_ap or 0.0)
    )
    better = [list(t.val_ap_by_seed.values()) for t in scored[: max(1, math.ceil(len(scored) / 2))]]
    if not better:
        return math.nan
    pooled = float(np.mean([np.var(values, ddof=1) for values in better]))
    return math.sqrt(pooled / len(better[0]))


def tuning_budget(ev: Evidence, variant: str) -> Budget:
    """A variant's search, weighed against its seeds' noise (``Budget``)."""
    entry, tolerance = ev.selection.variants[variant], ev.params.report.saturation
    quarter, gain = last_quarter_gain(entry.best_so_far)
    noise = trial_noise(entry.trials)
    scored = sorted((t for t in entry.trials if t.val_ap is not None), key=lambda t: -(t.val_ap or 0.0))
    tied = [t for t in scored if math.isfinite(noise) and (scored[0].val_ap or 0.0) - (t.val_ap or 0.0) <= 2 * noise]
    random_start = ev.params.train.tune.parallel if ev.params.train.tune.sampler == "tpe" else 0
    beyond_noise = not math.isfinite(noise) or gain > 2 * noise
    if math.isfinite(gain) and gain > tolerance and beyond_noise:
        state = CLIMBING
    elif (
        math.isfinite(gain)
        and gain <= tolerance
        and math.isfinite(noise)
        and 2 * noise <= tolerance
        and len(entry.best_so_far) - quarter >= random_start
    ):
        state = SATURATED
    else:
        state = UNSETTLED
    title = ev.catalogue.title(variant)
    return Budget(variant, title, state, quarter, gain, noise, tolerance, tied if len(tied) > 1 else [])


def unsettled(budgets: dict[str, Budget]) -> list[str]:
    """One caveat for the searches that cannot tell whether they stopped improving."""
    open_ = [b for b in budgets.values() if b.state == UNSETTLED]
    if not open_:
        return []
    return [
        "Whether tuning had finished is not established for "
        + " and ".join(b.caveat() for b in open_)
        + f": the tuning seeds disagree by more than a gain that matters ({open_[0].tolerance:g}), or too few "
        "trials followed the random start-up; the tuned settings may be one lucky draw among tied ones (section 3). "
        "Raise train.tune.trials, or add tuning seeds (train.tune.seeds) to lower the noise."
    ]


def last_quarter_gain(best_so_far: list[float | None]) -> tuple[int, float]:
    """How many trials the last quarter of a search holds, and how much they raised the best validation AP
    (NaN with too few trials to tell)."""
    curve = [v for v in best_so_far if v is not None]
    quarter = max(1, len(curve) // 4)
    return quarter, (curve[-1] - curve[-quarter - 1] if len(curve) > quarter else float("nan"))


def few_replicates(ev: Evidence, found: dict[str, list[Claim]]) -> list[str]:
    """Too few replicates: no claim can pass the corrected level; or an inconclusive claim whose rule, at
    these replicates, supports only effects well above the practical size (its detectable effect beyond 1.5
    times the size), with the replicates that would bring it there. Never beside a supported, equivalent or
    reversed claim: the replicates sufficed for its answer."""
    n, alpha = len(ev.replicates), 1 - ev.params.report.confidence
    strictest = alpha / len(FAMILY)
    if smallest_p(n) > strictest:
        return [
            f"With {n} replicate(s) the permutation test cannot go below p = {smallest_p(n):.3g}, above Holm's "
            f"{strictest:.3g} for {len(FAMILY)} claims: no claim can be supported; use at least "
            f"{fewest_replicates(strictest)} (prepare.replicates)."
        ]
    out = []
    for claims in found.values():
        for c in claims:
            power, units = c.power, c.primary.units
            if c.status != INCONCLUSIVE or power.detectable <= 1.5 * c.band:
                continue
            reach = (
                f"only an effect of {in_words(power.detectable, c.measure.unit, signed=False)} or more"
                if math.isfinite(power.detectable)
                else "no effect, however large (too few units for the corrected level)"
            )
            more = (
                f"about {power.replicates} {units} would support an effect 1.5 times the practical size"
                if power.replicates
                else "no count up to 256 would support an effect 1.5 times the practical size"
            )
            knob = "prepare.replicates" if units == "replicates" else "more tuning seeds: train.tune.seeds"
            out.append(
                f"{c.text} is inconclusive, and its {len(c.measure.differences)} {units} could support "
                f"{reach} {power.target:.0%} of the time "
                f"(practical size {in_words(c.band, c.measure.unit, signed=False)}); "
                f"{more} ({knob})."
            )
    return out


def fixed_split(ev: Evidence) -> list[str]:
    """A time split in one window is the same for every replicate: intervals cannot cover the split."""
    if ev.summary.redrawn or ev.summary.folds > 1:
        return []
    return [
        "The split is by time and the same for every replicate: the intervals cover seeds and test rows, "
        "not the choice of split (prepare.split.folds > 1 evaluates on several consecutive windows)."
    ]


def at_the_cap(runs: dict[int, pd.DataFrame], cap: int) -> list[int]:
    """The replicates whose best validation AP came at the epoch cap: still improving when stopped."""
    return [r for r, h in runs.items() if int(h.loc[h["val_ap"].idxmax(), "epoch"]) == cap]


def _start(text: str) -> str:
    """A name at the start of a sentence (capitalize() would write "Batchnorm")."""
    return text[:1].upper() + text[1:]


# ---------------------------------------------------------------- diagnostics: the pitfalls, each with its fix


def noisy_share(history: pd.DataFrame) -> float:
    """Share of epochs (after the first) in which validation loss went up."""
    rises = np.diff(history["val_loss"].to_numpy()) > 0
    return float(rises.mean()) if rises.size else 0.0


def loss_drop(history: pd.DataFrame) -> float:
    """Relative fall of the training loss from epoch 2 to the last epoch."""
    losses = history["train_loss"].to_numpy()
    if losses.size < 3:
        return float("nan")
    return float((losses[1] - losses[-1]) / losses[1])


def val_loss_rise(history: pd.DataFrame) -> float:
    """How far the last validation loss sits above the best one (relative): a sign of overfitting."""
    best = float(history["val_loss"].min())
    return float(history["val_loss"].iloc[-1] / best - 1) if best > 0 else 0.0


def training_findings(ev: Evidence) -> list[str]:
    """Noisy or stuck losses, early-stopping plateaus and the train/test gap, per variant."""
    p, found = ev.params, []
    for variant, runs in ev.histories.items():
        name = ev.catalogue.label(variant)
        noisy = [noisy_share(h) for h in runs.values()]
        drops = [d for d in (loss_drop(h) for h in runs.values()) if np.isfinite(d)]
        rises = [val_loss_rise(h) for h in runs.values()]
        plateaued = [seed for seed, h in runs.items() if len(h) < p.train.epochs]
        capped = at_the_cap(runs, p.train.epochs)
        if np.mean(noisy) > 0.4:
            found.append(
                f"Validation loss {name} is noisy (rises in {np.mean(noisy):.0%} of epochs): narrow "
                "`train.tune.space.lr` to lower rates or its batch sizes to larger ones."
            )
        if drops and min(drops) < 0.05:
            found.append(
                f"Training loss {name} is stuck in some seed (falls by only {min(drops):.1%} after "
                "epoch 2): widen `train.tune.space.lr` upwards, or check the feature scaling."
            )
        if plateaued:
            found.append(
                f"Early stopping ended the runs {name} for replicate(s) {plateaued} after {p.train.patience} epochs "
                "without a better validation AP; the kept weights are each run's best epoch."
            )
        if capped:
            found.append(
                f"Still improving at the last epoch {name} for replicate(s) {capped}: the best validation AP came "
                f"at epoch {p.train.epochs}, the cap. More epochs could change the comparison: raise "
                "`train.epochs`."
            )
        gaps = [
            ev.metrics[model_name(variant, r)]["train_ap"] - ev.metrics[model_name(variant, r)]["test_ap"] for r in runs
        ]
        verdict = (
            "a sign of overfitting: add weight decay or dropout, or stop earlier"
            if np.mean(gaps) > 0.1
            else "no strong overfitting"
        )
        found.append(
            f"Train versus test average precision gap {name}: {mean_sd(gaps, 3)}; validation loss ends "
            f"{np.mean(rises):.0%} above its best. {verdict[0].upper()}{verdict[1:]}."
        )
    return found


def batch_finding(ev: Evidence) -> list[str]:
    """BatchNorm's real batches: the smallest it saw, and how many steps an epoch took."""
    p = ev.params
    runs = [r for r in ev.runs.values() if ev.catalogue[r.variant].batchnorm]
    if not runs:
        return []
    sizes = [size for r in runs for size in r.batch_sizes]
    seen = [size for r in runs for size in r.norm_batch_sizes]  # per process when not synced
    smallest, steps = min(seen), min(len(r.batch_sizes) for r in runs)
    chosen = max(r.setting.batch_size for r in runs)
    found = []
    per_rank = [r for r in runs if r.ranks > 1 and not r.batchnorm_sync]
    if per_rank:
        ranks = max(r.ranks for r in per_rank)
        found.append(
            f"BatchNorm statistics were per process: {ranks} training processes "
            f"(`train.distributed.nproc`) each normalised over only its share of every batch, as few as "
            f"{smallest:,} rows of {min(sizes):,} (`train.batchnorm_sync: false`), the small-batch pitfall "
            "in disguise; set `train.batchnorm_sync: true` to use the global batch's statistics."
        )
    if smallest < p.report.small_batch:
        found.append(
            f"BatchNorm trained on batches of only {smallest:,} rows (< {p.report.small_batch}): batch "
            "statistics are noisy and its running estimates unreliable; tune larger batch sizes."
        )
    else:
        found.append(
            f"BatchNorm's smallest batch held {smallest:,} rows, enough for stable statistics (warning "
            f"below {p.report.small_batch}); no batch is smaller than `train.min_batch` = "
            f"{p.train.min_batch}, a shorter last batch joins the one before it."
        )
    if chosen and max(sizes) > chosen:
        found.append(
            f"The last {max(sizes) - chosen:,} training rows joined the batch before them "
            f"(a batch of {max(sizes):,} rows): alone they would have been below `train.min_batch`."
        )
    if steps < 10:
        found.append(
            f"Only {steps} optimisation step(s) per epoch: with few steps BatchNorm's running statistics "
            "lag the weights; tune smaller batch sizes or use more data."
        )
    return found


def eval_mode_finding(ev: Evidence) -> list[str]:
    """Each history's best val_ap must equal the AP evaluate recomputed in eval mode from the kept weights."""
    mismatched = []
    for variant, runs in ev.histories.items():
        for replicate, history in runs.items():
            name = model_name(variant, replicate)
            recomputed = average_precision(*ev.split_scores(name, "val"))
            if abs(recomputed - float(history["val_ap"].max())) > 1e-4:
                mismatched.append(name)
    if mismatched:
        return [
            "Validation metrics in the histories were computed in train mode or on other weights for "
            f"{mismatched}: rerun training."
        ]
    return [
        "Validation metrics were computed in eval mode: each history's best val_ap equals the AP that "
        "evaluate recomputed from the kept weights in eval mode."
    ]


def accuracy_trap_finding(ev: Evidence) -> list[str]:
    """High accuracy with low fraud recall."""
    target = ev.params.evaluate.recall_target
    trapped = [n for n, m in ev.metrics.items() if m.get("test_accuracy_trap")]
    if trapped:
        return [
            f"Accuracy trap: {', '.join(trapped)} score at least the majority-class accuracy while test recall "
            f"is below {target:.0%}; high accuracy here says nothing about catching fraud."
        ]
    return [f"No model falls in the accuracy trap (recall target {target:.0%})."]


def leakage_finding(ev: Evidence) -> list[str]:
    """The encoder's statistics come from the training split only."""
    m = ev.scaled_means
    return [
        f"Leakage guard: each split's encoder (categories, date-time origins, scaling) was fitted on its "
        f"training part only (the tuning split's largest |numeric input mean| after scaling: train "
        f"{m['train']:.1e}, validation {m['val']:.1e}, test {m['test']:.1e}); validation and test never inform "
        "the encoding or the threshold's choice on test."
    ]


def findings(ev: Evidence) -> list[str]:
    """Every diagnostic finding, in the report's order."""
    return [
        *training_findings(ev),
        *batch_finding(ev),
        *eval_mode_finding(ev),
        *accuracy_trap_finding(ev),
        *leakage_finding(ev),
    ]
