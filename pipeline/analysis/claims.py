"""The claims the report tests, each candidate variant (BatchNorm, LayerNorm) against the baseline:
at their tuned settings, paired by replicate (the same split, initial shared weights and row order);
beside them the same comparison at shared settings; and the headline they make.

Four claims form one family, corrected together (Holm): the fraud claim on test average precision,
test accuracy, training loss after the first epochs, and the time to validation-AP targets both
variants reach. Each has a practical size (report.min_effect, in its own unit) and one of four words:
supported, equivalent, reversed, inconclusive (analysis.statistics.verdict).

**At shared settings**: tuning trials whose setting both variants trained (TPE's seeded first round is
the same for every variant; a grid is shared whole), paired by tuning seed on the tuning split. There a
step does the same work for both and the learning rate is the same, so "faster" and "loss falls
sooner" cannot come from one variant being tuned to a larger step; the tuned comparison answers the
practical question, this one the mechanism.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from pipeline.analysis.evidence import Evidence, shared_trials, value_at
from pipeline.analysis.statistics import (
    INCONCLUSIVE,
    Power,
    holm,
    holm_levels,
    nested_bootstrap,
    outer_bootstrap,
    permutation_p,
    replicates_for,
    rule_power,
    smallest_p,
    verdict,
)
from pipeline.evaluation.metrics import paired_draws
from pipeline.evaluation.money import paired_money_draws
from pipeline.project.artefacts import Comparison, Effect, Headline, Interval, SharedFigures
from pipeline.project.layout import model_name
from pipeline.project.params import Setting
from pipeline.project.variants import BASELINE, PRIMARY, title

FAMILY = ("minority", "accuracy", "loss", "speed")
TIMED = ("speed",)  # measured in training seconds: they differ between runs of the same params
SHORT_CLAIMS = {
    "minority": "catches more fraud (test AP)",
    "accuracy": "higher test accuracy",
    "loss": "training loss falls sooner",
    "speed": "reaches validation-AP targets sooner",
}


@dataclass(frozen=True)
class Measure:
    """One paired difference (positive favours the variant), replicate by replicate, with its interval."""

    text: str
    unit: str
    differences: list[float]
    low: float
    high: float
    covers: str  # which sources of variance the interval covers
    spread: float = 0.0  # sd of a replicate's difference, test-row sampling included where resampled
    counts: str = ""  # the effect as counts, where it has them

    @property
    def mean(self) -> float:
        """The mean difference over replicates."""
        return float(np.mean(self.differences)) if self.differences else math.nan


@dataclass(frozen=True)
class Claim:
    """A claim about one normalised variant against the baseline."""

    key: str  # minority | accuracy | loss | speed (metrics/summary.json)
    variant: str
    text: str
    primary: Measure
    band: float  # the practical size, in the primary measure's unit
    p: float  # the permutation p of the primary measure
    p_adjusted: float  # Holm-adjusted over the family
    level: float  # the level the raw p was compared with (alpha over its Holm rank)
    smallest_p: float
    status: str
    power: Power
    secondary: tuple[Measure, ...] = ()
    notes: tuple[str, ...] = ()


def covers(ev: Evidence, test_rows: bool) -> str:
    """Which sources of variance an interval covers."""
    if ev.summary.redrawn:
        split = "splits (redrawn per replicate)"
    elif ev.summary.folds > 1:
        split = f"{ev.summary.folds} consecutive time windows"
    else:
        split = "not the split (a time split is the same for every replicate)"
    return f"seeds, {split}" + (" and test rows" if test_rows else "; measured on training and validation")


TEST_MEASURES = {
    "ap": ("test_ap", "test average precision"),
    "accuracy": ("test_accuracy", "test accuracy"),
    "precision": ("test_precision", "test precision"),
    "recall": ("test_recall", "test recall"),
    "value_recall": ("test_value_recall", "value-weighted recall (share of the fraud amount caught)"),
    "alert_precision": ("test_alert_precision", "precision within the daily alert budget"),
}


def test_measures(ev: Evidence, ours: str, theirs: str, money: bool = True) -> dict[str, Measure]:
    """Paired test differences per replicate (AP, accuracy, precision, recall at each model's own
    threshold; with amounts, value-weighted recall and precision within the alert budget), intervals
    from the nested bootstrap (replicates, then test rows)."""
    b = ev.params.report.bootstrap
    inner: dict[str, list[np.ndarray]] = {}
    for r in ev.replicates:
        a, t = model_name(ours, r), model_name(theirs, r)
        y, p_a = ev.split_scores(a, "test")
        _, p_t = ev.split_scores(t, "test")
        pair = (p_a, ev.metrics[a]["threshold"]), (p_t, ev.metrics[t]["threshold"])
        draws = paired_draws(y, *pair, b.inner, b.seed + r)
        ledger = ev.ledger(a) if money else None
        if ledger is not None:
            draws.update(paired_money_draws(ledger, *pair, b.inner, b.seed + r, ev.params.evaluate.cost_per_alert))
        for key, values in draws.items():
            inner.setdefault(key, []).append(values)
    out = {}
    level = ev.params.report.confidence
    for key, (metric, text) in TEST_MEASURES.items():
        if key not in inner or len(inner[key]) != len(ev.replicates):
            continue
        differences = [x - y for x, y in zip(ev.values(ours, metric), ev.values(theirs, metric))]
        low, high = nested_bootstrap(inner[key], b.resamples, b.seed, level)
        spread = (
            float(np.sqrt(np.var(differences, ddof=1) + np.mean([np.var(d) for d in inner[key]])))
            if len(differences) > 1
            else 0.0
        )
        out[key] = Measure(
            f"{title(ours)} minus {title(theirs)} {text}", key, differences, low, high, covers(ev, True), spread
        )
    return out


def fraud_counts(ev: Evidence, ours: str, theirs: str) -> str:
    """The fraud effect as counts: frauds caught and false alerts, mean over replicates."""
    caught = np.mean([x - y for x, y in zip(ev.values(ours, "test_tp"), ev.values(theirs, "test_tp"))])
    alerts = np.mean([x - y for x, y in zip(ev.values(ours, "test_fp"), ev.values(theirs, "test_fp"))])
    frauds, legit = ev.summary.positives["test"], ev.summary.rows["test"] - ev.summary.positives["test"]
    return (
        f"{caught:+.1f} of {frauds:,} test frauds caught, {1000 * alerts / legit:+.2f} false alerts per 1,000 "
        "legitimate transactions"
    )


def loss_measure(ev: Evidence, variant: str) -> Measure:
    """The relative fall of the training loss after report.early_epoch epochs (every variant starts at
    the training prior's log-odds, so this measures learning, not finding the base rate)."""
    epoch = ev.params.report.early_epoch
    differences = []
    for r in ev.replicates:
        base, ours = ev.histories[BASELINE][r], ev.histories[variant][r]
        e = min(epoch, len(base), len(ours))
        differences.append(
            (value_at(base, "train_loss", e) - value_at(ours, "train_loss", e)) / value_at(base, "train_loss", e)
        )
    b = ev.params.report.bootstrap
    low, high = outer_bootstrap(differences, b.resamples, b.seed, ev.params.report.confidence)
    return Measure(
        f"relative fall of the training loss after {epoch} epoch(s), baseline minus {title(variant)}",
        "fraction",
        differences,
        low,
        high,
        covers(ev, False),
        float(np.std(differences, ddof=1)) if len(differences) > 1 else 0.0,
    )


def time_to(curve: pd.DataFrame, column: str, target: float, start: float) -> float:
    """When a probe curve first reaches ``target`` validation AP, linearly interpolated in ``column``
    (seconds or steps) from the last probe below it; the curve starts at (0, ``start``), the AP of a
    random ranking. NaN when never reached."""
    xs = np.concatenate([[0.0], curve[column].to_numpy(dtype=float)])
    ys = np.concatenate([[start], curve["val_ap"].to_numpy(dtype=float)])
    above = np.flatnonzero(ys >= target)
    if above.size == 0:
        return math.nan
    i = int(above[0])
    if i == 0:
        return 0.0
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return float(x0 + (x1 - x0) * (target - y0) / (y1 - y0)) if y1 > y0 else float(x1)


def rungs(
    ours: pd.DataFrame, theirs: pd.DataFrame, start: float, fractions: list[float], column: str
) -> list[tuple[float, float, float]]:
    """(target, our time, their time) for each rung: a fraction of the lower of the two curves' best
    validation AP, so both reach every rung."""
    lower = min(ours["val_ap"].max(), theirs["val_ap"].max())
    return [
        (f * lower, time_to(ours, column, f * lower, start), time_to(theirs, column, f * lower, start))
        for f in fractions
    ]


def log_speedup(times: list[tuple[float, float, float]]) -> float:
    """The mean over rungs of log(their time / ours): positive when ours got there sooner (rungs a
    curve passed before its first probe, at time 0, carry no ratio)."""
    ratios = [
        math.log(theirs / ours)
        for _, ours, theirs in times
        if ours > 0 and theirs > 0 and math.isfinite(ours) and math.isfinite(theirs)
    ]
    return float(np.mean(ratios)) if ratios else 0.0


def rung_times(ev: Evidence, variant: str, r: int, column: str) -> list[tuple[float, float, float]]:
    """Replicate r's rungs, the variant's compared model against the baseline's."""
    return rungs(
        ev.probes[variant][r],
        ev.probes[BASELINE][r],
        ev.summary.prevalence["val"],
        ev.params.report.speed_rungs,
        column,
    )


def speed_measures(ev: Evidence, variant: str) -> tuple[Measure, Measure]:
    """log(baseline's time / ours) to every rung both reach, averaged over rungs, in training seconds
    (the verdict) and in steps (beside it)."""
    b, level = ev.params.report.bootstrap, ev.params.report.confidence
    out = []
    for column, unit in (("seconds", "training seconds"), ("step", "steps")):
        differences = [log_speedup(rung_times(ev, variant, r, column)) for r in ev.replicates]
        low, high = outer_bootstrap(differences, b.resamples, b.seed, level)
        out.append(
            Measure(
                f"log of the baseline's {unit} over {title(variant)}'s to the validation-AP targets",
                "log ratio",
                differences,
                low,
                high,
                covers(ev, False),
                float(np.std(differences, ddof=1)) if len(differences) > 1 else 0.0,
            )
        )
    return out[0], out[1]


def claims(ev: Evidence, variant: str) -> list[Claim]:
    """The four claims for one normalised variant, corrected together."""
    rp = ev.params.report
    tests = test_measures(ev, variant, BASELINE)
    speed, steps = speed_measures(ev, variant)
    minority = replace(tests["ap"], counts=fraud_counts(ev, variant, BASELINE))
    primaries = {"minority": minority, "accuracy": tests["accuracy"], "loss": loss_measure(ev, variant), "speed": speed}
    bands = {
        "minority": rp.min_effect.minority,
        "accuracy": rp.min_effect.accuracy,
        "loss": rp.min_effect.loss,
        "speed": math.log(1 + rp.min_effect.speed),
    }
    money = tuple(tests[k] for k in ("value_recall", "alert_precision") if k in tests)
    secondary = {"minority": (tests["precision"], tests["recall"], *money), "speed": (steps,)}
    name = title(variant)
    texts = {
        "minority": f"{name} catches more fraud (test average precision)",
        "accuracy": f"{name} raises test accuracy",
        "loss": f"{name} lowers training loss sooner",
        "speed": f"{name} reaches validation-AP targets sooner (training seconds)",
    }
    raw = {k: permutation_p(m.differences) if len(m.differences) > 1 else 1.0 for k, m in primaries.items()}
    adjusted, levels = holm(raw), holm_levels(raw, 1 - rp.confidence)
    alpha, n = 1 - rp.confidence, len(ev.replicates)
    out = []
    for key in FAMILY:
        m = primaries[key]
        strictest = alpha / len(FAMILY)
        power = Power(
            bands[key],
            rule_power(bands[key], m.spread, n, strictest, bands[key], rp.confidence),
            rp.power,
            replicates_for(bands[key], m.spread, strictest, bands[key], rp.confidence, rp.power, start=2),
        )
        out.append(
            Claim(
                key,
                variant,
                texts[key],
                m,
                bands[key],
                raw[key],
                adjusted[key],
                levels[key],
                smallest_p(n),
                verdict(m.mean, m.low, m.high, adjusted[key], alpha, bands[key]) if n > 1 else INCONCLUSIVE,
                power,  # one replicate: no interval to judge
                secondary.get(key, ()),
            )
        )
    return out


def headline(
    ev: Evidence,
    found: dict[str, list[Claim]],
    caveats: list[str],
    caveat_kinds: list[str],
    paired: dict[str, list[Pair]],
) -> Headline:
    """metrics/summary.json, answer first: test AP per variant, the verdicts, their effects, the caveats
    (their sentences, and their kinds: ``analysis.checks.KINDS``)."""
    variants = list(ev.histories)

    def per_variant(key: str) -> dict[str, float]:
        return {v: round(float(np.mean(ev.values(v, key))), 4) for v in variants}

    def rounded(m: Measure) -> Interval:
        return Interval(mean=round(m.mean, 5), low=round(m.low, 5), high=round(m.high, 5))

    def effects(variant_claims: list[Claim]) -> dict[str, Effect]:
        return {
            c.key: Effect(
                mean=round(c.primary.mean, 5),
                low=round(c.primary.low, 5),
                high=round(c.primary.high, 5),
                band=round(c.band, 5),
                p_holm=round(c.p_adjusted, 5),
                secondary={m.unit: rounded(m) for m in c.secondary} if c.key == "minority" else None,
            )
            for c in variant_claims
        }

    money = {
        k: per_variant(k)
        for k in ("test_value_recall", "test_alert_precision", "test_savings_vs_none")
        if all(k in ev.metrics[n] for v in variants for n in ev.names(v))
    }
    primary = found.get(PRIMARY, [])
    references = ev.params.evaluate.references.names()
    return Headline(
        test_ap=per_variant("test_ap"),
        verdict={c.key: c.status for c in primary},
        effect=effects(primary),
        test_recall=per_variant("test_recall"),
        test_precision=per_variant("test_precision"),
        test_f1=per_variant("test_f1"),
        **money,
        reference_test_ap={r: round(float(np.mean(ev.values(r, "test_ap"))), 4) for r in references},
        shared_setting=shared_figures(paired),
        others={
            v: Comparison(verdict={c.key: c.status for c in cs}, effect=effects(cs))
            for v, cs in found.items()
            if v != PRIMARY
        },
        caveats=caveats,
        caveat_kinds=caveat_kinds,
        setting={v: ev.setting(v) for v in variants},
        threshold=ev.params.evaluate.threshold.strategy,
        replicates=len(ev.replicates),
    )


# ---------------------------------------------------------------- at shared settings


@dataclass(frozen=True)
class Pair:
    """One shared setting on one tuning seed: the variant's tuning model against the baseline's."""

    setting: Setting
    seed: int
    steps: float  # log(baseline's steps / ours) to the rungs, mean over rungs
    seconds: float  # the same in training seconds
    loss_fall: float  # relative fall of the training loss after report.early_epoch, baseline minus ours
    val_ap: tuple[float, float]  # best validation AP: ours, the baseline's


def pairs(ev: Evidence, variant: str) -> list[Pair]:
    """Every shared setting and tuning seed where both models trained without diverging."""
    out, start = [], ev.summary.prevalence["val"]
    for raw, ours, theirs in shared_trials(ev.selection, variant):
        for seed in ev.params.train.tune.seeds:
            a, b = model_name(variant, seed, ours), model_name(BASELINE, seed, theirs)
            if a not in ev.shared or b not in ev.shared:
                continue
            (hist_a, probe_a), (hist_b, probe_b) = ev.shared[a], ev.shared[b]
            fractions = ev.params.report.speed_rungs
            steps = log_speedup(rungs(probe_a, probe_b, start, fractions, "step"))
            seconds = log_speedup(rungs(probe_a, probe_b, start, fractions, "seconds"))
            epoch = min(ev.params.report.early_epoch, len(hist_a), len(hist_b))
            base = value_at(hist_b, "train_loss", epoch)
            fall = (base - value_at(hist_a, "train_loss", epoch)) / base
            out.append(
                Pair(raw, seed, steps, seconds, fall, (float(probe_a["val_ap"].max()), float(probe_b["val_ap"].max())))
            )
    return out


def steady_note(found: list[Pair], key: str, name: str) -> str:
    """One clause on the shared settings for the loss claim or the steps to the targets (both
    deterministic)."""
    if not found:
        return ""
    values = [getattr(p, key) for p in found]
    ahead = sum(v > 0 for v in values)
    if key == "loss_fall":
        return (
            f"relative fall of the training loss {np.median(values):+.3f} (median of {len(found)} pairs; "
            f"{name} ahead in {ahead})"
        )
    return (
        f"validation-AP targets {math.exp(np.median(values)):.2f}x as fast in steps (median of {len(found)}; "
        f"{name} sooner in {ahead})"
    )


def seconds_note(found: list[Pair], name: str) -> str:
    """The shared settings in training seconds (volatile: timings differ between runs)."""
    if not found:
        return ""
    values = [p.seconds for p in found]
    return (
        f"{name} at shared settings: {math.exp(np.median(values)):.2f}x as fast in training seconds (median "
        f"of {len(found)} pairs; sooner in {sum(v > 0 for v in values)})"
    )


def shared_rows(found: list[Pair]) -> list[list[str]]:
    """One row per shared setting and seed (steps, loss and validation AP: deterministic)."""
    return [
        [
            p.setting.name(),
            str(p.seed),
            f"{math.exp(p.steps):.2f}x",
            f"{p.loss_fall:+.3f}",
            f"{p.val_ap[0]:.3f} / {p.val_ap[1]:.3f}",
        ]
        for p in found
    ]


def shared_figures(found: dict[str, list[Pair]]) -> dict[str, SharedFigures]:
    """metrics/summary.json's shared-setting figures per candidate (steps and loss only: deterministic)."""
    return {
        variant: SharedFigures(
            pairs=len(items),
            steps_speedup=round(math.exp(float(np.median([p.steps for p in items]))), 4),
            loss_fall=round(float(np.median([p.loss_fall for p in items])), 5),
        )
        for variant, items in found.items()
        if items
    }
