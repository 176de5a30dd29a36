"""Which models a training stage trains: their names, settings, files and execution group, and the key
that says what trained them. A model on disk whose run file carries its job's key is done: adding a
seed or a trial trains only the new models, and a crash loses only the models still training."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.modeling.fit import FitResult
from pipeline.modeling.recipe import training_config
from pipeline.project.train_config import Setting
from pipeline.project import provenance
from pipeline.project.config import Params
from pipeline.project.layout import TUNING, Layout, PrepareSummary, model_name, read_chosen, replicate_name


@dataclass(frozen=True)
class Job:
    """One model to train: which one, its setting, its execution group, its key, where its files go."""

    name: str
    variant: str
    seed: int
    split: str  # the split it trains on: tuning's, or its replicate's (replicate r: seed r)
    setting: Setting
    trial: int | None  # tuning models: their trial's number; compared models: None
    group: str  # the MLflow grouping of one execution (data, params, code and DVC experiment)
    key: str  # what makes this model (data, params, code, variant, seed, setting), not where it ran
    shape: dict[str, Any]  # the train params every model of the execution shares
    checkpoint: Path
    history: Path
    probes: Path
    run_file: Path

    @property
    def tuning(self) -> bool:
        """A tuning model (a trial's), not a compared one."""
        return self.trial is not None

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


class Planner:
    """Jobs of one execution: its group, and the part of every key that the data, params and code fix."""

    def __init__(self, params: Params, layout: Layout, summary: PrepareSummary) -> None:
        self.layout, self.summary = layout, summary
        self.shape = training_config(params.train)
        # A model's data: the source and how it was cleaned, and its own split's rows and encoder (adding a
        # replicate changes no other replicate's models).
        prepare = {k: v for k, v in summary.params.items() if k not in ("replicates", "seed")}
        self.identity = {"data": summary.source_sha256, "prepare": prepare, "train": self.shape}
        self.group = provenance.group_key(self.identity)  # more replicates: the same execution, grown
        self.code = provenance.code_sha256("train")
        self.splits = {name: _file_hash(layout.split_file(name), layout.encoder(name))
                       for name in (TUNING, *summary.replicates) if layout.split_file(name).is_file()}

    def fingerprint(self, what: dict[str, Any]) -> str:
        """A short hash of this execution's data, params and code, and ``what``."""
        payload = json.dumps({**self.identity, "code": self.code, **what}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def job(self, variant: str, seed: int, setting: Setting, trial: int | None = None) -> Job:
        """One model's job: a trial's on the tuning split, or replicate ``seed``'s on its own split."""
        name, tuning = model_name(variant, seed, trial), trial is not None
        split = TUNING if tuning else replicate_name(seed)
        key = self.fingerprint({"variant": variant, "seed": seed, "trial": trial, "setting": setting.to_dict(),
                                "split": self.splits.get(split)})
        layout = self.layout
        return Job(name, variant, seed, split, setting, trial, self.group, key, self.shape,
                   layout.checkpoint(name, tuning), layout.history(name, tuning), layout.probes(name, tuning),
                   layout.run_file(name, tuning))

    def compared(self, variant: str, replicates: list[int] | None = None) -> list[Job]:
        """A variant's compared models, one per replicate (``replicates``, default all of them), at its
        chosen setting."""
        setting = Setting.from_dict(read_chosen(self.layout, variant))
        every = range(len(self.summary.replicates))
        return [self.job(variant, r, setting) for r in (every if replicates is None else replicates)]

    def trial(self, params: Params, variant: str, number: int, setting: Setting) -> list[Job]:
        """One tuning trial: its setting on every tuning seed."""
        return [self.job(variant, seed, setting, number) for seed in params.train.tune.seeds]


def stale(layout: Layout, variant: str, tuning: bool, jobs: list[Job], keep: tuple[Path, ...] = ()) -> list[Path]:
    """Files in the variant's folders that belong to no planned model (a seed or trial no longer in the
    params): they go, so that the stage's outputs are its params' models and nothing else."""
    planned = {path for job in jobs for path in (job.checkpoint, job.history, job.probes, job.run_file)} | set(keep)
    folders = (layout.variant_folder(variant, tuning), layout.history_folder(variant, tuning))
    return sorted(path for folder in folders if folder.is_dir() for path in folder.glob("*.*")
                  if path.is_file() and path not in planned)


def _file_hash(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
