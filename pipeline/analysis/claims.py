"""The claims the report tests, each candidate variant (BatchNorm, GELU, ...) against the reference, read two
ways, and the one-sentence answer and headline they make.

Four claims form one family, corrected together (Holm): the variant catches more fraud (test average
precision), raises test accuracy, lowers the training loss sooner, and trains faster to validation-AP
targets. Each is read at two comparisons:

- **tuned**: each variant at its own tuned setting, paired by replicate (the same redrawn split, initial
  shared weights and row order): which one to deploy;
- **shared**: the tuning trials whose setting both variants trained (TPE's seeded first round, all of a
  grid), paired by setting and tuning seed on the tuning split: one learning rate, batch and dropout for
  both, so a step does the same work and nothing comes from one variant being tuned to a larger step.

The verdict word belongs to one reading, the claim's **primary** one: the tuned reading for the fraud and
accuracy claims (a question of what to deploy), the shared reading for the loss and speed claims (an
optimisation claim, whose tuned reading would credit the variant with its settings); the other reading
stands beside it with its estimate and interval. Each claim has a practical size (report.min_effect, in
its own unit) and one of four words: supported, equivalent, reversed, inconclusive (analysis.statistics).

What the learning claims measure: the **loss** claim, the relative difference of the training loss at
the end of report.early_epoch epochs (the same examples seen by both), in eval mode (dropout off, running
statistics), unweighted (one objective whatever each variant's class weight), on a fixed sample of the
training rows; the **speed** claim, log(the reference's training seconds / the variant's) to targets both
reach, averaged over the targets, where training seconds are each model's own steps to the target times
the seconds per step of its variant trained alone, measured in the timing stage's interleaved rounds (each
replicate or pair its own round: the cost's spread enters the test and the interval).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.analysis.evidence import Evidence, value_at
from pipeline.analysis.statistics import (
    Power,
    bootstrap_means,
    design_power,
    holm,
    holm_levels,
    percentile_interval,
    permutation_p,
    smallest_p,
    verdict,
)
from pipeline.evaluation.metrics import paired_draws
from pipeline.evaluation.money import paired_money_draws
from pipeline.project.artefacts import Answer, Comparison, Effect, Headline, Interval, SharedFigures
from pipeline.project.layout import model_name
from pipeline.project.params import Setting
from pipeline.project.variants import Catalogue

FAMILY = ("minority", "accuracy", "loss", "speed")
TIMED = ("speed",)  # its measure includes timings: it differs between runs of the same params
LEARNED = 0.5  # a shared pair counts when each model reached this share of the other's best validation AP
PRIMARY_READING = {"minority": "tuned", "accuracy": "tuned", "loss": "shared", "speed": "shared"}
CLAIM_NAMES = {  # what each claim says, after the variant's name
    "minority": "catches more fraud (test average precision)",
    "accuracy": "raises test accuracy",
    "loss": "lowers the training loss sooner (after the same examples, eval mode, one objective)",
    "speed": "trains faster to validation-AP targets (steps x timed seconds per step)",
}
SHORT_CLAIMS = {
    "minority": "catches more fraud (test AP)",
    "accuracy": "raises test accuracy",
    "loss": "lowers the training loss sooner",
    "speed": "trains faster to the targets",
}
READINGS = {"tuned": "each at its tuned setting", "shared": "at shared settings"}


@dataclass(frozen=True)
class Measure:
    """One paired difference (positive favours the variant), unit by unit (replicates, or shared pairs), its
    bootstrap draws and its interval at the report's confidence."""

    text: str
    unit: str  # the effect's unit: ap, accuracy, fraction, log ratio, ...
    differences: list[float]
    draws: np.ndarray  # bootstrap draws of the mean difference
    low: float
    high: float
    covers: str  # which sources of variance the interval covers
    counts: str = ""  # the effect as counts, where it has them

    @property
    def mean(self) -> float:
        """The mean difference over the units."""
        return float(np.mean(self.differences)) if self.differences else math.nan

    @property
    def spread(self) -> float:
        """The sd of the units' differences: what the sign-flip test sees."""
        return float(np.std(self.differences, ddof=1)) if len(self.differences) > 1 else 0.0

    def interval(self, level: float) -> tuple[float, float]:
        """The bootstrap percentile interval at ``level``."""
        return percentile_interval(self.draws, level) if self.draws.size else (math.nan, math.nan)


