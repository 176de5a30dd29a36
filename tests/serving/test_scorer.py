"""The scorer inside a logged model: raw rows by column name, in any order and dtype, other columns ignored."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from pipeline.project.layout import Layout
from pipeline.serving.scorer import FraudScorer, ScoringError
from tests.helpers.stages import raw_test


@pytest.fixture(scope="module")
def scorer(served_model: Path) -> FraudScorer:
    return mlflow.pyfunc.load_model(str(served_model)).unwrap_python_model().scorer


def test_columns_are_found_by_name_whatever_their_order_and_dtype(scorer: FraudScorer,
                                                                   evaluated_shared: Layout) -> None:
    raw = raw_test(evaluated_shared).head(50)
    expected = scorer.score(raw)
    shuffled = raw[list(reversed(raw.columns))].assign(extra="ignored")
    shuffled["Time"] = shuffled["Time"].astype("int64")  # a CSV's whole-number column
    pd.testing.assert_frame_equal(scorer.score(shuffled), expected)
    assert list(expected.columns) == ["fraud_probability", "fraud"]
    assert ((expected["fraud"] == 1) == (expected["fraud_probability"] >= scorer.threshold)).all()


@pytest.mark.parametrize(("change", "message"), [
    (lambda f: f.drop(columns=["V3"]), "input lacks feature columns V3"),
    (lambda f: f.assign(V4="12,50"), "non-numeric values in feature columns V4"),
    (lambda f: f.assign(V5=np.where(np.arange(len(f)) == 2, np.nan, f["V5"])), "1 rows hold NaN or infinite"),
])
def test_rows_it_cannot_score_are_refused_with_the_reason(scorer: FraudScorer, evaluated_shared: Layout,
                                                          change: object, message: str) -> None:
    raw = raw_test(evaluated_shared).head(10)
    with pytest.raises(ScoringError, match=message):
        scorer.score(change(raw))  # type: ignore[operator]
