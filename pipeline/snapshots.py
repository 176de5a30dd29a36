"""Epoch snapshots for crash-safe restarts under ``torchrun --max-restarts``.

When torchrun restarts its workers after one of them died (``World.attempt`` > 0), the
model that was training goes on from its last finished epoch, in the same MLflow run, instead of
starting again; a model that had finished is not trained again. Snapshots live in ``.snapshots/``
beside the outputs (not a DVC output) and are removed when the stage has written its outputs; only
process 0 of torchrun's workers reads and writes them (it sends the state to the other ranks).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class SnapshotFile:
    """One model's snapshot, tied to its execution group so that another configuration never resumes it."""

    path: Path
    group: str

    def load(self) -> dict[str, Any] | None:
        """The snapshot to resume from (only this group's), if there is one."""
        if not self.path.is_file():
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        return state if state.get("group") == self.group else None

    def save(self, state: dict[str, Any]) -> None:
        """Write atomically (a crash mid-write leaves the previous snapshot)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.partial")
        torch.save({**state, "group": self.group}, partial)
        os.replace(partial, self.path)

    def clear(self) -> None:
        """Forget it (the model finished, or a fresh start)."""
        self.path.unlink(missing_ok=True)
