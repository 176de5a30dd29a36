"""The training loop. It knows torch and nothing of files, DVC or MLflow; it reports through a callback."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from pipeline.distributed import World

EpochCallback = Callable[[int, dict[str, float]], None]
# Everything needed to go on after an epoch: weights, optimizer, shuffling generator, history, best.
Snapshot = dict[str, Any]
# Validation metrics of one epoch from (labels, logits) on the CPU; the caller chooses them.
Scorer = Callable[[torch.Tensor, torch.Tensor], dict[str, float]]


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int, loss: float, lr: float) -> None:
        super().__init__(f"training diverged at epoch {epoch} (train_loss {loss}); "
                         f"lower train.lr (now {lr:g}), e.g. to {lr / 10:g}")
        self.epoch = epoch


@dataclass(frozen=True)
class FitConfig:
    """Hyper-parameters of one training run (built from params.yaml; no defaults of its own)."""

    epochs: int
    batch_size: int
    min_batch: int  # no batch is smaller (BatchNorm statistics of a few rows are noise)
    lr: float
    seed: int
    optimizer: Literal["adam", "adamw", "sgd"]
    weight_decay: float
    momentum: float
    pos_weight: float | None
    grad_clip: float
    patience: int
    bf16: bool


@dataclass
class FitResult:
    """What fit() leaves behind besides the (best) weights in the model itself."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_ap: float = float("-inf")
    stopped_early: bool = False
    batch_sizes: list[int] = field(default_factory=list)  # the rows of each (global) batch of an epoch
    norm_batch_sizes: list[int] = field(default_factory=list)  # the rows BatchNorm's statistics saw per batch


def resolve_device(requested: str, local_rank: int = 0) -> torch.device:
    """`auto` picks CUDA when present, else CPU; `cuda` without a GPU is an error. Under torchrun
    each process on a machine takes the GPU of its local rank."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is available; "
                           "use train.device: auto or cpu, or install the CUDA build of torch")
    if requested == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    if local_rank >= torch.cuda.device_count():
        raise RuntimeError(f"process {local_rank} has no GPU of its own ({torch.cuda.device_count()} found); "
                           "set train.distributed.nproc to at most the number of GPUs")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def make_optimizer(model: nn.Module, cfg: FitConfig) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD with momentum."""
    # The fused kernels do one pass over all parameters per step: fewer tiny ops on CPU and GPU.
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


class BatchError(ValueError):
    """The training split cannot be cut into batches of the minimum size."""


def batch_slices(n: int, batch_size: int, min_batch: int) -> list[slice]:
    """Batches of ``batch_size`` rows covering all ``n`` rows; a last batch shorter than
    ``min(min_batch, batch_size)`` joins the one before it, so no batch is ever that small."""
    smallest = min(min_batch, batch_size)
    if n < smallest:
        raise BatchError(f"the training split has {n} rows, fewer than the smallest batch allowed ({smallest}); "
                         "use more data or lower train.min_batch")
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] < smallest:
        starts.pop()
    return [slice(start, end) for start, end in zip(starts, [*starts[1:], n])]


@torch.inference_mode()
def predict_logits(model: nn.Module, x: torch.Tensor, chunk: int = 65_536) -> torch.Tensor:
    """Logits for every row, in eval mode (running BatchNorm statistics, no dropout)."""
    was_training = model.training
    model.eval()
    out = torch.cat([model(x[i:i + chunk]).float() for i in range(0, x.shape[0], chunk)])
    model.train(was_training)
    return out


def _rng_state(device: torch.device) -> list[torch.Tensor]:
    """The global random state that dropout draws from (not the permutation generator)."""
    return [torch.get_rng_state(), *([torch.cuda.get_rng_state(device)] if device.type == "cuda" else [])]


