"""Many models at once: the jobs of a variant trained in stacks of at most ``train.stack`` models, each
with its own MLflow run, curves, checkpoint and run file, written the moment it finishes."""

from __future__ import annotations

import logging

from pipeline.evaluation.ranking import epoch_metrics
from pipeline.modeling.fit import BatchError, FitEnv
from pipeline.modeling.model import MLP
from pipeline.modeling.recipe import fit_config, mlp_config, pos_weight
from pipeline.modeling.stack_fit import Member, Outcome, StackHooks, fit_stack
from pipeline.project.config import Params
from pipeline.project.layout import Layout, PrepareSummary, Split
from pipeline.runtime.errors import StageError
from pipeline.tracking.tracker import EpochLog, StackReporter
from pipeline.training import records
from pipeline.training.alone import diverged
from pipeline.training.environment import shards
from pipeline.training.jobs import Job, TrainResult
from pipeline.training.tracked import OpenRuns, model_run, record_outputs

log = logging.getLogger("pipeline.train")


def train_stacked(params: Params, layout: Layout, summary: PrepareSummary, jobs: list[Job], data: tuple[Split, Split],
                  env: FitEnv, track: bool) -> list[TrainResult]:
    """Train the jobs, ``train.stack`` at a time; compared models that diverged fail the stage at the
    end (the others are written first: nothing finished is lost)."""
    results: list[TrainResult] = []
    failed: list[str] = []
    for start in range(0, len(jobs), params.train.stack):
        done, errors = _stack(params, layout, summary, jobs[start:start + params.train.stack], data, env, track)
        results += done
        failed += errors
    if failed:
        raise StageError("; ".join(failed))
    return results


def _stack(params: Params, layout: Layout, summary: PrepareSummary, jobs: list[Job], data: tuple[Split, Split],
           env: FitEnv, track: bool) -> tuple[list[TrainResult], list[str]]:
    """One stack: its runs open together, each model written and its run ended as soon as it finishes."""
    train, _ = data
    positives = int(train.y.sum())
    weight = pos_weight(params.train, train.y.size - positives, positives)
    members = [Member(mlp_config(params.train, job.variant, train.x.shape[1]),
                      fit_config(params.train, job.seed, job.lr, weight)) for job in jobs]
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
        info.update(record_outputs(logs[member].tracker, layout, summary, outcome.result))
        model = MLP(members[member].config)
        model.load_state_dict(outcome.state)
        records.write_trained(job, model, outcome.result, summary, info)
        open_runs.close(member)
        results[member] = TrainResult(job.name, job.checkpoint, job.history, job.run_file, fit=outcome.result)
        log.info("train[%s] lr %g, best epoch %d (val_ap %.3f)%s", job.name, job.lr, outcome.result.best_epoch,
                 outcome.result.best_val_ap, ", stopped early" if outcome.result.stopped_early else "")

    try:
        with OpenRuns() as open_runs:
            for member, job in enumerate(jobs):
                logs[member].tracker = open_runs.open(member, model_run(track, params, job, summary, env.device))
            fit_stack(members, shards(*data, env.world), env, StackHooks(epoch_metrics, on_epoch, on_done))
    except BatchError as exc:
        raise StageError(f"{jobs[0].variant}: {exc}") from None
    finally:
        reporter.close()
    return [results[m] for m in range(len(jobs)) if m in results], errors

