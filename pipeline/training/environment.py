"""Where training runs: this process's device (joined to the other training processes under torchrun)
and the prepared rows it trains on."""

from __future__ import annotations

import logging

import torch

from pipeline.modeling import distributed
from pipeline.modeling.distributed import World
from pipeline.modeling.devices import resolve_device
from pipeline.modeling.fit import FitData, FitEnv
from pipeline.project.config import Params
from pipeline.data.prepared import Prepared, Split
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


def training_rows(prepared: Prepared, split: str) -> tuple[Split, Split]:
    """A split's training and validation parts, encoded by its own encoder."""
    parts = prepared.parts(split, ("train", "val"))
    return parts["train"], parts["val"]


def shards(train: Split, val: Split, world: World) -> FitData:
    """This rank's contiguous shards of the training and validation parts (all of them in one process)."""
    def shard(split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        start, stop = world.bounds(split.y.size)
        return torch.from_numpy(split.x[start:stop]), torch.from_numpy(split.y[start:stop])

    return FitData(shard(train), shard(val))
