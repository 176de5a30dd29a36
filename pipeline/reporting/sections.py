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
from pipeline.analysis.checks import findings, last_quarter_gain
from pipeline.analysis.claims import FAMILY, TIMED, Claim, Measure, Pair
from pipeline.analysis.evidence import Evidence, at_epoch, describe_runs, table_epochs
from pipeline.analysis.statistics import mean_sd, outer_bootstrap
from pipeline.data.encoder import embedding_dim
from pipeline.data.roles import MIN_COVERAGE
from pipeline.project.artefacts import PrepareSummary
from pipeline.project.layout import SPLITS, Layout
from pipeline.project.provenance import git_state, output_hashes
from pipeline.project.variants import BASELINE, label, title
from pipeline.reporting import figures
from pipeline.reporting.document import Document
from pipeline.tracking import ui

# ---------------------------------------------------------------- numbers as words


def signed(value: float, digits: int = 3) -> str:
    """A signed number: 3 significant digits, thousands whole with separators."""
    return f"{value:+.{digits}g}" if abs(value) < 1000 else f"{value:+,.0f}"


def effect_text(m: Measure, band: float, digits: int = 3) -> str:
    """`+0.198 [+0.152, +0.24] (seeds, splits and test rows); practical size 0.02` (a secondary measure,
    ``band`` NaN, has no practical size)."""
    if len(m.differences) < 2:
        return f"{signed(m.mean, digits)} (one replicate: no interval)"
    size = "" if math.isnan(band) else f"; practical size {band:.3g}"
    return f"{signed(m.mean, digits)} [{signed(m.low, digits)}, {signed(m.high, digits)}] over {m.covers}{size}"


def in_unit(value: float, unit: str) -> str:
    """A difference in its claim's reading: a log ratio as a ratio, a fraction as a percentage."""
    if unit == "log ratio":
        return f"{math.exp(value):.2f}x"
    if unit == "fraction":
        return f"{value:+.1%}"
    return signed(value)


def claim_text(c: Claim) -> str:
    """One claim's evidence in plain words: effect, interval, size, counts, agreement, raw test (all
    deterministic for a claim not measured in seconds)."""
    m, n = c.primary, len(c.primary.differences)
    agree = sum(1 for d in m.differences if d > 0)
    parts = [f"**{c.text}.** {m.text}: {effect_text(m, c.band)}"]
    if m.counts:
        parts.append(m.counts)
    parts.append(
        f"{agree} of {n} replicates favour {title(c.variant)}; permutation p = {c.p:.3g} (the smallest {n} "
        f"replicates allow: {c.smallest_p:.3g})"
    )
    return "; ".join(parts) + "."


