"""DVC stage `report`: the BatchNorm-versus-baseline report, from the other stages' outputs only."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import numpy as np

from pipeline import analysis, sections, tracking, ui
from pipeline.analysis import Claim, Evidence, label, mean_sd
from pipeline.cli import stage_main
from pipeline.config import Params
from pipeline.data import load_split
from pipeline.document import Document
from pipeline.layout import SPLITS, Layout, PrepareSummary, RunInfo, model_name, read_history, \
    read_model_metrics, read_scores
from pipeline.outputs import staged

log = logging.getLogger("pipeline.report")


def gather(params: Params, layout: Layout) -> Evidence:
    """Read the outputs of prepare, train and evaluate."""
    summary = PrepareSummary.read(layout)
    names = [model_name(v, s) for v in params.train.variants for s in params.train.seeds]
    evaluated = names + list(params.evaluate.references)
    histories = {v: {s: read_history(layout, model_name(v, s)) for s in params.train.seeds}
                 for v in params.train.variants}
    scaled = {s: float(np.abs(load_split(layout.prepared, s, summary.label).x.mean(axis=0)).max()) for s in SPLITS}
    return Evidence(params, summary, histories, {n: read_model_metrics(layout, n) for n in evaluated},
                    {n: read_scores(layout, n) for n in evaluated}, {n: RunInfo.read(layout, n) for n in names},
                    scaled)


def build(ev: Evidence, claims: list[Claim], layout: Layout, figure_dir: Path, generated: str) -> Document:
    """Assemble every section of the report."""
    doc = Document("Does BatchNorm help on this imbalanced data? BatchNorm versus baseline")
    doc.paragraph(f"Generated {generated}.", volatile=True)
    sections.setup(doc, ev)
    sections.curves(doc, ev, figure_dir)
    sections.accuracy(doc, ev)
    sections.minority(doc, ev, figure_dir)
    sections.speed(doc, ev)
    sections.verdict(doc, ev, claims)
    sections.diagnostics(doc, ev)
    sections.provenance(doc, ev, layout)
    return doc


def mlflow_description(ev: Evidence, claims: list[Claim], comparison_url: str) -> str:
    """The pipeline run's description (markdown): the verdict, and how to see the comparison."""
    seeds = len(ev.params.train.seeds)
    lines = [f"**Does BatchNorm help?** {seeds} seed(s) per variant, data `{ev.summary.source}`.", ""]
    if claims:
        lines += ["| Claim | Verdict | BatchNorm minus baseline, mean [95% CI] |", "|---|---|---|"]
        lines += [f"| {c.text} | **{c.status}** | " + "; ".join(v.numbers(3).split(" (")[0] for v in c.parts) + " |"
                  for c in claims]
        lines.append("")
    aps = ", ".join(f"{label(v)} {mean_sd([ev.metrics[model_name(v, s)]['test_ap'] for s in ev.params.train.seeds], 3)}"
                    for v in ev.histories)
    lines += [f"Test average precision (mean ± sd over seeds): {aps}.", "",
              f"**Compare the runs:** [{comparison_url}]({comparison_url}) shows this execution's runs, "
              "BatchNorm in blue, the baseline in orange, reference models in grey. The report is in this "
              "run's artifacts (`report/report.html`)."]
    return "\n".join(lines)


def run(params: Params, layout: Layout = Layout(), track: bool = True) -> Path:
    """Write reports/ (Markdown, HTML, figures) and metrics/summary.json; publish both to MLflow."""
    ev = gather(params, layout)
    claims = analysis.verdicts(ev)
    with staged(layout.reports, layout.summary) as (tmp, tmp_summary):
        (tmp / "figures").mkdir(parents=True)
        generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        doc = build(ev, claims, layout, tmp / "figures", generated)
        (tmp / "report.md").write_text(doc.markdown(tmp))
        (tmp / "report.html").write_text(doc.html())
        tmp_summary.write_text(json.dumps(analysis.headline(ev, claims), indent=2) + "\n")  # key order kept
        if track:
            _publish(ev, claims, tmp)
    log.info("report: wrote %s, %s and %s", layout.reports / "report.md", layout.reports / "report.html",
             layout.summary)
    return layout.reports


def _publish(ev: Evidence, claims: list[Claim], report_dir: Path) -> None:
    """The report into each group's pipeline run, with the verdict as its description."""
    runs = [r for r in ev.runs.values() if r is not None and r.pipeline_run_id]
    for pipeline_run in sorted({r.pipeline_run_id for r in runs}):
        info = next(r for r in runs if r.pipeline_run_id == pipeline_run)
        tracking.adopt_launcher(info.group)
        tracking.log_evaluation(pipeline_run, {}, (report_dir,), "report")
        url = ui.save_comparison_view(info.experiment_id, info.group)
        tracking.describe(pipeline_run, mlflow_description(ev, claims, url))
        verdicts = " · ".join(f"{analysis.SHORT_CLAIMS[c.key]} **{c.status}**" for c in claims)
        tracking.describe_experiment(info.experiment_id, f"**Latest execution** `{info.group}`, "
                                     f"{len(ev.params.train.seeds)} seed(s), BatchNorm versus baseline: "
                                     f"{verdicts or 'no verdict (one variant only)'}. [Compare its runs]({url}) "
                                     "(older executions: the Views menu).")
        log.info("report: compare the runs in the MLflow UI: %s", url)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m pipeline.report [--params params.yaml]``."""
    return stage_main("report", __doc__, argv, lambda params, args: run(params))


if __name__ == "__main__":
    raise SystemExit(main())
