"""The timing stage: each variant's seconds per training step, trained alone, in rotating rounds, at its
tuned setting and at every setting it shares with the baseline; what the speed claim multiplies steps by."""

from __future__ import annotations

from pipeline import timing
from pipeline.project.artefacts import Selection, StepTimes
from pipeline.project.layout import Layout
from pipeline.project.params import Params


def test_every_variant_is_timed_in_every_round_at_tuned_and_shared_settings(params: Params, trained: Layout) -> None:
    result = timing.run(params, trained)
    assert StepTimes.read(trained.step_times, "timing") == result  # the file the report reads
    assert (result.rounds, result.steps, result.device) == (2, 5, "cpu")
    assert set(result.tuned) == {"batchnorm", "baseline"}
    shared = [s for s, _, _ in Selection.read(trained.selection, "select").shared_trials("batchnorm", "baseline")]
    assert [s.setting for s in result.shared] == shared and len(shared) == 2  # the grid's two settings
    measured = [*result.tuned.values(), *(v for s in result.shared for v in s.seconds.values())]
    assert all(len(v) == 2 and all(0 < x < 1 for x in v) for v in measured)  # a round each, in seconds a step
    assert len({x for v in measured for x in v}) == 2 * len(measured)  # each its own measurement
    assert sorted(p.name for p in trained.timing.iterdir()) == ["steps.json"]
