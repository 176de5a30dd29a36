"""Many models at once: the jobs of a variant trained in stacks of at most ``train.stack`` models, each
with its own MLflow run, curves, checkpoint and run file, written the moment it finishes."""

from __future__ import annotations

import logging

from pipeline.evaluation.ranking import epoch_metrics
from pipeline.modeling.batches import BatchError
from pipeline.modeling.fit import FitEnv
from pipeline.modeling.model import MLP
from pipeline.modeling.recipe import fit_config, mlp_config, prior_logit
from pipeline.modeling.stack_fit import Member, Outcome, StackHooks, fit_stack
from pipeline.project.config import Params
from pipeline.data.prepared import Prepared
from pipeline.project.layout import Layout
from pipeline.runtime.errors import StageError
from pipeline.tracking.tracker import EpochLog, StackReporter
from pipeline.training import records
from pipeline.training.alone import diverged
from pipeline.training.environment import shards, training_rows
from pipeline.training.jobs import Job, TrainResult
from pipeline.training.tracked import OpenRuns, model_run, record_outputs

log = logging.getLogger("pipeline.train")


def train_stacked(params: Params, layout: Layout, prepared: Prepared, jobs: list[Job], env: FitEnv,
                  track: bool) -> list[TrainResult]:
    """Train the jobs, ``train.stack`` at a time among those of one batch size; compared models that
    diverged fail the stage at the end (the others are written first: nothing finished is lost)."""
    results: list[TrainResult] = []
    failed: list[str] = []
    for batch_size in sorted({job.setting.batch_size for job in jobs}):  # a stack shares its batch size
        alike = [job for job in jobs if job.setting.batch_size == batch_size]
        for start in range(0, len(alike), params.train.stack):
            done, errors = _stack(params, layout, prepared, alike[start:start + params.train.stack], env, track)
            results += done
            failed += errors
    if failed:
        raise StageError("; ".join(failed))
    return results


def _stack(params: Params, layout: Layout, prepared: Prepared, jobs: list[Job], env: FitEnv,
           track: bool) -> tuple[list[TrainResult], list[str]]:
    """One stack: its runs open together, each model written and its run ended as soon as it finishes."""
    summary = prepared.summary
    rows = {split: training_rows(prepared, split) for split in dict.fromkeys(job.split for job in jobs)}
    members = []
    for job in jobs:
        train = rows[job.split][0]
        positives = int(train.y.sum())
        counts = (train.y.size - positives, positives)
        members.append(Member(mlp_config(params.train, job.variant, len(summary.numeric_inputs), job.setting,
                                         tuple(summary.embedding_rows.values())),
                              fit_config(params.train, job.seed, job.setting, *counts),
                              prior_logit(job.setting, *counts)))
    data = (shards(*rows[jobs[0].split], env.world) if len(rows) == 1  # one split: the stack shares its rows
            else [shards(*rows[job.split], env.world) for job in jobs])
    logs = [EpochLog(None, []) for _ in jobs]
    reporter = StackReporter(jobs[0].variant + ("-tuning" if jobs[0].tuning else ""), params.train.epochs, len(jobs))
    results: dict[int, TrainResult] = {}
    errors: list[str] = []

    def on_epoch(epoch: int, records_by_member: dict[int, dict[str, float]]) -> None:
        for member, record in records_by_member.items():
            logs[member](epoch, record)
        reporter(epoch, records_by_member)

    def on_done(member: int, outcome: Outcome) -> None:
        job = jobs[member]
        info = records.run_file(job, env.device, stack_size=len(jobs))
        if outcome.diverged is not None:
            open_runs.fail(member, outcome.diverged)
            try:
                results[member] = diverged(job, outcome.diverged, logs[member].records, info, logs[member].tracker.run_id)
            except StageError as exc:
                errors.append(str(exc))
            return
        info.update(record_outputs(logs[member].tracker, layout, summary, outcome.result, job.split))
        model = MLP(members[member].config)
        model.load_state_dict(outcome.state)
        records.write_trained(job, model, outcome.result, summary, info)
        open_runs.close(member)
        results[member] = TrainResult(job.name, job.checkpoint, job.history, job.run_file, fit=outcome.result)
        log.info("train[%s] %s: best epoch %d (val_ap %.3f)%s", job.name, job.setting.name(), outcome.result.best_epoch,
                 outcome.result.best_val_ap, ", stopped early" if outcome.result.stopped_early else "")

    try:
        with OpenRuns() as open_runs:
            for member, job in enumerate(jobs):
                logs[member].tracker = open_runs.open(member, model_run(track, params, job, summary, env.device))
            fit_stack(members, data, env, StackHooks(epoch_metrics, on_epoch, on_done))
    except BatchError as exc:
        raise StageError(f"{jobs[0].variant}: {exc}") from None
    finally:
        reporter.close()
    return [results[m] for m in range(len(jobs)) if m in results], errors