@dataclass(frozen=True)
class Reading:
    """One comparison of a claim: tuned or shared, its measure, and what the units are."""

    name: str  # tuned | shared
    measure: Measure
    units: str  # replicates | shared pairs (settings x tuning seeds)


@dataclass(frozen=True)
class Claim:
    """A claim about one candidate variant against the reference: its tested reading and the other."""

    key: str  # minority | accuracy | loss | speed (metrics/summary.json)
    variant: str
    title: str  # the variant in a sentence
    text: str  # "BatchNorm catches more fraud (test average precision)"
    primary: Reading  # the reading the verdict word belongs to
    other: Reading | None  # the other reading, beside it (None: not available)
    band: float  # the practical size, in the measure's unit
    p: float  # the permutation p of the primary reading
    p_adjusted: float  # Holm-adjusted over the family
    level: float  # the level the raw p was compared with (alpha over its Holm rank)
    tost: tuple[float, float]  # the equivalence interval: 1 - 2 x level (two one-sided tests at that level)
    smallest_p: float
    status: str
    power: Power
    secondary: tuple[Measure, ...] = ()  # beside the fraud claim: precision, recall, money (tuned)

    @property
    def measure(self) -> Measure:
        """The primary reading's measure."""
        return self.primary.measure


def covers(ev: Evidence, test_rows: bool) -> str:
    """Which sources of variance a replicate-level interval covers."""
    if ev.summary.redrawn:
        split = "splits (redrawn per replicate)"
    elif ev.summary.folds > 1:
        split = f"{ev.summary.folds} consecutive time windows"
    else:
        split = "not the split (a time split is the same for every replicate)"
    return f"seeds, {split}" + (" and test rows" if test_rows else "")


SHARED_COVERS = "settings and tuning seeds (one tuning split)"
TEST_MEASURES = {
    "ap": ("test_ap", "test average precision"),
    "accuracy": ("test_accuracy", "test accuracy"),
    "precision": ("test_precision", "test precision"),
    "recall": ("test_recall", "test recall"),
    "value_recall": ("test_value_recall", "value-weighted recall (share of the fraud amount caught)"),
    "alert_precision": ("test_alert_precision", "precision within the daily alert budget"),
}


def bootstrapped(
    ev: Evidence,
    text: str,
    unit: str,
    differences: list[float],
    inner: list[np.ndarray] | None,
    covered: str,
    counts: str = "",
) -> Measure:
    """A measure with its bootstrap: over the units, and within each over its test rows when ``inner``."""
    b = ev.params.report.bootstrap
    draws = (
        bootstrap_means(inner or [np.array([d]) for d in differences], b.resamples, b.seed)
        if differences
        else np.array([])
    )
    low, high = percentile_interval(draws, ev.params.report.confidence) if draws.size else (math.nan, math.nan)
    return Measure(text, unit, differences, draws, low, high, covered, counts)


