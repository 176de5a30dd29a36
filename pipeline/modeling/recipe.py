"""From the train params and a tuned setting to what the model and the loop take: the MLP of a variant,
the loop's settings, the positive-class weight, and the settings every model of an execution shares."""

from __future__ import annotations

import math
from typing import Any

from pipeline.modeling.fit import FitConfig
from pipeline.data.encoder import embedding_dim
from pipeline.modeling.model import MLPConfig
from pipeline.project.train_config import Setting, TrainParams
from pipeline.project.variants import variant as catalogue_entry


def training_config(train: TrainParams) -> dict[str, Any]:
    """The train params shared by every model of an execution: not the variant or seed lists, nor how
    tuning runs (its trials and space), nor how many models train together (a stack trains each model
    as it would train alone)."""
    return train.model_dump(exclude={"variants", "seeds", "tune", "stack"})


def mlp_config(train: TrainParams, variant: str, n_features: int, setting: Setting,
               categories: tuple[int, ...] = ()) -> MLPConfig:
    """The network of one variant: ``n_features`` numeric inputs and an embedding per categorical column
    (``categories``: each one's rows, its width by data.encoder.embedding_dim); variants differ in their
    normalisation layers only."""
    model = train.model
    return MLPConfig(n_features=n_features, hidden=tuple(model.hidden), dropout=setting.dropout,
                     activation=model.activation, norm=catalogue_entry(variant).norm,
                     norm_placement=model.batchnorm_placement,
                     embeddings=tuple((rows, embedding_dim(rows)) for rows in categories))


def fit_config(train: TrainParams, seed: int, setting: Setting, negatives: int, positives: int) -> FitConfig:
    """The training loop's settings: the train params, the setting, and the class weight it implies
    for a training split of these counts."""
    return FitConfig(epochs=train.epochs, batch_size=setting.batch_size, min_batch=train.min_batch, lr=setting.lr,
                     seed=seed, optimizer=train.optimizer.name, weight_decay=setting.weight_decay,
                     momentum=train.optimizer.momentum, pos_weight=pos_weight(setting, negatives, positives),
                     grad_clip=train.grad_clip, patience=train.patience, bf16=train.bf16,
                     probe_growth=train.probe_growth)


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
