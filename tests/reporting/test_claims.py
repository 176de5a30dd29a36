"""When a run reaches a target, and who gets there first: censored runs never get a number."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.reporting.claims import Reach, first, reach


def _history(val_losses: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"epoch": range(1, len(val_losses) + 1), "val_loss": val_losses,
                         "epoch_seconds": [1.0] * len(val_losses)})


def test_a_run_that_never_reaches_the_target_gets_no_number() -> None:
    censored = reach(_history([0.5, 0.4, 0.35]), target=0.2)
    assert censored == Reach(None, 3, None) and censored.text() == "not reached (3 epochs)"
    assert reach(_history([0.5, 0.19, 0.1]), 0.2) == Reach(2, 3, 2.0)


@pytest.mark.parametrize(
    ("ours", "theirs", "winner"),
    [(Reach(3, 10, 3.0), Reach(7, 10, 7.0), 1),
     (Reach(7, 10, 7.0), Reach(3, 10, 3.0), -1),
     (Reach(4, 10, 4.0), Reach(4, 10, 4.0), 0),
     (Reach(None, 10, None), Reach(7, 10, 7.0), -1),  # ran past 7 epochs without getting there
     (Reach(None, 5, None), Reach(7, 10, 7.0), None),  # stopped at 5: would it have beaten 7? unknown
     (Reach(6, 10, 6.0), Reach(None, 4, None), None)],
)
def test_who_reaches_the_target_first_under_censoring(ours: Reach, theirs: Reach, winner: int | None) -> None:
    assert first(ours, theirs) == winner