def _set_rng_state(state: list[torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if device.type == "cuda" and len(state) > 1:
        torch.cuda.set_rng_state(state[1], device)


def fit(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
        cfg: FitConfig, device: torch.device, score: Scorer,
        on_epoch_end: EpochCallback | None = None, world: World = World(),
        norm_synced: bool = True, resume: Snapshot | None = None,
        on_snapshot: Callable[[Snapshot], None] | None = None) -> FitResult:
    """Train with mini-batches of a device-side permutation; keep the weights of the best val_ap epoch.

    ``score(labels, logits)`` turns each epoch's validation logits into metrics; it must return
    ``val_ap``, the early-stopping criterion.

    Over several processes (``world``), ``train`` and ``val`` are this rank's contiguous shards
    (``world.bounds``). Every rank draws the same permutation of all training rows, so the global
    batches are those of one process; each rank computes on the rows of each batch that fall in its
    shard, the loss is scaled so that DistributedDataParallel's average is the global batch mean,
    and validation scores are gathered from all ranks. ``norm_synced`` says whether BatchNorm
    layers see the global batch (see distributed.sync_batchnorm) or only this rank's rows.

    ``on_snapshot``, given on every rank or none, receives the state after every epoch (``done``
    once training is over; every rank's random state); ``resume`` (such a state, the same on every
    rank) goes on from it.
    """
    torch.manual_seed(cfg.seed)
    model.to(device)
    x_train, y_train = (t.to(device, non_blocking=True) for t in train)
    x_val, y_val = (t.to(device, non_blocking=True) for t in val)
    y_train, y_val = y_train.float(), world.gather_rows(y_val.float())
    n_seen = int(world.sum(torch.tensor(x_train.shape[0], device=device)))
    first, last = world.bounds(n_seen)
    if last - first != x_train.shape[0]:
        raise ValueError(f"rank {world.rank} holds {x_train.shape[0]} training rows, not its shard {first}:{last}")
    if resume is not None:
        model.load_state_dict(resume["model"])
    ids = [device.index] if device.type == "cuda" else None
    net = model if world.size == 1 else DistributedDataParallel(model, device_ids=ids)
    pos_weight = None if cfg.pos_weight is None else torch.tensor(cfg.pos_weight, device=device)
    criterion = nn.BCEWithLogitsLoss(pos_weight=pos_weight, reduction="mean" if world.size == 1 else "sum")
    optimizer = make_optimizer(model, cfg)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16 and device.type == "cuda")
    slices = batch_slices(n_seen, cfg.batch_size, cfg.min_batch)
    sizes = [s.stop - s.start for s in slices]
    result = FitResult(batch_sizes=sizes, norm_batch_sizes=sizes if norm_synced else [s // world.size for s in sizes])
    best_state = copy.deepcopy(model.state_dict())
    first_epoch = 1
    if resume is not None:  # a finished model's snapshot (``done``) runs no epoch
        optimizer.load_state_dict(resume["optimizer"])
        generator.set_state(resume["generator"])
        result.history, best_state = list(resume["history"]), resume["best_state"]
        result.best_epoch, result.best_val_ap = resume["best_epoch"], resume["best_val_ap"]
        result.stopped_early = resume["stopped_early"]
        if len(resume["rng"]) == world.size:  # dropout goes on with the same masks
            _set_rng_state(resume["rng"][world.rank], device)
        first_epoch = cfg.epochs + 1 if resume["done"] else resume["epoch"] + 1

    for epoch in range(first_epoch, cfg.epochs + 1):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(n_seen, device=device, generator=generator)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        for part in slices:
            rows = order[part]
            if world.size > 1:  # this rank's rows of the global batch
                rows = rows[(rows >= first) & (rows < last)] - first
            xb, yb = x_train[rows], y_train[rows]
            with autocast:
                logits = net(xb).float()
            loss = criterion(logits, yb)
            if world.size > 1:  # DDP averages over ranks: the result is the global batch mean
                batch_sum, loss = loss.detach(), loss * (world.size / (part.stop - part.start))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            loss_sum += loss.detach() * (part.stop - part.start) if world.size == 1 else batch_sum
            correct += ((logits.detach() > 0) == (yb > 0.5)).sum()
        totals = world.sum(torch.stack([loss_sum.double(), correct.double()]))
        train_loss, n_correct = float(totals[0]) / n_seen, float(totals[1])  # one host sync per epoch
        if not math.isfinite(train_loss):
            raise DivergedError(epoch, train_loss, cfg.lr)
        with autocast:
            val_logits = world.gather_rows(predict_logits(model, x_val))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        val_loss = float(nn.functional.binary_cross_entropy_with_logits(val_logits, y_val, pos_weight=pos_weight))
        record = {"train_loss": train_loss, "train_accuracy": n_correct / n_seen, "val_loss": val_loss,
                  **score(y_val.cpu(), val_logits.cpu())}
        seconds = time.perf_counter() - start
        record.update(epoch_seconds=seconds, samples_per_second=n_seen / seconds,
                      lr=optimizer.param_groups[0]["lr"])
        result.history.append({"epoch": epoch, **record})
        if record["val_ap"] > result.best_val_ap:
            result.best_val_ap, result.best_epoch = record["val_ap"], epoch
            best_state = copy.deepcopy(model.state_dict())
        if on_epoch_end is not None:
            on_epoch_end(epoch, record)
        stop = bool(cfg.patience) and epoch - result.best_epoch >= cfg.patience
        result.stopped_early = stop and epoch < cfg.epochs
        if on_snapshot is not None:  # called on every rank: each one's random state is in it
            on_snapshot({"epoch": epoch, "rng": world.gather_objects(_rng_state(device)), "done": stop or epoch == cfg.epochs, "stopped_early": result.stopped_early,
                         "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "generator": generator.get_state(), "history": result.history, "best_state": best_state,
                         "best_epoch": result.best_epoch, "best_val_ap": result.best_val_ap})
        if stop:
            break
    model.load_state_dict(best_state)
    return result
