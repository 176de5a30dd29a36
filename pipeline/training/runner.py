"""How a training stage runs its jobs: in stacks of at most ``train.stack`` models of one batch size (one
at a time over several processes), each model with its own MLflow run, curves, checkpoint and run file,
written the moment it finishes; where the rows and the device come from; and the terminal's progress.
The stacks train here, one after another, or all at once on a Ray cluster (``train.cluster``, see
training.cluster), whose reports of them are written exactly as this process writes its own.

A compared model that diverges fails the stage at the end (the others are written first: nothing
finished is lost); a tuning model's divergence is a result: its run is FAILED (tagged with the epoch),
its history and run file are written, and select skips its setting. Under torchrun, process 0 alone
tracks and writes, and with ``train.distributed.max_restarts`` every epoch leaves a snapshot that a
restarted process goes on from, in the same MLflow runs.
"""

from __future__ import annotations

import logging
import math
import sys
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, closing, contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from pipeline.data.prepared import Prepared, Split
from pipeline.evaluation.ranking import epoch_metrics
from pipeline.modeling.network import MLPConfig, checkpoint
from pipeline.project.artefacts import PrepareSummary, RunFile
from pipeline.project.layout import Layout
from pipeline.project.params import Params, flatten
from pipeline.project.variants import Catalogue
from pipeline.runtime.errors import StageError
from pipeline.runtime.outputs import staged
from pipeline.tracking import keys, runs
from pipeline.tracking.tracker import NullTracker, Tracker
from pipeline.training import distributed
from pipeline.training.cluster import Cluster, Epoch, Trained
from pipeline.training.distributed import World
from pipeline.training.jobs import Job, TrainResult, fit_config, mlp_config, prior_logit
from pipeline.training.loop import (
    PROBE_COLUMNS,
    BatchError,
    FitData,
    FitEnv,
    FitHooks,
    FitResult,
    Member,
    Outcome,
    Snapshot,
    fit,
)
from pipeline.training.snapshots import SnapshotFile, resume_point

log = logging.getLogger("pipeline.train")


def environment(params: Params, world: World) -> FitEnv:
    """The device of this process, joined to the other training processes."""
    try:
        device = distributed.resolve_device(params.train.device, world.local_rank)
    except RuntimeError as exc:
        raise StageError(str(exc)) from None
    distributed.join(world, device)
    if params.train.bf16 and device.type != "cuda":
        log.warning("train.bf16 is ignored on %s (bf16 autocast is CUDA only)", device.type)
    return FitEnv(device, world, norm_synced=params.train.batchnorm_sync or world.size == 1)


def train_jobs(
    params: Params,
    layout: Layout,
    prepared: Prepared,
    jobs: list[Job],
    env: FitEnv,
    track: bool,
    cluster: Cluster | None = None,
) -> list[TrainResult]:
    """Train the jobs, ``train.stack`` at a time among those of one batch size (one at a time over several
    processes): here one stack after another, or on a Ray cluster every stack at once (the same stacks:
    the same models); compared models that diverged fail the stage at the end."""
    size = params.train.stack if env.world.size == 1 else 1
    stacks = [
        alike[start : start + size]
        for batch_size in sorted({job.setting.batch_size for job in jobs})  # a stack shares its batch size
        for alike in [[job for job in jobs if job.setting.batch_size == batch_size]]
        for start in range(0, len(alike), size)
    ]
    results: list[TrainResult] = []
    failed: list[str] = []
    if cluster is None:
        for stack in stacks:
            rows = {split: training_rows(prepared, split, env.world) for split in dict.fromkeys(j.split for j in stack)}
            done, errors = _Stack(params, layout, prepared.summary, stack, env, track, rows).train()
            results += done
            failed += errors
    else:
        results, failed = _train_on_cluster(params, layout, prepared, stacks, env, track, cluster)
    if failed:
        raise StageError("; ".join(failed))
    return results


