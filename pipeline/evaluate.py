"""DVC stage `evaluate`: imbalanced-class metrics of every compared and reference model.

Every model is evaluated on its own split: a replicate's compared models (each variant at its chosen
setting) and reference models (tuned once on the tuning split, fitted on the replicate's) on that
replicate's validation and test parts. Thresholds are chosen on validation only. They get every
metric, bootstrap intervals and saved scores; replicate 0's models also get the five per-model
figures and DVC's overlay curves (drawing them for every replicate cost a minute of the budget and
the report draws its own across replicates); every tuning model gets its validation and test AP on
the tuning split.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.data.prepared import Prepared
from pipeline.evaluation import figures, scored
from pipeline.evaluation.metrics import (
    accuracy_trap,
    bootstrap_ci,
    choose_threshold,
    classification_metrics,
    pr_roc_points,
)
from pipeline.evaluation.money import Transactions, cost_threshold, ledgers, money_summary
from pipeline.evaluation.scored import Parts, Scored, network, probabilities
from pipeline.project.artefacts import (
    Logged,
    LoggedModel,
    ModelMetrics,
    Overview,
    PrepareSummary,
    ReferenceChoice,
    RunFile,
    Trials,
    TuningScore,
    TuningScores,
    load_checkpoint,
)
from pipeline.project.layout import SPLITS, TUNING, Layout, model_name
from pipeline.project.params import EvaluateParams, Params, load_params
from pipeline.project.variants import REFERENCE_COLOR
from pipeline.runtime.cli import stage_main
from pipeline.runtime.errors import StageError
from pipeline.runtime.outputs import staged
from pipeline.serving import packaging, scorer
from pipeline.tracking import keys, lifecycle, runs

log = logging.getLogger("pipeline.evaluate")

KEY_METRICS = (
    "threshold",
    "test_precision",
    "test_recall",
    "test_f1",
    "test_ap",
    "test_roc_auc",
    "test_accuracy",
    "test_balanced_accuracy",
    "test_mcc",
    "train_ap",
    "train_f1",
)


def evaluate_model(
    item: Scored, splits: Parts, params: EvaluateParams, money: dict[str, Transactions]
) -> dict[str, float]:
    """Threshold from validation; metrics on every split; bootstrap CIs on test; the accuracy trap;
    money and the alert budget on test when the data has amounts."""
    threshold = threshold_for(splits["val"].y, item.probabilities["val"], params, money.get("val"))
    out: dict[str, float] = {"threshold": threshold}
    for split in SPLITS:
        values = classification_metrics(splits[split].y, item.probabilities[split], threshold, params.precision_at_k)
        out.update({f"{split}_{k}": v for k, v in values.items()})
        out[f"{split}_accuracy_trap"] = float(accuracy_trap(values, params.recall_target))
    intervals = bootstrap_ci(
        splits["test"].y, item.probabilities["test"], threshold, params.bootstrap.resamples, params.bootstrap.seed
    )
    for key, (low, high) in intervals.items():
        out[f"test_{key}_ci_low"], out[f"test_{key}_ci_high"] = low, high
    if "test" in money:
        values = money_summary(
            money["test"],
            item.probabilities["test"],
            threshold,
            params.cost_per_alert,
            params.bootstrap.resamples,
            params.bootstrap.seed,
        )
        out.update({f"test_{k}": v for k, v in values.items()})
        out["test_alert_budget"] = float(sum(money["test"].budget.values()))
    return out


def threshold_for(y: np.ndarray, p: np.ndarray, params: EvaluateParams, money: Transactions | None) -> float:
    """The threshold the strategy chooses on validation (cost: the lowest alert cost plus missed amount)."""
    if params.threshold.strategy != "cost":
        return choose_threshold(y, p, params.threshold.strategy, params.threshold.target)
    if money is None:
        raise StageError(
            "evaluate.threshold.strategy cost needs each transaction's amount: set prepare.amount to "
            "the amount column, or choose another strategy"
        )
    return cost_threshold(money.y, p, money.amount, params.cost_per_alert)


def tuning_scores(
    params: Params, layout: Layout, summary: PrepareSummary, parts: Parts, money: dict[str, Transactions]
) -> TuningScores:
    """Validation and test AP and ROC-AUC of every tuning model on the tuning split, and its test accuracy at
    the threshold chosen on validation (no bootstrap): the claims' readings at shared settings."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    out = {}
    for variant in params.train.variants:
        for trial in Trials.read(layout.trials(variant), "tune").trials:
            for seed in params.train.tune.seeds:
                name = model_name(variant, seed, trial.trial)
                entry = {"variant": variant, "trial": trial.trial, "seed": seed, "setting": trial.setting}
                diverged = RunFile.read(layout.run_file(name, tuning=True), "tune").diverged_at
                if diverged is not None:
                    out[name] = TuningScore(**entry, diverged_at=diverged)
                    continue
                model = network(load_checkpoint(layout.checkpoint(name, tuning=True), summary))
                p = probabilities(model, {s: parts[s] for s in ("val", "test")})
                threshold = threshold_for(parts["val"].y, p["val"], params.evaluate, money.get("val"))
                out[name] = TuningScore(
                    **entry,
                    **{f"{s}_ap": float(average_precision_score(parts[s].y, p[s])) for s in p},
                    **{f"{s}_roc_auc": float(roc_auc_score(parts[s].y, p[s])) for s in p},
                    test_accuracy=float(np.mean((p["test"] >= threshold) == (parts["test"].y > 0))),
                )
    return TuningScores(models=out)


