"""Training over several processes, as torchrun launches them: which process this is, the process group
(NCCL on CUDA, gloo on CPU), the global batch's BatchNorm statistics and the sums and row gathers across
processes, each process's device, and the stage's relaunch of itself through torchrun.

One model trains over N processes (a stack of one): every process holds a contiguous shard of the rows,
computes on the rows of each global batch that fall in it, and the flat gradient is summed over the
processes after every step (what DDP does, in one bucket), so every process takes the same step.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.constants import default_pg_timeout

from pipeline.project.params import PARAMS_FILE, load_params
from pipeline.runtime.errors import UserError

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
        return cls(
            rank=int(os.environ.get("RANK", 0)),
            size=int(os.environ.get("WORLD_SIZE", 1)),
            local_rank=int(os.environ.get("LOCAL_RANK", 0)),
            max_restarts=int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", 0)),
            attempt=int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0)),
        )

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
        padded[: tensor.shape[0]] = tensor
        parts = [torch.empty_like(padded) for _ in range(self.size)]
        dist.all_gather(parts, padded)
        return torch.cat([part[: int(c.item())] for part, c in zip(parts, counts)])

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


def join(world: World, device: torch.device) -> None:
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
            log.warning(
                "torchrun --max-restarts over several nodes: export TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 "
                "before torchrun on every node, or restarted ranks may fail to meet (pytorch#135712)"
            )
        return None
    shared = dist.TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        world.size,
        is_master=False,
        timeout=default_pg_timeout,
    )
    return dist.PrefixStore(f"pipeline/attempt{world.attempt}", shared)


def leave(world: World) -> None:
    """Leave the process group."""
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()


class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) whose gradient is the all-reduced gradient: each rank's input feeds every
    rank's output, so every rank's loss reaches it."""

    @staticmethod
    def forward(ctx: object, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def global_statistics(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A BatchNorm layer's statistics over the global batch (modeling.network.BatchStatistics): per-unit
    sums, sums of squares and the row count of every process, all-reduced with autograd, so gradients flow
    through the global statistics as in one process. ``h`` is (k, width, rows); mean and biased variance
    (k, width), and the global rows. torch's SyncBatchNorm does this for nn.BatchNorm1d, on CUDA only."""
    k, width, rows = h.shape
    local = torch.cat([h.sum(2).reshape(-1), (h * h).sum(2).reshape(-1), h.new_full((1,), float(rows))])
    total = _SumOverRanks.apply(local)
    count = total[-1]
    mean = total[: k * width].view(k, width) / count
    var = (total[k * width : 2 * k * width].view(k, width) / count - mean * mean).clamp_min(0)
    return mean, var, count


def resolve_device(requested: str, local_rank: int = 0) -> torch.device:
    """`auto` picks CUDA when present, else CPU; `cuda` without a GPU is an error. Under torchrun
    each process on a machine takes the GPU of its local rank."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "train.device is 'cuda' but no CUDA device is available; "
            "use train.device: auto or cpu, or install the CUDA build of torch"
        )
    if requested == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    if local_rank >= torch.cuda.device_count():
        raise RuntimeError(
            f"process {local_rank} has no GPU of its own ({torch.cuda.device_count()} found); "
            "set train.distributed.nproc to at most the number of GPUs"
        )
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def torchrun_command(argv: list[str], module: str = "pipeline.train") -> tuple[list[str], dict[str, str]] | None:
    """`torchrun --standalone --nproc_per_node N -m MODULE ARGS` and its environment (the
    CPU cores shared out between ranks unless OMP_NUM_THREADS is set) when train.distributed.nproc
    is above 1 and this is not already one of torchrun's workers; None otherwise (also when the
    params cannot be read: the stage itself then says why)."""
    if "LOCAL_RANK" in os.environ:
        return None
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--params", type=Path, default=PARAMS_FILE)
    try:
        launch = load_params(parser.parse_known_args(argv)[0].params).train.distributed
    except UserError:  # the stage itself says what is wrong with the params, with the fix
        return None
    if launch.nproc == 1:
        return None
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(launch.nproc),
        "--max-restarts",
        str(launch.max_restarts),
        "-m",
        module,
        *argv,
    ]
    return command, {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // launch.nproc)), **os.environ}
