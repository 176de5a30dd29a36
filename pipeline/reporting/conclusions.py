"""What the report concludes: the summary it opens with, each verdict in detail with its method,
the diagnostics, and where every number came from."""

from __future__ import annotations

import json
import math

from pipeline.project.layout import Layout
from pipeline.project.provenance import git_state, output_hashes
from pipeline.project.variants import short, title
from pipeline.reporting import shared
from pipeline.reporting.claims import FAMILY, TIMED, Claim, Measure
from pipeline.reporting.diagnostics import diagnostics as findings
from pipeline.reporting.document import Document, mean_sd
from pipeline.reporting.evidence import Evidence, describe_runs
from pipeline.reporting.shared import Pair
from pipeline.tracking import ui

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
    "{strictest:.3g}, interval and practical size; seeded), at an effect of the practical size.")


def _num(value: float, digits: int = 3) -> str:
    return f"{value:+.{digits}g}" if abs(value) < 1000 else f"{value:+,.0f}"


def effect_text(m: Measure, band: float, digits: int = 3) -> str:
    """`+0.198 [+0.152, +0.24] (seeds, splits and test rows); practical size 0.02` (a secondary measure,
    ``band`` NaN, has no practical size)."""
    if len(m.differences) < 2:
        return f"{_num(m.mean, digits)} (one replicate: no interval)"
    size = "" if math.isnan(band) else f"; practical size {band:.3g}"
    return f"{_num(m.mean, digits)} [{_num(m.low, digits)}, {_num(m.high, digits)}] over {m.covers}{size}"


def _in_unit(value: float, unit: str) -> str:
    """A difference in its claim's reading: a log ratio as a ratio, a fraction as a percentage."""
    if unit == "log ratio":
        return f"{math.exp(value):.2f}x"
    if unit == "fraction":
        return f"{value:+.1%}"
    return _num(value)


def claim_row(c: Claim) -> list[str]:
    """One claim as a row of the summary's table."""
    m, n = c.primary, len(c.primary.differences)
    effect = _in_unit(m.mean, m.unit) + (f" [{_in_unit(m.low, m.unit)}, {_in_unit(m.high, m.unit)}]" if n > 1 else "")
    size = _in_unit(c.band, m.unit).lstrip("+")
    return [c.text, f"**{c.status}**", effect, size, f"{sum(d > 0 for d in m.differences)} of {n}",
            f"{c.p:.3g} / {c.p_adjusted:.3g} (smallest possible {c.smallest_p:.3g})", f"{c.power.power:.0%}"]


CLAIM_COLUMNS = ["Claim", "Verdict", "Effect [95% interval]", "Practical size", "Replicates favouring",
                 "p / Holm-adjusted", "Power at the size"]


def claim_text(c: Claim) -> str:
    """One claim's evidence in plain words: effect, interval, size, counts, agreement, raw test (all
    deterministic for a claim not measured in seconds)."""
    m, n = c.primary, len(c.primary.differences)
    agree = sum(1 for d in m.differences if d > 0)
    parts = [f"**{c.text}.** {m.text}: {effect_text(m, c.band)}"]
    if m.counts:
        parts.append(m.counts)
    parts.append(f"{agree} of {n} replicates favour {title(c.variant)}; permutation p = {c.p:.3g} (the smallest {n} "
                 f"replicates allow: {c.smallest_p:.3g})")
    return "; ".join(parts) + "."


def verdict_text(c: Claim) -> str:
    """A claim's verdict with its Holm correction (it depends on every claim of the family, the
    timed one included)."""
    return (f"{c.text}: **{c.status}** (Holm-adjusted p = {c.p_adjusted:.3g}; its raw p compared at "
            f"{c.level:.3g})")


def summary(doc: Document, ev: Evidence, found: dict[str, list[Claim]], caveats: list[str],
            paired: dict[str, list[Pair]]) -> None:
    """1. The answer first: the question, each verdict, the caveats, then data, tuning and replicates."""
    p, s = ev.params, ev.summary
    doc.heading("1. Summary")
    variants = ev.compared()
    if not variants:
        doc.paragraph("A verdict needs the baseline and a normalised variant; this run trained only "
                      + ", ".join(p.train.variants) + ".")
    for variant in variants:
        doc.paragraph(f"**Does {title(variant)} make this MLP learn faster and catch more fraud than the same MLP "
                      "without it, each at its own tuned setting?**")
        # Holm corrects the claims together, the one in training seconds included, and seconds differ
        # between runs of the same params: every verdict can move with them (volatile).
        doc.table(CLAIM_COLUMNS, [claim_row(c) for c in found[variant]], volatile=True)
        fixed = [c for c in found[variant] if c.key not in TIMED]
        minority = next(c for c in fixed if c.key == "minority")
        beside_ap = "; ".join(f"{m.unit.replace('_', ' ')} {_num(m.mean)} [{_num(m.low)}, {_num(m.high)}]"
                              for m in minority.secondary)
        doc.paragraph(f"Intervals cover {minority.primary.covers} (training-set claims: seeds and splits). In counts, "
                      f"mean per replicate: {minority.primary.counts}. Beside test AP, {title(variant)} minus the "
                      f"baseline at each model's validation-chosen threshold (not tested, not corrected): {beside_ap}. "
                      "Every number behind each row: section 8. The verdicts are corrected together, the "
                      "speed claim in training seconds included: they can move between runs of the same params when "
                      "timings do; the other claims' effects, intervals and raw p cannot.")
        beside = [note for note in (shared.steady_note(paired[variant], "loss_fall", title(variant)),
                                    shared.steady_note(paired[variant], "steps", title(variant))) if note]
        if beside:
            doc.bullets(["**The same learning rate and batch for both** (the claims above compare each variant at "
                         "its own tuned setting; shared tuning trials, section 7): " + "; ".join(beside) + "."])
    steady = [c for c in caveats if not any(f", {key}:" in c for key in TIMED)]
    doc.paragraph("**Caveats**" + (":" if caveats else ": none applies (see section 9 for every check)."))
    if steady:
        doc.bullets(steady)
    if len(steady) < len(caveats):
        doc.bullets([c for c in caveats if c not in steady], volatile=True)
    positives, rows = sum(s.positives.values()), sum(s.rows.values())
    aps = ", ".join(f"{short(v)} {mean_sd(ev.values(v, 'test_ap'), 3)}" for v in p.train.variants)
    refs = ", ".join(f"{r.replace('_', ' ')} {mean_sd(ev.values(r, 'test_ap'), 3)}"
                     for r in p.evaluate.references.names())
    n = len(ev.replicates)
    doc.bullets([
        f"**Data**: `{s.source}`, {rows:,} rows, {positives:,} frauds ({positives / rows:.2%}), each split "
        f"{s.split_method} into {', '.join(f'{s.rows[k]:,}' for k in ('train', 'val', 'test'))} rows (train, validation, "
        f"test); {n} replicate(s), each its own " + ("redrawn split and seed" if s.redrawn else "seed") + ".",
        f"**Tuning**: {p.train.tune.trials} trials per variant ({p.train.tune.sampler}, tuning seeds "
        f"{list(p.train.tune.seeds)}, on a split of their own); chosen: "
        + "; ".join(f"{short(v)} {ev.setting(v).name()}" for v in p.train.variants) + ".",
        f"**Verdicts**: {len(FAMILY)} claims corrected together (Holm, {p.report.confidence:.0%}); section 8 says how.",
        f"**Test average precision** (mean ± sd over replicates): {aps}" + (f"; references {refs}." if refs else "."),
    ])


