import numpy as np
import pandas as pd
import pytest

from pipeline.data.cleaning import clean
from pipeline.data.splits import split_indices, time_parts
from pipeline.data.synthetic import synthetic_transactions
from pipeline.project.params import Params, SplitParams
from pipeline.runtime.errors import DataError

SPLIT = SplitParams(
    method="stratified", fractions=[0.6, 0.2, 0.2], time_column="Time", min_positives=5, delay="0s", folds=1
)


def test_synthetic_schema_rate_and_determinism() -> None:
    a = synthetic_transactions(20_000, 0.002, seed=3)
    assert list(a.columns) == [
        "Time",
        *[f"V{i}" for i in range(1, 29)],
        "Amount",
        "merchant_category",
        "channel",
        "country",
        "timestamp",
        "card_id",
        "Class",
    ]
    assert int(a["Class"].sum()) == 40
    assert a["Time"].is_monotonic_increasing
    assert (a["Amount"] >= 0).all()
    stamps = pd.to_datetime(a["timestamp"], format="%Y-%m-%d %H:%M:%S")
    assert ((stamps - pd.Timestamp("2024-01-01")).dt.total_seconds() == a["Time"]).all()  # the same instant
    assert 0 < a["country"].isna().mean() < 0.02 and a["merchant_category"].notna().all()
    cards = a.groupby("card_id")["Class"].agg(["size", "sum"])
    assert len(cards) == 20_000 // 25 and cards["size"].max() > 1  # cards repeat
    assert (cards["sum"] > 1).any()  # a compromised card is hit more than once
    pd.testing.assert_frame_equal(a, synthetic_transactions(20_000, 0.002, seed=3))
    assert not a.equals(synthetic_transactions(20_000, 0.002, seed=4))


def test_synthetic_fraud_is_learnable_but_overlapping() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score

    frame = synthetic_transactions(60_000, 0.01, seed=0)
    x, y = frame.loc[:, "Time":"Amount"].to_numpy(), frame["Class"].to_numpy()
    x[:, -1] = np.log1p(x[:, -1])
    x = (x - x.mean(0)) / x.std(0)
    model = LogisticRegression(max_iter=500).fit(x[::2], y[::2])
    ap = average_precision_score(y[1::2], model.predict_proba(x[1::2])[:, 1])
    assert 0.2 < ap < 0.95


def test_synthetic_regimes_move_the_fraud_cue_and_add_noise_columns() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score

    default = synthetic_transactions(20_000, 0.01, seed=1)
    pd.testing.assert_frame_equal(default, synthetic_transactions(20_000, 0.01, 1, "mixed", 0))
    wide = synthetic_transactions(20_000, 0.01, 1, "mixed", extra_features=3)
    after_amount = list(wide.columns).index("Amount") + 1
    assert list(wide.columns[after_amount : after_amount + 4]) == ["N1", "N2", "N3", "merchant_category"]
    pd.testing.assert_frame_equal(wide.drop(columns=["N1", "N2", "N3"]), default)
    aps = {}
    for signal in ("linear", "nonlinear"):
        frame = synthetic_transactions(40_000, 0.02, 0, signal)
        ulb = ["Time", *(f"V{i}" for i in range(1, 29)), "Amount"]  # the numbers; Amount last
        x, y = frame[ulb].to_numpy(), frame["Class"].to_numpy()
        x[:, -1] = np.log1p(x[:, -1])
        x = (x - x.mean(0)) / x.std(0)
        model = LogisticRegression(max_iter=500).fit(x[::2], y[::2])
        aps[signal] = average_precision_score(y[1::2], model.predict_proba(x[1::2])[:, 1])
        if signal == "nonlinear":  # nor do its categories lean with fraud
            by_channel = frame.groupby("channel")["Class"].mean()
            assert by_channel["online"] < 1.5 * by_channel["chip"]
    assert aps["linear"] > 0.4 and aps["nonlinear"] < 0.1  # a linear model finds no cue in the non-linear regime
    with pytest.raises(ValueError, match="signal must be one of"):
        synthetic_transactions(1000, 0.01, 0, "quadratic")


@pytest.fixture
def labels() -> np.ndarray:
    rng = np.random.default_rng(0)
    y = np.zeros(5000, dtype=np.int8)
    y[rng.choice(5000, 100, replace=False)] = 1
    return y


