"""The report's first screen (section 1): the question, each claim's verdict with its effect and
interval, the caveats, then data, tuning and replicates; and the same verdict as the description of the
MLflow pipeline run."""

from __future__ import annotations

import math
from pathlib import Path

from pipeline.analysis import claims
from pipeline.analysis.claims import FAMILY, Claim, Pair, in_words
from pipeline.analysis.evidence import Evidence
from pipeline.analysis.statistics import mean_sd
from pipeline.reporting import figures
from pipeline.reporting.document import Document
from pipeline.reporting.sections import in_reading, signed

TIMED_KINDS = ("few_replicates",)  # caveat kinds that depend on the timed claim (through Holm's levels)


def claim_row(c: Claim) -> list[str]:
    """One claim as a row of the summary's table: both readings, the verdict word at the tested one."""
    m, n = c.measure, len(c.measure.differences)
    other = (
        f"{in_reading(c.other.measure)} ({claims.READINGS[c.other.name]})"
        if c.other is not None
        else "none (no setting in common)"
    )
    return [
        c.text,
        f"**{c.status}**",
        f"{in_reading(m)} ({claims.READINGS[c.primary.name]}, {n} {c.primary.units})",
        other,
        in_words(c.band, m.unit, signed=False),
        f"{sum(d > 0 for d in m.differences)} of {n}",
        f"{c.p:.3g} / {c.p_adjusted:.3g}",
    ]


CLAIM_COLUMNS = [
    "Claim",
    "Verdict",
    "Tested reading: effect [95% interval]",
    "Other reading (not tested)",
    "Practical size",
    "Units favouring",
    "p / Holm-adjusted",
]


def settings_sentence(ev: Evidence, variant: str, paired: list[Pair]) -> str:
    """The plain sentence that says which settings each reading compares, and how far apart they are."""
    apart = claims.settings_apart(ev, variant)
    tuned = apart if apart else "the same setting for both"
    learned = sum(p.learned for p in paired)
    dropped = claims.left_out(paired, variant, ev.catalogue)
    shared = (
        f"the tuning trials both variants trained, one learning rate, batch and dropout for both: {learned} "
        f"pairs of settings and tuning seeds" + (f", leaving out {dropped}" if dropped else "")
    )
    return (
        f"Each claim is read twice: {claims.READINGS['tuned']} ({tuned}), and {claims.READINGS['shared']} "
        f"({shared}). The verdict "
        "word belongs to the tested reading: tuned for catching fraud and accuracy (which model to deploy), "
        "shared for the loss and the speed (so no part of the gain comes from a larger step or batch)."
    )


def claim_panels(found: list[Claim]) -> list[figures.ClaimPanel]:
    """Each claim's readings as drawn beside the table: in its reading's unit (a log ratio as a ratio on a
    log axis, a fraction in percent, accuracy in rows per 10,000)."""
    scale = {
        "ap": (1.0, "test AP, variant minus baseline"),
        "accuracy": (1e4, "test accuracy, rows per 10,000"),
        "fraction": (100.0, "training loss, % lower than the baseline's"),
    }
    panels = []
    for c in found:
        readings = sorted((r for r in (c.primary, c.other) if r is not None), key=lambda r: r.name != "tuned")
        if c.measure.unit == "log ratio":
            rows = [
                (
                    claims.READINGS[r.name],
                    *(math.exp(x) for x in (r.measure.mean, r.measure.low, r.measure.high)),
                    r is c.primary,
                )
                for r in readings
            ]
            band, xlabel, log_x = (math.exp(-c.band), math.exp(c.band)), "training seconds, baseline / variant", True
        else:
            k, xlabel = scale.get(c.measure.unit, (1.0, c.measure.unit))
            rows = [
                (
                    claims.READINGS[r.name],
                    *(k * x for x in (r.measure.mean, r.measure.low, r.measure.high)),
                    r is c.primary,
                )
                for r in readings
            ]
            band, log_x = (-k * c.band, k * c.band), False
        panels.append(figures.ClaimPanel(f"{claims.SHORT_CLAIMS[c.key]}: {c.status}", xlabel, band, rows, log_x))
    return panels


