"""What a fraud team reads: money caught and missed, precision within the daily alert budget, costs and
savings for every model; and, for a split in time order, what each block spans and holds."""

from __future__ import annotations

import numpy as np

from pipeline.evaluation.stats import outer_bootstrap
from pipeline.project.variants import label
from pipeline.reporting.document import Document
from pipeline.reporting.evidence import Evidence


def _interval(ev: Evidence, model: str, key: str, money: bool = False) -> str:
    """Mean over replicates [95% interval]: a bootstrap over replicates (each its own test rows), or
    with one replicate evaluate's bootstrap over its test rows."""
    values = ev.values(model, key)
    fmt = (lambda v: f"{v:,.0f}") if money else (lambda v: f"{v:.3f}")
    if len(values) > 1:
        b = ev.params.report.bootstrap
        low, high = outer_bootstrap(values, b.resamples, b.seed, ev.params.report.confidence)
    else:
        metrics = ev.metrics[ev.names(model)[0]]
        low, high = metrics[f"{key}_ci_low"], metrics[f"{key}_ci_high"]
    return f"{fmt(float(np.mean(values)))} [{fmt(low)}, {fmt(high)}]"


def money(doc: Document, ev: Evidence) -> None:
    """The money table of section 6: every compared and reference model."""
    models = [*ev.histories, *ev.params.evaluate.references.names()]
    if not all("test_value_recall" in ev.metrics[n] for m in models for n in ev.names(m)):
        doc.paragraph("**Money**: the data has no amount column (`prepare.amount`), so no money is counted.")
        return
    e = ev.params.evaluate
    alerts = "test_alert_precision" in ev.metrics[ev.names(models[0])[0]]
    budget = float(np.mean([ev.metrics[n]["test_alert_budget"] for n in ev.names(models[0])])) if alerts else 0.0
    doc.paragraph(
        f"**Money and alerts** on the test parts (`{ev.summary.amount}` as each transaction's amount). Value-weighted "
        "recall is the share of the fraudulent amount the alerts catch at each model's threshold. "
        + (f"The alert budget is {e.alerts_per_day} alerts a day on the whole day's traffic, scaled to the part's "
           f"share of each day's rows ({budget:,.0f} alerts over the test days of a replicate): precision is the "
           "share of each day's highest scores that are fraud, averaged over the days (equal scores at the edge share "
           "the last alerts). " if alerts else "No time column: no alert budget per day. ")
        + f"Costs: {e.cost_per_alert:g} per alert plus every missed fraud's amount; savings against no model (every "
        "fraud lost) and against alerting every row. Mean per replicate [95% interval over replicates]; the "
        "threshold held fixed.")
    header = ["Model", "Value-weighted recall", "Fraud amount caught", "Fraud amount missed"]
    header += ["Precision within the alert budget", "Share of fraud amount the alerts catch"] if alerts else []
    header += ["Savings vs no model", "Savings vs alerting every row"]
    rows = []
    for model in models:
        cells = [label(model), _interval(ev, model, "test_value_recall"),
                 _interval(ev, model, "test_amount_caught", money=True),
                 f"{np.mean(ev.values(model, 'test_amount_missed')):,.0f}"]
        if alerts:
            cells += [_interval(ev, model, "test_alert_precision"), _interval(ev, model, "test_alert_value_recall")]
        cells += [_interval(ev, model, "test_savings_vs_none", money=True),
                  _interval(ev, model, "test_savings_vs_all", money=True)]
        rows.append(cells)
    doc.table(header, rows)


def blocks(doc: Document, ev: Evidence) -> None:
    """The setup's table of time blocks: tuning's window and each distinct replicate window."""
    s = ev.summary
    if not s.blocks:
        return
    split = ev.params.prepare.split
    doc.paragraph(
        f"**Split by time** (`{split.time_column}`): {s.folds} window(s) of consecutive rows, each moved on by one "
        f"test block; in each, the earliest rows train, then a gap of {split.delay} is left out (labels that arrive "
        "late), then validation, then test. Evaluation in time order asks what a model trained on the past does on "
        "the next block: stricter than a random split, where test rows sit between training rows. Replicate r "
        f"uses window r mod {s.folds}; tuning uses window 0.")
    shown = ["tuning", *s.replicates[:s.folds]]
    rows = []
    for name in shown:
        for part in ("train", "gap", "val", "test"):
            b = s.blocks[name].get(part)
            if not b or not b["rows"]:
                continue
            span = (b["end"] - b["start"]) / 3600
            rows.append([name, part, b["start_text"], b["end_text"], f"{span:,.1f} h", f"{b['rows']:,}",
                         f"{b['positives']:,}"])
    doc.table(["Split", "Part", "From", "To", "Span", "Rows", "Frauds"], rows)
