"""Equal tuning with Optuna: every variant gets ``train.tune.trials`` trials over the same space, each a
setting trained on every tuning seed and scored by their mean best validation AP (test data never
takes part). Trials are asked ``train.tune.parallel`` at a time (TPE with a constant liar, seeded,
its first round random; or Optuna's grid sampler) and trained together. The study lives in the
stage's output (a journal file): raising the trials asks and trains only the new ones, and a trial a
crash left half-trained is finished, not asked again. A study of other data, params or code starts
afresh."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from pipeline.project.artefacts import RunFile, Trial, Trials
from pipeline.project.params import Params, Range, Setting, SpaceParams, TuneParams
from pipeline.training.distributed import World
from pipeline.training.jobs import Job, Planner, TrainResult

log = logging.getLogger("pipeline.train")
Trainer = Callable[[list[Job]], list[TrainResult]]
DIMENSIONS = ("lr", "weight_decay", "batch_size", "pos_weight", "dropout")


def distributions(space: SpaceParams) -> dict[str, optuna.distributions.BaseDistribution]:
    """The space as Optuna's distributions."""
    out: dict[str, optuna.distributions.BaseDistribution] = {}
    for name in DIMENSIONS:
        dim = getattr(space, name)
        if isinstance(dim, Range):
            out[name] = optuna.distributions.FloatDistribution(dim.low, dim.high, log=dim.log)
        else:
            out[name] = optuna.distributions.CategoricalDistribution(list(dim.choices))
    return out


def sampler(tune: TuneParams) -> optuna.samplers.BaseSampler:
    """Seeded TPE: its first round random, later ones with a constant liar for the trials in flight.
    (A grid is enqueued instead, see grid_points; the sampler then decides nothing.)"""
    return optuna.samplers.TPESampler(
        seed=tune.seed, n_startup_trials=tune.parallel, constant_liar=True, multivariate=True
    )


def grid_points(tune: TuneParams, space: SpaceParams) -> list[dict[str, Any]]:
    """Every combination of the space's choices in a seeded random order: the trials of sampler grid.
    (Enqueued into the study rather than Optuna's GridSampler, which stops the study from inside
    ``tell`` when the grid is exhausted, an error outside ``study.optimize``.)"""
    import itertools
    import random

    choices = [list(getattr(space, name).choices) for name in DIMENSIONS]
    points = [dict(zip(DIMENSIONS, values)) for values in itertools.product(*choices)]
    random.Random(tune.seed).shuffle(points)
    return points