def summary_section(
    doc: Document,
    ev: Evidence,
    found: dict[str, list[Claim]],
    found_kinds: dict[str, list[str]],
    paired: dict[str, list[Pair]],
    figure_dir: Path,
) -> None:
    """1. The answer first, in one sentence; which settings the claims compare; each claim's two readings and
    its verdict, drawn beside; the caveats; then data, tuning and replicates."""
    p, s = ev.params, ev.summary
    doc.heading("1. Summary")
    variants = ev.compared()
    if not variants:
        doc.paragraph(
            f"A verdict needs {ev.catalogue.title(ev.reference)} and a candidate to compare with it; this run trained "
            "only " + ", ".join(p.train.variants) + "."
        )
    base = ev.catalogue.title(ev.reference)
    for variant in variants:
        doc.paragraph(ev.catalogue.question(variant))
        # The answer and the table quote the speed claim, timed: they move between runs of the same params.
        doc.paragraph(f"**{claims.answer_sentence(ev, variant, found[variant])}**", volatile=True)
        doc.paragraph(settings_sentence(ev, variant, paired[variant]))
        doc.table(CLAIM_COLUMNS, [claim_row(c) for c in found[variant]], volatile=True)
        doc.figure(
            figures.claim_effects(claim_panels(found[variant]), figure_dir / f"claims_{variant}.png"),
            f"{ev.catalogue.title(variant)} against {base}: each claim's effect and 95% interval at both readings "
            "(filled: the tested one), the practical size shaded",
            volatile=True,  # the speed claim's panel is drawn from timings
        )
        minority = next(c for c in found[variant] if c.key == "minority")
        beside_ap = "; ".join(
            f"{m.unit.replace('_', ' ')} {signed(m.mean)} [{signed(m.low)}, {signed(m.high)}]"
            for m in minority.secondary
        )
        doc.paragraph(
            f"Intervals at tuned settings cover {minority.measure.covers}; at shared settings, "
            f"{claims.SHARED_COVERS}. In counts, mean per replicate: {minority.measure.counts}. Beside test AP, "
            f"{ev.catalogue.title(variant)} minus {base} at each model's validation-chosen threshold (not tested, not "
            f"corrected): {beside_ap}. Every number behind each row: section 8. The four tested readings are "
            "corrected together (Holm), the speed claim's timed seconds included: the verdicts can move between "
            "runs of the same params when timings do; the other claims' effects, intervals and raw p cannot."
        )
    # Power caveats follow each claim's Holm level, which the timed speed claim's p can move.
    steady = [c for kind, said in found_kinds.items() if kind not in TIMED_KINDS for c in said]
    moving = [c for kind in TIMED_KINDS for c in found_kinds.get(kind, [])]
    doc.paragraph("**Caveats**" + (":" if steady or moving else ": none applies (see section 9 for every check)."))
    if steady:
        doc.bullets(steady)
    if moving:
        doc.bullets(moving, volatile=True)
    positives, rows = sum(s.positives.values()), sum(s.rows.values())
    aps = ", ".join(f"{ev.catalogue.short(v)} {mean_sd(ev.values(v, 'test_ap'), 3)}" for v in p.train.variants)
    refs = ", ".join(
        f"{r.replace('_', ' ')} {mean_sd(ev.values(r, 'test_ap'), 3)}" for r in p.evaluate.references.names()
    )
    n = len(ev.replicates)
    doc.bullets(
        [
            f"**Data**: `{s.source}`, {rows:,} rows, {positives:,} frauds ({positives / rows:.2%}), each split "
            f"{s.split_method} into {', '.join(f'{s.rows[k]:,}' for k in ('train', 'val', 'test'))} rows (train, "
            f"validation, test); {n} replicate(s), each its own "
            + ("redrawn split and seed" if s.redrawn else "seed")
            + ".",
            f"**Tuning**: {p.train.tune.trials} trials per variant ({p.train.tune.sampler}, tuning seeds "
            f"{list(p.train.tune.seeds)}, on a split of their own); chosen: "
            + "; ".join(f"{ev.catalogue.short(v)} {ev.setting(v).name()}" for v in p.train.variants)
            + ".",
            f"**Verdicts**: {len(FAMILY)} claims corrected together (Holm, {p.report.confidence:.0%}); section 8 "
            "says how.",
            f"**Test average precision** (mean ± sd over replicates): {aps}"
            + (f"; references {refs}." if refs else "."),
        ]
    )


def run_description(
    ev: Evidence, found: dict[str, list[Claim]], caveats: list[str], paired: dict[str, list[Pair]], comparison_url: str
) -> str:
    """The pipeline run's description (markdown): the answer first, the verdicts at both readings, the caveats,
    and how to see the comparison."""
    lines = [f"**{claims.answer_sentence(ev, variant, cs)}**" for variant, cs in found.items()]
    lines += [
        "",
        f"{len(ev.replicates)} replicate(s) per variant, data `{ev.summary.source}`. "
        + " ".join(settings_sentence(ev, variant, paired[variant]) for variant in found),
        "",
    ]
    every = [c for variant_claims in found.values() for c in variant_claims]
    if every:
        lines += ["| Claim | Verdict | Tested reading | Other reading | Practical size |", "|---|---|---|---|---|"]
        lines += [f"| {c.text} | {' | '.join(claim_row(c)[1:5])} |" for c in every]
        lines.append("")
    if caveats:
        lines += ["**Caveats**: " + " ".join(caveats), ""]
    aps = ", ".join(f"{ev.catalogue.label(v)} {mean_sd(ev.values(v, 'test_ap'), 3)}" for v in ev.histories)
    lines += [
        f"Test average precision (mean ± sd over replicates): {aps}.",
        "",
        f"**Compare the runs:** [{comparison_url}]({comparison_url}) shows this execution's compared models, "
        + ", ".join(f"{ev.catalogue.title(v)} in {ev.catalogue.color_name(v)}" for v in ev.catalogue.compared)
        + ", reference models in grey (tuning runs: role `tuning`). The report is in this run's artifacts "
        "(`report/report.html`).",
    ]
    return "\n".join(lines)
