"""One model at a time: the path torchrun takes (one model over several processes, with synced
BatchNorm and crash-safe restarts from epoch snapshots) and ``train.stack: 1``."""

from __future__ import annotations

import logging

from pipeline.evaluation.ranking import epoch_metrics
from pipeline.modeling import distributed
from pipeline.modeling.distributed import World
from pipeline.modeling.batches import BatchError
from pipeline.modeling.fit import DivergedError, FitEnv, FitHooks, fit
from pipeline.modeling.model import MLP, build
from pipeline.modeling.recipe import fit_config, mlp_config, prior_logit
from pipeline.modeling.snapshots import Snapshot, SnapshotFile, resume_point
from pipeline.project.config import Params
from pipeline.data.prepared import Prepared
from pipeline.project.layout import Layout, PrepareSummary
from pipeline.runtime.errors import StageError
from pipeline.tracking import runs, tags
from pipeline.tracking.tracker import EpochLog, EpochReporter, Tracker
from pipeline.training import records
from pipeline.training.environment import shards, training_rows
from pipeline.training.jobs import Job, TrainResult
from pipeline.training.tracked import model_run, record_outputs

log = logging.getLogger("pipeline.train")


def train_alone(params: Params, layout: Layout, prepared: Prepared, job: Job, env: FitEnv,
                track: bool) -> TrainResult:
    """Train one model (on every rank under torchrun; rank 0 alone tracks and writes)."""
    world, summary = env.world, prepared.summary
    data = training_rows(prepared, job.split)
    snapshot = SnapshotFile(layout.snapshot(job.name), job.group) if world.max_restarts else None
    resume = resume_point(snapshot, world)
    epochs = EpochLog(EpochReporter(job.name, params.train.epochs, show=world.is_main),
                      resume.history if resume else [])
    info = records.run_file(job, env.device, world.size, env.norm_synced)
    try:
        with model_run(track and world.is_main, params, job, summary, env.device,
                       resume.run_id if resume else None, resume.epoch if resume else None) as tracker:
            epochs.tracker = tracker
            positives = int(data[0].y.sum())
            counts = (data[0].y.size - positives, positives)
            model = _model(params, job, summary, env, prior_logit(job.setting, *counts))
            cfg = fit_config(params.train, job.seed, job.setting, *counts)
            hooks = FitHooks(epoch_metrics, epochs if world.is_main else None,
                             _saver(snapshot, tracker, world) if snapshot else None)
            result = fit(model, shards(*data, world), cfg, env, hooks, resume)
            epochs.close()
            if not world.is_main:
                return TrainResult(job.name, None, job.history, job.run_file, fit=result)
            info.update(record_outputs(tracker, layout, summary, result, job.split))
            records.write_trained(job, model, result, summary, info)
        if snapshot and world.is_main:
            snapshot.clear()
    except DivergedError as exc:
        epochs.close()
        return diverged(job, exc, epochs.records, info, epochs.tracker.run_id, world.is_main)
    except BatchError as exc:
        raise StageError(f"{job.name}: {exc}") from None
    log.info("train[%s] %s: best epoch %d (val_ap %.3f)%s", job.name, job.setting.name(), result.best_epoch,
             result.best_val_ap, ", stopped early" if result.stopped_early else "")
    return TrainResult(job.name, job.checkpoint, job.history, job.run_file, fit=result)


def diverged(job: Job, error: DivergedError, history: list[dict[str, float]], info: dict, run_id: str | None,
             main: bool = True) -> TrainResult:
    """A compared model that diverges fails the stage; a tuning model's divergence is a result: its run
    is FAILED (tagged with the epoch), its history and run file are written, select skips its setting."""
    if not main:
        return TrainResult(job.name, None, job.history, job.run_file, fit=None)
    if not job.tuning:
        raise StageError(f"{job.name}: {error}") from None
    log.warning("train[%s] %s; select will not choose its trial", job.name, error)
    if run_id:
        runs.set_tag(run_id, tags.DIVERGED_AT, str(error.epoch))
        info = {**info, **runs.run_info(run_id)}
    records.write_diverged(job, history, error, info)
    return TrainResult(job.name, None, job.history, job.run_file, fit=None)


def _model(params: Params, job: Job, summary: PrepareSummary, env: FitEnv, output_bias: float) -> MLP:
    """The freshly initialised network, its BatchNorm synced over the processes when asked."""
    config = mlp_config(params.train, job.variant, len(summary.numeric_inputs), job.setting,
                        tuple(summary.embedding_rows.values()))
    model = build(config, job.seed, output_bias)
    if env.world.size > 1 and params.train.batchnorm_sync and config.norm == "batchnorm":
        model = distributed.sync_batchnorm(model, env.device)
    return model


def _saver(snapshot: SnapshotFile, tracker: Tracker, world: World):  # noqa: ANN202 (a callable)
    """The loop's snapshot hook: process 0 stores each epoch's state with its MLflow run."""
    def save(state: Snapshot) -> None:
        if world.is_main:
            tracker.flush()  # the logged epochs are those of the snapshot, even after a crash
            snapshot.save(state.with_run(tracker.run_id))

    return save