def test_stratified_splits_disjoint_complete_stratified_and_stable(labels: np.ndarray) -> None:
    parts = split_indices(labels, SPLIT, seed=1)
    together = np.concatenate(list(parts.values()))
    assert np.unique(together).size == together.size == labels.size
    assert [parts[s].size for s in ("train", "val", "test")] == [3000, 1000, 1000]
    for rows in parts.values():
        assert labels[rows].mean() == pytest.approx(labels.mean(), abs=0.002)
    again = split_indices(labels, SPLIT, seed=1)
    other = split_indices(labels, SPLIT, seed=2)
    assert all(np.array_equal(parts[s], again[s]) for s in parts)
    assert not np.array_equal(parts["test"], other["test"])


def test_time_split_orders_train_before_val_before_test(labels: np.ndarray) -> None:
    times = np.random.default_rng(1).permutation(labels.size).astype(float)
    parts = split_indices(labels, SPLIT.model_copy(update={"method": "time"}), seed=0, times=times)
    assert times[parts["train"]].max() < times[parts["val"]].min()
    assert times[parts["val"]].max() < times[parts["test"]].min()


def test_time_windows_by_hand() -> None:
    """20 rows at times 0..19 (seconds), fractions 0.6/0.2/0.2, 3 folds: windows of
    20 / (1 + 2 x 0.2) = 14.3 -> 14 rows, starting round(0.2 x 14.29 x f) = 0, 3, 6 rows apart; 8 train
    rows (round(14 x 0.6)), then validation and test halve the rest."""
    times = np.arange(20, dtype=float)[::-1].copy()  # rows stored latest first: the order comes from times
    y = np.ones(20, dtype=np.int8)
    y[::2] = 0
    params = SPLIT.model_copy(update={"method": "time", "folds": 3, "min_positives": 1})
    windows = [{k: sorted(times[v].astype(int)) for k, v in time_parts(times, params, f).items()} for f in range(3)]
    assert windows[0] == {"train": list(range(0, 8)), "gap": [], "val": [8, 9, 10], "test": [11, 12, 13]}
    assert windows[1]["train"] == list(range(3, 11)) and windows[1]["test"] == [14, 15, 16]
    assert windows[2]["test"] == [17, 18, 19]  # the test blocks follow one another to the last row
    # A delay of 2 s after the last training row (time 7) leaves rows 8 and 9 out.
    delayed = time_parts(times, params.model_copy(update={"delay": "2s"}), 0)
    assert sorted(times[delayed["gap"]]) == [8, 9] and sorted(times[delayed["val"]]) == [10, 11]
    assert sorted(times[delayed["test"]]) == [12, 13]
    assert params.model_copy(update={"delay": "1.5h"}).delay_seconds == 5400
    with pytest.raises(DataError, match="time window 0 leaves an empty part.*shorter prepare.split.delay"):
        time_parts(times, params.model_copy(update={"delay": "1d"}), 0)


def test_too_few_positives_names_the_split(labels: np.ndarray) -> None:
    times = np.arange(labels.size, dtype=float)
    late = labels.copy()
    late[:] = 0
    late[:40] = 1  # every positive is early: val and test get none
    with pytest.raises(DataError, match=r"split 'val' \(time window 0\) holds 0 positives.*min_positives=5"):
        split_indices(late, SPLIT.model_copy(update={"method": "time"}), seed=0, times=times)
    with pytest.raises(DataError, match="only 10 positives"):
        split_indices(late * (np.arange(late.size) < 10), SPLIT, seed=0)


def test_synthetic_fraud_depends_on_the_categorical_columns() -> None:
    frame = synthetic_transactions(100_000, 0.01, seed=0)
    by_channel = frame.groupby("channel")["Class"].mean()
    assert by_channel["online"] > 3 * by_channel["chip"]
    domestic = frame["country"] == "US"
    assert frame.loc[~domestic & frame["country"].notna(), "Class"].mean() > 3 * frame.loc[domestic, "Class"].mean()


def test_clean_drop_policy_reports_count(params: Params) -> None:
    frame = pd.DataFrame({"a": [1.0, np.nan, 3.0, np.inf, 5.0], "Class": [0, 1, 0, 1, 1]})
    cleaned = clean(frame, params.prepare.model_copy(update={"nonfinite": "drop", "log1p": []}))
    assert cleaned.dropped_nonfinite == 2
    assert cleaned.labels.tolist() == [0, 0, 1]
    assert cleaned.table["a"].tolist() == [1.0, 3.0, 5.0]
