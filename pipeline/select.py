"""DVC stage `select`: each variant's setting, the best of its tuning trials on validation.

Every variant had the same number of trials over the same space (train.tune), each trial a setting
trained on every tuning seed and scored by the mean over those seeds of the best validation AP (the
AP of the kept weights, in eval mode). The highest score wins, the earlier trial on a tie; a trial
where a seed diverged is never chosen. Test data never takes part. Writes tuning/chosen/<variant>.json
(only the choice: when more trials do not change it, no compared model retrains) and
tuning/selection.json (every trial, the best score after each trial, and which chosen values sit at
the edge of the space).
"""

from __future__ import annotations

import argparse
import logging
import math

from pipeline.project.artefacts import Chosen, RunFile, Selection, Trial, Trials, VariantSelection
from pipeline.project.layout import Layout, model_name
from pipeline.project.params import Choices, Params, Range, Setting, SpaceParams, TrainParams, load_params
from pipeline.runtime.cli import stage_main
from pipeline.runtime.errors import StageError
from pipeline.runtime.outputs import staged
from pipeline.tracking import runs
from pipeline.tracking.keys import SELECTED

log = logging.getLogger("pipeline.select")
EDGE = 0.05  # a chosen number this close to a bound (a share of the range, on its own scale) is at the edge


def choose(variant: str, trials: list[Trial]) -> Trial:
    """The best trial by mean validation AP, the earlier one on a tie; diverged trials never win."""
    scored = [t for t in trials if t.val_ap is not None]
    if not scored:
        raise StageError(
            f"every trial of {variant} diverged on some tuning seed; lower train.tune.space.lr's upper end"
        )
    return max(scored, key=lambda t: (t.val_ap, -t.trial))


def best_so_far(trials: list[Trial]) -> list[float | None]:
    """The best mean validation AP after each trial, in trial order (None before the first score)."""
    best, out = -math.inf, []
    for trial in sorted(trials, key=lambda t: t.trial):
        if trial.val_ap is not None:
            best = max(best, trial.val_ap)
        out.append(best if best > -math.inf else None)
    return out


def edges_of(space: SpaceParams, setting: Setting) -> dict[str, str]:
    """Chosen values at the edge of the space, where the best may lie beyond it: a number within EDGE of
    a bound of its range, or the first or last of three or more numeric choices. A 0 (no weight decay, no
    dropout), as a choice or a range's low bound, is an end nothing lies beyond, never an edge."""
    edges = {}
    for name in type(space).model_fields:
        dim, value = getattr(space, name), getattr(setting, name)
        if isinstance(dim, Range):
            scale = math.log if dim.log else (lambda v: v)
            share = (scale(value) - scale(dim.low)) / (scale(dim.high) - scale(dim.low))
            if share >= 1 - EDGE or (share <= EDGE and dim.low != 0):
                edges[name] = "low" if share <= EDGE else "high"
        elif (
            isinstance(dim, Choices) and len(dim.choices) >= 3 and all(isinstance(c, int | float) for c in dim.choices)
        ):
            ordered = sorted(dim.choices)
            if value in (ordered[0], ordered[-1]) and value != 0:
                edges[name] = "low" if value == ordered[0] else "high"
    return edges


def run(params: Params, layout: Layout = Layout(), track: bool = True) -> dict[str, Chosen]:
    """Choose every variant's setting; write the choices and the trials; tag the tuning runs."""
    train, table = params.train, {}
    for variant in train.variants:
        trials = Trials.read(layout.trials(variant), "tune").trials
        best = choose(variant, trials)
        table[variant] = VariantSelection(
            trials=trials,
            chosen=Chosen(setting=best.setting, trial=best.trial),
            val_ap=best.val_ap,
            best_so_far=best_so_far(trials),
            # a setting the variant holds fixed is one choice of its space: never at an edge
            at_edge=edges_of(train.tune.space.holding(params.variants.declared[variant].fixed.given()), best.setting),
        )
    selection = Selection(
        variants=table,
        tune_seeds=list(train.tune.seeds),
        sampler=train.tune.sampler,
        trials=train.tune.trials,
        criterion="mean best val_ap over tuning seeds",
    )
    with staged(layout.chosen, layout.selection) as (tmp_chosen, tmp_selection):
        tmp_chosen.mkdir()
        for variant, entry in table.items():
            entry.chosen.write(tmp_chosen / layout.chosen_setting(variant).name)
        selection.write(tmp_selection)
    if track:
        _tag_runs(train, layout, selection)
    for variant, entry in table.items():
        edges = ", ".join(f"{k} at its {v} end" for k, v in entry.at_edge.items())
        log.info(
            "select[%s] trial %d (mean validation AP %.3f over tuning seeds %s)%s",
            variant,
            entry.chosen.trial,
            entry.val_ap,
            list(train.tune.seeds),
            f"  AT THE EDGE OF THE SPACE: {edges}; widen train.tune.space" if edges else "",
        )
    return {variant: entry.chosen for variant, entry in table.items()}


def _tag_runs(train: TrainParams, layout: Layout, selection: Selection) -> None:
    """`pipeline.selected` on every tuning run this store holds: true for the chosen trial of its variant."""
    tags = {}
    for variant, entry in selection.variants.items():
        for trial in entry.trials:
            for seed in train.tune.seeds:
                info = RunFile.read(layout.run_file(model_name(variant, seed, trial.trial), tuning=True), "tune")
                if info.run_id:
                    tags[info.run_id] = str(trial.trial == entry.chosen.trial).lower()
    missing = runs.absent(tags)
    runs.warn_absent("select", missing, "tuning")
    for run_id, value in tags.items():
        if run_id not in missing:
            runs.set_tag(run_id, SELECTED, value)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m pipeline.select [--params params.yaml]``."""

    def body(args: argparse.Namespace) -> object:
        return run(load_params(args.params))

    return stage_main("select", __doc__, argv, body)


if __name__ == "__main__":
    raise SystemExit(main())