def _train_on_cluster(
    params: Params,
    layout: Layout,
    prepared: Prepared,
    stacks: list[list[Job]],
    env: FitEnv,
    track: bool,
    cluster: Cluster,
) -> tuple[list[TrainResult], list[str]]:
    """Every stack at once on the cluster, each model's runs open while its stack trains; each stack's
    models written as its task's report comes back."""
    splits = dict.fromkeys(job.split for stack in stacks for job in stack)
    shipped = {
        split: cluster.ship(split, lambda split=split: training_rows(prepared, split, env.world)) for split in splits
    }
    results: list[TrainResult] = []
    failed: list[str] = []
    label = stacks[0][0].variant + ("-tuning" if stacks[0][0].tuning else "")
    with ExitStack() as open_runs:
        pending = {}
        for jobs in stacks:
            stack = _Stack(
                params, layout, prepared.summary, jobs, env, track, {s: shipped[s] for s in splits}, remote=True
            )
            open_runs.enter_context(stack.running())
            pending[cluster.submit(stack.members, stack.data())] = stack
        models = sum(len(jobs) for jobs in stacks)
        log.info("train[%s] %d model(s) in %d stack(s) sent to the Ray cluster", label, models, len(stacks))
        if len(stacks) < cluster.slots and max(len(jobs) for jobs in stacks) > 1:
            cluster.advise(
                f"train[{label}] the cluster has room for {cluster.slots} stacks at a time and these {models} "
                f"models make {len(stacks)}: train.stack {max(1, math.ceil(models / cluster.slots))} would spread "
                "them (the models then differ from these in float rounding and dropout's masks: docs/cluster.md)"
            )
        with closing(cluster.completed(pending)) as arriving:
            for stack, trained in arriving:
                log.info(
                    "train[%s x%d] trained in %.1fs on %s, node %s",
                    label,
                    len(stack.jobs),
                    trained.seconds,
                    trained.device_name,
                    trained.node,
                )
                try:
                    done, errors = stack.replay(trained)
                except BatchError as exc:
                    raise StageError(f"{stack.jobs[0].variant}: {exc}") from None
                results += done
                failed += errors
    return results, failed


def training_rows(prepared: Prepared, split: str, world: World) -> tuple[FitData, tuple[int, int]]:
    """A split's training and validation parts, encoded by its own encoder: this process's contiguous
    shards of them (all of them in one process); and the training part's negatives and positives."""
    parts = prepared.parts(split, ("train", "val"))

    def shard(part: Split) -> tuple[torch.Tensor, torch.Tensor]:
        start, stop = world.bounds(part.y.size)
        return torch.from_numpy(part.x[start:stop]), torch.from_numpy(part.y[start:stop])

    positives = int(parts["train"].y.sum())
    return FitData(shard(parts["train"]), shard(parts["val"])), (parts["train"].y.size - positives, positives)


