"""DVC stage `report`: the BatchNorm-versus-baseline report, from the other stages' outputs only.

Writes reports/report.md, reports/report.html (self-contained) and metrics/summary.json (the
headline, the only DVC metrics file), and publishes the report and the verdict to MLflow.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

from pipeline.project.config import Params
from pipeline.project.layout import Layout
from pipeline.project.variants import PRIMARY, label
from pipeline.reporting import claims, conclusions, sections, shared
from pipeline.reporting.claims import Claim
from pipeline.reporting.document import Document, mean_sd
from pipeline.reporting.caveats import by_kind, kinds, sentences
from pipeline.reporting.evidence import Evidence, gather
from pipeline.reporting.shared import Pair
from pipeline.runtime.cli import stage_main
from pipeline.runtime.outputs import staged
from pipeline.tracking import registry, runs, tags, ui

log = logging.getLogger("pipeline.report")


def build(ev: Evidence, found: dict[str, list[Claim]], caveats: list[str], paired: dict[str, list[Pair]],
          layout: Layout, figure_dir: Path, generated: str) -> Document:
    """Assemble every section of the report: the answer first, then the evidence, then the details."""
    doc = Document("Does BatchNorm help on this imbalanced data? BatchNorm versus baseline")
    doc.paragraph(f"Generated {generated}.", volatile=True)
    conclusions.summary(doc, ev, found, caveats, paired)
    sections.setup(doc, ev)
    sections.tuning(doc, ev, figure_dir)
    sections.curves(doc, ev, figure_dir)
    sections.accuracy(doc, ev)
    sections.minority(doc, ev, figure_dir)
    sections.speed(doc, ev, paired)
    conclusions.verdicts(doc, ev, found)
    conclusions.diagnostics(doc, ev)
    conclusions.provenance(doc, ev, layout)
    return doc


def mlflow_description(ev: Evidence, found: dict[str, list[Claim]], caveats: list[str], comparison_url: str) -> str:
    """The pipeline run's description (markdown): the verdict, the caveats, and how to see the comparison."""
    n = len(ev.replicates)
    lines = [f"**Does BatchNorm help?** {n} replicate(s) per variant, each variant at its tuned setting, data "
             f"`{ev.summary.source}`.", ""]
    every = [c for variant_claims in found.values() for c in variant_claims]
    if every:
        lines += ["| Claim | Verdict | Effect [95% interval] | Practical size |", "|---|---|---|---|"]
        lines += [f"| {c.text} | **{c.status}** | {c.primary.mean:+.3g} [{c.primary.low:+.3g}, {c.primary.high:+.3g}] "
                  f"| {c.band:.3g} |" for c in every]
        lines.append("")
    if caveats:
        lines += ["**Caveats**: " + " ".join(caveats), ""]
    aps = ", ".join(f"{label(v)} {mean_sd(ev.values(v, 'test_ap'), 3)}" for v in ev.histories)
    lines += [f"Test average precision (mean ± sd over replicates): {aps}.", "",
              f"**Compare the runs:** [{comparison_url}]({comparison_url}) shows this execution's compared models, "
              "BatchNorm in blue, the baseline in orange, reference models in grey (tuning runs: role "
              "`tuning`). The report is in this run's artifacts (`report/report.html`)."]
    return "\n".join(lines)


def run(params: Params, layout: Layout = Layout(), track: bool = True) -> Path:
    """Write reports/ (Markdown, HTML, figures) and metrics/summary.json; publish both to MLflow."""
    ev = gather(params, layout)
    found = {variant: claims.claims(ev, variant) for variant in ev.compared()}
    found_kinds = by_kind(ev, found)
    found_caveats = sentences(found_kinds)
    paired = {variant: shared.pairs(ev, variant) for variant in ev.compared()}
    with staged(layout.reports, layout.summary) as (tmp, tmp_summary):
        (tmp / "figures").mkdir(parents=True)
        generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        doc = build(ev, found, found_caveats, paired, layout, tmp / "figures", generated)
        (tmp / "report.md").write_text(doc.markdown(tmp))
        (tmp / "report.html").write_text(doc.html())
        tmp_summary.write_text(json.dumps(claims.headline(ev, found, found_caveats, kinds(found_kinds),
                                                          shared.headline(paired)), indent=2) + "\n")
        if track:  # the champion first: a user who may not move it stops the stage before anything is published
            try:
                _register(ev, found)
            except registry.NotAllowed:
                for run_id in sorted({r.pipeline_run_id for r in ev.runs.values() if r.pipeline_run_id}):
                    runs.mark_failed(run_id)
                raise
            _publish(ev, found, found_caveats, tmp)
    log.info("report: wrote %s, %s and %s", layout.reports / "report.md", layout.reports / "report.html",
             layout.summary)
    return layout.reports


def _publish(ev: Evidence, found: dict[str, list[Claim]], found_caveats: list[str], report_dir: Path) -> None:
    """The report into each group's pipeline run, with the verdict as its description."""
    tracked = [r for r in ev.runs.values() if r.pipeline_run_id]
    for pipeline_run in sorted({r.pipeline_run_id for r in tracked}):
        info = next(r for r in tracked if r.pipeline_run_id == pipeline_run)
        runs.adopt_launcher(info.group)
        runs.log_results(pipeline_run, {}, (report_dir,), "report")
        url = ui.save_comparison_view(info.experiment_id, info.group)
        runs.describe(pipeline_run, mlflow_description(ev, found, found_caveats, url))
        verdicts = " · ".join(f"{claims.SHORT_CLAIMS[c.key]} **{c.status}**" for c in found.get(PRIMARY, []))
        runs.describe_experiment(info.experiment_id, f"**Latest execution** `{info.group}`, "
                                     f"{len(ev.replicates)} replicate(s), BatchNorm versus baseline, each at its "
                                     f"tuned setting: {verdicts or 'no verdict (no BatchNorm and baseline)'}. "
                                     f"[Compare its runs]({url}) (older executions: the Views menu).")
        log.info("report: compare the runs in the MLflow UI: %s", url)


def _register(ev: Evidence, found: dict[str, list[Claim]]) -> None:
    """The compared model with the best validation AP becomes `champion` of the registered model."""
    best = ev.best_on_validation()
    logged = ev.logged.get("models", {}).get(best)
    if not logged:
        return
    info, name = ev.runs[best], ev.params.mlflow.registered_model
    verdict = "; ".join(f"{c.key} {c.status}" for c in found.get(PRIMARY, [])) or "none"
    version = registry.register_champion(name, logged["model_uri"], {
        tags.GROUP: info.group, tags.VARIANT: info.variant, tags.SEED: str(info.seed), tags.LR: str(info.lr),
        "val_ap": f"{ev.metrics[best]['val_ap']:.4f}", "verdict": verdict, tags.DATA_SHA256: ev.summary.source_sha256})
    log.info("report: %s (best validation AP %.3f) is models:/%s@champion (version %s)", best,
             ev.metrics[best]["val_ap"], name, version)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m pipeline.report [--params params.yaml]``."""
    return stage_main("report", __doc__, argv, lambda params, args: run(params))


if __name__ == "__main__":
    raise SystemExit(main())
