"""The training loop. It knows torch and nothing of files, DVC or MLflow; it reports through callbacks."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from pipeline.modeling.batches import batch_slices
from pipeline.modeling.distributed import World
from pipeline.modeling.model import predict_logits
from pipeline.modeling.probes import Clock, probe_record, probe_steps
from pipeline.modeling.snapshots import Snapshot, rng_state, set_rng_state

EpochCallback = Callable[[int, dict[str, float]], None]
# Validation metrics of one epoch from (labels, logits) on the CPU; the caller chooses them.
Scorer = Callable[[torch.Tensor, torch.Tensor], dict[str, float]]
Rows = tuple[torch.Tensor, torch.Tensor]  # features and 0/1 labels


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int, loss: float, lr: float) -> None:
        super().__init__(f"training diverged at epoch {epoch} (train_loss {loss}); "
                         f"lower train.tune.space.lr (now {lr:g}), e.g. to {lr / 10:g}")
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
    probe_growth: float = 0.0  # validate at steps growing by this factor (modeling.probes); 0: epochs only


@dataclass
class FitResult:
    """What fit() leaves behind besides the (best) weights in the model itself."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_ap: float = float("-inf")
    stopped_early: bool = False
    batch_sizes: list[int] = field(default_factory=list)  # the rows of each (global) batch of an epoch
    norm_batch_sizes: list[int] = field(default_factory=list)  # the rows BatchNorm's statistics saw per batch
    probes: list[dict[str, float]] = field(default_factory=list)  # validation at probe steps and epoch ends

    def add(self, epoch: int, record: dict[str, float]) -> bool:
        """Record one epoch; True when its validation AP is the best so far (its weights are kept)."""
        self.history.append({"epoch": epoch, **record})
        if record["val_ap"] > self.best_val_ap:
            self.best_val_ap, self.best_epoch = record["val_ap"], epoch
            return True
        return False

    def done(self, epoch: int, cfg: FitConfig) -> bool:
        """Whether training ends after this epoch: the last one, or ``patience`` epochs without a better
        validation AP (early stopping, noted in ``stopped_early``)."""
        stop = bool(cfg.patience) and epoch - self.best_epoch >= cfg.patience
        self.stopped_early = stop and epoch < cfg.epochs
        return stop or epoch == cfg.epochs


def epoch_record(train_loss: float, train_accuracy: float, validation: dict[str, float], seconds: float,
                 rows: int, lr: float, stack_size: int = 1) -> dict[str, float]:
    """One epoch's history row (every loop writes the same keys, in the same order). ``seconds`` is the
    epoch's wall time, shared by the ``stack_size`` models trained together in it."""
    return {"train_loss": train_loss, "train_accuracy": train_accuracy, **validation, "epoch_seconds": seconds,
            "samples_per_second": rows / seconds, "lr": lr, "stack_size": stack_size}


def make_optimizer(model: nn.Module, cfg: FitConfig) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD with momentum."""
    # The fused kernels do one pass over all parameters per step: fewer tiny ops on CPU and GPU.
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


@dataclass(frozen=True)
class FitData:
    """The rows to train on and to validate on: all of them, or this rank's contiguous shards
    (``World.bounds``) when training runs over several processes."""

    train: Rows
    val: Rows


@dataclass(frozen=True)
class FitEnv:
    """Where training runs: the device, the processes (one by default), and whether BatchNorm layers
    see the global batch (see distributed.sync_batchnorm) or only this rank's rows."""

    device: torch.device
    world: World = World()
    norm_synced: bool = True


@dataclass(frozen=True)
class FitHooks:
    """What the caller is told. ``score(labels, logits)`` turns each epoch's validation logits into
    metrics and must return ``val_ap``, the early-stopping criterion; ``on_epoch_end(epoch, record)``
    sees each epoch's record; ``on_snapshot``, given on every rank or none, receives the state after
    every epoch (see snapshots.Snapshot); ``on_step`` sees each step's loss (a tensor on the device)."""

    score: Scorer
    on_epoch_end: EpochCallback | None = None
    on_snapshot: Callable[[Snapshot], None] | None = None
    on_step: Callable[[torch.Tensor], None] | None = None  # each step's training loss (one process; tests)


