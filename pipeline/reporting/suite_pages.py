"""The suite's report, answer first: the pooled verdict per claim, what weakens it (each table's comparison
caveats, and the verdict re-pooled over the sound tables alone), the forest plots, what each pooled
reading answers and where they disagree, each model's rank per table, then the tables one by one."""

from __future__ import annotations

import math
from pathlib import Path

from pipeline.analysis.checks import WEAK_COMPARISON
from pipeline.analysis.claims import SHORT_CLAIMS
from pipeline.analysis.pooling import (
    FAILED,
    MIN_SOUND,
    PooledClaim,
    TableResult,
    answer,
    disagreements,
    side_by_side,
    sound_answer,
    weak_tables,
)
from pipeline.project.suites import Suite
from pipeline.reporting import figures
from pipeline.reporting.document import Document

UNITS = {
    "minority": "test AP",
    "accuracy": "test accuracy",
    "loss": "relative fall of the training loss",
    "speed": "log of the time ratio",
}
READINGS = [
    "**Random effects** (DerSimonian-Laird; each table's standard error from its interval, (high - low) / 2z): "
    "the average effect over tables like these, with its interval, and I², the share of the spread between "
    "tables that their own uncertainty does not explain. It weighs precise tables more.",
    "**Wilcoxon signed-rank** (scipy, two-sided, over the per-table effects): does the effect have a consistent "
    "sign across tables? It counts every table once, whatever its size or noise, and with n tables its p "
    "cannot go below 2/2^n (0.031 for 6 tables).",
    "**Bayesian signed-rank** (baycomp, Benavoli et al. 2014; prior 0.5 on a pseudo-table at 0): on a new table "
    "like these, how probable is it that the variant is better, practically equivalent (within the ROPE: the "
    "claim's practical size, `report.min_effect`) or worse?",
    "**Win / tie / loss**: on how many tables the effect lies above, inside or below the ROPE.",
    "They disagree when a few precise tables carry the pooled mean (random effects against Wilcoxon), when the "
    "tables differ a lot (high I²: the pooled mean hides the differences), or when the effects are small but "
    "consistent (Wilcoxon against the ROPE-based readings). The report names every such case below.",
]
WEAK_NAMES = {
    "below_yardstick": "below the logistic regression",
    "cut_off": "cut off while improving",
    "tuning_climbing": "with its tuning still climbing",
}
# What each caveat kind of a table's own report means for the suite (analysis.checks.KINDS).
WEAKNESSES = {
    "below_yardstick": "an MLP ranked below the logistic regression (paired interval below 0): a comparison of MLPs "
    "worse than a linear model says little",
    "cut_off": "a run had its best validation AP at the epoch cap: still improving when stopped (raise train.epochs)",
    "tuning_climbing": "the tuning's last trials still raised the best validation AP: the budget was still paying "
    "off (raise train.tune.trials)",
    "at_edge": "a tuned value sits at the edge of its space (widen train.tune.space); milder, such tables stay in "
    "the sound set",
    "tuning_unsettled": "whether the tuning had finished is not established: its seeds disagree by more than a "
    "gain that matters (raise train.tune.trials or add train.tune.seeds); milder, such tables stay in the sound set",
    "few_replicates": "too few replicates for a single-table verdict; the suite pools their effects and intervals",
    "fixed_split": "the split is by time and the same for every replicate: the table's interval does not cover the "
    "choice of split",
}


def _f(x: float, digits: int = 3) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:+.{digits}g}"


def verdict_table(doc: Document, claims: list[PooledClaim]) -> None:
    """One row per claim: the pooled answer and its four readings."""
    rows = []
    for c in claims:
        p, b, n = c.pooled, c.bayes, c.counts
        rows.append(
            [
                f"{c.title} {SHORT_CLAIMS[c.claim]}",
                f"**{answer(c)}**",
                f"{_f(p.mean)} [{_f(p.low)}, {_f(p.high)}]",
                "–" if math.isnan(p.i2) else f"{p.i2:.0%}",
                f"{c.wilcoxon_p:.3g}",
                f"{b.better:.2f} / {b.equivalent:.2f} / {b.worse:.2f}",
                f"{n.wins} / {n.ties} / {n.losses}",
                f"±{c.rope:.3g}",
                str(len(c.tables)),
                _sound(c),
            ]
        )
    doc.table(
        [
            "Claim",
            "Pooled",
            "Random effects [interval]",
            "I²",
            "Wilcoxon p",
            "P(better / equiv. / worse)",
            "Win / tie / loss",
            "ROPE",
            "Tables",
            "Sound tables only",
        ],
        rows,
    )


