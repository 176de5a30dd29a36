"""The suite's analysis: each table's headline (its metrics/summary.json), pooled per claim across the
tables that finished, and each model's rank per table (the statistics: ``analysis.statistics``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pipeline.analysis import statistics as pooling
from pipeline.analysis.checks import KINDS, WEAK_COMPARISON
from pipeline.analysis.claims import FAMILY
from pipeline.project.artefacts import Answer, Headline

FINISHED, FAILED = "finished", "failed"


@dataclass(frozen=True)
class TableResult:
    """One table of the suite: its experiment, and its headline or why it has none."""

    name: str
    experiment: str
    status: str  # finished | failed
    question: str = ""
    reason: str = ""  # one line, for a failed table
    headline: Headline | None = None  # the table's metrics/summary.json (finished tables)
    answer: Answer | None = None  # the table's one-sentence answers and variants' titles (metrics/answer.json)
    reused: bool = False  # found finished from an earlier run of the suite (same table, code and params)

    @property
    def caveat_kinds(self) -> list[str]:
        """The kinds of the table's caveats (``analysis.checks.KINDS``); none for a failed table."""
        return [k for k in KINDS if self.headline is not None and k in self.headline.caveat_kinds]

    @property
    def sound(self) -> bool:
        """A finished table whose comparison has none of the weaknesses of ``WEAK_COMPARISON``."""
        return self.status == FINISHED and not set(self.caveat_kinds) & set(WEAK_COMPARISON)


@dataclass(frozen=True)
class TableEffect:
    """One table's paired effect over its replicates, with the single-table report's interval."""

    table: str
    mean: float
    low: float
    high: float
    verdict: str


@dataclass(frozen=True)
class PooledClaim:
    """One claim of one candidate against the reference, across tables."""

    variant: str
    claim: str
    rope: float  # the claim's practical size, in its own unit
    tables: list[TableEffect]
    pooled: pooling.RandomEffects
    wilcoxon_p: float
    bayes: pooling.BayesSignedRank
    counts: pooling.Counts
    sound: pooling.RandomEffects  # pooled over the sound tables only (``TableResult.sound``)
    sound_tables: list[str]
    primary: bool = True  # the suite's primary candidate (its tables' first)
    title: str = ""  # the candidate in a sentence, as its tables name it
    reference: str = "the reference"  # the variant it is compared with, in a sentence

    @property
    def key(self) -> str:
        """``minority`` for the primary candidate, ``minority_layernorm`` for another one."""
        return self.claim if self.primary else f"{self.claim}_{self.variant}"


def variants_of(tables: list[TableResult]) -> list[str]:
    """The candidates compared with the reference in every finished table, in the first table's order (its
    primary candidate first)."""
    found = [t.headline.candidates() for t in tables if t.status == FINISHED and t.headline is not None]
    return [v for v in found[0] if all(v in other for other in found)] if found else []


def pool(
    tables: list[TableResult],
    variant: str,
    claim: str,
    confidence: float,
    seed: int,
    samples: int = 20_000,
    primary: bool = True,
) -> PooledClaim:
    """One claim's per-table effects and their four pooled readings."""
    effects, ses, sound, rope = [], [], [], math.nan
    rows = []
    for t in tables:
        if t.status != FINISHED:
            continue
        e = t.headline.effects(variant)[claim]
        verdict = t.headline.verdicts(variant).get(claim, "")
        rows.append(TableEffect(t.name, e.mean, e.low, e.high, verdict))
        effects.append(e.mean)
        ses.append(pooling.standard_error(e.low, e.high, confidence))
        sound.append(t.sound)
        rope = e.band
    bayes = (
        pooling.bayes_signed_rank(effects, rope, seed, samples)
        if effects
        else pooling.BayesSignedRank(math.nan, math.nan, math.nan, rope)
    )
    kept = [i for i, ok in enumerate(sound) if ok]
    return PooledClaim(
        variant,
        claim,
        rope,
        rows,
        pooling.dersimonian_laird(effects, ses, confidence),
        pooling.wilcoxon_p(effects),
        bayes,
        pooling.win_tie_loss(effects, rope),
        pooling.dersimonian_laird([effects[i] for i in kept], [ses[i] for i in kept], confidence),
        [rows[i].table for i in kept],
        primary,
        *_titles(tables, variant),
    )


def _titles(tables: list[TableResult], variant: str) -> tuple[str, str]:
    """A candidate's title and its reference's, as the first table that names them does."""
    for t in tables:
        if t.answer is not None and variant in t.answer.titles:
            return t.answer.titles[variant], t.answer.titles.get(t.answer.reference, t.answer.reference)
    return variant, "the reference"


def pooled_claims(tables: list[TableResult], confidence: float, seed: int, samples: int = 20_000) -> list[PooledClaim]:
    """Every claim of every compared variant, pooled over the finished tables (``samples``: posterior draws
    of the Bayesian test)."""
    variants = variants_of(tables)
    return [pool(tables, v, c, confidence, seed, samples, v == variants[0]) for v in variants for c in FAMILY]


def ranks(tables: list[TableResult]) -> dict[str, dict[str, tuple[int, float]]]:
    """Per finished table: each model's (rank, mean test AP) among the variants and reference models
    (rank 1: the highest test AP)."""
    out = {}
    for t in tables:
        if t.status != FINISHED or t.headline is None:
            continue
        aps = {**t.headline.test_ap, **t.headline.reference_test_ap}
        order = sorted(aps, key=lambda m: -aps[m])
        out[t.name] = {m: (order.index(m) + 1, float(aps[m])) for m in aps}
    return out