def run(params: Params, layout: Layout = Layout(), track: bool = True) -> dict[str, dict[str, float]]:
    """Evaluate every compared, reference and tuning model; write metrics, scores, figures and curves."""
    summary = PrepareSummary.read(layout.prepare_summary, "prepare")
    prepared = Prepared(layout, summary)
    parts = {split: prepared.parts(split) for split in (TUNING, *summary.replicates)}
    for split, rows in parts.items():
        for part in ("val", "test"):
            if int(rows[part].y.sum()) == 0:
                raise StageError(
                    f"the {part} part of split '{split}' holds no positives: thresholds, recall and AP "
                    "are undefined; raise prepare.split.min_positives or use more data"
                )
    money = {split: ledgers(prepared, split, params) for split in summary.replicates}
    items = scored.compared(params, layout, summary, parts) + scored.references(params, summary, parts)
    tuning = tuning_scores(params, layout, summary, parts[TUNING], ledgers(prepared, TUNING, params))
    results: dict[str, dict[str, float]] = {}
    with staged(layout.evaluation, layout.curves) as (tmp_evaluation, tmp_curves):

        def at(path: Path) -> Path:  # where a file of evaluation/ goes while it is staged
            staged_path = tmp_evaluation / path.relative_to(layout.evaluation)
            staged_path.parent.mkdir(parents=True, exist_ok=True)
            return staged_path

        tmp_curves.mkdir()
        for item in items:
            results[item.name] = _write_model(item, parts[item.split], money[item.split], params, layout, at)
        _write_curves([item for item in items if item.replicate == 0], parts, tmp_curves)
        tuning.write(at(layout.tuning_scores))
        overview(results, params, summary).write(at(layout.overview))
        if track:
            logged = _track(
                params,
                layout,
                prepared,
                items,
                results,
                {
                    n: tuple(p for p in (at(layout.figures(n)), at(layout.model_metrics(n))) if p.exists())
                    for n in results
                },
            )
            logged.write(at(layout.logged))
    return results


def _write_model(
    item: Scored,
    rows: Parts,
    money: dict[str, Transactions],
    params: Params,
    layout: Layout,
    at: Callable[[Path], Path],
) -> dict[str, float]:
    """One model's metrics file, saved scores (with each row's amount and day, when there is money)
    and figures."""
    metrics = evaluate_model(item, rows, params.evaluate, money)
    details = item.details or {}
    ModelMetrics(
        split=item.split,
        replicate=item.replicate,
        values=metrics,
        reference=ReferenceChoice(chosen=details["chosen"], grid=details["grid"]) if "chosen" in details else None,
        alert_budget_by_day=money["test"].budget if money else {},
    ).write(at(layout.model_metrics(item.name)))
    columns = {
        "split": np.repeat(["val", "test"], [rows["val"].y.size, rows["test"].y.size]),
        "y_true": np.concatenate([rows["val"].y, rows["test"].y]),
        "score": np.concatenate([item.probabilities["val"], item.probabilities["test"]]),
    }
    if money:
        columns.update(
            amount=np.concatenate([money["val"].amount, money["test"].amount]),
            day=np.concatenate([money["val"].day, money["test"].day]),
        )
        if money["test"].entity is not None:  # the card or customer: alerts count one per entity-day
            columns["entity"] = np.concatenate([money["val"].entity, money["test"].entity])
    pd.DataFrame(columns).to_parquet(at(layout.scores(item.name)), index=False)
    if item.replicate == 0:
        figures.model_figures(
            item.name, rows["test"].y, item.probabilities["test"], metrics["threshold"], at(layout.figures(item.name))
        )
    _log_line(item.name, metrics)
    return metrics


