"""The training loop of a stack: k models of one architecture and batch size trained together, each as
it would be alone (its own initial weights, row order, learning rate, weight decay, class weight,
early stopping and best epoch). Torch only, like ``fit``; it reports through callbacks.

Every step draws each model's own batch of the training rows (one gather for all of them), runs
one forward and one backward pass for the whole stack and one optimizer step; every epoch
validates all models in one pass. A model that stops early, or diverges, leaves the stack at
once: its best weights go to ``on_done`` and it costs nothing more.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch.nn import functional as F

from pipeline.modeling.batches import batch_slices
from pipeline.modeling.fit import DivergedError, FitConfig, FitData, FitEnv, FitResult, Scorer, epoch_record
from pipeline.modeling.model import MLPConfig, build
from pipeline.modeling.probes import Clock, probe_record, probe_steps
from pipeline.modeling.stack import StackedMLP
from pipeline.modeling.stack_optimizer import StackOptimizer

# Fields that may differ between the models of one stack; every other FitConfig field must agree.
OWN = ("seed", "lr", "weight_decay", "pos_weight")


@dataclass(frozen=True)
class Member:
    """One model of a stack: its network (only the dropout may differ) and its loop settings."""

    config: MLPConfig
    fit: FitConfig
    output_bias: float | None = None  # the output's initial bias (model.build)


@dataclass(frozen=True)
class Outcome:
    """How one model ended: its history and best epoch, and its best weights as ``model.MLP`` names
    them (None when it diverged, with the error)."""

    result: FitResult
    state: dict[str, torch.Tensor] | None
    diverged: DivergedError | None = None


@dataclass(frozen=True)
class StackHooks:
    """``score`` as in fit(); ``on_epoch(epoch, records)`` once per epoch with the record of every
    member still training (member index -> record); ``on_done(member, outcome)`` as soon as a model
    has finished; ``on_step(losses)`` with each step's training losses (one per model still in the
    stack, a tensor on the device: for tests and diagnostics)."""

    score: Scorer
    on_epoch: Callable[[int, dict[int, dict[str, float]]], None] | None = None
    on_done: Callable[[int, Outcome], None] | None = None
    on_step: Callable[[torch.Tensor], None] | None = None


def shared(members: list[Member]) -> FitConfig:
    """The loop settings every member shares (an error when they differ in anything else than OWN)."""
    first = members[0].fit
    for member in members:
        if replace(member.fit, **{f: getattr(first, f) for f in OWN}) != first:
            raise ValueError("the models of a stack must share every loop setting but " + ", ".join(OWN))
    return first


def fit_stack(members: list[Member], data: FitData | list[FitData], env: FitEnv, hooks: StackHooks) -> list[Outcome]:
    """Train every member on ``data`` (the same rows for all, or each member its own rows: the same
    number of them); return each one's outcome, in the members' order."""
    if env.world.size > 1:
        raise ValueError("a stack trains in one process; train over several with one model at a time")
    return _StackLoop(members, data, env, hooks).run()


class _StackLoop:
    """One fit_stack(): the stack, its optimizer, and which members are still in it."""

    def __init__(self, members: list[Member], data: FitData, env: FitEnv, hooks: StackHooks) -> None:
        self.cfg, self.device, self.hooks = shared(members), env.device, hooks
        torch.manual_seed(self.cfg.seed)  # dropout's masks: the same params give the same numbers
        self.members = members
        self.stack = StackedMLP([build(m.config, m.fit.seed, m.output_bias) for m in members]).to(self.device)
        self.optimizer = StackOptimizer(self.stack.flat, self.cfg.optimizer, [m.fit.lr for m in members],
                                        [m.fit.weight_decay for m in members], self.cfg.momentum)
        self.rows = Rows(data, len(members), self.device)
        self.n = self.rows.n
        self.slices = batch_slices(self.n, self.cfg.batch_size, self.cfg.min_batch)
        sizes = [s.stop - s.start for s in self.slices]
        self.results = [FitResult(batch_sizes=sizes, norm_batch_sizes=sizes) for _ in members]
        self.outcomes: dict[int, Outcome] = {}
        self.active = list(range(len(members)))  # the member of each row of the stack
        self.generators = [torch.Generator(device=self.device).manual_seed(m.fit.seed) for m in members]
        self.best_batches = [0] * len(members)  # BatchNorm's num_batches_tracked at each member's best epoch
        self.probe_at = probe_steps(self.cfg.probe_growth, self.cfg.epochs * len(self.slices))
        self.steps, self.clock = 0, Clock()
        self.autocast = torch.autocast(self.device.type, dtype=torch.bfloat16,
                                       enabled=self.cfg.bf16 and self.device.type == "cuda")
        self._weights()
        self.best_flat = self.stack.flat.detach().clone()
        self.best_buffers = {k: v.clone() for k, v in self.stack.named_buffers()}

    def _weights(self) -> None:
        """Each row's positive-class weight (1 without one)."""
        weights = [self.members[m].fit.pos_weight or 1.0 for m in self.active]
        self.pos_weight = torch.tensor(weights, device=self.device).unsqueeze(1)

    def run(self) -> list[Outcome]:
        """Every epoch until each member has stopped, diverged or reached the last epoch."""
        for epoch in range(1, self.cfg.epochs + 1):
            if not self.active:
                break
            self._epoch(epoch)
        return [self.outcomes[m] for m in range(len(self.members))]

    def _epoch(self, epoch: int) -> None:
        start = time.perf_counter()
        losses, correct = self._train_epoch()
        logits, y_val, val_losses = self._validate()
        seconds = time.perf_counter() - start
        losses, correct = losses.tolist(), correct.tolist()  # the one host sync of the epoch
        improved, finished, diverged, records = [], [], [], {}
        for row, member in enumerate(self.active):
            if losses[row] != losses[row] or abs(losses[row]) == float("inf"):
                diverged.append((row, DivergedError(epoch, losses[row], self.members[member].fit.lr)))
                continue
            validation = {"val_loss": val_losses[row], **self.hooks.score(y_val[row].cpu(), logits[row].cpu())}
            self.results[member].probes.append(probe_record(self.steps, len(self.slices), self.clock.seconds,
                                                            validation))
            record = epoch_record(losses[row] / self.n, correct[row] / self.n, validation, seconds, self.n,
                                  self.members[member].fit.lr, len(self.active))
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

    def _train_epoch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One pass over the training rows, each model in its own order; summed losses and hits per row."""
        self.stack.train()
        orders = torch.stack([torch.randperm(self.n, device=self.device, generator=self.generators[m])
                              for m in self.active])
        loss_sum = torch.zeros(len(self.active), device=self.device, dtype=torch.float64)
        correct = torch.zeros(len(self.active), device=self.device, dtype=torch.float64)
        self.clock.start(len(self.active))
        for part in self.slices:
            xb, yb = self.rows.batch(orders[:, part], self.active)
            with self.autocast:
                logits = self.stack(xb).float()
            losses = self._losses(logits, yb)
            self.optimizer.zero_grad()
            losses.sum().backward()
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
        return loss_sum, correct

    def _validate(self) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
        """Every active member's validation logits, labels and loss, in one pass."""
        x_val, y_val = self.rows.validation(self.active)
        with self.autocast:
            logits = self.stack.predict(x_val)
        y_val = y_val.expand_as(logits)
        return logits, y_val, self._losses(logits, y_val).tolist()

    def _probe(self) -> None:
        """Validation AP of every active member between epochs, off the training clock."""
        seconds = self.clock.stop()
        logits, y_val, val_losses = self._validate()
        for row, member in enumerate(self.active):
            validation = {"val_loss": val_losses[row], **self.hooks.score(y_val[row].cpu(), logits[row].cpu())}
            self.results[member].probes.append(probe_record(self.steps, len(self.slices), seconds, validation))
        self.stack.train()
        self.clock.start(len(self.active))

    def _losses(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Each model's mean binary cross-entropy, positives weighted by its own pos_weight."""
        weights = torch.where(labels > 0.5, self.pos_weight, 1.0)
        return (F.binary_cross_entropy_with_logits(logits, labels, reduction="none") * weights).mean(1)

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


class Rows:
    """The stack's training and validation rows on the device: one set shared by every member, or each
    member its own (kept in one tensor; a member's rows are found by its offset, so no copy is made
    when members leave)."""

    def __init__(self, data: FitData | list[FitData], members: int, device: torch.device) -> None:
        own = isinstance(data, list)
        if own and len(data) != members:
            raise ValueError("own rows need one FitData per member")
        sets = data if own else [data]
        for part in ("train", "val"):
            if len({getattr(d, part)[0].shape for d in sets}) != 1:
                raise ValueError(f"the members' {part} rows must have one shape to be stacked")
        self.own = own
        self.x_train, self.y_train = (torch.stack([d.train[i] for d in sets]).to(device) for i in (0, 1))
        self.x_val, self.y_val = (torch.stack([d.val[i] for d in sets]).to(device) for i in (0, 1))
        self.y_train, self.y_val = self.y_train.float(), self.y_val.float()
        self.n, self.features = self.x_train.shape[1], self.x_train.shape[2]

    def batch(self, rows: torch.Tensor, active: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Each active member's rows of a step ((members, rows) indices into its own training rows) as
        (members, rows, features) and (members, rows); one index_select (4x faster than a 2-D index)."""
        if self.own:
            rows = rows + torch.tensor(active, device=rows.device).unsqueeze(1) * self.n
        flat = rows.reshape(-1)
        x = self.x_train.view(-1, self.features).index_select(0, flat).view(*rows.shape, self.features)
        return x, self.y_train.view(-1).index_select(0, flat).view(rows.shape)

    def validation(self, active: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The validation rows: shared (rows, features) and (1, rows), or each active member's own."""
        if not self.own:
            return self.x_val[0], self.y_val
        index = torch.tensor(active, device=self.x_val.device)
        return self.x_val.index_select(0, index), self.y_val.index_select(0, index)
