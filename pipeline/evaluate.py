"""DVC stage `evaluate`: imbalanced-class metrics of every compared and reference model.

Thresholds are chosen on validation only. The compared models (each variant at its chosen learning
rate, every seed) and the tuned reference models get every metric, bootstrap intervals, figures and
curves; every tuning model gets its validation and test AP (the report's shared-setting table).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pipeline.evaluation.metrics import (
    accuracy_trap,
    bootstrap_ci,
    choose_threshold,
    classification_metrics,
    pr_roc_points,
)
from pipeline.evaluation.references import describe, fit_reference
from pipeline.modeling.model import from_checkpoint, predict_logits
from pipeline.project.config import EvaluateParams, Params
from pipeline.project.layout import (
    SPLITS,
    Layout,
    PrepareSummary,
    RunInfo,
    Split,
    load_checkpoint,
    load_split,
    model_name,
)
from pipeline.project.variants import REFERENCE_COLOR
from pipeline.reporting import figures
from pipeline.runtime.cli import stage_main
from pipeline.runtime.errors import StageError
from pipeline.runtime.outputs import staged, write_json
from pipeline.serving import packaging, scorer
from pipeline.tracking import runs, tags

log = logging.getLogger("pipeline.evaluate")

KEY_METRICS = ("threshold", "test_precision", "test_recall", "test_f1", "test_ap", "test_roc_auc",
               "test_accuracy", "test_balanced_accuracy", "test_mcc", "train_ap", "train_f1")


@dataclass(frozen=True)
class Scored:
    """One model's predicted fraud probabilities on every split."""

    name: str
    kind: str  # "mlp" or "reference"
    probabilities: dict[str, np.ndarray]
    run: RunInfo | None = None  # trained models: where their MLflow run is
    model: Any = None  # the network (mlp) or the fitted estimator (reference)
    details: dict[str, Any] | None = None  # reference models: settings, grid


def score_mlp(payload: dict[str, Any], splits: dict[str, Split]) -> tuple[torch.nn.Module, dict[str, np.ndarray]]:
    """The rebuilt network (eval mode) and its fraud probabilities on the given splits."""
    try:
        model = from_checkpoint(payload)
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise StageError(f"checkpoint does not match its model config ({exc})") from None
    return model, {s: torch.sigmoid(predict_logits(model, torch.from_numpy(split.x))).numpy().astype(np.float64)
                   for s, split in splits.items()}


def evaluate_model(scored: Scored, splits: dict[str, Split], params: EvaluateParams) -> dict[str, float]:
    """Threshold from validation; metrics on every split; bootstrap CIs on test; the accuracy trap."""
    threshold = choose_threshold(splits["val"].y, scored.probabilities["val"], params.threshold.strategy,
                                 params.threshold.target)
    out: dict[str, float] = {"threshold": threshold}
    for split in SPLITS:
        values = classification_metrics(splits[split].y, scored.probabilities[split], threshold,
                                        params.precision_at_k)
        out.update({f"{split}_{k}": v for k, v in values.items()})
        out[f"{split}_accuracy_trap"] = float(accuracy_trap(values, params.recall_target))
    intervals = bootstrap_ci(splits["test"].y, scored.probabilities["test"], threshold,
                             params.bootstrap.resamples, params.bootstrap.seed)
    for key, (low, high) in intervals.items():
        out[f"test_{key}_ci_low"], out[f"test_{key}_ci_high"] = low, high
    return out


