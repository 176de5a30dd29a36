"""The scorer inside a logged model: raw rows by column name, in any order and dtype, other columns ignored."""

from __future__ import annotations

import warnings
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


def test_columns_are_found_by_name_whatever_their_order_and_dtype(
    scorer: FraudScorer, evaluated_shared: Layout
) -> None:
    raw = raw_test(evaluated_shared).head(50)
    expected = scorer.score(raw)
    shuffled = raw[list(reversed(raw.columns))].assign(extra="ignored")
    shuffled["Time"] = shuffled["Time"].astype("int64")  # a CSV's whole-number column
    pd.testing.assert_frame_equal(scorer.score(shuffled), expected)
    assert list(expected.columns) == ["fraud_probability", "fraud"]
    assert ((expected["fraud"] == 1) == (expected["fraud_probability"] >= scorer.threshold)).all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["V3"]), "input lacks feature columns V3"),
        (lambda f: f.assign(V4="12,50"), "non-numeric values in feature columns V4"),
        (lambda f: f.assign(V5=np.where(np.arange(len(f)) == 2, np.nan, f["V5"])), "1 rows hold NaN or infinite"),
    ],
)
def test_rows_it_cannot_score_are_refused_with_the_reason(
    scorer: FraudScorer, evaluated_shared: Layout, change: object, message: str
) -> None:
    raw = raw_test(evaluated_shared).head(10)
    with pytest.raises(ScoringError, match=message):
        scorer.score(change(raw))  # type: ignore[operator]


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        (
            "V1",
            1e308,
            r"V1 = 1e\+308 is outside what the model's scaler can represent: scaled for the network it "
            r"overflows float32; the model takes V1 within -\d",
        ),
        (
            "Amount",
            -5.0,
            r"Amount = -5 is outside what the model's scaler can represent: the model applies log1p to "
            r"Amount, which needs values above -1",
        ),
    ],
)
def test_a_row_the_scaler_cannot_represent_is_refused_never_labelled(
    scorer: FraudScorer, evaluated_shared: Layout, column: str, value: float, reason: str
) -> None:
    raw = raw_test(evaluated_shared).head(10).reset_index(drop=True)
    raw.loc[4, column] = value
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning on the way either
        with pytest.raises(ScoringError, match=f"^row 4: {reason}.*no row was scored"):
            scorer.score(raw)


def test_a_network_output_that_is_not_a_number_is_refused(scorer: FraudScorer, evaluated_shared: Layout) -> None:
    """Values that fit float32 after scaling can still overflow inside the network (inf - inf = NaN)."""
    raw = raw_test(evaluated_shared).head(10).reset_index(drop=True)
    far = 0.9 * float(np.finfo(np.float32).max)  # scaled, every value still fits float32; their sums do not
    scaler = scorer.encoder.scaler
    for j, name in enumerate(scaler.features):  # the numeric inputs (a date-time's parts are named `t:part`)
        if name not in scaler.log1p and ":" not in name:
            raw.loc[7, name] = scaler.mean[j] + far * scaler.scale[j]
    with pytest.raises(
        ScoringError,
        match=r"^row 7: the network overflows on this row \(its output is (nan|-?inf)\): \w+ = "
        r".* lies 3.06e\+38 standard deviations from the training mean",
    ):
        scorer.score(raw)


@pytest.mark.parametrize("value", [1e6, -1e6, 1e30, -1e30])
def test_far_but_finite_values_are_scored(scorer: FraudScorer, evaluated_shared: Layout, value: float) -> None:
    raw = raw_test(evaluated_shared).head(10).reset_index(drop=True)
    raw.loc[3, "V2"] = value
    out = scorer.score(raw)
    assert out["fraud_probability"].between(0, 1).all() and len(out) == 10
    assert ((out["fraud"] == 1) == (out["fraud_probability"] >= scorer.threshold)).all()


def test_the_pyfunc_refuses_an_overflowing_row_with_an_input_error(
    served_model: Path, evaluated_shared: Layout
) -> None:
    from mlflow.exceptions import MlflowException

    raw = raw_test(evaluated_shared).head(5).reset_index(drop=True)
    raw.loc[1, "V1"] = 1e308
    model = mlflow.pyfunc.load_model(str(served_model))
    with pytest.raises(MlflowException, match="row 1: V1 = 1e\\+308 is outside") as refused:
        model.predict(raw[scorer_features(model)])
    assert refused.value.get_http_status_code() == 400


def scorer_features(model: object) -> list[str]:
    return [c.name for c in model.metadata.get_input_schema().inputs]  # type: ignore[attr-defined]
