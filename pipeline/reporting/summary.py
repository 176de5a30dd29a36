"""The report's first screen (section 1): the question, each claim's verdict with its effect and
interval, the caveats, then data, tuning and replicates; and the same verdict as the description of the
MLflow pipeline run."""

from __future__ import annotations

from pipeline.analysis import claims
from pipeline.analysis.claims import FAMILY, TIMED, Claim, Pair
from pipeline.analysis.evidence import Evidence
from pipeline.analysis.statistics import mean_sd
from pipeline.project.variants import label, short, title
from pipeline.reporting.document import Document
from pipeline.reporting.sections import in_unit, signed


def claim_row(c: Claim) -> list[str]:
    """One claim as a row of the summary's table."""
    m, n = c.primary, len(c.primary.differences)
    effect = in_unit(m.mean, m.unit) + (f" [{in_unit(m.low, m.unit)}, {in_unit(m.high, m.unit)}]" if n > 1 else "")
    size = in_unit(c.band, m.unit).lstrip("+")
    return [
        c.text,
        f"**{c.status}**",
        effect,
        size,
        f"{sum(d > 0 for d in m.differences)} of {n}",
        f"{c.p:.3g} / {c.p_adjusted:.3g} (smallest possible {c.smallest_p:.3g})",
        f"{c.power.power:.0%}",
    ]


CLAIM_COLUMNS = [
    "Claim",
    "Verdict",
    "Effect [95% interval]",
    "Practical size",
    "Replicates favouring",
    "p / Holm-adjusted",
    "Power at the size",
]


def summary_section(
    doc: Document, ev: Evidence, found: dict[str, list[Claim]], caveats: list[str], paired: dict[str, list[Pair]]
) -> None:
    """1. The answer first: the question, each verdict, the caveats, then data, tuning and replicates."""
    p, s = ev.params, ev.summary
    doc.heading("1. Summary")
    variants = ev.compared()
    if not variants:
        doc.paragraph(
            "A verdict needs the baseline and a normalised variant; this run trained only "
            + ", ".join(p.train.variants)
            + "."
        )
    for variant in variants:
        doc.paragraph(
            f"**Does {title(variant)} make this MLP learn faster and catch more fraud than the same MLP "
            "without it, each at its own tuned setting?**"
        )
        # Holm corrects the claims together, the one in training seconds included, and seconds differ
        # between runs of the same params: every verdict can move with them (volatile).
        doc.table(CLAIM_COLUMNS, [claim_row(c) for c in found[variant]], volatile=True)
        fixed = [c for c in found[variant] if c.key not in TIMED]
        minority = next(c for c in fixed if c.key == "minority")
        beside_ap = "; ".join(
            f"{m.unit.replace('_', ' ')} {signed(m.mean)} [{signed(m.low)}, {signed(m.high)}]"
            for m in minority.secondary
        )
        doc.paragraph(
            f"Intervals cover {minority.primary.covers} (training-set claims: seeds and splits). In counts, "
            f"mean per replicate: {minority.primary.counts}. Beside test AP, {title(variant)} minus the "
            f"baseline at each model's validation-chosen threshold (not tested, not corrected): {beside_ap}. "
            "Every number behind each row: section 8. The verdicts are corrected together, the "
            "speed claim in training seconds included: they can move between runs of the same params when "
            "timings do; the other claims' effects, intervals and raw p cannot."
        )
        beside = [
            note
            for note in (
                claims.steady_note(paired[variant], "loss_fall", title(variant)),
                claims.steady_note(paired[variant], "steps", title(variant)),
            )
            if note
        ]
        if beside:
            doc.bullets(
                [
                    "**The same learning rate and batch for both** (the claims above compare each variant at "
                    "its own tuned setting; shared tuning trials, section 7): " + "; ".join(beside) + "."
                ]
            )
    steady = [c for c in caveats if not any(f", {key}:" in c for key in TIMED)]
    doc.paragraph("**Caveats**" + (":" if caveats else ": none applies (see section 9 for every check)."))
    if steady:
        doc.bullets(steady)
    if len(steady) < len(caveats):
        doc.bullets([c for c in caveats if c not in steady], volatile=True)
    positives, rows = sum(s.positives.values()), sum(s.rows.values())
    aps = ", ".join(f"{short(v)} {mean_sd(ev.values(v, 'test_ap'), 3)}" for v in p.train.variants)
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
            + "; ".join(f"{short(v)} {ev.setting(v).name()}" for v in p.train.variants)
            + ".",
            f"**Verdicts**: {len(FAMILY)} claims corrected together (Holm, {p.report.confidence:.0%}); section 8 "
            "says how.",
            f"**Test average precision** (mean ± sd over replicates): {aps}"
            + (f"; references {refs}." if refs else "."),
        ]
    )


def run_description(ev: Evidence, found: dict[str, list[Claim]], caveats: list[str], comparison_url: str) -> str:
    """The pipeline run's description (markdown): the verdict, the caveats, and how to see the comparison."""
    n = len(ev.replicates)
    lines = [
        f"**Does BatchNorm help?** {n} replicate(s) per variant, each variant at its tuned setting, data "
        f"`{ev.summary.source}`.",
        "",
    ]
    every = [c for variant_claims in found.values() for c in variant_claims]
    if every:
        lines += ["| Claim | Verdict | Effect [95% interval] | Practical size |", "|---|---|---|---|"]
        lines += [
            f"| {c.text} | **{c.status}** | {c.primary.mean:+.3g} [{c.primary.low:+.3g}, {c.primary.high:+.3g}] "
            f"| {c.band:.3g} |"
            for c in every
        ]
        lines.append("")
    if caveats:
        lines += ["**Caveats**: " + " ".join(caveats), ""]
    aps = ", ".join(f"{label(v)} {mean_sd(ev.values(v, 'test_ap'), 3)}" for v in ev.histories)
    lines += [
        f"Test average precision (mean ± sd over replicates): {aps}.",
        "",
        f"**Compare the runs:** [{comparison_url}]({comparison_url}) shows this execution's compared models, "
        "BatchNorm in blue, the baseline in orange, reference models in grey (tuning runs: role "
        "`tuning`). The report is in this run's artifacts (`report/report.html`).",
    ]
    return "\n".join(lines)
