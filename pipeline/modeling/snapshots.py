"""Epoch snapshots for crash-safe restarts under ``torchrun --max-restarts``: the one home of their format.

When torchrun restarts its workers after one of them died (``World.attempt`` > 0), the model that
was training goes on from its last finished epoch, in the same MLflow run, instead of starting
again; a model that had finished is not trained again. Snapshots live in ``.snapshots/`` beside the
outputs (not a DVC output) and are removed when the stage has written its outputs; only process 0
of torchrun's workers reads and writes them, and it sends the state to the other ranks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch

from pipeline.modeling.distributed import World


@dataclass(frozen=True)
class Snapshot:
    """Everything needed to go on after an epoch, as the training loop leaves it."""

    epoch: int
    done: bool  # training is over (the last epoch, or stopped early): resuming runs no epoch
    stopped_early: bool
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    generator: torch.Tensor  # the permutation generator's state
    rng: list[list[torch.Tensor]]  # every rank's global random state (dropout), in rank order
    history: list[dict[str, float]]
    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_val_ap: float
    probes: list[dict[str, float]]  # validation at probe steps so far
    steps: int  # optimisation steps so far
    train_seconds: float  # training time so far (modeling.probes.Clock)
    run_id: str | None = None  # the MLflow run the model goes on in

    def with_run(self, run_id: str | None) -> Snapshot:
        """The same snapshot, naming the MLflow run it belongs to."""
        return replace(self, run_id=run_id)


def rng_state(device: torch.device) -> list[torch.Tensor]:
    """This process's global random state that dropout draws from (not the permutation generator)."""
    return [torch.get_rng_state(), *([torch.cuda.get_rng_state(device)] if device.type == "cuda" else [])]


def set_rng_state(state: list[torch.Tensor], device: torch.device) -> None:
    """Restore what rng_state() returned."""
    torch.set_rng_state(state[0])
    if device.type == "cuda" and len(state) > 1:
        torch.cuda.set_rng_state(state[1], device)


@dataclass(frozen=True)
class SnapshotFile:
    """One model's snapshot, tied to its execution group so that another configuration never resumes it."""

    path: Path
    group: str

    def load(self) -> Snapshot | None:
        """The snapshot to resume from (only this group's), if there is one."""
        if not self.path.is_file():
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        if state.pop("group", None) != self.group:
            return None
        return Snapshot(**state)

    def save(self, snapshot: Snapshot) -> None:
        """Write atomically (a crash mid-write leaves the previous snapshot)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.partial")
        torch.save({**{f.name: getattr(snapshot, f.name) for f in fields(snapshot)}, "group": self.group}, partial)
        os.replace(partial, self.path)

    def clear(self) -> None:
        """Forget it (the model finished, or a fresh start)."""
        self.path.unlink(missing_ok=True)


def resume_point(file: SnapshotFile | None, world: World) -> Snapshot | None:
    """What a (re)started model goes on from: after torchrun restarted the processes, process 0's
    snapshot, sent to every rank; else nothing, and process 0 forgets a stale snapshot."""
    if file is None:
        return None
    resume = world.broadcast(file.load() if world.is_main else None) if world.attempt > 0 else None
    if resume is None and world.is_main:
        file.clear()
    return resume  # type: ignore[return-value]