class _Stack:
    """One stack: its members, rows, MLflow runs (open together, each ended when its model is), snapshot
    and progress, and each model's files written as soon as it finishes (here as the loop reports it, or
    from a cluster's report of it, replayed)."""

    def __init__(
        self,
        params: Params,
        layout: Layout,
        summary: PrepareSummary,
        jobs: list[Job],
        env: FitEnv,
        track: bool,
        rows: dict[str, tuple[Any, tuple[int, int]]],
        remote: bool = False,
    ) -> None:
        """``rows``: each split's rows (a FitData, or its reference in a Ray cluster's object store with
        ``remote``) and its training part's negatives and positives."""
        self.params, self.layout, self.jobs, self.env = params, layout, jobs, env
        self.catalogue = Catalogue(params)
        self.summary = summary
        self.main = env.world.is_main
        self.track = track and self.main
        splits = list(dict.fromkeys(job.split for job in jobs))
        self.rows = {split: rows[split][0] for split in splits}
        self.counts = {split: rows[split][1] for split in splits}
        self.members = [self._member(job) for job in jobs]
        self.results: dict[int, TrainResult] = {}
        self.errors: list[str] = []
        self.trackers: dict[int, Tracker] = {}
        self.snapshot = SnapshotFile(layout.snapshot(jobs[0].name), jobs[0].group) if env.world.max_restarts else None
        self.progress = Progress(jobs, params.train.epochs, show=self.main and not remote)
        self.device = str(env.device)
        # a GPU of the cluster is named when its task reports
        self.device_name = None if remote and env.device.type == "cuda" else _device_name(env.device)

    def _member(self, job: Job) -> Member:
        counts, variant = self.counts[job.split], self.catalogue[job.variant]
        config = mlp_config(
            variant.model, len(self.summary.numeric_inputs), job.setting, tuple(self.summary.embedding_rows.values())
        )
        loop = fit_config(self.params.train, variant.optimizer, job.seed, job.setting, *counts)
        return Member(config, loop, prior_logit(job.setting, *counts))

    def data(self) -> Any:
        """The stack's rows: one split's, shared, or each member's own (several splits)."""
        if len(self.rows) == 1:
            return self.rows[self.jobs[0].split]
        return [self.rows[job.split] for job in self.jobs]

    @contextmanager
    def running(self, resume: Snapshot | None = None) -> Iterator[None]:
        """The models' MLflow runs, open while the stack trains (each ended FINISHED when its model is done,
        the others FAILED, or KILLED on a signal, when training stops); after a torchrun restart, the same
        runs go on."""
        with _OpenRuns() as self.open_runs:
            for member, job in enumerate(self.jobs):
                run_id = resume.run_ids.get(member) if resume else None
                self.trackers[member] = self.open_runs.open(member, self._model_run(job, run_id))
                if run_id and self.track:  # a restarted process: the same run goes on
                    runs.set_tag(run_id, keys.RESUMED_AFTER, str(resume.epoch))  # type: ignore[union-attr]
            yield

    def train(self) -> tuple[list[TrainResult], list[str]]:
        """Train the stack; the results of the models that finished, and the errors of compared models
        that diverged."""
        resume = resume_point(self.snapshot, self.env.world)
        hooks = FitHooks(
            epoch_metrics, self._on_epoch, self._on_done, on_snapshot=self._on_snapshot if self.snapshot else None
        )
        try:
            with self.running(resume):
                fit(self.members, self.data(), self.env, hooks, resume)
        except BatchError as exc:
            raise StageError(f"{self.jobs[0].variant}: {exc}") from None
        finally:
            self.progress.close()
        if self.snapshot is not None and self.main:
            self.snapshot.clear()
        return self._finished()

    def replay(self, trained: Trained) -> tuple[list[TrainResult], list[str]]:
        """What a cluster's task reported of the stack, written as the loop's reports are written here: each
        epoch's records into the runs (stamped when the epoch ended), each model's files and run as it
        finished; the results, and the errors of compared models that diverged (inside ``running``)."""
        unnamed = self.device_name is None  # a GPU: named now, as the runs' device tag
        self.device, self.device_name = trained.device, trained.device_name
        for tracker in self.trackers.values():
            if unnamed and tracker.run_id is not None:
                runs.set_tag(tracker.run_id, keys.DEVICE, trained.device_name)
        for event in trained.events:
            if isinstance(event, Epoch):
                self._log_epoch(event.epoch, event.records, event.at)
            else:
                self._on_done(event.member, event.outcome)
        return self._finished()

    def _finished(self) -> tuple[list[TrainResult], list[str]]:
        return [self.results[m] for m in range(len(self.jobs)) if m in self.results], self.errors

    def _on_epoch(self, epoch: int, records: dict[int, dict[str, float]]) -> None:
        self._log_epoch(epoch, records)
        self.progress(epoch, records)

    def _log_epoch(self, epoch: int, records: dict[int, dict[str, float]], at: float | None = None) -> None:
        for member, record in records.items():
            self.trackers[member].log_epoch(epoch, {key: record[key] for key in keys.EPOCH_KEYS}, at)

    def _on_snapshot(self, state: Snapshot) -> None:
        """Process 0 stores each epoch's state with its MLflow runs (the logged epochs are the snapshot's,
        even after a crash)."""
        if self.main:
            for tracker in self.trackers.values():
                tracker.flush()
            state.run_ids = {member: tracker.run_id for member, tracker in self.trackers.items()}
            self.snapshot.save(state)  # type: ignore[union-attr]

    def _on_done(self, member: int, outcome: Outcome) -> None:
        job = self.jobs[member]
        if not self.main:
            self.results[member] = TrainResult(job.name, None, job.history, job.run_file, fit=outcome.result)
            return
        tracker = self.trackers[member]
        if outcome.diverged is not None:
            self.open_runs.fail(member, outcome.diverged)
            if not job.tuning:
                self.errors.append(f"{job.name}: {outcome.diverged}")
                return
            log.warning("train[%s] %s; select will not choose its trial", job.name, outcome.diverged)
            if tracker.run_id:
                runs.set_tag(tracker.run_id, keys.DIVERGED_AT, str(outcome.diverged.epoch))
            _write_diverged(job, outcome, self._run_file(job, outcome.result, tracker, outcome.diverged.epoch))
            self.results[member] = TrainResult(job.name, None, job.history, job.run_file, fit=None)
            return
        info = self._run_file(job, outcome.result, tracker, None)
        _write_trained(job, self.members[member].config, outcome, self.summary, info)
        self.open_runs.close(member)
        self.results[member] = TrainResult(job.name, job.checkpoint, job.history, job.run_file, fit=outcome.result)
        result = outcome.result
        log.info(
            "train[%s] %s: best epoch %d (val_ap %.3f)%s",
            job.name,
            job.setting.name(),
            result.best_epoch,
            result.best_val_ap,
            ", stopped early" if result.stopped_early else "",
        )

    def _run_file(self, job: Job, result: FitResult, tracker: Tracker, diverged_at: int | None) -> RunFile:
        """The model's run file; a tracked model's run gets its history and summary first (a model done on
        disk has everything in MLflow too)."""
        found: dict[str, Any] = {}
        if tracker.run_id is not None:
            tracker.flush()
            found = _record_outputs(tracker.run_id, self.layout, self.summary, result, job.split)
        world = self.env.world
        return RunFile(
            model=job.name,
            variant=job.variant,
            seed=job.seed,
            trial=job.trial,
            setting=job.setting,
            device=self.device,
            group=job.group,
            key=job.key,
            ranks=world.size,
            batchnorm_sync=self.env.norm_synced,
            stack_size=len(self.jobs),
            epochs_run=len(result.history),
            best_epoch=0 if diverged_at else result.best_epoch,
            best_val_ap=None if diverged_at else result.best_val_ap,
            batch_sizes=[] if diverged_at else result.batch_sizes,
            norm_batch_sizes=[] if diverged_at else result.norm_batch_sizes,
            diverged_at=diverged_at,
            **{k: v for k, v in found.items() if k != "group"},
        )

    def _model_run(self, job: Job, resume_run_id: str | None) -> AbstractContextManager[Tracker]:
        """The model's MLflow run (the crashed one again after a torchrun restart), or no tracking."""
        if not self.track:
            return _untracked()
        summary = self.summary
        mlflow_params = {
            **flatten({"prepare": summary.params, "train": job.shape}),
            # the variant's own model and optimizer (the shared recipe with its overrides), and what it holds
            **flatten({"train": {k: v for k, v in self.catalogue.recipe(job.variant).items() if k != "fixed"}}),
            **{f"train.{key}": value for key, value in job.setting.model_dump().items()},
            "variant": job.variant,
            "seed": job.seed,
            "device": self.device,
            **{f"data.rows_{s}": n for s, n in summary.rows.items()},
            **{f"data.prevalence_{s}": p for s, p in summary.prevalence.items()},
        }
        run_tags = {
            keys.ROLE: "tuning" if job.tuning else "model",
            keys.VARIANT: job.variant,
            keys.SEED: str(job.seed),
            keys.LR: str(job.setting.lr),
            keys.MODEL: job.name,
            keys.COLOR: self.catalogue.color(job.variant),
            **({keys.TRIAL: str(job.trial)} if job.trial is not None else {}),
            keys.DATA_SHA256: summary.source_sha256,
            **({keys.DEVICE: self.device_name} if self.device_name else {}),
        }
        return runs.open_model_run(
            self.params.mlflow.experiment, job.name, job.group, mlflow_params, run_tags, resume_run_id
        )