def tuning_scores(params: Params, layout: Layout, summary: PrepareSummary,
                  splits: dict[str, Split]) -> dict[str, dict[str, Any]]:
    """Validation and test AP and ROC-AUC of every tuning model (no threshold, no bootstrap)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    out = {}
    for variant in params.train.variants:
        for lr in params.train.lr:
            for seed in params.train.tune_seeds:
                name = model_name(variant, seed, lr)
                diverged = RunInfo.read(layout, name, tuning=True).diverged_at
                if diverged is not None:
                    out[name] = {"variant": variant, "lr": lr, "seed": seed, "diverged_at": diverged}
                    continue
                _, p = score_mlp(load_checkpoint(layout.checkpoint(name, tuning=True), summary),
                                 {s: splits[s] for s in ("val", "test")})
                out[name] = {"variant": variant, "lr": lr, "seed": seed,
                             **{f"{s}_ap": float(average_precision_score(splits[s].y, p[s])) for s in p},
                             **{f"{s}_roc_auc": float(roc_auc_score(splits[s].y, p[s])) for s in p}}
    return out


def run(params: Params, layout: Layout = Layout(), track: bool = True) -> dict[str, dict[str, float]]:
    """Evaluate every compared, tuning and reference model; write metrics, scores, figures and curves."""
    summary = PrepareSummary.read(layout)
    splits = {s: load_split(layout.prepared, s, summary.label) for s in SPLITS}
    for name in ("val", "test"):
        if int(splits[name].y.sum()) == 0:
            raise StageError(f"split '{name}' holds no positives: thresholds, recall and AP are undefined; "
                             "raise prepare.split.min_positives or use more data")
    scored: list[Scored] = []
    for variant in params.train.variants:
        for seed in params.train.seeds:
            name = model_name(variant, seed)
            model, probabilities = score_mlp(load_checkpoint(layout.checkpoint(name), summary), splits)
            scored.append(Scored(name, "mlp", probabilities, run=RunInfo.read(layout, name), model=model))
    tuning = tuning_scores(params, layout, summary, splits)
    train_xy, val_xy = (splits["train"].x, splits["train"].y), (splits["val"].x, splits["val"].y)
    for name in params.evaluate.references.names():
        tuned = fit_reference(name, params.evaluate.references, train_xy, val_xy, params.evaluate.bootstrap.seed)
        probabilities = {s: tuned.model.predict_proba(split.x)[:, 1].astype(np.float64) for s, split in splits.items()}
        scored.append(Scored(name, "reference", probabilities, model=tuned.model,
                             details={"chosen": tuned.chosen, "grid": tuned.grid, "params": describe(tuned)}))

    results: dict[str, dict[str, float]] = {}
    with staged(layout.evaluation, layout.curves) as (tmp_evaluation, tmp_curves):
        def at(path: Path) -> Path:  # where a file of evaluation/ goes while it is staged
            staged_path = tmp_evaluation / path.relative_to(layout.evaluation)
            staged_path.parent.mkdir(parents=True, exist_ok=True)
            return staged_path

        tmp_curves.mkdir()
        pr_rows, roc_rows = [], []
        for item in scored:
            metrics = evaluate_model(item, splits, params.evaluate)
            results[item.name] = metrics
            extra = {k: v for k, v in (item.details or {}).items() if k in ("chosen", "grid")}
            write_json(at(layout.model_metrics(item.name)), {**metrics, **extra})
            pd.DataFrame({"split": np.repeat(["val", "test"], [splits["val"].y.size, splits["test"].y.size]),
                          "y_true": np.concatenate([splits["val"].y, splits["test"].y]),
                          "score": np.concatenate([item.probabilities["val"], item.probabilities["test"]])}
                         ).to_parquet(at(layout.scores(item.name)), index=False)
            figures.model_figures(item.name, splits["test"].y, item.probabilities["test"], metrics["threshold"],
                                  at(layout.figures(item.name)))
            pr, roc = pr_roc_points(item.name, splits["test"].y, item.probabilities["test"])
            pr_rows.append(pd.DataFrame(pr))
            roc_rows.append(pd.DataFrame(roc))
            _log_line(item.name, metrics)
        pd.concat(pr_rows).to_csv(tmp_curves / "precision_recall.csv", index=False)
        pd.concat(roc_rows).to_csv(tmp_curves / "roc.csv", index=False)
        write_json(at(layout.tuning_scores), tuning)
        write_json(at(layout.overview), overview(results, params))
        if track:
            runs = _track(params, layout, summary, scored, results,
                          {n: (at(layout.figures(n)), at(layout.model_metrics(n))) for n in results})
            write_json(at(layout.reference_runs), runs)
    return results


def overview(results: dict[str, dict[str, float]], params: Params) -> dict[str, Any]:
    """Key test metrics of every model, and mean/std over seeds per variant."""
    out: dict[str, Any] = {"models": {n: {k: m[k] for k in KEY_METRICS} for n, m in results.items()}}
    variants: dict[str, Any] = {}
    for variant in params.train.variants:
        rows = [results[model_name(variant, s)] for s in params.train.seeds]
        variants[variant] = {f"{k}_{stat}": float(fn([r[k] for r in rows]))
                             for k in KEY_METRICS for stat, fn in (("mean", np.mean), ("std", np.std))}
    out["variants"] = variants
    return out


def _log_line(name: str, m: dict[str, float]) -> None:
    trap = "  ACCURACY TRAP (high accuracy, low recall)" if m["test_accuracy_trap"] else ""
    log.info("evaluate[%s] threshold %.3g  test precision %.3f  recall %.3f  f1 %.3f  ap %.3f [%.3f, %.3f]"
             "  roc_auc %.3f%s", name, m["threshold"], m["test_precision"], m["test_recall"], m["test_f1"],
             m["test_ap"], m["test_ap_ci_low"], m["test_ap_ci_high"], m["test_roc_auc"], trap)


def _track(params: Params, layout: Layout, summary: PrepareSummary, scored: list[Scored],
           results: dict[str, dict[str, float]], artifacts: dict[str, tuple[Path, Path]]) -> dict[str, Any]:
    """Evaluation, and the servable model, into each compared model's run; reference models get runs
    of their own. Returns where they went: {"models": {name: {run_id, model_uri}}, "references": ...}.

    Only tags.EVALUATION_KEYS become MLflow metrics (distinct from the per-epoch keys); every
    number is in the run's evaluation JSON artifact.
    """
    trained = [item.run for item in scored if item.run is not None and item.run.run_id]
    if trained:
        runs.adopt_launcher(trained[0].group)
    example = pd.read_parquet(layout.raw_test).head(5)[summary.features]
    out: dict[str, Any] = {"models": {}, "references": {}}
    for item in scored:
        run_id = None
        if item.kind == "mlp" and item.run is not None and item.run.run_id:
            run_id = item.run.run_id
            settings = scorer.settings(results[item.name]["threshold"], summary.params["nonfinite"],
                                        summary.source_sha256, model=item.name, variant=item.run.variant,
                                        seed=item.run.seed, lr=item.run.lr, label=summary.label,
                                        group=item.run.group)
            uri = packaging.log_fraud_model(run_id, layout.checkpoint(item.name), layout.scaler, settings, example)
            out["models"][item.name] = {"run_id": run_id, "model_uri": uri}
        elif item.kind == "reference" and trained:  # references join the group of the trained models
            run_id = runs.reference_run(params.mlflow.experiment, trained[0].group, item.name,
                                        (item.details or {}).get("params", {}),
                                        {tags.VARIANT: "reference", tags.COLOR: REFERENCE_COLOR})
            out["references"][item.name] = run_id
        if run_id:
            runs.log_results(run_id, {k: results[item.name][k] for k in tags.EVALUATION_KEYS},
                             artifacts[item.name], "evaluation")
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m pipeline.evaluate [--params params.yaml]``."""
    return stage_main("evaluate", __doc__, argv, lambda params, args: run(params))


if __name__ == "__main__":
    raise SystemExit(main())
