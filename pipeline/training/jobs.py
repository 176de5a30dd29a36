"""Which models a training stage trains and what each trains with: their names, settings, files and
execution group, the key that says what trained them, and the network and loop settings the params and a
setting make. A model on disk whose run file carries its job's key is done: adding a seed or a trial
trains only the new models, and a crash loses only the models still training."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipeline.data.encoder import embedding_dim
from pipeline.modeling.network import MLPConfig
from pipeline.project import provenance
from pipeline.project.artefacts import Chosen, PrepareSummary, RunFile
from pipeline.project.layout import TUNING, Layout, model_name, replicate_name
from pipeline.project.params import ModelParams, OptimizerParams, Params, Setting, TrainParams
from pipeline.project.variants import Catalogue
from pipeline.training.loop import FitConfig, FitResult


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
        try:
            info = RunFile.model_validate_json(self.run_file.read_text())
        except ValidationError:  # a file of another version: trained again
            return False
        return info.key == self.key and (self.checkpoint.is_file() or info.diverged_at is not None)


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
        self.catalogue = Catalogue(params)
        self.shape = training_config(params.train)
        # A model's data: the source and how it was cleaned, and its own split's rows and encoder (adding a
        # replicate changes no other replicate's models).
        prepare = {k: v for k, v in summary.params.items() if k not in ("replicates", "seed")}
        self.identity = {"data": summary.source_sha256, "prepare": prepare, "train": self.shape}
        self.group = provenance.group_key(self.identity)  # more replicates: the same execution, grown
        self.code = provenance.code_sha256("train")
        self.splits = {
            name: _file_hash(layout.split_file(name), layout.encoder(name))
            for name in (TUNING, *summary.replicates)
            if layout.split_file(name).is_file()
        }

    def fingerprint(self, what: dict[str, Any]) -> str:
        """A short hash of this execution's data, params and code, and ``what``."""
        payload = json.dumps({**self.identity, "code": self.code, **what}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def job(self, variant: str, seed: int, setting: Setting, trial: int | None = None) -> Job:
        """One model's job: a trial's on the tuning split, or replicate ``seed``'s on its own split."""
        name, tuning = model_name(variant, seed, trial), trial is not None
        split = TUNING if tuning else replicate_name(seed)
        key = self.fingerprint(
            {
                "variant": variant,
                "recipe": self.catalogue.recipe(variant),  # a changed declaration retrains its models
                "seed": seed,
                "trial": trial,
                "setting": setting.model_dump(),
                "split": self.splits.get(split),
            }
        )
        layout = self.layout
        return Job(
            name,
            variant,
            seed,
            split,
            setting,
            trial,
            self.group,
            key,
            self.shape,
            layout.checkpoint(name, tuning),
            layout.history(name, tuning),
            layout.probes(name, tuning),
            layout.run_file(name, tuning),
        )

    def compared(self, variant: str, replicates: list[int] | None = None) -> list[Job]:
        """A variant's compared models, one per replicate (``replicates``, default all of them), at its
        chosen setting."""
        setting = Chosen.read(self.layout.chosen_setting(variant), "select").setting
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
    return sorted(
        path
        for folder in folders
        if folder.is_dir()
        for path in folder.glob("*.*")
        if path.is_file() and path not in planned
    )


def _file_hash(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def training_config(train: TrainParams) -> dict[str, Any]:
    """The train params shared by every model of an execution: not the variant or seed lists, nor how
    tuning runs (its trials and space), nor how many models train together (a stack trains each model
    as it would train alone), nor where the stacks train (a Ray task trains what this process would)."""
    return train.model_dump(exclude={"variants", "seeds", "tune", "stack", "cluster"})


def mlp_config(model: ModelParams, n_features: int, setting: Setting, categories: tuple[int, ...] = ()) -> MLPConfig:
    """A variant's network (``model``: the shared recipe with its overrides, ``Catalogue[variant].model``):
    ``n_features`` numeric inputs and an embedding per categorical column (``categories``: each one's rows,
    its width data.encoder.embedding_dim's rule times ``model.embedding_scale``)."""
    return MLPConfig(
        n_features=n_features,
        hidden=tuple(model.hidden),
        dropout=setting.dropout,
        activation=model.activation,
        norm=model.norm,
        norm_placement=model.batchnorm_placement,
        embeddings=tuple((rows, max(1, round(model.embedding_scale * embedding_dim(rows)))) for rows in categories),
    )


def fit_config(
    train: TrainParams, optimizer: OptimizerParams, seed: int, setting: Setting, negatives: int, positives: int
) -> FitConfig:
    """The training loop's settings: the train params, the variant's optimizer, the setting, and the class
    weight it implies for a training split of these counts."""
    return FitConfig(
        epochs=train.epochs,
        batch_size=setting.batch_size,
        min_batch=train.min_batch,
        lr=setting.lr,
        seed=seed,
        optimizer=optimizer.name,
        weight_decay=setting.weight_decay,
        momentum=optimizer.momentum,
        pos_weight=pos_weight(setting, negatives, positives),
        grad_clip=train.grad_clip,
        patience=train.patience,
        bf16=train.bf16,
        probe_growth=train.probe_growth,
    )


def prior_logit(setting: Setting, negatives: int, positives: int) -> float:
    """The output bias that predicts the training split's base rate under the setting's class weight:
    the log-odds of positives (each weighted by pos_weight) against negatives. Every variant starts
    from it, so that early training loss measures learning, not finding the base rate."""
    weight = pos_weight(setting, negatives, positives) or 1.0
    return math.log(weight * positives / negatives)


def pos_weight(setting: Setting, negatives: int, positives: int) -> float | None:
    """`none`, `balanced` (negatives/positives of the training split) or the number given."""
    if setting.pos_weight == "none":
        return None
    if setting.pos_weight == "balanced":
        return negatives / positives
    return float(setting.pos_weight)
