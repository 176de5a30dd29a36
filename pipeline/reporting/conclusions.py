"""What the report concludes: the summary it opens with, each verdict in detail with its method,
the diagnostics, and where every number came from."""

from __future__ import annotations

import json

from pipeline.evaluation.stats import INCONCLUSIVE, FirstToTarget, PairedTest, fewest_permutation_seeds
from pipeline.project.layout import Layout
from pipeline.project.provenance import git_state, lock_hashes
from pipeline.project.variants import short, title
from pipeline.reporting.claims import Claim, Measure
from pipeline.reporting.diagnostics import diagnostics as findings
from pipeline.reporting.document import Document, mean_sd
from pipeline.reporting.evidence import Evidence, describe_runs, variant_values
from pipeline.tracking import ui

METHOD = ("Each claim pairs the two variants seed by seed (same seed, same initial shared weights, same "
          "batches) and needs two tests to agree at the {level:.0%} level: the t-interval of the mean "
          "difference (its size; assumes roughly normal differences, which a handful of seeds cannot check) "
          "and the exact sign-flip permutation test over all 2^n sign patterns (no distributional assumption). "
          "With n seeds the permutation p cannot go below 2/2^n, so {fewest} seeds are the fewest that can "
          "support a claim. *Detectable* is the smallest true difference these seeds find with {power:.0%} "
          "power (paired t); *seeds needed* is how many would find the observed difference so. Speed is "
          "compared by who reaches the target first (exact sign test), because a run that never reaches the "
          "target has no epoch count to average.")


def _num(value: float) -> str:
    return f"{value:+.3g}" if abs(value) < 1000 else f"{value:+,.0f}"


def measure_text(m: Measure, seeds: int) -> str:
    """One measured difference in plain words, with its tests."""
    t = m.test
    if isinstance(t, FirstToTarget):
        decided = t.wins + t.losses
        return (f"{m.text}: {t.wins} of {len(t.outcomes)} (the baseline first in {t.losses}, "
                f"{len(t.outcomes) - decided} tied or undecided; sign test p = {t.p_value:.3g})")
    assert isinstance(t, PairedTest)
    if len(t.differences) < 2:
        return f"{m.text}: {_num(t.mean)} (one seed: no test)"
    agree = sum(1 for d in t.differences if (d > 0) == (t.mean > 0) and d != 0)
    return (f"{m.text}: {_num(t.mean)} ({t.level:.0%} interval {_num(t.low)} to {_num(t.high)}; {agree} of {seeds} "
            f"seeds on that side; permutation p = {t.p_value:.2g})")


def next_step(claim: Claim) -> str:
    """What to do when a claim is inconclusive: the seeds a clear answer would need."""
    needs = [m.test.seeds_needed for m in claim.measures if isinstance(m.test, PairedTest)]
    if any(n is None for n in needs) or not needs:
        return "no difference was seen; more seeds may still show none"
    return f"about {max(needs):,} seeds would give a clear answer at a difference this size (extend `train.seeds`)"


def summary(doc: Document, ev: Evidence, found: dict[str, list[Claim]]) -> None:
    """1. The answer first: the question, each verdict in plain words, data, tuning, seeds, next steps."""
    p, s = ev.params, ev.summary
    doc.heading("1. Summary")
    variants = ev.compared()
    if not variants:
        doc.paragraph("A verdict needs the baseline and a normalised variant; this run trained only "
                      + ", ".join(p.train.variants) + ".")
    for variant in variants:
        name = title(variant)
        doc.paragraph(f"**Does {name} make this MLP learn faster and catch more fraud than the same MLP without "
                      "it, each at its own best learning rate?**")
        items = []
        for claim in found[variant]:
            text = f"**{claim.text}: {claim.status}.** " + "; ".join(measure_text(m, len(p.train.seeds))
                                                                      for m in claim.measures) + "."
            if claim.status == INCONCLUSIVE:
                text += f" Next: {next_step(claim)}."
            items.append(text)
        doc.bullets(items)
    positives, rows = sum(s.positives.values()), sum(s.rows.values())
    chosen = ", ".join(f"{short(v)} {ev.chosen_lr(v):g}" for v in p.train.variants)
    aps = ", ".join(f"{short(v)} {mean_sd(variant_values(ev, v, 'test_ap'), 3)}" for v in p.train.variants)
    refs = ", ".join(f"{r.replace('_', ' ')} {ev.metrics[r]['test_ap']:.3f}" for r in p.evaluate.references.names())
    doc.bullets([
        f"**Data**: `{s.source}`, {rows:,} rows, {positives:,} frauds ({positives / rows:.2%}), {s.split_method} "
        "split into train, validation and test.",
        f"**Tuning**: the learning rate of each variant was chosen on validation AP from "
        f"{', '.join(f'{lr:g}' for lr in p.train.lr)} (tuning seeds {list(p.train.tune_seeds)}): {chosen}.",
        f"**Seeds**: {len(p.train.seeds)} compared models per variant, paired by seed; verdicts need the "
        f"t-interval and the permutation test to agree ({p.report.confidence:.0%}); section 8 says why.",
        f"**Test average precision** (mean ± sd over seeds): {aps}" + (f"; references {refs}." if refs else "."),
    ])


def verdicts(doc: Document, ev: Evidence, found: dict[str, list[Claim]]) -> None:
    """8. Every claim with its per-seed numbers, tests, detectable difference and seeds needed."""
    p = ev.params
    doc.heading("8. Verdicts in detail")
    if len(p.train.seeds) < 2:
        doc.paragraph("**Only one seed was trained: the verdict cannot judge seed-to-seed noise.** Every claim is "
                      "`inconclusive`; add seeds to `train.seeds`.")
    for variant in ev.compared():
        items = []
        for claim in found[variant]:
            lines = [f"**{claim.text}: {claim.status}.**"]
            for m in claim.measures:
                t = m.test
                if isinstance(t, PairedTest) and len(t.differences) > 1:
                    lines.append(f"{m.text}: {t.interval(4)}; per seed "
                                 f"{', '.join(f'{d:+.4f}' for d in t.differences)}; permutation p = {t.p_value:.3g} "
                                 f"(smallest possible {t.smallest_p:.3g}); detectable {abs(t.detectable):.4f}; "
                                 f"seeds needed {t.seeds_needed if t.seeds_needed else '–'}.")
                else:
                    lines.append(measure_text(m, len(p.train.seeds)) + ".")
            items.append(" ".join(lines))
        doc.bullets(items)
    doc.paragraph(METHOD.format(level=p.report.confidence, power=p.report.power,
                                fewest=fewest_permutation_seeds(1 - p.report.confidence)))


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
    hashes = [[f"`{path}`", f"`{md5}`"] for path, md5 in lock_hashes(layout.lock)]
    doc.table(["DVC output", "md5"], hashes or [["(not run under DVC: no dvc.lock)", ""]])
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