@contextmanager
def _untracked() -> Iterator[Tracker]:
    yield NullTracker()


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _record_outputs(
    run_id: str, layout: Layout, summary: PrepareSummary, result: FitResult, split: str
) -> dict[str, Any]:
    """The history artifact, the training data and the summary metrics into a model's run (its epochs are
    sent); returns what the run file needs to find the run again."""
    with tempfile.TemporaryDirectory() as tmp:
        named = Path(tmp) / "history.csv"
        pd.DataFrame(result.history).to_csv(named, index=False)
        runs.log_results(
            run_id,
            {"best_epoch": result.best_epoch, "best_val_ap": result.best_val_ap, "epochs_run": len(result.history)},
            (named,),
        )
    kinds = {"categorical": "string", "datetime": "datetime", "age": "datetime"}  # numbers: float
    types = {name: kinds.get(summary.roles.get(name, ""), "float") for name in summary.features}
    runs.log_training_data(run_id, layout.table, f"{split}/train", types, summary.label, summary.source_sha256)
    return runs.run_info(run_id)


def _write_trained(job: Job, config: MLPConfig, outcome: Outcome, summary: PrepareSummary, info: RunFile) -> None:
    """The checkpoint (best weights, self-describing), the history, the probes and the run file, all or
    none, the run file last (it marks the model done)."""
    result = outcome.result
    with staged(job.checkpoint, job.history, job.probes, job.run_file) as (tmp_ckpt, tmp_history, tmp_probes, tmp_run):
        torch.save(
            checkpoint(
                config,
                outcome.state,
                variant=job.variant,
                seed=job.seed,
                lr=job.setting.lr,  # type: ignore[arg-type]
                setting=job.setting.model_dump(),
                best_epoch=result.best_epoch,
                params=job.shape,
                label=summary.label,
                features=summary.features,
                data_sha256=summary.source_sha256,
            ),
            tmp_ckpt,
        )
        pd.DataFrame(result.history).to_csv(tmp_history, index=False)
        pd.DataFrame(result.probes, columns=list(PROBE_COLUMNS)).to_csv(tmp_probes, index=False)
        info.write(tmp_run)


