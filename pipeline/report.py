"""DVC stage `report`: the BatchNorm-versus-baseline report, from the other stages' outputs only.

Writes reports/report.md, reports/report.html (self-contained) and metrics/summary.json (the
headline, the only DVC metrics file), and publishes the report and the verdict to MLflow.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import numpy as np

from pipeline import analysis, conclusions, packaging, sections, tracking, ui
from pipeline.analysis import Claim, Evidence, mean_sd
from pipeline.cli import stage_main
from pipeline.config import Params
from pipeline.document import Document
from pipeline.outputs import staged
from pipeline.layout import SPLITS, Layout, PrepareSummary, RunInfo, load_split, model_name, read_history, \
    read_model_metrics, read_scores, read_selection

log = logging.getLogger("pipeline.report")


def gather(params: Params, layout: Layout) -> Evidence:
    """Read the outputs of prepare, select, train and evaluate."""
    summary = PrepareSummary.read(layout)
    train = params.train
    names = [model_name(v, s) for v in train.variants for s in train.seeds]
    evaluated = names + params.evaluate.references.names()
    histories = {v: {s: read_history(layout, model_name(v, s)) for s in train.seeds} for v in train.variants}
    scaled = {s: float(np.abs(load_split(layout.prepared, s, summary.label).x.mean(axis=0)).max()) for s in SPLITS}
    logged = json.loads(layout.reference_runs.read_text()) if layout.reference_runs.is_file() else {}
    return Evidence(params, summary, histories, {n: read_model_metrics(layout, n) for n in evaluated},
                    {n: read_scores(layout, n) for n in evaluated}, {n: RunInfo.read(layout, n) for n in names},
                    read_selection(layout), json.loads(layout.tuning_scores.read_text()), scaled, logged)


def build(ev: Evidence, found: dict[str, list[Claim]], layout: Layout, figure_dir: Path, generated: str) -> Document:
    """Assemble every section of the report: the answer first, then the evidence, then the details."""
    doc = Document("Does BatchNorm help on this imbalanced data? BatchNorm versus baseline")
    doc.paragraph(f"Generated {generated}.", volatile=True)
    conclusions.summary(doc, ev, found)
    sections.setup(doc, ev)
    sections.tuning(doc, ev)
    sections.curves(doc, ev, figure_dir)
    sections.accuracy(doc, ev)
    sections.minority(doc, ev, figure_dir)
    sections.speed(doc, ev)
    conclusions.verdicts(doc, ev, found)
    conclusions.diagnostics(doc, ev)
    conclusions.provenance(doc, ev, layout)
    return doc


def mlflow_description(ev: Evidence, found: dict[str, list[Claim]], comparison_url: str) -> str:
    """The pipeline run's description (markdown): the verdict, and how to see the comparison."""
    seeds = len(ev.params.train.seeds)
    lines = [f"**Does BatchNorm help?** {seeds} seed(s) per variant at each variant's tuned learning rate "
             f"({', '.join(f'{v} {ev.chosen_lr(v):g}' for v in ev.params.train.variants)}), data "
             f"`{ev.summary.source}`.", ""]
    claims = [c for variant_claims in found.values() for c in variant_claims]
    if claims:
        lines += ["| Claim | Verdict | Difference, mean [95% CI] |", "|---|---|---|"]
        lines += [f"| {c.text} | **{c.status}** | " + "; ".join(conclusions.measure_text(m, seeds).split(": ", 1)[1]
                                                           for m in c.measures) + " |" for c in claims]
        lines.append("")
    aps = ", ".join(f"{analysis.label(v)} {mean_sd(analysis.variant_values(ev, v, 'test_ap'), 3)}"
                    for v in ev.histories)
    lines += [f"Test average precision (mean ± sd over seeds): {aps}.", "",
              f"**Compare the runs:** [{comparison_url}]({comparison_url}) shows this execution's compared models, "
              "BatchNorm in blue, the baseline in orange, reference models in grey (tuning runs: role "
              "`tuning`). The report is in this run's artifacts (`report/report.html`)."]
    return "\n".join(lines)


def run(params: Params, layout: Layout = Layout(), track: bool = True) -> Path:
    """Write reports/ (Markdown, HTML, figures) and metrics/summary.json; publish both to MLflow."""
    ev = gather(params, layout)
    found = {variant: analysis.claims(ev, variant) for variant in ev.compared()}
    with staged(layout.reports, layout.summary) as (tmp, tmp_summary):
        (tmp / "figures").mkdir(parents=True)
        generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        doc = build(ev, found, layout, tmp / "figures", generated)
        (tmp / "report.md").write_text(doc.markdown(tmp))
        (tmp / "report.html").write_text(doc.html())
        tmp_summary.write_text(json.dumps(analysis.headline(ev, found), indent=2) + "\n")  # key order kept
        if track:
            _publish(ev, found, tmp)
            _register(ev, found)
    log.info("report: wrote %s, %s and %s", layout.reports / "report.md", layout.reports / "report.html",
             layout.summary)
    return layout.reports


def _publish(ev: Evidence, found: dict[str, list[Claim]], report_dir: Path) -> None:
    """The report into each group's pipeline run, with the verdict as its description."""
    runs = [r for r in ev.runs.values() if r.pipeline_run_id]
    for pipeline_run in sorted({r.pipeline_run_id for r in runs}):
        info = next(r for r in runs if r.pipeline_run_id == pipeline_run)
        tracking.adopt_launcher(info.group)
        tracking.log_evaluation(pipeline_run, {}, (report_dir,), "report")
        url = ui.save_comparison_view(info.experiment_id, info.group)
        tracking.describe(pipeline_run, mlflow_description(ev, found, url))
        verdicts = " · ".join(f"{analysis.SHORT_CLAIMS[c.key]} **{c.status}**" for c in found.get("batchnorm", []))
        tracking.describe_experiment(info.experiment_id, f"**Latest execution** `{info.group}`, "
                                     f"{len(ev.params.train.seeds)} seed(s), BatchNorm versus baseline, each at its "
                                     f"tuned learning rate: {verdicts or 'no verdict (no BatchNorm and baseline)'}. "
                                     f"[Compare its runs]({url}) (older executions: the Views menu).")
        log.info("report: compare the runs in the MLflow UI: %s", url)


def _register(ev: Evidence, found: dict[str, list[Claim]]) -> None:
    """The compared model with the best validation AP becomes `champion` of the registered model."""
    best = ev.best_on_validation()
    logged = ev.logged.get("models", {}).get(best)
    if not logged:
        return
    info, name = ev.runs[best], ev.params.mlflow.registered_model
    verdict = "; ".join(f"{c.key} {c.status}" for c in found.get("batchnorm", [])) or "none"
    version = packaging.register_champion(name, logged["model_uri"], {
        "pipeline.group": info.group, "pipeline.variant": info.variant, "pipeline.seed": str(info.seed),
        "pipeline.lr": str(info.lr), "val_ap": f"{ev.metrics[best]['val_ap']:.4f}", "verdict": verdict,
        "data.sha256": ev.summary.source_sha256})
    log.info("report: %s (best validation AP %.3f) is models:/%s@champion (version %s)", best,
             ev.metrics[best]["val_ap"], name, version)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m pipeline.report [--params params.yaml]``."""
    return stage_main("report", __doc__, argv, lambda params, args: run(params))


if __name__ == "__main__":
    raise SystemExit(main())