def test_measures(ev: Evidence, ours: str, theirs: str, money: bool = True) -> dict[str, Measure]:
    """Paired test differences per replicate (AP, accuracy, precision, recall at each model's own threshold;
    with amounts, value-weighted recall and precision within the alert budget, both counted as evaluate
    counts them: per card-day where the data names cards), intervals from the nested bootstrap
    (replicates, then test rows)."""
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
    for key, (metric, text) in TEST_MEASURES.items():
        if key not in inner or len(inner[key]) != len(ev.replicates):
            continue
        differences = [x - y for x, y in zip(ev.values(ours, metric), ev.values(theirs, metric))]
        out[key] = bootstrapped(
            ev,
            f"{ev.catalogue.title(ours)} minus {ev.catalogue.title(theirs)} {text}",
            key,
            differences,
            inner[key],
            covers(ev, True),
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


def loss_fall(ours: pd.DataFrame, theirs: pd.DataFrame, epoch: int) -> float:
    """The relative difference of the training loss (eval mode, unweighted, a fixed sample of the training
    rows: the history's ``train_loss_eval``) at the end of ``epoch`` (or the last epoch both ran), theirs
    minus ours over theirs: positive when ours is lower."""
    e = min(epoch, len(ours), len(theirs))
    base = value_at(theirs, "train_loss_eval", e)
    return (base - value_at(ours, "train_loss_eval", e)) / base


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


def rung_steps(ev: Evidence, variant: str, r: int) -> list[tuple[float, float, float]]:
    """Replicate r's rungs in steps, the variant's compared model against the reference's."""
    return rungs(
        ev.probes[variant][r],
        ev.probes[ev.reference][r],
        ev.summary.prevalence["val"],
        ev.params.report.speed_rungs,
        "step",
    )


def cost_ratio(seconds: dict[str, list[float]], variant: str, reference: str, round_: int) -> float:
    """log(the reference's seconds per step / the variant's) in one timing round (rounds reused in turn)."""
    ours, theirs = seconds[variant], seconds[reference]
    return math.log(theirs[round_ % len(theirs)] / ours[round_ % len(ours)])


def tuned_speed(ev: Evidence, variant: str) -> list[float]:
    """Per replicate r: log(the reference's training seconds / the variant's) to the targets, each at its tuned
    setting: the log ratio of steps (the replicate's own probes) plus round r's log ratio of the cost of a
    step (rounds reused in turn when fewer than the replicates)."""
    return [
        log_speedup(rung_steps(ev, variant, r)) + cost_ratio(ev.timing.tuned, variant, ev.reference, i)
        for i, r in enumerate(ev.replicates)
    ]


# ---------------------------------------------------------------- the two readings


@dataclass(frozen=True)
class Pair:
    """One shared setting on one tuning seed: the variant's tuning model against the reference's."""

    setting: Setting
    seed: int
    steps: float  # log(the reference's steps / ours) to the rungs, mean over rungs
    seconds: float  # the same in timed training seconds (steps x the setting's timed seconds per step)
    loss_fall: float  # relative difference of the training loss after report.early_epoch, the reference's minus ours
    test_ap: float  # ours minus the reference's, on the tuning split's test part
    test_accuracy: float  # the same, each at its threshold chosen on validation
    val_ap: tuple[float, float]  # best validation AP: ours, the reference's

    @property
    def learned(self) -> bool:
        """Whether both models learned at this setting: each reached at least LEARNED of the other's best
        validation AP. Where one did not (a rate that only one variant survives), its steps to a fraction of
        a near-random AP, and its loss, compare a model with one that never trained: the pair says which
        variant tolerates the setting, not how fast either learns, and the shared readings leave it out."""
        return min(self.val_ap) >= LEARNED * max(self.val_ap)


def pairs(ev: Evidence, variant: str) -> list[Pair]:
    """Every shared setting and tuning seed where both models trained without diverging (the shared readings
    take those where both learned: ``Pair.learned``)."""
    out, start = [], ev.summary.prevalence["val"]
    timing = {t.setting: t.seconds for t in ev.timing.shared}
    for setting, ours, theirs in ev.selection.shared_trials(variant, ev.reference):
        for seed in ev.params.train.tune.seeds:
            a, b = model_name(variant, seed, ours), model_name(ev.reference, seed, theirs)
            if a not in ev.shared or b not in ev.shared or setting not in timing:
                continue
            (hist_a, probe_a), (hist_b, probe_b) = ev.shared[a], ev.shared[b]
            steps = log_speedup(rungs(probe_a, probe_b, start, ev.params.report.speed_rungs, "step"))
            seconds = steps + cost_ratio(timing[setting], variant, ev.reference, len(out))
            score_a, score_b = ev.tuning[a], ev.tuning[b]
            out.append(
                Pair(
                    setting,
                    seed,
                    steps,
                    seconds,
                    loss_fall(hist_a, hist_b, ev.params.report.early_epoch),
                    float(score_a.test_ap - score_b.test_ap),  # type: ignore[operator]
                    float(score_a.test_accuracy - score_b.test_accuracy),  # type: ignore[operator]
                    (float(probe_a["val_ap"].max()), float(probe_b["val_ap"].max())),
                )
            )
    return out


def tuned_readings(ev: Evidence, variant: str) -> tuple[dict[str, Reading], dict[str, Measure]]:
    """Each claim at the variant's and the reference's tuned settings, paired by replicate; and every test
    measure (precision, recall, money: beside the fraud claim)."""
    tests = test_measures(ev, variant, ev.reference)
    name, base, epoch = ev.catalogue.title(variant), ev.catalogue.title(ev.reference), ev.params.report.early_epoch
    falls = [loss_fall(ev.histories[variant][r], ev.histories[ev.reference][r], epoch) for r in ev.replicates]
    seconds = tuned_speed(ev, variant)
    ap = tests["ap"]
    measures = {
        "minority": Measure(
            ap.text,
            ap.unit,
            ap.differences,
            ap.draws,
            ap.low,
            ap.high,
            ap.covers,
            fraud_counts(ev, variant, ev.reference),
        ),
        "accuracy": tests["accuracy"],
        "loss": bootstrapped(
            ev,
            f"relative difference of the training loss after {epoch} epoch(s), {base} minus {name}",
            "fraction",
            falls,
            None,
            covers(ev, False),
        ),
        "speed": bootstrapped(
            ev,
            f"log of {base}'s training seconds over {name}'s to the validation-AP targets",
            "log ratio",
            seconds,
            None,
            covers(ev, False) + " and the timing rounds",
        ),
    }
    return {k: Reading("tuned", m, "replicates") for k, m in measures.items()}, tests


def shared_readings(ev: Evidence, variant: str, found: list[Pair]) -> dict[str, Reading]:
    """Each claim at the settings both variants tuned, paired by setting and tuning seed (none without
    such pairs)."""
    found = [p for p in found if p.learned]
    if not found:
        return {}
    name, base = ev.catalogue.title(variant), ev.catalogue.title(ev.reference)
    units = {
        "minority": ("ap", [p.test_ap for p in found], f"{name} minus {base} test average precision"),
        "accuracy": ("accuracy", [p.test_accuracy for p in found], f"{name} minus {base} test accuracy"),
        "loss": (
            "fraction",
            [p.loss_fall for p in found],
            f"relative difference of the training loss after "
            f"{ev.params.report.early_epoch} epoch(s), {base} minus {name}",
        ),
        "speed": (
            "log ratio",
            [p.seconds for p in found],
            f"log of {base}'s training seconds over {name}'s to the validation-AP targets",
        ),
    }
    covered = {k: SHARED_COVERS + (" and the timing rounds" if k == "speed" else "") for k in units}
    return {
        k: Reading("shared", bootstrapped(ev, text, unit, values, None, covered[k]), "shared pairs")
        for k, (unit, values, text) in units.items()
    }


def claims(ev: Evidence, variant: str, paired: list[Pair] | None = None) -> list[Claim]:
    """The four claims for one candidate, each read two ways, the primary readings corrected together."""
    rp = ev.params.report
    tuned, tests = tuned_readings(ev, variant)
    shared = shared_readings(ev, variant, pairs(ev, variant) if paired is None else paired)
    bands = {
        "minority": rp.min_effect.minority,
        "accuracy": rp.min_effect.accuracy,
        "loss": rp.min_effect.loss,
        "speed": math.log(1 + rp.min_effect.speed),
    }
    primary = {k: shared[k] if PRIMARY_READING[k] == "shared" and k in shared else tuned[k] for k in FAMILY}
    other = {k: (tuned[k] if primary[k] is shared.get(k) else shared.get(k)) for k in FAMILY}
    raw = {
        k: permutation_p(r.measure.differences) if len(r.measure.differences) > 1 else 1.0 for k, r in primary.items()
    }
    adjusted, levels = holm(raw), holm_levels(raw, 1 - rp.confidence)
    alpha = 1 - rp.confidence
    money = tuple(tests[k] for k in ("value_recall", "alert_precision") if k in tests)
    secondary = {"minority": (tests["precision"], tests["recall"], *money)}
    out = []
    for key in FAMILY:
        m, n = primary[key].measure, len(primary[key].measure.differences)
        tost = m.interval(1 - 2 * levels[key])
        word = verdict(m.mean, (m.low, m.high), tost, adjusted[key], alpha, bands[key], n, levels[key])
        half = (m.high - m.low) / 2 if n > 1 else math.inf
        power = design_power(m.spread, n, levels[key], bands[key], half, rp.power)
        out.append(
            Claim(
                key,
                variant,
                ev.catalogue.title(variant),
                f"{ev.catalogue.title(variant)} {CLAIM_NAMES[key]}",
                primary[key],
                other[key],
                bands[key],
                raw[key],
                adjusted[key],
                levels[key],
                tost,
                smallest_p(n),
                word,
                power,
                secondary.get(key, ()),
            )
        )
    return out


def settings_apart(ev: Evidence, variant: str) -> str:
    """How the variant's tuned setting differs from the reference's, in words ("" when alike)."""
    ours, theirs = ev.setting(variant), ev.setting(ev.reference)
    said = []
    if ours.lr != theirs.lr:
        said.append(
            f"learning rate {ours.lr:.3g} against {theirs.lr:.3g}, "
            f"{max(ours.lr, theirs.lr) / min(ours.lr, theirs.lr):.1f}x apart"
        )
    for field, words in (
        ("batch_size", "batch"),
        ("dropout", "dropout"),
        ("weight_decay", "weight decay"),
        ("pos_weight", "class weight"),
    ):
        if getattr(ours, field) != getattr(theirs, field):
            said.append(
                f"{words} {getattr(ours, field):g} against {getattr(theirs, field):g}"
                if field != "pos_weight"
                else f"{words} {ours.pos_weight} against {theirs.pos_weight}"
            )
    return "; ".join(said)


# ---------------------------------------------------------------- the answer and the headline


def in_words(value: float, unit: str, signed: bool = True) -> str:
    """An effect in its claim's reading: a log ratio as a ratio, a fraction as a percentage, accuracy in
    rows per 10,000, AP to three decimals (``signed``: with its sign; a practical size without)."""
    sign = "+" if signed else ""
    if not math.isfinite(value):
        return f"{value}"
    if unit == "log ratio":
        return f"{math.exp(value):.2f}x"
    if unit == "fraction":
        return f"{value:{sign}.1%}"
    if unit == "accuracy":
        return f"{value * 10_000:{sign}.1f} per 10,000 rows"
    return f"{value:{sign}.3f}" if abs(value) < 1000 else f"{value:{sign},.0f}"


AT = {"tuned": "at each one's tuned setting", "shared": "at shared settings"}  # a reading, inside a sentence


def answer_sentence(ev: Evidence, variant: str, found: list[Claim]) -> str:
    """The answer in one sentence a fraud team's lead reads: the fraud claim and the speed claim, each with
    its numbers and the comparison it tests (the speed's other reading beside it)."""
    by = {c.key: c for c in found}
    name, base, fraud, speed = (
        ev.catalogue.title(variant),
        ev.catalogue.title(ev.reference),
        by["minority"],
        by["speed"],
    )
    ours, theirs = (float(np.mean(ev.values(v, "test_ap"))) for v in (variant, ev.reference))
    m = fraud.measure
    aps = f"test AP {ours:.3f} against {theirs:.3f}, a difference of {m.mean:+.3f} [{m.low:+.3f}, {m.high:+.3f}]"
    catch = {
        "supported": f"catches more fraud than {base} ({aps}, beyond the practical size {fraud.band:g})",
        "reversed": f"catches less fraud than {base} ({aps}, beyond the practical size {fraud.band:g})",
        "equivalent": f"catches the same fraud as {base} ({aps}, equivalent within ±{fraud.band:g})",
        "inconclusive": f"may catch more or less fraud than {base}, the replicates cannot tell ({aps} against "
        f"a practical size of ±{fraud.band:g})",
    }[fraud.status]
    s = speed.measure
    interval = f"{in_words(s.mean, s.unit)} [{in_words(s.low, s.unit)}, {in_words(s.high, s.unit)}]"
    timed = f"{interval} as fast in training seconds"
    pace = {
        "supported": f"it trains faster to the validation-AP targets ({timed})",
        "reversed": f"it trains slower to the validation-AP targets ({timed})",
        "equivalent": f"it trains about as fast to the validation-AP targets ({timed})",
        "inconclusive": f"it may or may not train faster to the validation-AP targets ({timed})",
    }[speed.status]
    other = ""
    if speed.other is not None:
        other = f", and {AT[speed.other.name]} it is {in_words(speed.other.measure.mean, s.unit)} as fast"
    return f"{name} {catch}; {AT[speed.primary.name]} {pace}{other}."


def answers(ev: Evidence, found: dict[str, list[Claim]]) -> Answer:
    """metrics/answer.json: every candidate's one-sentence answer."""
    return Answer(
        sentences={v: answer_sentence(ev, v, cs) for v, cs in found.items()},
        titles={v: ev.catalogue.title(v) for v in ev.catalogue.compared},
        labels={v: ev.catalogue.label(v) for v in ev.catalogue.compared},
        colors={v: ev.catalogue.color(v) for v in ev.catalogue.compared},
        reference=ev.reference,
    )


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

    def figure(x: float) -> float:
        return float(f"{x:.4g}") if math.isfinite(x) else x

    def rounded(m: Measure) -> Interval:
        return Interval(mean=figure(m.mean), low=figure(m.low), high=figure(m.high))

    def effects(variant_claims: list[Claim]) -> dict[str, Effect]:
        return {
            c.key: Effect(
                mean=figure(c.measure.mean),
                low=figure(c.measure.low),
                high=figure(c.measure.high),
                band=figure(c.band),
                p_holm=figure(c.p_adjusted),
                unit=c.measure.unit,
                reading=c.primary.name,
                other=rounded(c.other.measure) if c.other is not None else None,
                secondary={m.unit: rounded(m) for m in c.secondary} if c.key == "minority" else None,
            )
            for c in variant_claims
        }

    money = {
        k: per_variant(k)
        for k in ("test_value_recall", "test_alert_precision", "test_savings_vs_none")
        if all(k in ev.metrics[n] for v in variants for n in ev.names(v))
    }
    primary = found.get(ev.catalogue.primary or "", [])
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
            if v != ev.catalogue.primary
        },
        caveats=caveats,
        caveat_kinds=caveat_kinds,
        setting={v: ev.setting(v) for v in variants},
        threshold=ev.params.evaluate.threshold.strategy,
        replicates=len(ev.replicates),
        reference=ev.reference,
        candidate=ev.catalogue.primary,
    )


