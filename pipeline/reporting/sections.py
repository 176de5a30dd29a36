"""The report's sections after the first screen, one function each: setup (2), tuning (3), training curves
(4), accuracy (5), the minority class and money (6), speed (7), the verdicts in detail (8), diagnostics
(9), provenance (10); and the words the numbers are written in. (The first screen is ``summary``.)"""

from __future__ import annotations

import json
import math
import platform
from importlib.metadata import version
from pathlib import Path

import numpy as np

from pipeline.analysis import claims
from pipeline.analysis.checks import findings, tuning_budget
from pipeline.analysis.claims import TIMED, Claim, Measure, Pair, in_words
from pipeline.analysis.evidence import Evidence, at_epoch, describe_runs, table_epochs
from pipeline.analysis.statistics import mean_sd, outer_bootstrap
from pipeline.data.encoder import embedding_dim
from pipeline.data.roles import MIN_COVERAGE
from pipeline.project.artefacts import PrepareSummary
from pipeline.project.layout import SPLITS, Layout
from pipeline.project.provenance import git_state, output_hashes
from pipeline.reporting import figures
from pipeline.reporting.document import Document
from pipeline.tracking import ui

# ---------------------------------------------------------------- numbers as words


def signed(value: float, digits: int = 3) -> str:
    """A signed number: ``digits`` significant digits in plain decimals (never e-notation: an accuracy
    difference of 0.00011 stays 0.00011), thousands whole with separators."""
    if not math.isfinite(value) or value == 0:
        return f"{value:+g}"
    if abs(value) >= 1000:
        return f"{value:+,.0f}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    text = f"{value:+.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def effect_text(m: Measure, band: float, digits: int = 3) -> str:
    """`+0.198 [+0.152, +0.24] over seeds, splits and test rows; practical size 0.02` (a secondary measure,
    ``band`` NaN, has no practical size)."""
    if len(m.differences) < 2:
        return f"{signed(m.mean, digits)} (one unit: no interval)"
    size = "" if math.isnan(band) else f"; practical size {band:.3g}"
    return f"{signed(m.mean, digits)} [{signed(m.low, digits)}, {signed(m.high, digits)}] over {m.covers}{size}"


def in_reading(m: Measure) -> str:
    """An effect and its interval in its claim's reading (a log ratio as a ratio, ...), the unit said once:
    ``+0.3 [-0.4, +1.0] per 10,000 rows``."""
    if len(m.differences) < 2:
        return in_words(m.mean, m.unit)
    mean, low, high = (in_words(v, m.unit) for v in (m.mean, m.low, m.high))
    unit = " per 10,000 rows" if m.unit == "accuracy" else ""
    return f"{mean.removesuffix(unit)} [{low.removesuffix(unit)}, {high.removesuffix(unit)}]{unit}"


def claim_text(c: Claim) -> str:
    """One claim's tested reading in plain words: what it compares, effect, interval, size, counts, the
    units that favour the variant, the raw test, each unit's difference."""
    m, n = c.measure, len(c.measure.differences)
    agree = sum(1 for d in m.differences if d > 0)
    parts = [
        f"**{c.text}**, {claims.READINGS[c.primary.name]} (the tested reading). {m.text[:1].upper()}{m.text[1:]}: "
        f"{effect_text(m, c.band, 4)}"
    ]
    if m.counts:
        parts.append(m.counts)
    parts.append(
        f"{agree} of {n} {c.primary.units} favour {c.title}; permutation p = {c.p:.3g} (the smallest "
        f"{n} allow: {c.smallest_p:.3g}); per unit " + ", ".join(signed(d, 3) for d in m.differences)
    )
    return "; ".join(parts) + "."


def other_text(c: Claim) -> str:
    """The claim's other reading, beside the tested one (not tested, not corrected)."""
    if c.other is None:
        return f"No {claims.READINGS['shared']} reading: the variants tuned no setting in common."
    o = c.other.measure
    return (
        f"{claims.READINGS[c.other.name].capitalize()} (beside it, not tested): {in_reading(o)} over "
        f"{len(o.differences)} {c.other.units} ({o.covers})."
    )


def power_text(c: Claim) -> str:
    """What the rule can support at this many units: attainable figures (``statistics.design_power``)."""
    p, unit, n = c.power, c.measure.unit, len(c.measure.differences)
    reach = (
        f"supports a true effect of {in_words(p.detectable, unit, signed=False)} or more {p.target:.0%} of the time"
        if math.isfinite(p.detectable)
        else "cannot support any effect at its level"
    )
    more = (
        f"{p.replicates} would support 1.5 times the practical size ({in_words(1.5 * c.band, unit, signed=False)}) "
        f"{p.target:.0%} of the time"
        if p.replicates
        else "no count up to 256 reaches 1.5 times the practical size"
    )
    level = f"at this claim's Holm level {c.level:.3g}"
    return f"{c.text}. Power: with {n} {c.primary.units} the rule, {level}, {reach}; {more}."


def verdict_text(c: Claim) -> str:
    """A claim's verdict with its Holm correction and its equivalence test at the same level."""
    return (
        f"{c.text}: **{c.status}** (Holm-adjusted p = {c.p_adjusted:.3g}; its raw p compared at {c.level:.3g}; "
        f"equivalence interval at that level {signed(c.tost[0])} to {signed(c.tost[1])} against ±{c.band:.3g})"
    )


# ---------------------------------------------------------------- sections 2 to 7


def setup_section(doc: Document, ev: Evidence) -> None:
    """Data, model, training settings, replicates, versions."""
    p, s = ev.params, ev.summary
    devices = describe_runs(ev.runs)["devices"]
    doc.heading("2. Setup")
    doc.bullets(
        [
            f"Data: `{s.source}` (SHA-256 `{s.source_sha256[:16]}…`), label `{s.label}`, {s.n_features} features, "
            f"{s.split_method} split; rows with NaN/inf dropped: {s.dropped_nonfinite:,}{_imputed(s)}.",
            f"Model: MLP{' over the numeric inputs and one embedding per categorical column' if s.categories else ''}; "
            f"the shared recipe: hidden layers {p.train.model.hidden}, {p.train.model.activation}, normalisation "
            f"{p.train.model.norm} ({p.train.model.batchnorm_placement} the activation), optimizer "
            f"{p.train.optimizer.name}. " + " ".join(_differences(ev, v) for v in ev.compared()) + " The output bias "
            "starts at the training prior's log-odds (the first predictions are the base rate).",
            f"Training: at most {p.train.epochs} epochs, early stopping after {p.train.patience} epochs without a "
            "better validation AP (the best epoch's weights kept), batches never below "
            f"{p.train.min_batch}; validation AP also at probe steps growing {p.train.probe_growth:g}x.",
            "Settings (tuned per variant, section 3): "
            + "; ".join(f"{ev.catalogue.label(v)}: {ev.setting(v).name()}" for v in p.train.variants)
            + ".",
            f"Replicates: {len(ev.replicates)}; replicate r trains every variant with seed r on "
            + ("its own redrawn split" if s.redrawn else f"time window r mod {s.folds}")
            + ". Device: "
            f"{', '.join(devices)}. Threshold: `{p.evaluate.threshold.strategy}` on each model's validation part.",
            "Versions: "
            + ", ".join(
                f"{pkg} {version(pkg)}"
                for pkg in ("torch", "scikit-learn", "mlflow", "dvc", "optuna", "numpy", "pandas")
            )
            + f", Python {platform.python_version()}.",
        ]
    )
    if s.blocks:
        time_blocks(doc, ev)
    else:
        doc.table(
            ["Part (every split)", "Rows", "Frauds", "Prevalence"],
            [[n, f"{s.rows[n]:,}", f"{s.positives[n]:,}", f"{s.prevalence[n]:.4%}"] for n in SPLITS],
        )
    _columns(doc, ev)


def _imputed(s: PrepareSummary) -> str:
    """The setup's words on imputed cells: per column, in the tuning split's train/val/test parts."""
    if not s.imputed:
        return ""
    cells = ", ".join(f"`{c}` {'/'.join(f'{by_part[p]:,}' for p in SPLITS)}" for c, by_part in s.imputed.items())
    return (
        f"; empty or infinite cells imputed with the training part's median and a was-missing input "
        f"(train/val/test of the tuning split): {cells}"
    )


def _differences(ev: Evidence, variant: str) -> str:
    """What a candidate changes of the reference, and whether their initial weights can be equal."""
    cat = ev.catalogue
    said = cat.differences(variant) or "nothing (a changed label only)"
    weights = (
        "every layer starts from the same weights as the reference's (the same shapes, the same seeded draws)"
        if cat.same_shape(variant)
        else "their shapes differ, so their initial weights are drawn from the same seeded generator but are not equal"
    )
    return (
        f"{cat.title(variant)[:1].upper()}{cat.title(variant)[1:]} against {cat.title(cat.reference)}: {said}; "
        f"nothing else differs, and {weights}."
    )


ROLE_INPUTS = {
    "numeric": "standardised (fitted on each split's training part)",
    "boolean": "0/1, standardised",
    "categorical": "an embedding each (rows x width), concatenated with the numeric inputs",
    "datetime": "five numbers each: hour of day and day of week as (sin, cos) pairs, days elapsed (dates without "
    "a time of day: no hour)",
    "age": "a date of birth: the age in years at the row's time, standardised",
    "id": "never a feature",
    "constant": "dropped",
    "rare": f"dropped: the categories seen often enough to keep hold under {MIN_COVERAGE:.0%} of its rows",
    "drop": "dropped (declared)",
}


def _columns(doc: Document, ev: Evidence) -> None:
    """The column roles prepare gave (or was told), and what the network gets of each."""
    s, log1p = ev.summary, ev.summary.log1p
    if not s.roles:
        return
    # The features in the table's order, then the ids and dropped columns (summary.json sorts its keys).
    ordered = sorted(s.roles, key=lambda n: s.features.index(n) if n in s.features else len(s.features))
    rows, found = [], {"amount": s.amount, "time": s.time_column}
    inferred = {found[part]: part for part in s.inferred if found.get(part)}  # column -> "amount" or "time"
    for role, what in ROLE_INPUTS.items():
        names = [n for n in ordered if s.roles[n] == role]
        if not names:
            continue
        if role == "categorical":
            shown = [
                f"`{n}` ({s.categories[n] - 2} categories, {s.categories[n]} x {embedding_dim(s.categories[n])}"
                + (
                    f'; {c.kept:,} of {c.values:,} values kept, {c.other:.0%} of rows "other")'
                    if (c := s.coverage.get(n)) and c.kept < c.values
                    else ")"
                )
                for n in names
            ]
        else:
            shown = [
                f"`{n}`"
                + (" (the entity)" if n == s.entity else "")
                + (" (log1p)" if n in log1p else "")
                + (f" (the {inferred[n]}, inferred)" if n in inferred else "")
                for n in names
            ]
        rows.append(
            [role, str(len(names)), ", ".join(shown if len(shown) <= 8 else [*shown[:4], "…", *shown[-2:]]), what]
        )
    doc.paragraph(
        "Column roles (inferred from values and names, or declared in `prepare.columns`); categories "
        f"seen fewer than {ev.params.prepare.min_category_count} times in a training part, or first seen "
        'later, share an "other" index, and missing categories have their own:'
    )
    doc.table(["Role", "Columns", "Which", "What the network gets"], rows)


def tuning_section(doc: Document, ev: Evidence, figure_dir: Path) -> None:
    """Each variant's trials: the best so far after each trial, the chosen setting, the best few."""
    p = ev.params
    doc.heading("3. Tuning: the same budget for every variant")
    doc.paragraph(
        f"Every variant had {p.train.tune.trials} trials (`{p.train.tune.sampler}`, seeded) over the same "
        f"space (`train.tune.space`); each trial trained its setting on the tuning seeds "
        f"{list(p.train.tune.seeds)}, on a split of its own, and scored the mean of their best validation "
        "AP; test data never took part. The best trial is the variant's setting."
    )
    rows = []
    budgets = {v: tuning_budget(ev, v) for v in p.train.variants}
    for variant in p.train.variants:
        entry = ev.selection.variants[variant]
        edges = ", ".join(f"{k} ({v} end)" for k, v in entry.at_edge.items()) or "none"
        rows.append(
            [
                ev.catalogue.label(variant),
                f"{entry.val_ap:.4f}",
                f"trial {entry.chosen.trial}",
                ev.setting(variant).name(),
                budgets[variant].words,
                edges,
            ]
        )
    doc.table(["Variant", "Best validation AP", "Chosen", "Setting", "Budget", "At the edge of the space"], rows)
    doc.paragraph(
        "**Budget**: a trial's score is the mean of its tuning seeds' validation AP, and the seeds disagree; the "
        "noise is twice the standard error of a trial's score (the seeds' pooled disagreement). The search is "
        f"*still climbing* when its last quarter raised the best by more than {p.report.saturation:g} "
        "(report.saturation) and more than the noise; *saturated* when by less, with a noise within that "
        "tolerance and after the sampler's random start-up; *not established* otherwise. Trials within the "
        "noise of the best are tied: which of them is best is not established."
    )
    doc.figure(
        figures.tuning_curves(
            {v: ev.selection.variants[v].best_so_far for v in p.train.variants}, ev.catalogue, figure_dir / "tuning.png"
        ),
        "Best mean validation AP after each trial",
    )
    for variant in p.train.variants:
        tied = {t.trial for t in budgets[variant].tied}
        trials = sorted(
            (t for t in ev.selection.variants[variant].trials if t.val_ap is not None), key=lambda t: -t.val_ap
        )[: max(5, len(tied))]
        doc.paragraph(f"Best trials {ev.catalogue.label(variant)}:")
        doc.table(
            ["Trial", "Validation AP (mean over tuning seeds)", "Per seed", "Tied with the best", "Setting"],
            [
                [
                    str(t.trial),
                    f"{t.val_ap:.4f}",
                    " / ".join(f"{v:.4f}" for v in t.val_ap_by_seed.values()),
                    "yes" if t.trial in tied else "",
                    t.setting.name(),
                ]
                for t in trials
            ],
        )


def curves_section(doc: Document, ev: Evidence, figure_dir: Path) -> None:
    """Train and validation loss by epoch, mean ± sd over replicates, and the loss figure."""
    n = len(ev.replicates)
    doc.heading("4. Training curves")
    longest = max(len(h) for runs in ev.histories.values() for h in runs.values())
    for key, name in (("train_loss", "train loss"), ("val_loss", "validation loss")):
        rows = []
        for epoch in table_epochs(longest):
            cells = []
            for variant in ev.histories:
                values = at_epoch(ev.histories[variant], key, epoch)
                cells.append(mean_sd(values) + (f" (n={len(values)})" if 0 < len(values) < n else ""))
            rows.append([str(epoch), *cells])
        doc.paragraph(
            f"**{name.capitalize()}** of the compared models (each variant at its tuned setting), mean ± "
            f"standard deviation over {n} replicate(s); n < replicates where early stopping ended a run "
            "before that epoch."
        )
        doc.table(["Epoch", *[f"{name} {ev.catalogue.label(v)}" for v in ev.histories]], rows)
    doc.figure(
        figures.loss_curves(ev.histories, ev.catalogue, figure_dir / "loss_curves.png"),
        "Training (solid) and validation (dashed) loss",
    )


def accuracy_section(doc: Document, ev: Evidence) -> None:
    """Test accuracy at each model's threshold and at 0.5, balanced accuracy, MCC, the majority class."""
    majority = 1 - ev.summary.prevalence["test"]
    doc.heading("5. Accuracy, on data that chose neither the threshold nor the kept epoch")
    rows = []
    for model in [*ev.histories, *ev.params.evaluate.references.names()]:
        at_half = [_accuracy_at(ev, n, 0.5) for n in ev.names(model)]
        rows.append(
            [
                ev.catalogue.label(model),
                mean_sd(ev.values(model, "test_accuracy")),
                mean_sd(at_half),
                mean_sd(ev.values(model, "test_balanced_accuracy"), 3),
                mean_sd(ev.values(model, "test_mcc"), 3),
            ]
        )
    doc.table(
        ["Model (mean ± sd over replicates)", "Test accuracy at its threshold", "At 0.5", "Balanced accuracy", "MCC"],
        rows,
    )
    doc.paragraph(
        'Accuracy is dominated by the majority class: predicting "legit" for every row already scores '
        f"{majority:.2%}, and moving the threshold trades a few frauds caught for many more rows "
        "flagged, so accuracy moves little while recall moves a lot. Balanced accuracy and MCC weigh the "
        "fraud class; judge the models on the minority-class metrics below."
    )


def _accuracy_at(ev: Evidence, name: str, threshold: float) -> float:
    y, p = ev.split_scores(name, "test")
    return float(np.mean((p >= threshold) == (y > 0)))


def minority_section(doc: Document, ev: Evidence, figure_dir: Path) -> None:
    """AP, precision, recall and F1 per variant and reference; at 0.5; calibration; PR curves."""
    p = ev.params
    doc.heading("6. Minority class: average precision, precision, recall, calibration")
    doc.paragraph(
        f"Each replicate's test part ({ev.summary.rows['test']:,} rows, {ev.summary.positives['test']:,} "
        f"frauds), each model's threshold chosen on its validation part (`{p.evaluate.threshold.strategy}`). "
        f"Mean ± sd over {len(ev.replicates)} replicate(s); test prevalence "
        f"{ev.summary.prevalence['test']:.4f} is the AP of a random ranking. Precision and recall hold "
        "the chosen threshold fixed; Brier score and the reliability plot say how far the probabilities "
        "can be read as such."
    )
    keys = ("ap", "precision", "recall", "f1", "brier")
    models = [*ev.histories, *p.evaluate.references.names()]
    doc.table(
        ["Model", "Average precision", "Precision", "Recall", "F1", "Brier", "Recall at 0.5"],
        [
            [ev.catalogue.label(m)]
            + [mean_sd(ev.values(m, f"test_{k}"), 3) for k in keys]
            + [mean_sd([_recall_at(ev, n, 0.5) for n in ev.names(m)], 3)]
            for m in models
        ],
    )
    pooled = {
        m: tuple(np.concatenate(a) for a in zip(*(ev.split_scores(n, "test") for n in ev.names(m)))) for m in models
    }
    money_table(doc, ev)
    doc.figure(
        figures.reliability(pooled, ev.catalogue, figure_dir / "reliability.png"),
        "Reliability on the test parts, every replicate pooled",
    )
    first = {n: ev.split_scores(n, "test") for m in models for n in ev.names(m)[:1]}
    doc.figure(
        figures.overlaid_pr(first, ev.summary.prevalence["test"], ev.catalogue, figure_dir / "precision_recall.png"),
        "Precision-recall curves on replicate 0's test part",
    )


def _recall_at(ev: Evidence, name: str, threshold: float) -> float:
    y, p = ev.split_scores(name, "test")
    return float(np.mean(p[y > 0] >= threshold)) if (y > 0).any() else math.nan


def _spread(values: list[float], fmt: str) -> str:
    """Median [min, max] of a measurement repeated in rounds."""
    return f"{np.median(values):{fmt}} [{min(values):{fmt}}, {max(values):{fmt}}]"


def speed_section(doc: Document, ev: Evidence, paired: dict[str, list[Pair]]) -> None:
    """Steps to validation-AP targets both variants reach (each model's own, deterministic), the timed cost
    of a step (the timing stage's rounds), and training seconds as their product; the same at shared settings."""
    t = ev.timing
    name, base = ev.catalogue.title, ev.catalogue.title(ev.reference)
    doc.heading("7. Speed: time to validation-AP targets both variants reach")
    targets = ", ".join(f"{f:.0%}" for f in ev.params.report.speed_rungs)
    doc.paragraph(
        f"Targets: {targets} of the lower of the two compared models' best validation AP, so both reach every "
        "target. **Steps** to a target come from each model's own validation probes (steps 1, 2, 3, ... growing "
        "geometrically, and every epoch end), interpolated between probes: they are the same in every run of the "
        "same params. **The cost of a step** is timed apart (stage `timing`): each variant trained alone by the "
        f"same loop, {t.steps} steps at a time, in {t.rounds} rounds that time every variant once in a rotating "
        f"order, on {t.device} with {t.threads} thread(s). **Training seconds** to a target are a model's steps "
        "times one round's cost of a step (replicate r: round r), so the timing's own spread enters the speed "
        "claim's interval and test."
    )
    for variant in ev.compared():
        costs = [v / b for v, b in zip(t.tuned[variant], t.tuned[ev.reference])]
        doc.table(
            [
                "Seconds per step (ms), median [min, max] over rounds",
                name(variant),
                base,
                "Ratio (variant / baseline)",
            ],
            [
                [
                    "each at its tuned setting",
                    _spread([1000 * x for x in t.tuned[variant]], ".3g"),
                    _spread([1000 * x for x in t.tuned[ev.reference]], ".3g"),
                    _spread(costs, ".2f"),
                ]
            ]
            + [
                [
                    f"shared: {s.setting.name()}",
                    _spread([1000 * x for x in s.seconds[variant]], ".3g"),
                    _spread([1000 * x for x in s.seconds[ev.reference]], ".3g"),
                    _spread([v / b for v, b in zip(s.seconds[variant], s.seconds[ev.reference])], ".2f"),
                ]
                for s in t.shared
            ],
            volatile=True,
        )
        rows = []
        for r in ev.replicates:
            steps = claims.rung_steps(ev, variant, r)
            rows.append([str(r), *[f"{ours:,.0f} / {theirs:,.0f}" for _, ours, theirs in steps]])
        doc.paragraph(f"Steps to each target, each at its tuned setting ({name(variant)} / {base}):")
        doc.table(["Replicate", *[f"{f:.0%} target" for f in ev.params.report.speed_rungs]], rows)
        epochs = {
            v: float(np.median([len(r.batch_sizes) for n, r in ev.runs.items() if r.variant == v]))
            for v in (variant, ev.reference)
        }
        doc.bullets(
            [
                f"Seconds per epoch at the tuned settings (the timed cost of a step times the steps of an epoch; "
                f"median [min, max] over the timing rounds): {name(variant)} "
                f"{_spread([x * epochs[variant] for x in t.tuned[variant]], '.3g')} s ({epochs[variant]:.0f} "
                f"steps), {base} {_spread([x * epochs[ev.reference] for x in t.tuned[ev.reference]], '.3g')} s "
                f"({epochs[ev.reference]:.0f} steps). In the training stage a variant's replicates train together in "
                "one stack, so its own clock is one measurement per variant, not per replicate: the claims use "
                "the timed cost above."
            ],
            volatile=True,
        )
        if paired[variant]:
            doc.paragraph(
                f"**At shared settings**: the tuning trials {name(variant)} and {base} both trained "
                "(the sampler's seeded first round, or the whole grid), on the tuning split, paired by setting "
                "and tuning seed. One learning rate, batch and dropout for both: a step does the same work, so "
                "this reading credits nothing to either variant's tuned setting. Columns as in the claims: "
                "steps to the targets (baseline over variant, geometric mean over the targets), the training "
                "loss after the same examples, test AP on the tuning split. A pair counts when both models "
                f"learned: each reached at least {claims.LEARNED:.0%} of the other's best validation AP; where "
                "one did not, the pair says which variant tolerates the setting, not how fast either learns, and "
                "is left out of the shared readings."
            )
            doc.table(
                [
                    "Setting",
                    "Seed",
                    "Speed-up in steps",
                    "Training loss, baseline minus variant",
                    "Test AP, variant minus baseline",
                    f"Best validation AP {name(variant)} / {base}",
                    "Both learned",
                ],
                claims.shared_rows(paired[variant]),
            )


def _interval(ev: Evidence, model: str, key: str, money: bool = False) -> str:
    """Mean over replicates [95% interval]: a bootstrap over replicates (each its own test rows), or
    with one replicate evaluate's bootstrap over its test rows."""
    values = ev.values(model, key)
    fmt = (lambda v: f"{v:,.0f}") if money else (lambda v: f"{v:.3f}")
    if len(values) > 1:
        b = ev.params.report.bootstrap
        low, high = outer_bootstrap(values, b.resamples, b.seed, ev.params.report.confidence)
    else:
        metrics = ev.metrics[ev.names(model)[0]]
        low, high = metrics[f"{key}_ci_low"], metrics[f"{key}_ci_high"]
    return f"{fmt(float(np.mean(values)))} [{fmt(low)}, {fmt(high)}]"


def money_table(doc: Document, ev: Evidence) -> None:
    """The money table of section 6: every compared and reference model."""
    models = [*ev.histories, *ev.params.evaluate.references.names()]
    if not all("test_value_recall" in ev.metrics[n] for m in models for n in ev.names(m)):
        doc.paragraph("**Money**: the data has no amount column (`prepare.amount`), so no money is counted.")
        return
    e = ev.params.evaluate
    alerts = "test_alert_precision" in ev.metrics[ev.names(models[0])[0]]
    budget = float(np.mean([ev.metrics[n]["test_alert_budget"] for n in ev.names(models[0])])) if alerts else 0.0
    doc.paragraph(
        f"**Money and alerts** on the test parts (`{ev.summary.amount}` as each transaction's amount). Value-weighted "
        "recall is the share of the fraudulent amount the alerts catch at each model's threshold. "
        + (
            f"The alert budget is {e.alerts_per_day} alerts a day on the whole day's traffic, scaled to the part's "
            f"share of each day's rows ({budget:,.0f} alerts over the test days of a replicate): precision is the "
            "share of each day's highest scores that are fraud, averaged over the days (equal scores at the edge share "
            "the last alerts). "
            if alerts
            else "No time column: no alert budget per day. "
        )
        + f"Costs: {e.cost_per_alert:g} per alert plus every missed fraud's amount; savings against no model (every "
        "fraud lost) and against alerting every row. Mean per replicate [95% interval over replicates]; the "
        "threshold held fixed."
    )
    header = ["Model", "Value-weighted recall", "Fraud amount caught", "Fraud amount missed"]
    header += ["Precision within the alert budget", "Share of fraud amount the alerts catch"] if alerts else []
    header += ["Savings vs no model", "Savings vs alerting every row"]
    rows = []
    for model in models:
        cells = [
            ev.catalogue.label(model),
            _interval(ev, model, "test_value_recall"),
            _interval(ev, model, "test_amount_caught", money=True),
            f"{np.mean(ev.values(model, 'test_amount_missed')):,.0f}",
        ]
        if alerts:
            cells += [_interval(ev, model, "test_alert_precision"), _interval(ev, model, "test_alert_value_recall")]
        cells += [
            _interval(ev, model, "test_savings_vs_none", money=True),
            _interval(ev, model, "test_savings_vs_all", money=True),
        ]
        rows.append(cells)
    doc.table(header, rows)


def time_blocks(doc: Document, ev: Evidence) -> None:
    """The setup's table of time blocks: tuning's window and each distinct replicate window."""
    s = ev.summary
    if not s.blocks:
        return
    split = ev.params.prepare.split
    doc.paragraph(
        f"**Split by time** (`{s.time_column}`): {s.folds} window(s) of consecutive rows, each moved on by one "
        f"test block; in each, the earliest rows train, then a gap of {split.delay} is left out (labels that arrive "
        "late), then validation, then test. Evaluation in time order asks what a model trained on the past does on "
        "the next block: stricter than a random split, where test rows sit between training rows. Replicate r "
        f"uses window r mod {s.folds}; tuning uses window 0."
    )
    shown = ["tuning", *s.replicates[: s.folds]]
    rows = []
    for name in shown:
        for part in ("train", "gap", "val", "test"):
            b = s.blocks[name].get(part)
            if b is None or not b.rows or b.start is None or b.end is None:
                continue
            span = (b.end - b.start) / 3600
            rows.append(
                [name, part, str(b.start_text), str(b.end_text), f"{span:,.1f} h", f"{b.rows:,}", f"{b.positives:,}"]
            )
    doc.table(["Split", "Part", "From", "To", "Span", "Rows", "Frauds"], rows)


# ---------------------------------------------------------------- sections 8 to 10


METHOD = (
    "**How the verdicts are decided.** Each claim is read two ways. *Each at its tuned setting*: replicate r "
    "trains both variants on the same redrawn split (stratified; the encoder refitted on its training part) "
    "from the same initial shared weights and row order (seed r), so the unit is the per-replicate difference. "
    "*At shared settings*: the tuning trials both variants trained, paired by setting and tuning seed. The "
    "verdict word belongs to one reading, the claim's tested one: the tuned reading for catching fraud and "
    "accuracy (which model to deploy), the shared reading for the loss and speed (an optimisation claim, "
    "which the tuned reading would credit with the variant's settings). The test is the sign-flip permutation "
    "test of the mean difference (exact over the 2^n sign patterns up to 16 units; it assumes only that, with "
    "no effect, a difference is as likely positive as negative); the four tested readings are one family, "
    "corrected with Holm's step-down method (family-wise error {alpha:.0%}, valid under any dependence between "
    "the claims). Test-set claims at tuned settings take their interval from a nested bootstrap (replicates "
    "drawn with replacement, then within each its test rows, stratified); the others resample their units. "
    "A claim is **supported** when it is significant after correction, its interval lies above 0 and its "
    "estimate reaches the practical size; **equivalent** when both one-sided tests at the claim's own Holm "
    "level reject an effect of the practical size (its 1 - 2 x level interval lies within ±size); "
    "**reversed** when it is significant the other way by at least the practical size; else "
    "**inconclusive**. **Power** is simulated for this rule (the permutation test at the claim's Holm level, "
    "the interval and the practical size; differences drawn around a true effect with the spread the test "
    "saw; seeded): since the rule asks the estimate to reach the practical size, an effect of exactly that "
    "size is supported about half the time however many replicates, so power is given as the smallest true "
    "effect supported {power:.0%} of the time, and the replicates that bring it to 1.5 times the size. What this "
    "cannot show: tuning was done once, on a split of its own, so the intervals do not cover how the chosen "
    "setting would move with the data; the replicates' splits are drawn from one table, so a new population "
    "(next month, another portfolio) may differ by more; precision and recall intervals hold each model's "
    "validation-chosen threshold fixed; the cost of a step is timed on this machine, where timings drift."
)


def verdicts_section(doc: Document, ev: Evidence, found: dict[str, list[Claim]]) -> None:
    """8. Every claim once: its tested reading with each unit's difference, the measures beside it, the other
    reading, its power; then the verdicts with their corrections."""
    p = ev.params
    doc.heading("8. Verdicts in detail")
    if len(ev.replicates) < 2:
        doc.paragraph(
            "**Only one replicate was trained: the verdict cannot judge replicate-to-replicate noise.** "
            "Every claim at tuned settings is `inconclusive`; raise `prepare.replicates`."
        )
    for variant in ev.compared():
        items, timed = [], []
        for c in found[variant]:
            lines = [claim_text(c)]
            lines += [
                f"Beside it, at each model's validation-chosen threshold (not tested): {m.text}: "
                f"{effect_text(m, math.nan, 4)}" + (f"; {m.counts}" if m.counts else "")
                for m in c.secondary
            ]
            lines.append(other_text(c))
            (timed if c.key in TIMED else items).append(" ".join(x if x.endswith(".") else x + "." for x in lines))
        doc.bullets(items)
        # Holm's levels, and so power and the verdicts, move with the timed speed claim's p.
        doc.bullets(
            timed + [power_text(c) for c in found[variant]] + [verdict_text(c) for c in found[variant]], volatile=True
        )
    alpha = 1 - p.report.confidence
    doc.paragraph(METHOD.format(alpha=alpha, power=p.report.power))


def diagnostics_section(doc: Document, ev: Evidence) -> None:
    """9. Pitfall checks, each with its fix."""
    doc.heading("9. Diagnostics")
    doc.bullets(findings(ev))


def provenance_section(doc: Document, ev: Evidence, layout: Layout) -> None:
    """10. Git state of code and params, pipeline outputs, DVC hashes, MLflow runs."""
    state = git_state()
    doc.heading("10. Provenance")
    code = (
        f"uncommitted changes in {', '.join(f'`{f}`' for f in state.changed_code)}"
        if state.changed_code
        else "as committed"
    )
    outputs = (
        f"changed since the commit: {', '.join(f'`{f}`' for f in state.changed_outputs)} (the pipeline "
        "writes them; `dvc repro` stages dvc.lock)"
        if state.changed_outputs
        else "as committed"
    )
    doc.bullets(
        [
            f"Git commit `{state.commit}`. Code and params: {code}. Pipeline records: {outputs}.",
            "Params: "
            + "; ".join(
                f"`{k}`: {json.dumps(v)}"
                for k, v in ev.params.model_dump(include={"prepare", "train", "evaluate"}).items()
            ),
        ]
    )
    checkpoints = [layout.checkpoint(n) for v in ev.histories for n in ev.names(v)]
    doc.table(["Output", "md5"], [[f"`{path}`", f"`{md5}`"] for path, md5 in output_hashes(layout.root, checkpoints)])
    links = sorted(
        {
            ui.comparison_url(r.experiment_id, r.group, ev.catalogue.slug)
            for r in ev.runs.values()
            if r.run_id and r.experiment_id
        }
    )
    if links:
        doc.bullets(
            [f"MLflow comparison of this execution's runs (after `mlflow ui`): {url}" for url in links], volatile=True
        )
    uris = {n: m.model_uri for n, m in ev.logged.models.items()}
    rows = [[n, r.run_id, uris.get(n, "")] for n, r in ev.runs.items() if r.run_id]
    rows += [[f"{n} (reference)", run_id, ""] for n, run_id in ev.logged.references.items()]
    for pipeline in describe_runs(ev.runs)["pipelines"]:
        rows.append(["pipeline run (holds this report and the verdict)", pipeline, ""])
    if rows:
        doc.paragraph(f"MLflow runs in {next(iter(ev.runs.values())).tracking_uri}:", volatile=True)
        doc.table(["Model", "MLflow run id", "Model URI"], rows, volatile=True)
