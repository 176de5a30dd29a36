"""From the train params to what the model and the loop take: the MLP of a variant, the loop's
settings, the positive-class weight, and the settings every model of an execution shares."""

from __future__ import annotations

from typing import Any

from pipeline.modeling.fit import FitConfig
from pipeline.modeling.model import MLPConfig
from pipeline.project.config import TrainParams
from pipeline.project.variants import variant as catalogue_entry


def training_config(train: TrainParams) -> dict[str, Any]:
    """The train params shared by every model of an execution: not the grid, variant or seed lists,
    nor how many models train together (a stack trains each model as it would train alone)."""
    return train.model_dump(exclude={"variants", "seeds", "lr", "tune_seeds", "stack"})


def mlp_config(train: TrainParams, variant: str, n_features: int) -> MLPConfig:
    """The network of one variant: variants differ in their normalisation layers only."""
    model = train.model
    return MLPConfig(n_features=n_features, hidden=tuple(model.hidden), dropout=model.dropout,
                     activation=model.activation, norm=catalogue_entry(variant).norm,
                     norm_placement=model.batchnorm_placement)


def fit_config(train: TrainParams, seed: int, lr: float, pos_weight: float | None) -> FitConfig:
    """The training loop's settings, straight from the train params."""
    return FitConfig(epochs=train.epochs, batch_size=train.batch_size, min_batch=train.min_batch, lr=lr, seed=seed,
                     optimizer=train.optimizer.name, weight_decay=train.optimizer.weight_decay,
                     momentum=train.optimizer.momentum, pos_weight=pos_weight, grad_clip=train.grad_clip,
                     patience=train.patience, bf16=train.bf16)


def pos_weight(train: TrainParams, negatives: int, positives: int) -> float | None:
    """`none`, `balanced` (negatives/positives of the training split) or the number given."""
    if train.pos_weight == "none":
        return None
    if train.pos_weight == "balanced":
        return negatives / positives
    return float(train.pos_weight)