MIN_SOUND = 2  # sound tables needed to pool them on their own


def answer(claim: PooledClaim) -> str:
    """A one-word pooled reading: the random-effects interval against the ROPE, as the tables' verdicts
    are read (above the ROPE: better; inside it: equivalent; below: worse; else inconclusive)."""
    return reading(claim.pooled, claim.rope) if claim.tables else "no tables"


def sound_answer(claim: PooledClaim) -> str:
    """The same reading over the sound tables only; "too few" below MIN_SOUND of them."""
    return reading(claim.sound, claim.rope) if len(claim.sound_tables) >= MIN_SOUND else "too few"


def reading(p: pooling.RandomEffects, rope: float) -> str:
    """A pooled interval read against the ROPE."""
    if math.isnan(p.mean):
        return "no tables"
    if p.low > 0 and p.mean >= rope:
        return "better"
    if -rope < p.low and p.high < rope:
        return "equivalent"
    if p.high < 0 and p.mean <= -rope:
        return "worse"
    return "inconclusive"


def weak_tables(tables: list[TableResult]) -> dict[str, list[str]]:
    """Per caveat kind that any finished table has: those tables (kinds in ``KINDS``' order)."""
    finished = [t for t in tables if t.status == FINISHED]
    return {k: names for k in KINDS if (names := [t.name for t in finished if k in t.caveat_kinds])}


def side_by_side(tables: list[TableResult], jobs: int) -> list[TableResult]:
    """The finished tables this invocation trained with other tables at once (more than one worker and
    more than one table run): their training seconds were measured under a shared, changing load."""
    ran = [t for t in tables if t.status == FINISHED and not t.reused]
    return ran if jobs > 1 and len(ran) > 1 else []


def disagreements(claim: PooledClaim, alpha: float) -> list[str]:
    """Where the four readings tell different stories, in words."""
    notes = []
    p, b = claim.pooled, claim.bayes
    pooled_sign = p.low > 0 or p.high < 0
    if pooled_sign != (claim.wilcoxon_p < alpha):
        notes.append(
            "the random-effects interval and the Wilcoxon test disagree on whether the effect has a "
            "consistent sign: "
            + (
                "a few precise tables carry the pooled mean while the signs vary"
                if pooled_sign
                else "the signs agree but the tables are too noisy or too few for the interval to exclude 0"
            )
        )
    if p.i2 > 0.5:
        notes.append(
            f"I² = {p.i2:.0%}: most of the spread is between tables, so the pooled mean hides real "
            "differences; read the forest plot table by table"
        )
    best = max(("better", b.better), ("equivalent", b.equivalent), ("worse", b.worse), key=lambda x: x[1])[0]
    if best != answer(claim) and answer(claim) in ("better", "equivalent", "worse"):
        notes.append(
            f"the Bayesian signed-rank test finds '{best}' most probable while the pooled interval "
            f"reads '{answer(claim)}': it weighs how many tables, not how precise each is"
        )
    return notes


def suite_headline(
    suite: str,
    tables: list[TableResult],
    claims: list[PooledClaim],
    table_ranks: dict[str, dict[str, tuple[int, float]]],
    jobs: int = 1,
) -> dict[str, Any]:
    """The suite's headline JSON, answer first: the pooled reading of every claim, then the tables."""

    def r(x: float) -> float | None:
        return None if x is None or not math.isfinite(x) else round(float(x), 6)

    return {
        "suite": suite,
        "pooled": {
            c.key: {
                "answer": answer(c),
                "mean": r(c.pooled.mean),
                "low": r(c.pooled.low),
                "high": r(c.pooled.high),
                "i2": r(c.pooled.i2),
                "tau2": r(c.pooled.tau2),
                "wilcoxon_p": r(c.wilcoxon_p),
                "rope": r(c.rope),
                "bayes": {"better": r(c.bayes.better), "equivalent": r(c.bayes.equivalent), "worse": r(c.bayes.worse)},
                "wins": c.counts.wins,
                "ties": c.counts.ties,
                "losses": c.counts.losses,
                "tables": len(c.tables),
                "sound": {
                    "answer": sound_answer(c),
                    "mean": r(c.sound.mean),
                    "low": r(c.sound.low),
                    "high": r(c.sound.high),
                    "tables": c.sound_tables,
                },
            }
            for c in claims
        },
        "weak_tables": weak_tables(tables),
        "timed_side_by_side": [t.name for t in side_by_side(tables, jobs)],
        "tables": {
            t.name: {
                "status": t.status,
                "experiment": t.experiment,
                **({"reason": t.reason} if t.reason else {}),
                **(
                    {
                        "effects": {
                            c.key: next((r(e.mean) for e in c.tables if e.table == t.name), None) for c in claims
                        },
                        "ranks": {m: rank for m, (rank, _) in table_ranks.get(t.name, {}).items()},
                        "caveat_kinds": t.caveat_kinds,
                        "sound": t.sound,
                    }
                    if t.status == FINISHED
                    else {}
                ),
            }
            for t in tables
        },
        "finished": sum(t.status == FINISHED for t in tables),
        "failed": sum(t.status == FAILED for t in tables),
    }
