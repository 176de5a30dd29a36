"""The training loop, the one that trains every model: k models of one architecture and batch size as one
stack (k = 1: one model), in one process or, for one model, over several (torchrun). Torch only: it
knows nothing of files, DVC or MLflow, and reports through callbacks.

Each model trains as it would alone: its own initial weights, row order, learning rate, weight decay,
class weight, early stopping and best epoch. Every step draws each model's own batch of the training
rows (one gather for all of them), runs one forward and one backward pass for the whole stack and one
optimizer step; every epoch validates all models in one pass. A model that stops early, or diverges,
leaves the stack at once: its best weights go to ``on_done`` and it costs nothing more.

Over several processes every process draws the same permutation of all training rows, so the global
batches are those of one process; each computes on the rows of each batch that fall in its shard, the
loss is scaled so that the summed gradient is the global batch's mean, BatchNorm's statistics are the
global batch's (when synced), and validation logits are gathered from every process.

Batches cover every row once per epoch and none is ever below ``min_batch`` (a shorter last batch joins
the one before it: BatchNorm's statistics of a few rows are noise, and of one row undefined). Validation
runs also between epochs, at probe steps growing geometrically, so that "how fast" can be told finer
than an epoch where training moves fastest; a clock counts training time only (steps, not validation),
a stack's step time shared among its models.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
from torch.nn import functional as F

from pipeline.modeling.network import MLP, MLPConfig
from pipeline.training.distributed import World, global_statistics
from pipeline.training.optimizer import StackOptimizer

Rows = tuple[torch.Tensor, torch.Tensor]  # features and 0/1 labels
# Validation metrics of one model from (labels, logits) on the CPU; the caller chooses them (val_ap at least).
Scorer = Callable[[torch.Tensor, torch.Tensor], dict[str, float]]
PROBE_COLUMNS = ("step", "epoch", "seconds", "val_ap", "val_loss")  # one row per probe
SAMPLE = 8192  # training rows (a fixed, seeded sample) the loss claim's training loss is measured on
OWN = ("seed", "lr", "weight_decay", "pos_weight")  # loop settings that may differ between a stack's models


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int, loss: float, lr: float) -> None:
        super().__init__(
            f"training diverged at epoch {epoch} (train_loss {loss}); "
            f"lower train.tune.space.lr (now {lr:g}), e.g. to {lr / 10:g}"
        )
        self.epoch, self.loss, self.lr = epoch, loss, lr

    def __reduce__(self) -> tuple[type[DivergedError], tuple[int, float, float]]:
        """Pickled with its own arguments (a stack trained in another process sends it back)."""
        return type(self), (self.epoch, self.loss, self.lr)


class BatchError(ValueError):
    """The training split cannot be cut into batches of the minimum size."""


@dataclass(frozen=True)
class FitConfig:
    """Hyper-parameters of one model's training (built from params.yaml; no defaults of its own)."""

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
    probe_growth: float = 0.0  # validate at steps growing by this factor (probe_steps); 0: epochs only


@dataclass(frozen=True)
class Member:
    """One model of a stack: its network (only the dropout may differ) and its loop settings."""

    config: MLPConfig
    fit: FitConfig
    output_bias: float | None = None  # the output's initial bias (modeling.network.initial_state)


@dataclass
class FitResult:
    """One model's training: its history and probes, its best epoch, how it batched."""

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


@dataclass(frozen=True)
class Outcome:
    """How one model ended: its history and best epoch, and its best weights as the plain MLP names them
    (None when it diverged, with the error)."""

    result: FitResult
    state: dict[str, torch.Tensor] | None
    diverged: DivergedError | None = None


@dataclass(frozen=True)
class FitData:
    """The rows to train on and to validate on: all of them, or this process's contiguous shards
    (``World.bounds``) when one model trains over several processes."""

    train: Rows
    val: Rows


@dataclass(frozen=True)
class FitEnv:
    """Where training runs: the device, the processes (one by default), and whether BatchNorm layers see
    the global batch (distributed.global_statistics) or only this process's rows."""

    device: torch.device
    world: World = field(default_factory=World)
    norm_synced: bool = True