def fit(model: nn.Module, data: FitData, cfg: FitConfig, env: FitEnv, hooks: FitHooks,
        resume: Snapshot | None = None) -> FitResult:
    """Train with mini-batches of a device-side permutation; keep the weights of the best val_ap epoch.

    Over several processes every rank draws the same permutation of all training rows, so the global
    batches are those of one process; each rank computes on the rows of each batch that fall in its
    shard, the loss is scaled so that DistributedDataParallel's average is the global batch mean,
    and validation scores are gathered from all ranks. ``resume`` (a snapshot, the same on every
    rank) goes on from it; a finished model's snapshot (``done``) runs no epoch.
    """
    return _Loop(model, data, cfg, env, hooks).run(resume)


class _Loop:
    """One fit(): the state it keeps between epochs, and the steps of an epoch."""

    def __init__(self, model: nn.Module, data: FitData, cfg: FitConfig, env: FitEnv, hooks: FitHooks) -> None:
        torch.manual_seed(cfg.seed)
        device, world = env.device, env.world
        self.model, self.cfg, self.env, self.hooks = model.to(device), cfg, env, hooks
        x_train, y_train = (t.to(device, non_blocking=True) for t in data.train)
        x_val, y_val = (t.to(device, non_blocking=True) for t in data.val)
        self.x_train, self.y_train, self.x_val = x_train, y_train.float(), x_val
        self.y_val = world.gather_rows(y_val.float())
        self.n = int(world.sum(torch.tensor(x_train.shape[0], device=device)))
        self.first, last = world.bounds(self.n)
        if last - self.first != x_train.shape[0]:
            raise ValueError(f"rank {world.rank} holds {x_train.shape[0]} training rows, not its shard "
                             f"{self.first}:{last}")

    def _start(self, resume: Snapshot | None) -> None:
        """The network (wrapped for several processes), loss, optimizer, generator, batches and result."""
        cfg, device, world = self.cfg, self.env.device, self.env.world
        if resume is not None:
            self.model.load_state_dict(resume.model)
        ids = [device.index] if device.type == "cuda" else None
        self.net = self.model if world.size == 1 else DistributedDataParallel(self.model, device_ids=ids)
        self.pos_weight = None if cfg.pos_weight is None else torch.tensor(cfg.pos_weight, device=device)
        self.criterion = nn.BCEWithLogitsLoss(pos_weight=self.pos_weight,
                                              reduction="mean" if world.size == 1 else "sum")
        self.optimizer = make_optimizer(self.model, cfg)
        self.generator = torch.Generator(device=device).manual_seed(cfg.seed)
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16 and device.type == "cuda")
        self.slices = batch_slices(self.n, cfg.batch_size, cfg.min_batch)
        sizes = [s.stop - s.start for s in self.slices]
        self.result = FitResult(batch_sizes=sizes,
                                norm_batch_sizes=sizes if self.env.norm_synced else [s // world.size for s in sizes])
        self.best_state = copy.deepcopy(self.model.state_dict())
        self.probe_at = probe_steps(cfg.probe_growth, cfg.epochs * len(self.slices))
        self.steps, self.clock = 0, Clock()

    def _restore(self, resume: Snapshot) -> int:
        """Go on from a snapshot; return the first epoch still to train."""
        self.optimizer.load_state_dict(resume.optimizer)
        self.generator.set_state(resume.generator)
        self.result.history, self.best_state = list(resume.history), resume.best_state
        self.result.best_epoch, self.result.best_val_ap = resume.best_epoch, resume.best_val_ap
        self.result.stopped_early = resume.stopped_early
        self.result.probes = list(resume.probes)
        self.steps, self.clock = resume.steps, Clock(resume.train_seconds)
        world = self.env.world
        if len(resume.rng) == world.size:  # dropout goes on with the same masks
            set_rng_state(resume.rng[world.rank], self.env.device)
        return self.cfg.epochs + 1 if resume.done else resume.epoch + 1

    def run(self, resume: Snapshot | None) -> FitResult:
        """Every epoch from the first (or the snapshot's next), then the best epoch's weights."""
        self._start(resume)
        first_epoch = self._restore(resume) if resume is not None else 1
        for epoch in range(first_epoch, self.cfg.epochs + 1):
            if self._epoch(epoch):
                break
        self.model.load_state_dict(self.best_state)
        return self.result

    def _epoch(self, epoch: int) -> bool:
        """Train and validate one epoch, keep the best weights, report; True when it is time to stop."""
        start = time.perf_counter()
        train_loss, train_accuracy = self._train_epoch()
        if not math.isfinite(train_loss):
            raise DivergedError(epoch, train_loss, self.cfg.lr)
        validation = self._validate()
        self.result.probes.append(probe_record(self.steps, len(self.slices), self.clock.seconds, validation))
        record = epoch_record(train_loss, train_accuracy, validation, time.perf_counter() - start, self.n,
                              self.optimizer.param_groups[0]["lr"])
        if self.result.add(epoch, record):
            self.best_state = copy.deepcopy(self.model.state_dict())
        if self.hooks.on_epoch_end is not None:
            self.hooks.on_epoch_end(epoch, record)
        done = self.result.done(epoch, self.cfg)
        if self.hooks.on_snapshot is not None:  # called on every rank: each one's random state is in it
            self.hooks.on_snapshot(self._snapshot(epoch, done))
        return done

    def _train_epoch(self) -> tuple[float, float]:
        """One pass over the training rows; the mean loss and the accuracy (one host sync per epoch)."""
        world, device = self.env.world, self.env.device
        self.model.train()
        order = torch.randperm(self.n, device=device, generator=self.generator)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        self.clock.start()
        for part in self.slices:
            rows = order[part]
            if world.size > 1:  # this rank's rows of the global batch
                rows = rows[(rows >= self.first) & (rows < self.first + self.x_train.shape[0])] - self.first
            xb, yb = self.x_train[rows], self.y_train[rows]
            with self.autocast:
                logits = self.net(xb).float()
            loss = self.criterion(logits, yb)
            if world.size > 1:  # DDP averages over ranks: the result is the global batch mean
                batch_sum, loss = loss.detach(), loss * (world.size / (part.stop - part.start))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            self.optimizer.step()
            if self.hooks.on_step is not None:
                self.hooks.on_step(loss.detach())
            loss_sum += loss.detach() * (part.stop - part.start) if world.size == 1 else batch_sum
            correct += ((logits.detach() > 0) == (yb > 0.5)).sum()
            self.steps += 1
            if self.steps in self.probe_at and part is not self.slices[-1]:  # the epoch's end validates anyway
                self._probe()
        self.clock.stop()
        totals = world.sum(torch.stack([loss_sum.double(), correct.double()]))
        return float(totals[0]) / self.n, float(totals[1]) / self.n

    def _probe(self) -> None:
        """Validation AP between epochs (in eval mode, then back to training), off the training clock."""
        seconds = self.clock.stop()
        self.result.probes.append(probe_record(self.steps, len(self.slices), seconds, self._validate()))
        self.model.train()
        self.clock.start()

    def _validate(self) -> dict[str, float]:
        """Validation loss and the caller's metrics, in eval mode, over every rank's validation rows."""
        with self.autocast:
            val_logits = self.env.world.gather_rows(predict_logits(self.model, self.x_val))
        if self.env.device.type == "cuda":
            torch.cuda.synchronize(self.env.device)
        val_loss = float(nn.functional.binary_cross_entropy_with_logits(val_logits, self.y_val,
                                                                         pos_weight=self.pos_weight))
        return {"val_loss": val_loss, **self.hooks.score(self.y_val.cpu(), val_logits.cpu())}

    def _snapshot(self, epoch: int, done: bool) -> Snapshot:
        result = self.result
        return Snapshot(epoch=epoch, done=done, stopped_early=result.stopped_early, model=self.model.state_dict(),
                        optimizer=self.optimizer.state_dict(), generator=self.generator.get_state(),
                        rng=self.env.world.gather_objects(rng_state(self.env.device)),  # type: ignore[arg-type]
                        history=result.history, best_state=self.best_state, best_epoch=result.best_epoch,
                        best_val_ap=result.best_val_ap, probes=list(result.probes), steps=self.steps,
                        train_seconds=self.clock.seconds)