def _sound(c: PooledClaim) -> str:
    """The claim pooled over the sound tables: its reading, interval and how many."""
    n = len(c.sound_tables)
    if n < MIN_SOUND:
        return f"too few ({n})"
    return f"**{sound_answer(c)}** {_f(c.sound.mean)} [{_f(c.sound.low)}, {_f(c.sound.high)}] ({n})"


def weaknesses(doc: Document, tables: list[TableResult], claims: list[PooledClaim], jobs: int = 1) -> None:
    """What weakens the pooled verdict: each table's comparison caveats, by kind, tables timed side by side,
    and whether the verdict holds on the sound tables alone."""
    finished = [t for t in tables if t.status != FAILED]
    doc.paragraph(
        "**What weakens this verdict.** A pooled verdict is only as good as its weakest tables. From each "
        "table's own caveats (its report's first screen):"
    )
    said = [f"{_some(names, finished)}: {WEAKNESSES[k]}." for k, names in weak_tables(tables).items()]
    timed = side_by_side(finished, jobs)
    if timed:
        said.append(
            f"{_some([t.name for t in timed], finished)}: trained {jobs} tables at a time on shared cores "
            f"(`-j {jobs}`): each table's timing rounds interleave its variants, so their ratio is fair, but the "
            f"rounds ran under the other tables' varying load, which widens the speed claim's interval. "
            f"{steps_reading(timed, claims[0] if claims else None)} Run the suite with `-j 1` for quieter seconds."
        )
    reused = [t for t in finished if t.reused]
    if reused:
        said.append(
            f"{_some([t.name for t in reused], finished)}: reused from an earlier run of the suite; their "
            "speed in seconds compares only if that run trained one table at a time (`-j 1`). "
            f"{steps_reading(reused, claims[0] if claims else None)}"
        )
    doc.bullets(said or ["none of the tables has a caveat."])
    doc.paragraph(sound_tables(finished, claims))


def sound_tables(finished: list[TableResult], claims: list[PooledClaim]) -> str:
    """Which tables are sound, and whether the verdict reads the same on them alone."""
    sound = [t.name for t in finished if t.sound]
    text = (
        f"**Sound tables** (none {', '.join(WEAK_NAMES[k] for k in WEAK_COMPARISON)}): "
        f"{len(sound)} of {len(finished)}" + (f" ({_listed(sound)})" if sound else "") + ". "
    )
    if len(sound) < MIN_SOUND:
        text += (
            f"With fewer than {MIN_SOUND}, the verdict cannot be checked on them: read it as provisional and "
            "give the tables the budget their caveats ask for."
        )
    elif len(sound) == len(finished):
        text += "The pooled verdict rests on sound comparisons only."
    else:
        changed = [
            f"{c.title} {SHORT_CLAIMS[c.claim]} ({answer(c)} → {sound_answer(c)})"
            for c in claims
            if sound_answer(c) != answer(c)
        ]
        text += "On them alone " + (
            "every claim reads the same."
            if not changed
            else "the reading changes for " + "; ".join(changed) + ": the weak tables carry the "
            "difference, so quote the sound reading (a check of robustness, not "
            "another test)."
        )
    return text


def _listed(names: list[str]) -> str:
    """Table names as code, comma-separated."""
    return ", ".join(f"`{n}`" for n in names)


def _some(names: list[str], finished: list[TableResult]) -> str:
    """**k of n** (the k tables' names)."""
    return f"**{len(names)} of {len(finished)}** ({_listed(names)})"


def styles(tables: list[TableResult]) -> dict[str, tuple[str, str]]:
    """Each variant's label and colour, as the tables' answers name them (the first table to name it)."""
    out: dict[str, tuple[str, str]] = {}
    for t in tables:
        if t.answer is not None:
            for v, label in t.answer.labels.items():
                out.setdefault(v, (label, t.answer.colors.get(v, "black")))
    return out


def steps_reading(tables: list[TableResult], primary: PooledClaim | None) -> str:
    """Steps, which load does not change: the primary candidate's step speed-up at a shared setting (each
    table's ``shared_setting``, the median over the targets of the reference's steps over the candidate's)."""
    if primary is None:
        return "Their steps to the targets were not recorded."
    ups = {
        t.name: t.headline.shared_setting[primary.variant].steps_speedup
        for t in tables
        if t.headline is not None and primary.variant in t.headline.shared_setting
    }
    if not ups:
        return "Their steps to the targets were not recorded."
    faster, low, high = sum(u > 1 for u in ups.values()), min(ups.values()), max(ups.values())
    spread = f"{low:.2f}x" if f"{low:.2f}" == f"{high:.2f}" else f"{low:.2f}x to {high:.2f}x"
    return (
        f"In steps, at one shared setting, {primary.title} needed fewer on {faster} of {len(ups)} "
        f"({primary.reference}'s steps over {primary.title}'s: {spread})."
    )