def verdicts(doc: Document, ev: Evidence, found: dict[str, list[Claim]]) -> None:
    """8. Every claim with its per-replicate numbers, tests, power and the replicates it would need."""
    p = ev.params
    doc.heading("8. Verdicts in detail")
    if len(ev.replicates) < 2:
        doc.paragraph("**Only one replicate was trained: the verdict cannot judge replicate-to-replicate noise.** "
                      "Every claim is `inconclusive`; raise `prepare.replicates`.")
    for variant in ev.compared():
        items, timed = [], []
        for c in found[variant]:
            lines = [claim_text(c)]
            for m in (c.primary, *c.secondary):
                lines.append(f"{m.text}: {effect_text(m, c.band if m is c.primary else math.nan, 4)}; per replicate "
                             + ", ".join(f"{d:+.4f}" for d in m.differences) + (f"; {m.counts}" if m.counts else ""))
            need = c.power.replicates_needed
            lines.append(f"Power at the practical size {c.band:.3g}: {c.power.power:.0%} with {len(ev.replicates)} "
                         f"replicates; {need or 'more than 64'} would give {c.power.target:.0%}.")
            (timed if c.key in TIMED else items).append(" ".join(x if x.endswith(".") else x + "." for x in lines))
        doc.bullets(items)
        doc.bullets(timed + [verdict_text(c) for c in found[variant]], volatile=True)
    alpha = 1 - p.report.confidence
    doc.paragraph(METHOD.format(alpha=alpha, strictest=alpha / len(FAMILY)))


def diagnostics(doc: Document, ev: Evidence) -> None:
    """9. Pitfall checks, each with its fix."""
    doc.heading("9. Diagnostics")
    doc.bullets(findings(ev))


def provenance(doc: Document, ev: Evidence, layout: Layout) -> None:
    """10. Git state of code and params, pipeline outputs, DVC hashes, MLflow runs."""
    state = git_state()
    doc.heading("10. Provenance")
    code = (f"uncommitted changes in {', '.join(f'`{f}`' for f in state.changed_code)}" if state.changed_code
            else "as committed")
    outputs = (f"changed since the commit: {', '.join(f'`{f}`' for f in state.changed_outputs)} (the pipeline "
               "writes them; `dvc repro` stages dvc.lock)" if state.changed_outputs else "as committed")
    doc.bullets([f"Git commit `{state.commit}`. Code and params: {code}. Pipeline records: {outputs}.",
                 "Params: " + "; ".join(f"`{k}`: {json.dumps(v)}" for k, v in
                                        ev.params.model_dump(include={"prepare", "train", "evaluate"}).items())])
    checkpoints = [layout.checkpoint(n) for v in ev.histories for n in ev.names(v)]
    doc.table(["Output", "md5"], [[f"`{path}`", f"`{md5}`"] for path, md5 in output_hashes(layout.root, checkpoints)])
    links = sorted({ui.comparison_url(r.experiment_id, r.group) for r in ev.runs.values()
                    if r.run_id and r.experiment_id})
    if links:
        doc.bullets([f"MLflow comparison of this execution's runs (after `mlflow ui`): {url}" for url in links],
                    volatile=True)
    uris = {n: m["model_uri"] for n, m in ev.logged.get("models", {}).items()}
    rows = [[n, r.run_id, uris.get(n, "")] for n, r in ev.runs.items() if r.run_id]
    rows += [[f"{n} (reference)", run_id, ""] for n, run_id in ev.logged.get("references", {}).items()]
    for pipeline in describe_runs(ev.runs)["pipelines"]:
        rows.append(["pipeline run (holds this report and the verdict)", pipeline, ""])
    if rows:
        doc.paragraph(f"MLflow runs in {next(iter(ev.runs.values())).tracking_uri}:", volatile=True)
        doc.table(["Model", "MLflow run id", "Model URI"], rows, volatile=True)
