"""The MLflow side of training: a model's run (params, tags, epochs), what it records when done, and
the runs of a stack, open together and each ended when its model is."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from pipeline.modeling.fit import FitResult
from pipeline.project.config import Params
from pipeline.project.layout import Layout, PrepareSummary
from pipeline.project.loading import flatten
from pipeline.project.variants import variant as catalogue_entry
from pipeline.tracking import runs, tags
from pipeline.tracking.tracker import NullTracker, Tracker
from pipeline.training.jobs import Job


@contextmanager
def model_run(track: bool, params: Params, job: Job, summary: PrepareSummary, device: torch.device,
              resume_run_id: str | None = None, resumed_after: int | None = None) -> Iterator[Tracker]:
    """The model's MLflow run (the crashed one again after a torchrun restart), or no tracking."""
    if not track:
        yield NullTracker()
        return
    mlflow_params = {**flatten({"prepare": summary.params, "train": job.shape}),
                     **{f"train.{key}": value for key, value in job.setting.to_dict().items()},
                     "variant": job.variant, "seed": job.seed, "device": str(device),
                     **{f"data.rows_{s}": n for s, n in summary.rows.items()},
                     **{f"data.prevalence_{s}": p for s, p in summary.prevalence.items()}}
    run_tags = {tags.ROLE: "tuning" if job.tuning else "model", tags.VARIANT: job.variant, tags.SEED: str(job.seed),
                tags.LR: str(job.setting.lr), tags.MODEL: job.name, tags.COLOR: catalogue_entry(job.variant).color,
                **({tags.TRIAL: str(job.trial)} if job.trial is not None else {}),
                tags.DATA_SHA256: summary.source_sha256,
                tags.DEVICE: torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
    with runs.model_run(params.mlflow.experiment, job.name, job.group, mlflow_params, run_tags,
                        resume_run_id) as tracker:
        if resumed_after is not None:
            runs.set_tag(tracker.run_id, tags.RESUMED_AFTER, str(resumed_after))
        yield tracker


def record_outputs(tracker: Tracker, layout: Layout, summary: PrepareSummary, result: FitResult,
                   split: str) -> dict[str, Any]:
    """Every epoch sent, then the history artifact, the training data and the summary metrics; returns
    what the run file needs to find the run again (nothing when untracked). Before the model's files
    are written: a model done on disk has everything in MLflow too."""
    if tracker.run_id is None:
        return {}
    tracker.flush()
    with tempfile.TemporaryDirectory() as tmp:
        named = Path(tmp) / "history.csv"
        pd.DataFrame(result.history).to_csv(named, index=False)
        runs.log_results(tracker.run_id, {"best_epoch": result.best_epoch, "best_val_ap": result.best_val_ap,
                                          "epochs_run": len(result.history)}, (named,))
    kinds = {"categorical": "string", "datetime": "datetime"}  # numbers: float
    types = {name: kinds.get(summary.roles.get(name, ""), "float") for name in summary.features}
    runs.log_training_data(tracker.run_id, layout.table, f"{split}/train", types, summary.label,
                           summary.source_sha256)
    return runs.run_info(tracker.run_id)


class OpenRuns:
    """The runs of the models of a stack: opened together, each ended (FINISHED) when its model is
    done; those still open end together when training stops (FAILED, or KILLED on a signal)."""

    def __init__(self) -> None:
        self._open: dict[int, AbstractContextManager[Tracker]] = {}
        self.trackers: dict[int, Tracker] = {}

    def open(self, member: int, run: AbstractContextManager[Tracker]) -> Tracker:
        """Start one model's run."""
        self.trackers[member] = run.__enter__()
        self._open[member] = run
        return self.trackers[member]

    def close(self, member: int) -> None:
        """End one model's run as FINISHED."""
        self._open.pop(member).__exit__(None, None, None)

    def fail(self, member: int, error: Exception) -> None:
        """End one model's run as FAILED (its training raised ``error``)."""
        self._open.pop(member).__exit__(type(error), error, error.__traceback__)

    def __enter__(self) -> OpenRuns:
        return self

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        for member in list(self._open):
            self._open.pop(member).__exit__(kind, error, trace)