def verdict_text(c: Claim) -> str:
    """A claim's verdict with its Holm correction (it depends on every claim of the family, the
    timed one included)."""
    return f"{c.text}: **{c.status}** (Holm-adjusted p = {c.p_adjusted:.3g}; its raw p compared at {c.level:.3g})"


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
            f"Model: MLP{' over the numeric inputs and one embedding per categorical column' if s.categories else ''}, "
            f"hidden layers {p.train.model.hidden}, {p.train.model.activation}; `batchnorm` adds "
            f"BatchNorm1d (`layernorm`: LayerNorm) {p.train.model.batchnorm_placement} each activation; nothing else "
            "differs, shared layers start from the same weights, and the output bias starts at the training prior's "
            "log-odds (the first predictions are the base rate).",
            f"Training: at most {p.train.epochs} epochs, early stopping after {p.train.patience} epochs without a "
            f"better validation AP (the best epoch's weights kept), {p.train.optimizer.name}, batches never below "
            f"{p.train.min_batch}; validation AP also at probe steps growing {p.train.probe_growth:g}x.",
            "Settings (tuned per variant, section 3): "
            + "; ".join(f"{label(v)}: {ev.setting(v).name()}" for v in p.train.variants)
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
    for variant in p.train.variants:
        entry = ev.selection.variants[variant]
        quarter, gain = last_quarter_gain(entry.best_so_far)
        state = "still climbing" if gain > p.report.saturation else "saturated"
        edges = ", ".join(f"{k} ({v} end)" for k, v in entry.at_edge.items()) or "none"
        rows.append(
            [
                label(variant),
                f"{entry.val_ap:.3f}",
                f"trial {entry.chosen.trial}",
                ev.setting(variant).name(),
                f"{state} (last {quarter}: {gain:+.3f})",
                edges,
            ]
        )
    doc.table(["Variant", "Best validation AP", "Chosen", "Setting", "Budget", "At the edge of the space"], rows)
    doc.figure(
        figures.tuning_curves(
            {v: ev.selection.variants[v].best_so_far for v in p.train.variants}, figure_dir / "tuning.png"
        ),
        "Best mean validation AP after each trial",
    )
    for variant in p.train.variants:
        trials = sorted(
            (t for t in ev.selection.variants[variant].trials if t.val_ap is not None), key=lambda t: -t.val_ap
        )[:5]
        doc.paragraph(f"Best trials {label(variant)}:")
        doc.table(
            ["Trial", "Validation AP (mean over tuning seeds)", "Setting"],
            [[str(t.trial), f"{t.val_ap:.3f}", t.setting.name()] for t in trials],
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
        doc.table(["Epoch", *[f"{name} {label(v)}" for v in ev.histories]], rows)
    doc.figure(
        figures.loss_curves(ev.histories, figure_dir / "loss_curves.png"),
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
                label(model),
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
            [label(m)]
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
        figures.reliability(pooled, figure_dir / "reliability.png"),
        "Reliability on the test parts, every replicate pooled",
    )
    first = {n: ev.split_scores(n, "test") for m in models for n in ev.names(m)[:1]}
    doc.figure(
        figures.overlaid_pr(first, ev.summary.prevalence["test"], figure_dir / "precision_recall.png"),
        "Precision-recall curves on replicate 0's test part",
    )


def _recall_at(ev: Evidence, name: str, threshold: float) -> float:
    y, p = ev.split_scores(name, "test")
    return float(np.mean(p[y > 0] >= threshold)) if (y > 0).any() else math.nan


def speed_section(doc: Document, ev: Evidence, paired: dict[str, list[Pair]]) -> None:
    """Training time and steps to validation-AP targets both variants reach, replicate by replicate; the
    same at shared settings."""
    doc.heading("7. Speed: time to validation-AP targets both variants reach")
    rungs = ", ".join(f"{f:.0%}" for f in ev.params.report.speed_rungs)
    doc.paragraph(
        f"Targets: {rungs} of the lower of the two variants' best validation AP in each replicate, so "
        "both reach every target; times are interpolated between validation probes (steps 1, 2, 3, ... "
        "growing geometrically, and every epoch end) and count training steps only (a stack's step time "
        "shared among its models). Each variant at its own tuned setting: a different batch size makes "
        "a step do different work, so training seconds decide, and steps are shown beside."
    )
    for variant in ev.compared():
        rows = []
        for r in ev.replicates:
            seconds = claims.rung_times(ev, variant, r, "seconds")
            steps = claims.rung_times(ev, variant, r, "step")
            rows.append(
                [str(r)]
                + [f"{a:.1f}s/{b:.1f}s ({sa:.0f}/{sb:.0f} steps)" for (_, a, b), (_, sa, sb) in zip(seconds, steps)]
            )
        doc.table(
            [
                "Replicate",
                *[f"{f:.0%} target: {title(variant)}/{title(BASELINE)}" for f in ev.params.report.speed_rungs],
            ],
            rows,
            volatile=True,
        )
    doc.paragraph(
        "Seconds per epoch (wall time of the epoch, shared by the models trained together; they vary "
        "between runs of the same params):"
    )
    doc.table(
        ["Variant", "Seconds per epoch", "Models per stack"],
        [
            [
                label(v),
                mean_sd([float(h["epoch_seconds"].median()) for h in runs.values()], 3, noisy=True),
                mean_sd([float(h["stack_size"].iloc[0]) for h in runs.values()], 0),
            ]
            for v, runs in ev.histories.items()
        ],
        volatile=True,
    )
    for variant in ev.compared():
        if not paired[variant]:
            continue
        doc.paragraph(
            f"**At shared settings**: the tuning trials {title(variant)} and {title(BASELINE)} both trained "
            "(the sampler's seeded first round, or the whole grid), on the tuning split, paired by tuning "
            "seed. One learning rate and batch for both: here a step does the same work, so steps "
            "compare the optimisation itself. Speed-up: the baseline's steps over the variant's, "
            "geometric mean over the targets; loss fall as in the loss claim."
        )
        doc.table(
            [
                "Setting",
                "Seed",
                "Speed-up in steps",
                "Loss fall, baseline minus variant",
                f"Best validation AP {title(variant)} / {title(BASELINE)}",
            ],
            claims.shared_rows(paired[variant]),
        )
        doc.bullets([claims.seconds_note(paired[variant], title(variant)) + "."], volatile=True)


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
            label(model),
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
    "**How the verdicts are decided.** Replicate r trains both variants on the same redrawn split (stratified; "
    "the encoder refitted on its training part) from the same initial shared weights and row order (seed r), so "
    "each claim's unit is the per-replicate difference. The test is the sign-flip permutation test of its mean "
    "(exact over the 2^n sign patterns up to 16 replicates; it assumes only that, with no effect, a difference is "
    "as likely positive as negative); the four claims are one family, corrected with Holm's step-down method "
    "(family-wise error {alpha:.0%}, valid under any dependence between the claims). Test-set claims take their "
    "interval from a nested bootstrap: replicates drawn with replacement, and within each its test rows "
    "(stratified); training-set claims resample replicates only. A claim is **supported** when it is "
    "significant after correction, its interval lies above 0 and its estimate reaches the practical size; "
    "**equivalent** when the whole interval lies within the practical size either way; **reversed** when it is "
    "significant the other way by at least the practical size; else **inconclusive**. What this cannot show: "
    "tuning was done once, on a split of its own, so the intervals do not cover how the chosen setting would "
    "move with the data; the replicates' splits are drawn from one table, so a new population (next month, "
    "another portfolio) may differ by more; precision and recall intervals hold each model's "
    "validation-chosen threshold fixed. Power is simulated for the rule itself (permutation test at "
    "{strictest:.3g}, interval and practical size; seeded), at an effect of the practical size."
)