@dataclass
class Snapshot:
    """The loop's whole state after an epoch (training/snapshots.py stores it): a restarted process goes on
    from here exactly as if it had never stopped."""

    epoch: int
    done: bool  # every model has finished: resuming trains no epoch
    flat: torch.Tensor
    buffers: dict[str, torch.Tensor]
    batches_tracked: int
    optimizer: dict[str, Any]
    generators: list[torch.Tensor]  # each model's row-order generator
    dropout: list[torch.Tensor]  # every process's dropout generator, in rank order
    results: list[FitResult]
    best_flat: torch.Tensor
    best_buffers: dict[str, torch.Tensor]
    best_batches: list[int]
    active: list[int]
    outcomes: dict[int, Outcome]
    steps: int
    train_seconds: float
    run_ids: dict[int, str | None] = field(default_factory=dict)  # each model's MLflow run (the caller's)


@dataclass(frozen=True)
class FitHooks:
    """What the caller is told. ``score(labels, logits)`` turns a model's validation logits into metrics and
    must return ``val_ap``, the early-stopping criterion; ``on_epoch(epoch, records)`` once per epoch with
    the record of every model still training (model index -> record); ``on_done(model, outcome)`` as soon
    as a model has finished; ``on_step(losses)`` with each step's training losses (one per model still in
    the stack: tests and diagnostics); ``on_snapshot``, given on every process or none, the state after
    every epoch."""

    score: Scorer
    on_epoch: Callable[[int, dict[int, dict[str, float]]], None] | None = None
    on_done: Callable[[int, Outcome], None] | None = None
    on_step: Callable[[torch.Tensor], None] | None = None
    on_snapshot: Callable[[Snapshot], None] | None = None


def batch_slices(n: int, batch_size: int, min_batch: int) -> list[slice]:
    """Batches of ``batch_size`` rows covering all ``n`` rows; a last batch shorter than
    ``min(min_batch, batch_size)`` joins the one before it, so no batch is ever that small."""
    smallest = min(min_batch, batch_size)
    if n < smallest:
        raise BatchError(
            f"the training split has {n} rows, fewer than the smallest batch allowed ({smallest}); "
            "use more data or lower train.min_batch"
        )
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] < smallest:
        starts.pop()
    return [slice(start, end) for start, end in zip(starts, [*starts[1:], n])]


def probe_steps(growth: float, total: int) -> set[int]:
    """Steps 1, then each about ``growth`` times the last (rounded up, distinct), up to ``total``; none
    when growth is 0."""
    if growth <= 0:
        return set()
    steps, value = set(), 1.0
    while value <= total:
        steps.add(math.ceil(value))
        value = max(value * growth, math.ceil(value) + 1)
    return steps


