"""DVC stage `timing`: each variant's seconds per training step, measured the way the speed claim needs them.

The speed claim compares training seconds to validation-AP targets. Each replicate's model gives its own
number of steps to a target, but the compared models of a variant train together in one stack, so their
seconds are one measurement shared by every replicate. Here the cost of a step is measured on its own:
every variant trained alone (a stack of one) by the project's loop and clock, at its tuned setting and at
each setting a candidate shares with the reference, ``timing.steps`` steps at a time, in ``timing.repeats`` rounds that
time every variant once, in an order that rotates round by round (a shared machine's drifts hit all
alike), after one untimed warm-up round. Rows: the tuning split's training part. Writes
``timing/steps.json``; the report multiplies each replicate's steps by one round's cost of a step.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace

import torch

from pipeline.data.prepared import Prepared
from pipeline.evaluation.ranking import epoch_metrics
from pipeline.project.artefacts import PrepareSummary, Selection, SharedTiming, StepTimes
from pipeline.project.layout import TUNING, Layout
from pipeline.project.params import Params, Setting, load_params
from pipeline.project.variants import Catalogue
from pipeline.runtime.cli import stage_main
from pipeline.runtime.outputs import staged
from pipeline.training.distributed import World
from pipeline.training.jobs import fit_config, mlp_config, prior_logit
from pipeline.training.loop import FitData, FitHooks, Member, fit
from pipeline.training.runner import environment, training_rows

log = logging.getLogger("pipeline.timing")


def run(params: Params, layout: Layout = Layout()) -> StepTimes:
    """Time every variant's step at its tuned setting and at the settings it shares with the baseline."""
    summary = PrepareSummary.read(layout.prepare_summary, "prepare")
    selection = Selection.read(layout.selection, "select")
    env = environment(params, World())
    data, counts = training_rows(Prepared(layout, summary), TUNING, env.world)
    catalogue = Catalogue(params)
    variants = catalogue.compared
    settings = {("tuned", v): selection.setting(v) for v in variants}
    # one timing per setting a candidate shares with the reference, whichever candidate shares it
    shared = list(
        dict.fromkeys(s for v in catalogue.candidates for s, _, _ in selection.shared_trials(v, catalogue.reference))
    )
    settings |= {(f"shared{i}", v): s for i, s in enumerate(shared) for v in variants}

    def member(variant: str, setting: Setting) -> Member:
        entry = catalogue[variant]
        config = mlp_config(entry.model, len(summary.numeric_inputs), setting, tuple(summary.embedding_rows.values()))
        cfg = fit_config(params.train, entry.optimizer, 0, setting, *counts)
        return Member(config, replace(cfg, epochs=1, patience=0, probe_growth=0.0), prior_logit(setting, *counts))

    def seconds_per_step(key: tuple[str, str]) -> float:
        setting = settings[key]
        rows = min(params.timing.steps * setting.batch_size, data.train[0].shape[0])
        part = FitData((data.train[0][:rows], data.train[1][:rows]), (data.val[0][:1024], data.val[1][:1024]))
        (outcome,) = fit([member(key[1], setting)], part, env, FitHooks(epoch_metrics))
        probe = outcome.result.probes[-1]  # the loop's own clock: training steps only
        return probe["seconds"] / probe["step"]

    order = list(settings)
    for key in order:  # warm-up: first-touch allocations and kernels' first calls are timed by no round
        seconds_per_step(key)
    times: dict[tuple[str, str], list[float]] = {key: [] for key in order}
    for round_ in range(params.timing.repeats):
        shift = round_ % len(order)
        for key in order[shift:] + order[:shift]:
            times[key].append(seconds_per_step(key))
    result = StepTimes(
        rounds=params.timing.repeats,
        steps=params.timing.steps,
        device=torch.cuda.get_device_name(env.device) if env.device.type == "cuda" else "cpu",
        threads=torch.get_num_threads(),
        tuned={v: times["tuned", v] for v in variants},
        shared=[
            SharedTiming(setting=s, seconds={v: times[f"shared{i}", v] for v in variants}) for i, s in enumerate(shared)
        ],
    )
    with staged(layout.timing) as (tmp,):
        result.write(tmp / layout.step_times.name)
    for variant in variants:
        median = sorted(result.tuned[variant])[len(result.tuned[variant]) // 2]
        log.info(
            "timing[%s] %.3g ms a step at its tuned setting (median of %d rounds of %d steps)",
            variant,
            1000 * median,
            result.rounds,
            result.steps,
        )
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m pipeline.timing [--params params.yaml]``."""

    def body(args: argparse.Namespace) -> object:
        return run(load_params(args.params))

    return stage_main("timing", __doc__, argv, body)


if __name__ == "__main__":
    raise SystemExit(main())