def verdicts_section(doc: Document, ev: Evidence, found: dict[str, list[Claim]]) -> None:
    """8. Every claim with its per-replicate numbers, tests, power and the replicates it would need."""
    p = ev.params
    doc.heading("8. Verdicts in detail")
    if len(ev.replicates) < 2:
        doc.paragraph(
            "**Only one replicate was trained: the verdict cannot judge replicate-to-replicate noise.** "
            "Every claim is `inconclusive`; raise `prepare.replicates`."
        )
    for variant in ev.compared():
        items, timed = [], []
        for c in found[variant]:
            lines = [claim_text(c)]
            for m in (c.primary, *c.secondary):
                lines.append(
                    f"{m.text}: {effect_text(m, c.band if m is c.primary else math.nan, 4)}; per replicate "
                    + ", ".join(f"{d:+.4f}" for d in m.differences)
                    + (f"; {m.counts}" if m.counts else "")
                )
            need = c.power.replicates_needed
            lines.append(
                f"Power at the practical size {c.band:.3g}: {c.power.power:.0%} with {len(ev.replicates)} "
                f"replicates; {need or 'more than 64'} would give {c.power.target:.0%}."
            )
            (timed if c.key in TIMED else items).append(" ".join(x if x.endswith(".") else x + "." for x in lines))
        doc.bullets(items)
        doc.bullets(timed + [verdict_text(c) for c in found[variant]], volatile=True)
    alpha = 1 - p.report.confidence
    doc.paragraph(METHOD.format(alpha=alpha, strictest=alpha / len(FAMILY)))


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
        {ui.comparison_url(r.experiment_id, r.group) for r in ev.runs.values() if r.run_id and r.experiment_id}
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