class Clock:
    """Seconds spent training, shared out among the models trained together (a stack's k models each get
    1/k of its steps' time)."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self._since: float | None = None
        self._share = 1

    def start(self, share: int = 1) -> None:
        """Training (again), for ``share`` models."""
        self._since, self._share = time.perf_counter(), share

    def stop(self) -> float:
        """Not training; returns the seconds so far."""
        if self._since is not None:
            self.seconds += (time.perf_counter() - self._since) / self._share
            self._since = None
        return self.seconds


def probe_record(step: int, steps_per_epoch: int, seconds: float, validation: dict[str, float]) -> dict[str, float]:
    """One probe: when (steps, epochs, training seconds) and what validation said."""
    values = (step, step / steps_per_epoch, seconds, validation["val_ap"], validation["val_loss"])
    return dict(zip(PROBE_COLUMNS, values))


def epoch_record(
    train_loss: float,
    train_accuracy: float,
    train_loss_eval: float,
    validation: dict[str, float],
    seconds: float,
    rows: int,
    lr: float,
    stack_size: int,
) -> dict[str, float]:
    """One epoch's history row. ``train_loss`` is the mean loss of the epoch's steps (training mode, each
    step's weights, dropout on, the class weight in); ``train_loss_eval`` the loss at the epoch's end on a
    fixed sample of the training rows, in eval mode and unweighted: one objective for every variant, the
    loss claim's measure. ``seconds`` is the epoch's wall time, shared by the ``stack_size`` models trained
    together in it."""
    return {
        "train_loss": train_loss,
        "train_accuracy": train_accuracy,
        "train_loss_eval": train_loss_eval,
        **validation,
        "epoch_seconds": seconds,
        "samples_per_second": rows / seconds,
        "lr": lr,
        "stack_size": stack_size,
    }


def shared(members: list[Member]) -> FitConfig:
    """The loop settings every member shares (an error when they differ in anything else than OWN)."""
    first = members[0].fit
    for member in members:
        if replace(member.fit, **{f: getattr(first, f) for f in OWN}) != first:
            raise ValueError("the models of a stack must share every loop setting but " + ", ".join(OWN))
    return first


def fit(
    members: list[Member], data: FitData | list[FitData], env: FitEnv, hooks: FitHooks, resume: Snapshot | None = None
) -> list[Outcome]:
    """Train every member on ``data`` (the same rows for all, or each member its own rows: the same number
    of them), from the start or from a snapshot (a finished one trains no epoch); return each one's
    outcome, in the members' order."""
    if env.world.size > 1 and len(members) > 1:
        raise ValueError("over several processes one model trains at a time (a stack of one)")
    return _Loop(members, data, env, hooks).run(resume)


class _Loop:
    """One fit(): the stack, its optimizer, and which members are still in it."""

    def __init__(self, members: list[Member], data: FitData | list[FitData], env: FitEnv, hooks: FitHooks) -> None:
        self.cfg, self.device, self.world, self.hooks = shared(members), env.device, env.world, hooks
        self.members = members
        config = members[0].config
        self.stack = MLP.initialised(
            config, [m.fit.seed for m in members], [m.config.dropout for m in members], [m.output_bias for m in members]
        ).to(self.device)
        if self.world.size > 1 and env.norm_synced:
            self.stack.batch_statistics = global_statistics
        self.dropout = torch.Generator(device=self.device).manual_seed(self.cfg.seed)
        self.stack.dropout_generator = self.dropout
        self.optimizer = StackOptimizer(
            self.stack.flat,
            self.cfg.optimizer,
            [m.fit.lr for m in members],
            [m.fit.weight_decay for m in members],
            self.cfg.momentum,
        )
        self.rows = _Rows(data, len(members), self.device, self.world)
        self.n = self.rows.n
        self.slices = batch_slices(self.n, self.cfg.batch_size, self.cfg.min_batch)
        sizes = [s.stop - s.start for s in self.slices]
        norm_sizes = sizes if env.norm_synced else [s // self.world.size for s in sizes]
        self.results = [FitResult(batch_sizes=sizes, norm_batch_sizes=norm_sizes) for _ in members]
        self.outcomes: dict[int, Outcome] = {}
        self.active = list(range(len(members)))  # the member of each row of the stack
        self.generators = [torch.Generator(device=self.device).manual_seed(m.fit.seed) for m in members]
        self.best_batches = [0] * len(members)  # BatchNorm's num_batches_tracked at each member's best epoch
        self.probe_at = probe_steps(self.cfg.probe_growth, self.cfg.epochs * len(self.slices))
        self.steps, self.clock = 0, Clock()
        self.autocast = torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16 and self.device.type == "cuda"
        )
        self._weights()
        self.best_flat = self.stack.flat.detach().clone()
        self.best_buffers = {k: v.clone() for k, v in self.stack.named_buffers()}

    def _weights(self) -> None:
        """Each row's positive-class weight (1 without one); None when no member has one: the loss then skips
        the weighting, which would multiply by exactly 1 (3 fewer operations a step, the same numbers)."""
        weights = [self.members[m].fit.pos_weight or 1.0 for m in self.active]
        self.pos_weight = (
            None if all(w == 1.0 for w in weights) else torch.tensor(weights, device=self.device).unsqueeze(1)
        )

    def run(self, resume: Snapshot | None) -> list[Outcome]:
        """Every epoch until each member has stopped, diverged or reached the last epoch."""
        first = self._restore(resume) if resume is not None else 1
        for epoch in range(first, self.cfg.epochs + 1):
            if not self.active:
                break
            self._epoch(epoch)
        return [self.outcomes[m] for m in range(len(self.members))]

    def _epoch(self, epoch: int) -> None:
        start = time.perf_counter()
        losses, correct = self._train_epoch()
        logits, y_val, val_losses = self._validate()
        seconds = time.perf_counter() - start
        fixed = self._training_loss()  # off the epoch's clock
        losses, correct = losses.tolist(), correct.tolist()  # the one host sync of the epoch
        improved, finished, diverged, records = [], [], [], {}
        for row, member in enumerate(self.active):
            if not math.isfinite(losses[row]):
                diverged.append((row, DivergedError(epoch, losses[row], self.members[member].fit.lr)))
                continue
            validation = {"val_loss": val_losses[row], **self.hooks.score(y_val[row].cpu(), logits[row].cpu())}
            self.results[member].probes.append(
                probe_record(self.steps, len(self.slices), self.clock.seconds, validation)
            )
            record = epoch_record(
                losses[row] / self.n,
                correct[row] / self.n,
                fixed[row],
                validation,
                seconds,
                self.n,
                self.members[member].fit.lr,
                len(self.active),
            )
            result = self.results[member]
            if result.add(epoch, record):
                improved.append(row)
                self.best_batches[member] = self.stack.batches_tracked
            records[member] = record
            if result.done(epoch, self.cfg):
                finished.append(row)
        if self.hooks.on_epoch is not None:
            self.hooks.on_epoch(epoch, records)
        self._keep_best(improved)
        self._finish(finished, diverged)
        if self.hooks.on_snapshot is not None:  # on every process: each one's dropout state is in it
            self.hooks.on_snapshot(self._snapshot(epoch))

    def _train_epoch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One pass over the training rows, each model in its own order; summed losses and hits per row
        (over every process)."""
        self.stack.train()
        orders = torch.stack(
            [torch.randperm(self.n, device=self.device, generator=self.generators[m]) for m in self.active]
        )
        loss_sum = torch.zeros(len(self.active), device=self.device, dtype=torch.float64)
        correct = torch.zeros(len(self.active), device=self.device, dtype=torch.float64)
        self.clock.start(len(self.active))
        for part in self.slices:
            xb, yb = self.rows.batch(orders[:, part], self.active)
            with self.autocast:
                logits = self.stack(xb).float()
            losses = self._losses(logits, yb, part.stop - part.start)
            self.optimizer.zero_grad()
            losses.sum().backward()
            self.world.sum(self.stack.flat.grad)  # over several processes: the global batch's gradient
            if self.cfg.grad_clip > 0:
                self.optimizer.clip(self.cfg.grad_clip)
            self.optimizer.step()
            self.stack.count_batch()
            detached = losses.detach()
            if self.hooks.on_step is not None:
                self.hooks.on_step(detached)
            loss_sum += detached * (part.stop - part.start)
            correct += ((logits.detach() > 0) == (yb > 0.5)).sum(1)
            self.steps += 1
            if self.steps in self.probe_at and part is not self.slices[-1]:  # the epoch's end validates anyway
                self._probe()
        self.clock.stop()
        if self.world.size > 1:  # this process's losses are its share of each global batch's mean
            return self.world.sum(loss_sum), self.world.sum(correct)
        return loss_sum, correct

    def _validate(self) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
        """Every active member's validation logits, labels and loss, in one pass (every process's rows)."""
        x_val, y_val = self.rows.validation(self.active)
        with self.autocast:
            logits = self.stack.predict(x_val)
        if self.world.size > 1:
            logits = self.world.gather_rows(logits[0]).unsqueeze(0)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        y_val = y_val.expand_as(logits)
        return logits, y_val, self._losses(logits, y_val).tolist()

    def _training_loss(self) -> list[float]:
        """Each active member's loss on its fixed sample of training rows: eval mode (no dropout, running
        statistics), no class weight (over several processes, every process's sample)."""
        x, y = self.rows.sample(self.active)
        with self.autocast:
            logits = self.stack.predict(x)
        losses = F.binary_cross_entropy_with_logits(logits, y.expand_as(logits), reduction="none")
        if self.world.size > 1:
            totals = self.world.sum(
                torch.stack([losses.sum(1).double(), torch.full_like(losses[:, 0], y.shape[-1], dtype=torch.float64)])
            )
            return (totals[0] / totals[1]).tolist()
        return losses.mean(1).tolist()

    def _probe(self) -> None:
        """Validation AP of every active member between epochs, off the training clock."""
        seconds = self.clock.stop()
        logits, y_val, val_losses = self._validate()
        for row, member in enumerate(self.active):
            validation = {"val_loss": val_losses[row], **self.hooks.score(y_val[row].cpu(), logits[row].cpu())}
            self.results[member].probes.append(probe_record(self.steps, len(self.slices), seconds, validation))
        self.stack.train()
        self.clock.start(len(self.active))

    def _losses(self, logits: torch.Tensor, labels: torch.Tensor, batch: int | None = None) -> torch.Tensor:
        """Each model's mean binary cross-entropy, positives weighted by its own pos_weight; over several
        processes (``batch``: the global batch's rows), this process's share of the global mean."""
        losses = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
        if self.pos_weight is not None:
            losses = losses * torch.where(labels > 0.5, self.pos_weight, 1.0)
        if batch is not None and self.world.size > 1:
            return losses.sum(1) / batch
        return losses.mean(1)

    def _keep_best(self, rows: list[int]) -> None:
        """Copy the weights and running statistics of the models that just had their best epoch."""
        if rows:
            index = torch.tensor(rows, device=self.device)
            self.best_flat[index] = self.stack.flat.detach()[index]
            for name, buffer in self.stack.named_buffers():
                self.best_buffers[name][index] = buffer[index]

    def _finish(self, finished: list[int], diverged: list[tuple[int, DivergedError]]) -> None:
        """Hand over the models that ended, and take them out of the stack."""
        for row in finished:
            state = self.stack.member_state(row, self.best_flat, self.best_buffers, self.best_batches[self.active[row]])
            self._done(row, Outcome(self.results[self.active[row]], state))
        for row, error in diverged:
            self._done(row, Outcome(self.results[self.active[row]], None, error))
        gone = set(finished) | {row for row, _ in diverged}
        if not gone:
            return
        keep = [row for row in range(len(self.active)) if row not in gone]
        index = torch.tensor(keep, device=self.device, dtype=torch.long)
        self.stack.keep(index)
        self.optimizer.keep(index, self.stack.flat)
        self.best_flat = self.best_flat[index].clone()
        self.best_buffers = {name: buffer[index].clone() for name, buffer in self.best_buffers.items()}
        self.active = [self.active[row] for row in keep]
        self._weights()

    def _done(self, row: int, outcome: Outcome) -> None:
        member = self.active[row]
        self.outcomes[member] = outcome
        if self.hooks.on_done is not None:
            self.hooks.on_done(member, outcome)

    def _snapshot(self, epoch: int) -> Snapshot:
        return Snapshot(
            epoch=epoch,
            done=not self.active,
            flat=self.stack.flat.detach().clone(),
            buffers={k: v.clone() for k, v in self.stack.named_buffers()},
            batches_tracked=self.stack.batches_tracked,
            optimizer=self.optimizer.state(),
            generators=[g.get_state() for g in self.generators],
            dropout=self.world.gather_objects(self.dropout.get_state()),  # type: ignore[arg-type]
            results=self.results,
            best_flat=self.best_flat.clone(),
            best_buffers={k: v.clone() for k, v in self.best_buffers.items()},
            best_batches=list(self.best_batches),
            active=list(self.active),
            outcomes=dict(self.outcomes),
            steps=self.steps,
            train_seconds=self.clock.seconds,
        )

    def _restore(self, snapshot: Snapshot) -> int:
        """Go on from a snapshot; return the first epoch still to train."""
        index = torch.tensor(snapshot.active, device=self.device, dtype=torch.long)
        self.stack.keep(index)
        with torch.no_grad():
            self.stack.flat.copy_(snapshot.flat.to(self.device))
            for name, buffer in self.stack.named_buffers():
                buffer.copy_(snapshot.buffers[name].to(self.device))
        self.stack.batches_tracked = snapshot.batches_tracked
        self.optimizer.keep(index, self.stack.flat)
        self.optimizer.load(snapshot.optimizer)
        for generator, state in zip(self.generators, snapshot.generators):
            generator.set_state(state)
        if len(snapshot.dropout) == self.world.size:  # dropout goes on with the same masks
            self.dropout.set_state(snapshot.dropout[self.world.rank])
        self.results, self.outcomes = snapshot.results, dict(snapshot.outcomes)
        self.best_flat = snapshot.best_flat.to(self.device)
        self.best_buffers = {k: v.to(self.device) for k, v in snapshot.best_buffers.items()}
        self.best_batches, self.active = list(snapshot.best_batches), list(snapshot.active)
        self.steps, self.clock = snapshot.steps, Clock(snapshot.train_seconds)
        self._weights()
        return self.cfg.epochs + 1 if snapshot.done else snapshot.epoch + 1


class _Rows:
    """The stack's training and validation rows on the device: one set shared by every member, or each
    member its own (kept in one tensor; a member's rows are found by its offset, so no copy is made when
    members leave); over several processes, this process's shards (``n``: every process's rows)."""

    def __init__(self, data: FitData | list[FitData], members: int, device: torch.device, world: World) -> None:
        own = isinstance(data, list)
        if own and len(data) != members:
            raise ValueError("own rows need one FitData per member")
        sets = data if own else [data]
        for part in ("train", "val"):
            if len({getattr(d, part)[0].shape for d in sets}) != 1:
                raise ValueError(f"the members' {part} rows must have one shape to be stacked")
        self.own, self.world = own, world
        self.x_train, self.y_train = (torch.stack([d.train[i] for d in sets]).to(device) for i in (0, 1))
        self.x_val, self.y_val = (torch.stack([d.val[i] for d in sets]).to(device) for i in (0, 1))
        self.y_train, self.y_val = self.y_train.float(), self.y_val.float()
        local, self.features = self.x_train.shape[1], self.x_train.shape[2]
        self.n = int(world.sum(torch.tensor(local, device=device))) if world.size > 1 else local
        self.first, last = world.bounds(self.n)
        if last - self.first != local:
            raise ValueError(f"rank {world.rank} holds {local} training rows, not its shard {self.first}:{last}")
        if world.size > 1:  # every process's validation labels, in rank order
            self.y_val = world.gather_rows(self.y_val[0]).unsqueeze(0)
        chosen = torch.randperm(local, generator=torch.Generator().manual_seed(0))[: SAMPLE // world.size]
        self.sampled = torch.sort(chosen).values.to(device)  # the same positions in every member's rows

    def batch(self, rows: torch.Tensor, active: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Each active member's rows of a step ((members, rows) indices into its own training rows) as
        (members, rows, features) and (members, rows); one index_select (4x faster than a 2-D index). Over
        several processes, the rows of the global batch that fall in this process's shard."""
        if self.world.size > 1:
            mine = rows[0][(rows[0] >= self.first) & (rows[0] < self.first + self.x_train.shape[1])] - self.first
            return self.x_train[0, mine].unsqueeze(0), self.y_train[0, mine].unsqueeze(0)
        if self.own:
            rows = rows + torch.tensor(active, device=rows.device).unsqueeze(1) * self.n
        flat = rows.reshape(-1)
        x = self.x_train.view(-1, self.features).index_select(0, flat).view(*rows.shape, self.features)
        return x, self.y_train.view(-1).index_select(0, flat).view(rows.shape)

    def sample(self, active: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed sample of training rows the training loss is measured on: shared (rows, features) and
        (1, rows), or each active member's own (members, rows, ...)."""
        if not self.own:
            return self.x_train[0, self.sampled], self.y_train[:1, self.sampled]
        index = torch.tensor(active, device=self.x_train.device)
        return self.x_train[index][:, self.sampled], self.y_train[index][:, self.sampled]

    def validation(self, active: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The validation rows (this process's) and labels (every process's): shared (rows, features) and
        (1, rows), or each active member's own."""
        if not self.own:
            return self.x_val[0], self.y_val
        index = torch.tensor(active, device=self.x_val.device)
        return self.x_val.index_select(0, index), self.y_val.index_select(0, index)