def open_study(path: Path, fingerprint: str, tune: TuneParams, space: SpaceParams) -> optuna.Study:
    """The variant's study, continued when it was made for this fingerprint, else started afresh."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path.parent.mkdir(parents=True, exist_ok=True)

    def load() -> optuna.Study:
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
        return optuna.create_study(
            storage=storage, study_name="tune", direction="maximize", sampler=sampler(tune), load_if_exists=True
        )

    study = load()
    if study.user_attrs.get("fingerprint") not in (None, fingerprint):
        log.info("tune: the study in %s was made for other data, params or code; starting afresh", path)
        path.unlink()
        study = load()
    if "fingerprint" not in study.user_attrs:
        study.set_user_attr("fingerprint", fingerprint)
        if tune.sampler == "grid":
            for point in grid_points(tune, space):
                study.enqueue_trial(point)
    return study


def tune_variant(params: Params, planner: Planner, variant: str, world: World, train: Trainer) -> list[TrainResult]:
    """Run the variant's study to ``trials`` finished trials; write its trials file; return every
    tuning model of every trial."""
    tune, layout = params.train.tune, planner.layout
    recipe = planner.catalogue.recipe(variant)
    space = tune.space.holding(recipe["fixed"])
    fingerprint = planner.fingerprint(
        {"variant": variant, "recipe": recipe, "tune": tune.model_dump(exclude={"trials", "parallel"})}
    )
    study = open_study(layout.study(variant), fingerprint, tune, space) if world.is_main else None
    results: dict[int, list[TrainResult]] = {}
    while True:
        batch = world.broadcast(_next_trials(study, tune, space) if study is not None else None)
        if not batch:
            break
        jobs = {number: planner.trial(params, variant, number, Setting.model_validate(raw)) for number, raw in batch}
        trained = {r.name: r for r in train([job for group in jobs.values() for job in group])}
        for number, group in jobs.items():
            results[number] = [trained[job.name] for job in group]
            if study is not None:
                _tell(study, number, group)
    # Trials an earlier run finished: their models are kept (reported, never retrained).
    earlier = world.broadcast(
        [
            (t.number, t.params)
            for t in study.get_trials(deepcopy=False)
            if t.state.is_finished() and t.number not in results
        ]
        if study is not None
        else None
    )
    if earlier:
        jobs = {number: planner.trial(params, variant, number, Setting.model_validate(raw)) for number, raw in earlier}
        kept = {r.name: r for r in train([job for group in jobs.values() for job in group])}
        results.update({number: [kept[job.name] for job in group] for number, group in jobs.items()})
    if study is None:
        return [r for number in sorted(results) for r in results[number]]
    records = trial_records(study, params, planner, variant)
    Trials(variant=variant, trials=records).write(layout.trials(variant))
    log.info(
        "tune[%s] %d trials; best %s (mean validation AP %.3f)",
        variant,
        len(records),
        *max(
            ((r.setting.name(), r.val_ap) for r in records if r.val_ap is not None),
            key=lambda t: t[1],
            default=("none", float("nan")),
        ),
    )
    return [r for number in sorted(results) for r in results[number]]


def _next_trials(study: optuna.Study, tune: TuneParams, space: SpaceParams) -> list[tuple[int, dict[str, Any]]]:
    """The trials to train next: any a crash left unfinished, then new ones up to ``trials``, at most
    ``parallel`` in all."""
    trials = study.get_trials(deepcopy=False)
    finished = sum(t.state.is_finished() for t in trials)
    waiting = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING][: tune.parallel]
    batch = [(t.number, t.params) for t in waiting]
    fresh = min(tune.parallel - len(batch), tune.trials - finished - len(waiting))
    dimensions = distributions(space)
    for _ in range(max(0, fresh)):
        trial = study.ask(dimensions)
        batch.append((trial.number, trial.params))
    return batch


def _tell(study: optuna.Study, number: int, jobs: list[Job]) -> None:
    """A trial's score: the mean best validation AP over its tuning seeds; a seed that diverged fails it."""
    infos = [RunFile.read(job.run_file, "tune") for job in jobs]
    if any(info.diverged_at is not None for info in infos):
        study.tell(number, state=optuna.trial.TrialState.FAIL)
    else:
        study.tell(number, sum(info.best_val_ap for info in infos) / len(infos))  # type: ignore[misc]


def trial_records(study: optuna.Study, params: Params, planner: Planner, variant: str) -> list[Trial]:
    """Every finished trial: its number, state, setting, each tuning seed's validation AP and their mean."""
    records = []
    for trial in study.get_trials(deepcopy=False):
        if not trial.state.is_finished():
            continue
        setting = Setting.model_validate(trial.params)
        jobs = planner.trial(params, variant, trial.number, setting)
        infos = {job.seed: RunFile.read(job.run_file, "tune") for job in jobs}
        records.append(
            Trial(
                trial=trial.number,
                state=trial.state.name,
                setting=setting,
                val_ap_by_seed={str(s): i.best_val_ap for s, i in infos.items() if i.diverged_at is None},
                diverged_at_epoch_by_seed={
                    str(s): i.diverged_at for s, i in infos.items() if i.diverged_at is not None
                },
                val_ap=trial.value if trial.state == optuna.trial.TrialState.COMPLETE else None,
            )
        )
    return records
