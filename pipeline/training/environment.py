"""Where training runs: this process's device (joined to the other training processes under torchrun)
and the prepared rows it trains on."""

from __future__ import annotations

import logging

import torch

from pipeline.modeling import distributed
from pipeline.modeling.distributed import World
from pipeline.modeling.fit import FitData, FitEnv, resolve_device
from pipeline.project.config import Params
from pipeline.project.layout import Layout, PrepareSummary, Split, load_split
from pipeline.runtime.errors import StageError

log = logging.getLogger("pipeline.train")


def environment(params: Params, world: World) -> FitEnv:
    """The device of this process, joined to the other training processes."""
    try:
        device = resolve_device(params.train.device, world.local_rank)
    except RuntimeError as exc:
        raise StageError(str(exc)) from None
    distributed.start(world, device)
    if params.train.bf16 and device.type != "cuda":
        log.warning("train.bf16 is ignored on %s (bf16 autocast is CUDA only)", device.type)
    return FitEnv(device, world, norm_synced=params.train.batchnorm_sync or world.size == 1)


def splits(layout: Layout, summary: PrepareSummary) -> tuple[Split, Split]:
    """The prepared training and validation splits."""
    return load_split(layout.prepared, "train", summary.label), load_split(layout.prepared, "val", summary.label)


def shards(train: Split, val: Split, world: World) -> FitData:
    """This rank's contiguous shards of the training and validation splits (all of them in one process)."""
    def shard(split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        start, stop = world.bounds(split.y.size)
        return torch.from_numpy(split.x[start:stop]), torch.from_numpy(split.y[start:stop])

    return FitData(shard(train), shard(val))
