"""Training over several processes with torch.distributed, as launched by torchrun: which process
this is, BatchNorm with statistics all-reduced over the global batch, sums and row gathers across
processes. Torch only, like the training loop.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.constants import default_pg_timeout

log = logging.getLogger("pipeline.distributed")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (a single process by default)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    max_restarts: int = 0  # how often torchrun may restart the processes after one died
    attempt: int = 0  # how often it has restarted them so far

    @classmethod
    def from_env(cls) -> World:
        """What torchrun tells each worker (RANK, WORLD_SIZE, LOCAL_RANK, TORCHELASTIC_MAX_RESTARTS,
        TORCHELASTIC_RESTART_COUNT); one process without it."""
        return cls(rank=int(os.environ.get("RANK", 0)), size=int(os.environ.get("WORLD_SIZE", 1)),
                   local_rank=int(os.environ.get("LOCAL_RANK", 0)),
                   max_restarts=int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", 0)),
                   attempt=int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0)))

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that talks to MLflow and writes outputs."""
        return self.rank == 0

    def bounds(self, n: int) -> tuple[int, int]:
        """This rank's contiguous shard [start, stop) of n rows."""
        return n * self.rank // self.size, n * (self.rank + 1) // self.size

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The element-wise sum over ranks (in place)."""
        if self.size > 1:
            dist.all_reduce(tensor)
        return tensor

    def gather_rows(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every rank's rows, in rank order, on every rank: shards of any length, nothing padded
        or repeated in the result."""
        if self.size == 1:
            return tensor
        count = torch.tensor([tensor.shape[0]], device=tensor.device)
        counts = [torch.zeros_like(count) for _ in range(self.size)]
        dist.all_gather(counts, count)
        longest = int(max(c.item() for c in counts))
        padded = torch.zeros((longest, *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device)
        padded[:tensor.shape[0]] = tensor
        parts = [torch.empty_like(padded) for _ in range(self.size)]
        dist.all_gather(parts, padded)
        return torch.cat([part[:int(c.item())] for part, c in zip(parts, counts)])

    def gather_objects(self, obj: object) -> list[object]:
        """Every rank's (picklable) object, in rank order, on every rank."""
        if self.size == 1:
            return [obj]
        out: list[object] = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: object) -> object:
        """Rank 0's (picklable) object, on every rank."""
        if self.size == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def start(world: World, device: torch.device) -> None:
    """Join the process group (NCCL on CUDA, gloo on CPU); a single process joins nothing."""
    if world.size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        store = _attempt_store(world)
        if store is None:
            dist.init_process_group(backend=backend)
        else:
            dist.init_process_group(backend=backend, store=store, rank=world.rank, world_size=world.size)


def _attempt_store(world: World) -> dist.Store | None:
    """The store of this attempt's rendezvous, when torchrun may restart its workers.

    torchrun keeps one TCPStore for every restart of its workers, so the keys of a crashed attempt
    (its ranks' addresses) are still there when the restarted ranks meet, and a rank may dial a dead
    peer (pytorch/pytorch#135712). On one node the restart count is the same for every worker: each
    attempt gets its own keys. Over several nodes the counts can differ; there the fix is
    ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` for torchrun, which this warns about. None: the default.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True" or world.max_restarts == 0:
        return None
    if int(os.environ.get("LOCAL_WORLD_SIZE", world.size)) != world.size:
        if world.is_main:
            log.warning("torchrun --max-restarts over several nodes: export TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 "
                        "before torchrun on every node, or restarted ranks may fail to meet (pytorch#135712)")
        return None
    shared = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world.size,
                           is_master=False, timeout=default_pg_timeout)
    return dist.PrefixStore(f"pipeline/attempt{world.attempt}", shared)


def stop(world: World) -> None:
    """Leave the process group."""
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()


class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) whose gradient is the all-reduced gradient: each rank's input feeds every
    rank's output, so every rank's loss reaches it."""

    @staticmethod
    def forward(ctx: object, tensor: torch.Tensor) -> torch.Tensor:  # noqa: ARG004
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:  # noqa: ARG004
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class AllReduceBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d whose training statistics are those of the global batch: per-feature sums, sums
    of squares and row counts are all-reduced (with autograd, so gradients flow through the global
    statistics as in one process). torch's SyncBatchNorm does this on CUDA only."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not dist.is_initialized() or dist.get_world_size() == 1:
            return super().forward(x)
        width = x.shape[1]
        local = torch.cat([x.sum(0), (x * x).sum(0), x.new_full((1,), float(x.shape[0]))])
        total = _SumOverRanks.apply(local)
        rows = total[-1]
        mean = total[:width] / rows
        var = (total[width:2 * width] / rows - mean * mean).clamp_min(0)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * rows / (rows - 1), alpha=m)
        out = (x - mean) * torch.rsqrt(var + self.eps)
        return out * self.weight + self.bias if self.affine else out


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm over the global batch: torch's SyncBatchNorm on CUDA, AllReduceBatchNorm on CPU.
    The state dict keeps its keys, so checkpoints load into the plain model."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm1d:
            synced = AllReduceBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                        child.track_running_stats)
            synced.load_state_dict(child.state_dict())
            setattr(model, name, synced.to(device))
        else:
            sync_batchnorm(child, device)
    return model
