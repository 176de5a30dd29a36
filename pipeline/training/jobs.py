"""Which models a training stage trains: their names, files and execution group, and the key that
says what trained them. A model on disk whose run file carries its job's key is done: adding a seed
or a grid value trains only the new models, and a crash loses only the models still training."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.modeling.fit import FitResult
from pipeline.modeling.recipe import training_config
from pipeline.project import provenance
from pipeline.project.config import Params
from pipeline.project.layout import Layout, PrepareSummary, model_name, read_chosen


@dataclass(frozen=True)
class Job:
    """One model to train: which one, its execution group, its key, and where its files go."""

    name: str
    variant: str
    seed: int
    lr: float
    tuning: bool
    group: str  # the MLflow grouping of one execution (data, params, code and DVC experiment)
    key: str  # what makes this model (data, params, code, variant, seed, setting), not where it ran
    shape: dict[str, Any]  # the train params every model of the execution shares
    checkpoint: Path
    history: Path
    run_file: Path

    def done(self) -> bool:
        """Its files are on disk from a training with the same key (a diverged tuning model has no
        checkpoint: its divergence is its result)."""
        if not (self.run_file.is_file() and self.history.is_file()):
            return False
        info = json.loads(self.run_file.read_text())
        return info.get("key") == self.key and (self.checkpoint.is_file() or info.get("diverged_at") is not None)


@dataclass(frozen=True)
class TrainResult:
    """Where one trained model went."""

    name: str
    checkpoint: Path | None  # None: a tuning model that diverged (or a rank other than 0)
    history: Path
    run_file: Path
    fit: FitResult | None  # None: diverged, or kept from an earlier run


def plan(params: Params, layout: Layout, summary: PrepareSummary, variant: str, tuning: bool,
         seeds: list[int] | None = None) -> list[Job]:
    """The tuning models of a variant (every learning rate of the grid x every tuning seed), or its
    compared models (``seeds``, default every one of train.seeds) at the rate select chose."""
    shape = training_config(params.train)
    identity = {"data": summary.source_sha256, "prepare": summary.params, "train": shape}
    group = provenance.group_key(identity)
    code = provenance.code_sha256("train")
    if tuning:
        points = [(lr, seed) for lr in params.train.lr for seed in params.train.tune_seeds]
    else:
        chosen = float(read_chosen(layout, variant)["lr"])
        points = [(chosen, seed) for seed in (params.train.seeds if seeds is None else seeds)]
    jobs = []
    for lr, seed in points:
        name = model_name(variant, seed, lr if tuning else None)
        key = json.dumps({**identity, "code": code, "variant": variant, "seed": seed, "lr": lr, "tuning": tuning},
                         sort_keys=True, default=str)
        jobs.append(Job(name, variant, seed, lr, tuning, group, hashlib.sha256(key.encode()).hexdigest()[:16], shape,
                        layout.checkpoint(name, tuning), layout.history(name, tuning), layout.run_file(name, tuning)))
    return jobs


def stale(layout: Layout, variant: str, tuning: bool, jobs: list[Job]) -> list[Path]:
    """Files in the variant's folders that belong to no planned model (a seed or grid value removed
    from the params): they go, so that the stage's outputs are its params' models and nothing else."""
    planned = {path for job in jobs for path in (job.checkpoint, job.history, job.run_file)}
    folders = (layout.variant_folder(variant, tuning), layout.history_folder(variant, tuning))
    return sorted(path for folder in folders if folder.is_dir() for path in folder.glob("*.*")
                  if path.is_file() and path not in planned)
