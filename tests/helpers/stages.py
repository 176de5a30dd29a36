"""The pipeline's stages in-process, as `dvc repro` runs them, and a model saved as MLflow would serve it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline import evaluate, prepare, report, select, timing, train
from pipeline.data.prepared import Prepared
from pipeline.project.artefacts import ModelMetrics, PrepareSummary
from pipeline.project.layout import Layout, replicate_name
from pipeline.project.params import Params
from pipeline.serving import packaging, scorer


def train_all(params: Params, layout: Layout, track: bool = True) -> None:
    """The stages tune, select, timing and train, in-process (prepare must have run)."""
    for variant in params.train.variants:
        train.tune(params, variant, layout, track=track)
    select.run(params, layout, track=track)
    timing.run(params, layout)
    for variant in params.train.variants:
        train.run(params, variant, layout, track=track)


def run_pipeline(params: Params, layout: Layout, track: bool = True) -> Path:
    """Every stage in-process, as `dvc repro` would run them; returns the report folder."""
    prepare.run(params.prepare, layout)
    train_all(params, layout, track)
    evaluate.run(params, layout, track=track)
    return report.run(params, layout, track=track)


def save_model(layout: Layout, name: str, dest: Path, nonfinite: str = "error") -> Path:
    """One evaluated model as a servable MLflow model folder (what evaluate logs, without a store)."""
    summary = PrepareSummary.read(layout.prepare_summary, "prepare")
    threshold = ModelMetrics.read(layout.model_metrics(name), "evaluate")["threshold"]
    split = replicate_name(int(name.rsplit("-s", 1)[1]))
    example = Prepared(layout, summary).raw(split, "test").head(5)[summary.features]
    packaging.save_fraud_model(
        dest,
        layout.checkpoint(name),
        layout.encoder(split),
        scorer.settings(threshold, nonfinite, summary.source_sha256, model=name),
        example,
    )
    return dest


def raw_test(layout: Layout, replicate: int = 0) -> pd.DataFrame:
    """A replicate's test rows as they came (label included): what a user's file of transactions holds."""
    return Prepared(layout, PrepareSummary.read(layout.prepare_summary, "prepare")).raw(
        replicate_name(replicate), "test"
    )
