"""DVC stage `report`: the candidates-versus-reference report (BatchNorm versus the baseline by default), from
the other stages' outputs only.

Writes reports/report.md, reports/report.html (self-contained), metrics/summary.json (the headline, the
only DVC metrics file) and metrics/answer.json (the one-sentence answers), and publishes the report and
the verdict to MLflow.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from pathlib import Path

from pipeline.analysis import checks, claims
from pipeline.analysis.claims import Claim, Pair
from pipeline.analysis.evidence import Evidence, gather
from pipeline.project.layout import Layout
from pipeline.project.params import Params, load_params
from pipeline.reporting import sections, summary
from pipeline.reporting.document import Document
from pipeline.runtime.cli import stage_main
from pipeline.runtime.outputs import staged
from pipeline.tracking import keys, lifecycle, runs, ui

log = logging.getLogger("pipeline.report")


def document(
    ev: Evidence,
    found: dict[str, list[Claim]],
    found_kinds: dict[str, list[str]],
    paired: dict[str, list[Pair]],
    layout: Layout,
    figure_dir: Path,
    generated: str,
) -> Document:
    """Assemble every section of the report: the answer first, then the evidence, then the details."""
    cat = ev.catalogue
    asked = cat.title(cat.primary) if cat.primary else "the candidate"
    doc = Document(f"Does {asked} help on this imbalanced data? {' versus '.join(cat.short(v) for v in cat.compared)}")
    doc.paragraph(f"Generated {generated}.", volatile=True)
    summary.summary_section(doc, ev, found, found_kinds, paired, figure_dir)
    sections.setup_section(doc, ev)
    sections.tuning_section(doc, ev, figure_dir)
    sections.curves_section(doc, ev, figure_dir)
    sections.accuracy_section(doc, ev)
    sections.minority_section(doc, ev, figure_dir)
    sections.speed_section(doc, ev, paired)
    sections.verdicts_section(doc, ev, found)
    sections.diagnostics_section(doc, ev)
    sections.provenance_section(doc, ev, layout)
    return doc


def run(params: Params, layout: Layout = Layout(), track: bool = True) -> Path:
    """Write reports/ (Markdown, HTML, figures) and metrics/summary.json; publish both to MLflow."""
    ev = gather(params, layout)
    paired = {variant: claims.pairs(ev, variant) for variant in ev.compared()}
    found = {variant: claims.claims(ev, variant, paired[variant]) for variant in ev.compared()}
    found_kinds = checks.by_kind(ev, found)
    found_caveats = checks.sentences(found_kinds)
    with staged(layout.reports, layout.summary, layout.answer) as (tmp, tmp_summary, tmp_answer):
        (tmp / "figures").mkdir(parents=True)
        generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        doc = document(ev, found, found_kinds, paired, layout, tmp / "figures", generated)
        (tmp / "report.md").write_text(doc.markdown(tmp))
        (tmp / "report.html").write_text(doc.html())
        claims.headline(ev, found, found_caveats, checks.kinds(found_kinds), paired).write(tmp_summary)
        claims.answers(ev, found).write(tmp_answer)
        if track:  # the champion first: a user who may not move it stops the stage before anything is published
            _crown(ev, found)
            _publish(ev, found, found_caveats, paired, tmp)
    log.info(
        "report: wrote %s, %s and %s", layout.reports / "report.md", layout.reports / "report.html", layout.summary
    )
    return layout.reports


def _publish(
    ev: Evidence,
    found: dict[str, list[Claim]],
    found_caveats: list[str],
    paired: dict[str, list[Pair]],
    report_dir: Path,
) -> None:
    """The report into each group's pipeline run, with the verdict as its description."""
    missing = runs.absent(r.pipeline_run_id for r in ev.runs.values() if r.pipeline_run_id)
    runs.warn_absent("report", missing, "pipeline")
    tracked = [r for r in ev.runs.values() if r.pipeline_run_id and r.pipeline_run_id not in missing]
    for pipeline_run in sorted({r.pipeline_run_id for r in tracked}):
        info = next(r for r in tracked if r.pipeline_run_id == pipeline_run)
        runs.adopt_launcher(info.group)
        runs.log_results(pipeline_run, {}, (report_dir,), "report")
        url = ui.save_comparison_view(info.experiment_id, info.group, ev.catalogue.slug, ev.catalogue.heading)
        runs.describe_run(pipeline_run, summary.run_description(ev, found, found_caveats, paired, url))
        primary = ev.catalogue.primary
        answer = (
            claims.answer_sentence(ev, primary, found[primary])
            if primary in found
            else f"No verdict (no candidate beside {ev.catalogue.title(ev.reference)})."
        )
        runs.describe_experiment(
            info.experiment_id,
            f"**Latest execution** `{info.group}`, {len(ev.replicates)} replicate(s): {answer} "
            f"[Compare its runs]({url}) (older executions: the Views menu).",
        )
        log.info("report: compare the runs in the MLflow UI: %s", url)


def _crown(ev: Evidence, found: dict[str, list[Claim]]) -> None:
    """The compared model with the best validation AP becomes `champion` of the registered model."""
    best = ev.best_on_validation()
    logged = ev.logged.models.get(best)
    if not logged:
        return
    info, name = ev.runs[best], ev.params.mlflow.registered_model
    verdict = "; ".join(f"{c.key} {c.status}" for c in found.get(ev.catalogue.primary or "", [])) or "none"
    pipelines = sorted({r.pipeline_run_id for r in ev.runs.values() if r.pipeline_run_id})
    version = lifecycle.crown_champion(
        name,
        logged.model_uri,
        {
            keys.GROUP: info.group,
            keys.VARIANT: info.variant,
            keys.SEED: str(info.seed),
            keys.LR: str(info.lr),
            "val_ap": f"{ev.metrics[best]['val_ap']:.4f}",
            "verdict": verdict,
            keys.DATA_SHA256: ev.summary.source_sha256,
        },
        pipelines,
    )
    log.info(
        "report: %s (best validation AP %.3f) is models:/%s@champion (version %s)",
        best,
        ev.metrics[best]["val_ap"],
        name,
        version,
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m pipeline.report [--params params.yaml]``."""

    def body(args: argparse.Namespace) -> object:
        return run(load_params(args.params))

    return stage_main("report", __doc__, argv, body)


if __name__ == "__main__":
    raise SystemExit(main())