def _caveats(t: TableResult) -> str:
    """A table's caveat kinds, the comparison's weaknesses in bold."""
    if t.status == FAILED:
        return "–"
    return ", ".join(f"**{k}**" if k in WEAK_COMPARISON else k for k in t.caveat_kinds) or "none"


def suite_document(
    suite: Suite,
    tables: list[TableResult],
    claims: list[PooledClaim],
    table_ranks: dict[str, dict[str, tuple[int, float]]],
    figure_dir: Path,
    confidence: float,
    generated: str,
    jobs: int = 1,
) -> Document:
    """The whole suite report (``jobs``: the queue workers that trained this invocation's tables)."""
    asked = claims[0].title if claims else "the candidate"
    doc = Document(f"Does {asked} help across tables? Suite `{suite.name}`")
    finished = [t for t in tables if t.status != FAILED]
    failed = [t for t in tables if t.status == FAILED]
    doc.paragraph(
        f"{len(finished)} of {len(tables)} table(s) finished"
        + (f"; **{len(failed)} failed**: " + "; ".join(f"`{t.name}`: {t.reason}" for t in failed) if failed else "")
        + f". Generated {generated}.",
        volatile=True,
    )
    if suite.description:
        doc.paragraph(suite.description)
    doc.heading("Pooled verdict per claim")
    if not claims:
        doc.paragraph("**No table finished**, so there is nothing to pool; the reasons are above.")
    else:
        verdict_table(doc, claims)
        doc.paragraph(
            f"Pooled: the random-effects {confidence:.0%} interval read against the ROPE as each table's "
            "verdict is (better: above 0 and the mean past the ROPE; equivalent: inside the ROPE; worse: "
            "the mirror image; else inconclusive). Effects are the variant minus the reference, positive "
            "favouring the variant, each table's the single-table report's (paired over its replicates)."
        )
        weaknesses(doc, tables, claims, jobs)
        for c in claims:
            doc.figure(
                figures.forest(c, SHORT_CLAIMS[c.claim], UNITS[c.claim], figure_dir / f"forest_{c.key}.png"),
                f"{c.title} {SHORT_CLAIMS[c.claim]}: each table's effect and interval, pooled below",
            )
    doc.heading("What each reading answers, and when they disagree")
    doc.bullets(READINGS)
    notes = [f"{c.title} {SHORT_CLAIMS[c.claim]}: {note}" for c in claims for note in disagreements(c, 1 - confidence)]
    doc.paragraph("Disagreements in this suite: " + ("; ".join(notes) + "." if notes else "none."))
    if table_ranks:
        doc.heading("Is the MLP even competitive? Rank against the reference models")
        doc.figure(
            figures.rank_grid(table_ranks, styles(tables), figure_dir / "ranks.png"),
            "Each model's rank by mean test AP on each table",
        )
    doc.heading("The tables")
    rows = []
    for t in tables:
        effects = ", ".join(
            f"{c.claim} {_f(e.mean)} ({e.verdict})"
            for c in claims
            if c.variant == claims[0].variant
            for e in c.tables
            if e.table == t.name
        )
        rows.append(
            [
                f"`{t.name}`",
                t.question or "–",
                "**failed**: " + t.reason if t.status == FAILED else ("finished (reused)" if t.reused else "finished"),
                (t.answer.sentences.get(t.headline.candidate or "", "") if t.answer and t.headline else "") or "–",
                effects or "–",
                _caveats(t),
                f"`{t.experiment}`",
            ]
        )
    doc.table(
        [
            "Table",
            "What it tests",
            "Status",
            "Answer (the table's own report)",
            "Effects (verdict in the table's own report)",
            "Caveats",
            "DVC experiment",
        ],
        rows,
    )
    few = sorted({t.headline.replicates for t in finished if t.headline is not None and t.headline.replicates < 8})
    if few:
        doc.paragraph(
            f"Tables with {', '.join(map(str, few))} replicate(s) cannot reach a single-table verdict other "
            "than inconclusive or equivalent (8 replicates are the fewest that can pass Holm's correction "
            "over the four claims); the suite pools their effects and intervals, not their verdicts."
        )
    doc.paragraph(
        "Each table ran the single-table protocol as its own DVC experiment; its full report is in the "
        "experiment (`dvc exp apply <experiment>`, then `reports/report.html`) and its MLflow runs carry "
        "the tag `pipeline.table`."
    )
    return doc