def _write_curves(items: list[Scored], parts: dict[str, Parts], folder: Path) -> None:
    """Precision-recall and ROC points on the test part, for DVC's overlay plots (replicate 0's models)."""
    pr_rows, roc_rows = [], []
    for item in items:
        pr, roc = pr_roc_points(item.name, parts[item.split]["test"].y, item.probabilities["test"])
        pr_rows.append(pd.DataFrame(pr))
        roc_rows.append(pd.DataFrame(roc))
    pd.concat(pr_rows).to_csv(folder / "precision_recall.csv", index=False)
    pd.concat(roc_rows).to_csv(folder / "roc.csv", index=False)


def overview(results: dict[str, dict[str, float]], params: Params, summary: PrepareSummary) -> Overview:
    """Key test metrics of every model, and mean/std over replicates per variant."""
    variants = {}
    for variant in params.train.variants:
        rows = [results[model_name(variant, r)] for r in range(len(summary.replicates))]
        variants[variant] = {
            f"{k}_{stat}": float(fn([r[k] for r in rows]))
            for k in KEY_METRICS
            for stat, fn in (("mean", np.mean), ("std", np.std))
        }
    return Overview(models={n: {k: m[k] for k in KEY_METRICS} for n, m in results.items()}, variants=variants)


def _log_line(name: str, m: dict[str, float]) -> None:
    trap = "  ACCURACY TRAP (high accuracy, low recall)" if m["test_accuracy_trap"] else ""
    money = (f"  value recall {m['test_value_recall']:.3f}" if "test_value_recall" in m else "") + (
        f"  alert precision {m['test_alert_precision']:.3f}" if "test_alert_precision" in m else ""
    )
    log.info(
        "evaluate[%s] threshold %.3g  test precision %.3f  recall %.3f  f1 %.3f  ap %.3f [%.3f, %.3f]"
        "  roc_auc %.3f%s%s",
        name,
        m["threshold"],
        m["test_precision"],
        m["test_recall"],
        m["test_f1"],
        m["test_ap"],
        m["test_ap_ci_low"],
        m["test_ap_ci_high"],
        m["test_roc_auc"],
        money,
        trap,
    )


def _track(
    params: Params,
    layout: Layout,
    prepared: Prepared,
    items: list[Scored],
    results: dict[str, dict[str, float]],
    artifacts: dict[str, tuple[Path, ...]],
) -> Logged:
    """Evaluation, and the servable model, into each compared model's run; reference models get runs of
    their own. Returns where they went.

    Only keys.EVALUATION_KEYS (and keys.MONEY_KEYS, with amounts) become MLflow metrics (distinct from the
    per-epoch keys); every number is in the run's evaluation JSON artifact.
    """
    missing = runs.absent(item.run.run_id for item in items if item.run is not None and item.run.run_id)
    runs.warn_absent("evaluate", missing, "model")
    trained = [
        item.run for item in items if item.run is not None and item.run.run_id and item.run.run_id not in missing
    ]
    if trained:
        runs.adopt_launcher(trained[0].group)
    summary = prepared.summary
    models, references = {}, {}
    for item in items:
        run_id = None
        if item.kind == "mlp" and item.run is not None and item.run.run_id and item.run.run_id not in missing:
            run_id = item.run.run_id
            settings = scorer.settings(
                results[item.name]["threshold"],
                summary.params["nonfinite"],
                summary.source_sha256,
                model=item.name,
                variant=item.run.variant,
                seed=item.run.seed,
                lr=item.run.lr,
                label=summary.label,
                group=item.run.group,
                split=item.split,
            )
            example = prepared.raw(item.split, "test").head(5)[summary.features]
            with packaging.fraud_model(
                layout.checkpoint(item.name), layout.encoder(item.split), settings, example
            ) as servable:
                uri = lifecycle.log_model(run_id, servable)
            models[item.name] = LoggedModel(run_id=run_id, model_uri=uri)
        elif item.kind == "reference" and trained:  # references join the group of the trained models
            run_id = runs.reference_run(
                params.mlflow.experiment,
                trained[0].group,
                item.name,
                (item.details or {}).get("params", {}),
                {keys.VARIANT: "reference", keys.COLOR: REFERENCE_COLOR},
            )
            references[item.name] = run_id
        if run_id:
            metric_keys = [*keys.EVALUATION_KEYS, *(k for k in keys.MONEY_KEYS if k in results[item.name])]
            runs.log_results(
                run_id, {k: results[item.name][k] for k in metric_keys}, artifacts[item.name], "evaluation"
            )
    return Logged(models=models, references=references)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m pipeline.evaluate [--params params.yaml]``."""

    def body(args: argparse.Namespace) -> object:
        return run(load_params(args.params))

    return stage_main("evaluate", __doc__, argv, body)


if __name__ == "__main__":
    raise SystemExit(main())