def shared_rows(found: list[Pair]) -> list[list[str]]:
    """One row per shared setting and seed (steps, loss, test AP and validation AP: deterministic)."""
    return [
        [
            p.setting.name(),
            str(p.seed),
            f"{math.exp(p.steps):.2f}x",
            f"{p.loss_fall:+.1%}",
            f"{p.test_ap:+.3f}",
            f"{p.val_ap[0]:.3f} / {p.val_ap[1]:.3f}",
            "yes" if p.learned else "**no**: left out",
        ]
        for p in found
    ]


def shared_figures(found: dict[str, list[Pair]]) -> dict[str, SharedFigures]:
    """metrics/summary.json's shared-setting figures per candidate (steps and loss only: deterministic), over
    the pairs where both learned, and how many were left out."""
    return {
        variant: SharedFigures(
            pairs=len(learned),
            left_out=len(items) - len(learned),
            steps_speedup=round(math.exp(float(np.median([p.steps for p in learned]))), 4),
            loss_fall=round(float(np.median([p.loss_fall for p in learned])), 5),
        )
        for variant, items in found.items()
        if (learned := [p for p in items if p.learned])
    }


def left_out(found: list[Pair], variant: str, catalogue: Catalogue) -> str:
    """The shared pairs where one model did not learn, in words ("" when none)."""
    ours = sum(1 for p in found if not p.learned and p.val_ap[0] > p.val_ap[1])
    theirs = sum(1 for p in found if not p.learned and p.val_ap[0] <= p.val_ap[1])
    said = [
        f"{n} where only {who} learned"
        for n, who in ((ours, catalogue.title(variant)), (theirs, catalogue.title(catalogue.reference)))
        if n
    ]
    return " and ".join(said)
