"""Run under torchrun by tests/training/test_distributed.py: train a small MLP on every rank's shard and save
rank 0's weights. ``python -m tests.helpers.distributed_fit VARIANT SYNC OUT`` (SYNC: 1 or 0)."""

from __future__ import annotations

import sys

import torch

from pipeline.modeling.network import MLPConfig
from pipeline.training import distributed
from pipeline.training.distributed import World
from pipeline.training.loop import FitConfig, FitData, FitEnv, FitHooks, Member, fit

ROWS, FEATURES = 1000, 6
CFG = FitConfig(
    epochs=2,
    batch_size=64,
    min_batch=16,
    lr=0.1,
    seed=0,
    optimizer="sgd",
    weight_decay=0.0,
    momentum=0.9,
    pos_weight=None,
    grad_clip=0.0,
    patience=0,
    bf16=False,
)


def data() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Seeded rows with a learnable, imbalanced label (train, val)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(ROWS + 300, FEATURES, generator=g) * 2 + 1
    y = (x[:, 0] + 0.5 * x[:, 1] + 0.3 * torch.randn(ROWS + 300, generator=g) > 3).float()
    return (x[:ROWS], y[:ROWS]), (x[ROWS:], y[ROWS:])


def score(labels: torch.Tensor, logits: torch.Tensor) -> dict[str, float]:
    """A stand-in validation metric: the negative loss (higher is better; no ties between epochs)."""
    return {"val_ap": -float(torch.nn.functional.binary_cross_entropy_with_logits(logits, labels))}


def train(variant: str, sync: bool, world: World) -> dict[str, torch.Tensor]:
    """Train on this rank's shards of the data; the model's weights (the best epoch's, as a checkpoint)."""
    config = MLPConfig(
        n_features=FEATURES,
        hidden=(16, 8),
        dropout=0.0,
        activation="relu",
        norm={"batchnorm": "batchnorm", "baseline": "none"}[variant],  # the default declarations' norms
        norm_placement="before",
    )
    (x, y), (xv, yv) = data()
    a, b = world.bounds(x.shape[0])
    c, d = world.bounds(xv.shape[0])
    (outcome,) = fit(
        [Member(config, CFG)],
        FitData((x[a:b], y[a:b]), (xv[c:d], yv[c:d])),
        FitEnv(torch.device("cpu"), world, norm_synced=sync),
        FitHooks(score),
    )
    return outcome.state  # type: ignore[return-value]


if __name__ == "__main__":
    variant, sync, out = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
    world = World.from_env()
    distributed.join(world, torch.device("cpu"))
    trained = train(variant, sync, world)
    if world.is_main:
        torch.save(trained, out)
    distributed.leave(world)
