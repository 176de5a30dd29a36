"""Epoch snapshots for crash-safe restarts under ``torchrun --max-restarts``: where the loop's state
(``loop.Snapshot``) is stored, and what a restarted process goes on from.

When torchrun restarts its workers after one of them died (``World.attempt`` > 0), the model that was
training goes on from its last finished epoch, in the same MLflow run, instead of starting again; a
model that had finished is not trained again. Snapshots live in ``.snapshots/`` beside the outputs (not
a DVC output) and are removed when the stage has written its outputs; only process 0 of torchrun's
workers reads and writes them, and it sends the state to the other processes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

import torch

from pipeline.training.distributed import World
from pipeline.training.loop import Snapshot


@dataclass(frozen=True)
class SnapshotFile:
    """One stack's snapshot, tied to its execution group so that another configuration never resumes it."""

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
        """Forget it (the stack finished, or a fresh start)."""
        self.path.unlink(missing_ok=True)


def resume_point(file: SnapshotFile | None, world: World) -> Snapshot | None:
    """What a (re)started stack goes on from: after torchrun restarted the processes, process 0's snapshot,
    sent to every process; else nothing, and process 0 forgets a stale snapshot."""
    if file is None:
        return None
    resume = world.broadcast(file.load() if world.is_main else None) if world.attempt > 0 else None
    if resume is None and world.is_main:
        file.clear()
    return resume  # type: ignore[return-value]
