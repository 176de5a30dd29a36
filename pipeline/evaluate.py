"""DVC stage `evaluate`: imbalanced-class metrics of every model, threshold chosen on validation."""

from __future__ import annotations

import logging
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pipeline import figures, tracking
from pipeline.cli import stage_main
from pipeline.config import EvaluateParams, Params
from pipeline.data import Split, load_split
from pipeline.errors import StageError
from pipeline.layout import REFERENCE_COLOR, SPLITS, Layout, PrepareSummary, RunInfo, model_name
from pipeline.metrics import accuracy_trap, bootstrap_ci, choose_threshold, classification_metrics
from pipeline.model import from_checkpoint
from pipeline.outputs import staged, write_json
from pipeline.references import describe, fit_reference
from pipeline.training import predict_logits

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
    params: dict[str, str] | None = None  # reference models: the estimator's settings


def load_checkpoint(path: Path, summary: PrepareSummary) -> dict[str, Any]:
    """Read a checkpoint and check it was trained on these prepared data."""
    fix = "re-run training (dvc repro)"
    if not path.is_file():
        raise StageError(f"{path}: model file not found; {fix}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        raise StageError(f"{path}: not a readable checkpoint ({str(exc).splitlines()[0]}); {fix}") from None
    if not isinstance(payload, dict) or not {"model", "config", "features"} <= set(payload):
        raise StageError(f"{path}: not a checkpoint written by the train stage; {fix}")
    if payload["features"] != summary.features or payload.get("data_sha256") != summary.source_sha256:
        raise StageError(f"{path}: trained on other data than data/prepared (features or data hash differ); {fix}")
    return payload


def score_mlp(payload: dict[str, Any], splits: dict[str, Split]) -> dict[str, np.ndarray]:
    """Fraud probabilities of a rebuilt checkpoint on every split (eval mode)."""
    try:
        model = from_checkpoint(payload)
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise StageError(f"checkpoint does not match its model config ({exc})") from None
    return {s: torch.sigmoid(predict_logits(model, torch.from_numpy(split.x))).numpy().astype(np.float64)
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


def _curve_rows(name: str, y: np.ndarray, p: np.ndarray, points: int = 200) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.metrics import precision_recall_curve, roc_curve

    precision, recall, _ = precision_recall_curve(y, p)
    fpr, tpr, _ = roc_curve(y, p)

    def thin(frame: pd.DataFrame) -> pd.DataFrame:
        keep = np.unique(np.linspace(0, len(frame) - 1, min(points, len(frame))).round().astype(int))
        return frame.iloc[keep]

    pr = thin(pd.DataFrame({"model": name, "recall": recall, "precision": precision}))
    roc = thin(pd.DataFrame({"model": name, "fpr": fpr, "tpr": tpr}))
    return pr, roc


def run(params: Params, layout: Layout = Layout(), track: bool = True) -> dict[str, dict[str, float]]:
    """Evaluate every trained model and every reference model; write metrics, scores and plots."""
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
            payload = load_checkpoint(layout.checkpoint(name), summary)
            scored.append(Scored(name, "mlp", score_mlp(payload, splits), run=RunInfo.read(layout, name)))
    for name in params.evaluate.references:
        model = fit_reference(name, splits["train"].x, splits["train"].y, params.evaluate.bootstrap.seed)
        probabilities = {s: model.predict_proba(split.x)[:, 1].astype(np.float64) for s, split in splits.items()}
        scored.append(Scored(name, "reference", probabilities, params=describe(model)))

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
            write_json(at(layout.model_metrics(item.name)), metrics)
            pd.DataFrame({"split": np.repeat(["val", "test"], [splits["val"].y.size, splits["test"].y.size]),
                          "y_true": np.concatenate([splits["val"].y, splits["test"].y]),
                          "score": np.concatenate([item.probabilities["val"], item.probabilities["test"]])}
                         ).to_parquet(at(layout.scores(item.name)), index=False)
            figures.model_figures(item.name, splits["test"].y, item.probabilities["test"], metrics["threshold"],
                                  at(layout.figures(item.name)))
            pr, roc = _curve_rows(item.name, splits["test"].y, item.probabilities["test"])
            pr_rows.append(pr)
            roc_rows.append(roc)
            _log_line(item.name, metrics)
        pd.concat(pr_rows).to_csv(tmp_curves / "precision_recall.csv", index=False)
        pd.concat(roc_rows).to_csv(tmp_curves / "roc.csv", index=False)
        write_json(at(layout.overview), overview(results, params))
        if track:
            _track(params, scored, results, {n: (at(layout.figures(n)), at(layout.model_metrics(n))) for n in results})
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


def _track(params: Params, scored: list[Scored], results: dict[str, dict[str, float]],
           artifacts: dict[str, tuple[Path, Path]]) -> None:
    """Evaluation into each model's training run; reference models into runs of their own in the same group.

    Only tracking.EVALUATION_KEYS become MLflow metrics (distinct from the per-epoch keys); every
    number is in the run's evaluation JSON artifact.
    """
    trained = [item.run for item in scored if item.run is not None and item.run.run_id]
    if trained:
        tracking.adopt_launcher(trained[0].group)
    for item in scored:
        if item.kind == "mlp":
            run_id = item.run.run_id if item.run is not None else None
        elif trained:  # references join the group of the trained models
            run_id = tracking.reference_run(params.mlflow.experiment, trained[0].group, item.name, item.params or {},
                                            {"pipeline.variant": "reference", tracking.COLOR: REFERENCE_COLOR})
        else:
            run_id = None
        if run_id:
            tracking.log_evaluation(run_id, {k: results[item.name][k] for k in tracking.EVALUATION_KEYS}, artifacts[item.name])


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m pipeline.evaluate [--params params.yaml]``."""
    return stage_main("evaluate", __doc__, argv, lambda params, args: run(params))


if __name__ == "__main__":
    raise SystemExit(main())
