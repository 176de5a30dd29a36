"""The training loop. It knows torch and nothing of files, DVC or MLflow; it reports through a callback."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

EpochCallback = Callable[[int, dict[str, float]], None]
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
    batch_sizes: list[int] = field(default_factory=list)  # the rows of each batch of an epoch


def resolve_device(requested: str) -> torch.device:
    """`auto` picks CUDA when present, else CPU; `cuda` without a GPU is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is available; "
                           "use train.device: auto or cpu, or install the CUDA build of torch")
    return torch.device(requested)


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


def fit(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
        cfg: FitConfig, device: torch.device, score: Scorer,
        on_epoch_end: EpochCallback | None = None) -> FitResult:
    """Train with mini-batches of a device-side permutation; keep the weights of the best val_ap epoch.

    ``score(labels, logits)`` turns each epoch's validation logits into metrics; it must return
    ``val_ap``, the early-stopping criterion.
    """
    torch.manual_seed(cfg.seed)
    model.to(device)
    x_train, y_train = (t.to(device, non_blocking=True) for t in train)
    x_val, y_val = (t.to(device, non_blocking=True) for t in val)
    y_train, y_val = y_train.float(), y_val.float()
    pos_weight = None if cfg.pos_weight is None else torch.tensor(cfg.pos_weight, device=device)
    criterion = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    optimizer = make_optimizer(model, cfg)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16 and device.type == "cuda")
    slices = batch_slices(x_train.shape[0], cfg.batch_size, cfg.min_batch)
    n_seen = x_train.shape[0]
    result = FitResult(batch_sizes=[s.stop - s.start for s in slices])
    best_state = copy.deepcopy(model.state_dict())

    for epoch in range(1, cfg.epochs + 1):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(x_train.shape[0], device=device, generator=generator)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        for part in slices:
            rows = order[part]
            xb, yb = x_train[rows], y_train[rows]
            with autocast:
                logits = model(xb).float()
            loss = criterion(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            loss_sum += loss.detach() * (part.stop - part.start)
            correct += ((logits.detach() > 0) == (yb > 0.5)).sum()
        train_loss = float(loss_sum) / n_seen  # one host sync per epoch
        if not math.isfinite(train_loss):
            raise DivergedError(epoch, train_loss, cfg.lr)
        with autocast:
            val_logits = predict_logits(model, x_val)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        val_loss = float(criterion(val_logits, y_val))
        record = {"train_loss": train_loss, "train_accuracy": float(correct) / n_seen, "val_loss": val_loss,
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
        if cfg.patience and epoch - result.best_epoch >= cfg.patience:
            result.stopped_early = epoch < cfg.epochs
            break
    model.load_state_dict(best_state)
    return result
