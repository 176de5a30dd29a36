"""What a trained model leaves on disk: its checkpoint, its history and its run file, all or none,
the run file last (it marks the model done, see jobs.Job.done)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch

from pipeline.modeling.fit import DivergedError, FitResult
from pipeline.modeling.model import MLP, checkpoint
from pipeline.modeling.probes import PROBE_COLUMNS
from pipeline.project.layout import PrepareSummary
from pipeline.runtime.outputs import staged, write_json
from pipeline.training.jobs import Job


def run_file(job: Job, device: torch.device, ranks: int = 1, synced: bool = True,
             stack_size: int = 1) -> dict[str, Any]:
    """What the run file records of every model, trained or diverged (tracking adds its run's ids)."""
    return {"model": job.name, "variant": job.variant, "seed": job.seed, "lr": job.setting.lr,
            "setting": job.setting.to_dict(), "trial": job.trial, "device": str(device), "group": job.group,
            "key": job.key, "ranks": ranks, "batchnorm_sync": synced, "stack_size": stack_size}


def write_trained(job: Job, model: MLP, result: FitResult, summary: PrepareSummary, info: dict[str, Any]) -> None:
    """The checkpoint (best weights, self-describing), the history and the run file."""
    with staged(job.checkpoint, job.history, job.probes, job.run_file) as (tmp_ckpt, tmp_history, tmp_probes, tmp_run):
        torch.save(checkpoint(model.cpu().eval(), variant=job.variant, seed=job.seed, lr=job.setting.lr,
                              setting=job.setting.to_dict(),
                              best_epoch=result.best_epoch, params=job.shape, label=summary.label,
                              features=summary.features, data_sha256=summary.source_sha256), tmp_ckpt)
        pd.DataFrame(result.history).to_csv(tmp_history, index=False)
        pd.DataFrame(result.probes, columns=list(PROBE_COLUMNS)).to_csv(tmp_probes, index=False)
        write_json(tmp_run, {**info, "best_epoch": result.best_epoch, "best_val_ap": result.best_val_ap,
                             "epochs_run": len(result.history),
                             "batch_sizes": result.batch_sizes, "norm_batch_sizes": result.norm_batch_sizes})


def write_diverged(job: Job, history: list[dict[str, float]], error: DivergedError, info: dict[str, Any]) -> None:
    """A tuning model whose loss became NaN or infinite: its epochs so far and where it diverged, no
    checkpoint (select never chooses its setting)."""
    with staged(job.history, job.run_file) as (tmp_history, tmp_run):
        pd.DataFrame(history).to_csv(tmp_history, index=False)
        write_json(tmp_run, {**info, "diverged_at": error.epoch, "epochs_run": len(history), "best_epoch": 0,
                             "batch_sizes": []})