def _write_diverged(job: Job, outcome: Outcome, info: RunFile) -> None:
    """A tuning model whose loss became NaN or infinite: its epochs so far and where it diverged, no
    checkpoint (select never chooses its setting)."""
    with staged(job.history, job.run_file) as (tmp_history, tmp_run):
        pd.DataFrame(outcome.result.history).to_csv(tmp_history, index=False)
        info.write(tmp_run)


class _OpenRuns:
    """The runs of the models of a stack: opened together, each ended (FINISHED) when its model is done;
    those still open end together when training stops (FAILED, or KILLED on a signal)."""

    def __init__(self) -> None:
        self._open: dict[int, AbstractContextManager[Tracker]] = {}

    def open(self, member: int, run: AbstractContextManager[Tracker]) -> Tracker:
        """Start one model's run."""
        tracker = run.__enter__()
        self._open[member] = run
        return tracker

    def close(self, member: int) -> None:
        """End one model's run as FINISHED."""
        self._open.pop(member).__exit__(None, None, None)

    def fail(self, member: int, error: Exception) -> None:
        """End one model's run as FAILED (its training raised ``error``)."""
        self._open.pop(member).__exit__(type(error), error, error.__traceback__)

    def __enter__(self) -> _OpenRuns:
        return self

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        for member in list(self._open):
            self._open.pop(member).__exit__(kind, error, trace)


class Progress:
    """A stack's progress: a bar (epochs) on a terminal, else one line per epoch: one model's losses and
    validation AP, or for a stack, how many still train and their range of validation AP."""

    def __init__(self, jobs: list[Job], epochs: int, show: bool = True) -> None:
        self.epochs, self.models = epochs, len(jobs)
        self.label = jobs[0].name if len(jobs) == 1 else jobs[0].variant + ("-tuning" if jobs[0].tuning else "")
        self.show, self.bar = show, None
        if show and sys.stderr.isatty():
            from tqdm import tqdm

            suffix = "" if self.models == 1 else f" x{self.models}"
            self.bar = tqdm(total=epochs, desc=f"train[{self.label}{suffix}]", file=sys.stderr, leave=True)

    def __call__(self, epoch: int, records: dict[int, dict[str, float]]) -> None:
        if not self.show or not records:
            return
        aps = [r["val_ap"] for r in records.values()]
        first = next(iter(records.values()))
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(training=len(records), best_val_ap=f"{max(aps):.3f}")
        elif self.models == 1:
            log.info(
                "train[%s] epoch %d/%d  loss %.4f  val_loss %.4f  val_ap %.3f  %.2fs",
                self.label,
                epoch,
                self.epochs,
                first["train_loss"],
                first["val_loss"],
                first["val_ap"],
                first["epoch_seconds"],
            )
        else:
            log.info(
                "train[%s x%d] epoch %d/%d  %d training  val_ap %.3f-%.3f  %.2fs",
                self.label,
                self.models,
                epoch,
                self.epochs,
                len(records),
                min(aps),
                max(aps),
                first["epoch_seconds"],
            )

    def close(self) -> None:
        """Every model has finished."""
        if self.bar is not None:
            self.bar.close()
