"""The encoder: categories and date-time origins from the training rows only, rare and unseen categories
at "other", missing ones at their own index, date-times as cyclic pairs and elapsed days, one JSON file
that scores raw rows exactly as the training rows were encoded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.data.encoder import DATETIME_PARTS, MISSING, OTHER, Encoder, Scaler, datetime_parts, embedding_dim
from pipeline.data.values import category_keys, decode

ROLES = {"amt": "numeric", "shop": "categorical", "when": "datetime"}
FORMATS = {"when": "%Y-%m-%d %H:%M:%S"}


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "amt": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
            "shop": ["a", "a", "a", "b", "b", "c", "d", None],  # c: rare in training; d: only in the later rows
            "when": [
                "2024-01-01 00:00:00",
                "2024-01-01 06:00:00",
                "2024-01-02 12:00:00",
                "2024-01-03 18:00:00",
                "2024-01-07 00:00:00",
                "2024-01-08 00:00:00",
                "2030-01-01 00:00:00",
                "2024-01-05 00:00:00",
            ],
        }
    )


TRAIN = np.array([0, 1, 2, 3, 4, 5, 7])  # row 6 (shop d, the year 2030) is not training


@pytest.fixture
def encoder() -> Encoder:
    return Encoder.fit(ROLES, FORMATS, decode(_frame(), ROLES, FORMATS), TRAIN, log1p=["amt"], min_count=2)


def test_categories_come_from_the_training_rows_and_rare_or_unseen_ones_are_other(encoder: Encoder) -> None:
    assert encoder.levels == {"shop": ["a", "b"]}  # most frequent first; c seen once, d never
    assert encoder.table_sizes() == {"shop": 4}
    x = encoder.encode(_frame())
    shop = x[:, len(encoder.scaler.features)]
    assert shop.tolist() == [2, 2, 2, 3, 3, OTHER, OTHER, MISSING]


def test_numeric_inputs_are_scaled_on_training_rows_and_date_times_become_five_numbers(encoder: Encoder) -> None:
    assert encoder.scaler.features == ["amt", *[f"when:{p}" for p in DATETIME_PARTS]]
    assert encoder.origins == {"when": pd.Timestamp("2024-01-01", tz="UTC").timestamp()}
    x = encoder.encode(_frame())
    assert x.dtype == np.float32 and x.shape == (8, 7)
    np.testing.assert_allclose(x[TRAIN, :6].mean(axis=0), 0, atol=1e-6)  # standardised on training rows only
    assert x[6, 5] > 100  # 2030 is far beyond the training days: not re-centred on itself
    assert encoder.scaler.log1p == ["amt"]


def test_datetime_parts_are_cycles_of_the_day_and_week() -> None:
    monday = pd.Timestamp("2024-01-01", tz="UTC").timestamp()
    seconds = np.array([monday, monday + 6 * 3600, monday + 86_400 * 7 - 1, monday + 86_400 * 2.5])
    hour_sin, hour_cos, week_sin, week_cos, days = datetime_parts(seconds, origin=monday)
    np.testing.assert_allclose([hour_sin[0], hour_cos[0], week_sin[0], week_cos[0]], [0, 1, 0, 1], atol=1e-12)
    np.testing.assert_allclose([hour_sin[1], hour_cos[1]], [1, 0], atol=1e-12)  # 06:00: a quarter of the day
    np.testing.assert_allclose([week_sin[2], week_cos[2]], [0, 1], atol=1e-4)  # Sunday 23:59 next to Monday
    np.testing.assert_allclose(days, [0, 0.25, 7 - 1 / 86_400, 2.5])


def test_raw_rows_encode_as_the_training_rows_whatever_their_dtypes(encoder: Encoder) -> None:
    frame = _frame()
    typed = frame.assign(
        amt=frame["amt"].astype("int64"),
        when=pd.to_datetime(frame["when"]),
        shop=frame["shop"].astype(object),
        extra="ignored",
    )[::-1].reset_index(drop=True)
    np.testing.assert_array_equal(encoder.encode(typed), encoder.encode(frame)[::-1])
    unseen = frame.assign(shop=["zz", "a", None, "b", "yy", "c", "d", "a"])
    assert unseen.pipe(encoder.encode)[:, -1].tolist() == [OTHER, 2, MISSING, 3, OTHER, OTHER, OTHER, 2]


def test_the_json_file_round_trips_and_an_old_scaler_file_loads(encoder: Encoder, tmp_path: Path) -> None:
    encoder.save(tmp_path / "encoder.json")
    again = Encoder.load(tmp_path / "encoder.json")
    assert again == encoder
    np.testing.assert_array_equal(again.encode(_frame()), encoder.encode(_frame()))
    scaler = Scaler.fit(pd.DataFrame({"a": [1.0, 2.0, 4.0]}), log1p=[])
    (tmp_path / "scaler.json").write_text(json.dumps(scaler.to_dict()))  # what models logged before encoders carry
    old = Encoder.load(tmp_path / "scaler.json")
    assert old.roles == {"a": "numeric"} and old.levels == {}
    np.testing.assert_array_equal(
        old.encode(pd.DataFrame({"a": [3.0]})), scaler.transform(pd.DataFrame({"a": [3.0]})).to_numpy()
    )
    assert json.loads((tmp_path / "encoder.json").read_text())["format"] == "bn-fraud encoder 1"


def test_keys_read_a_value_alike_whatever_its_type() -> None:
    keys = category_keys(pd.Series([3, 3.0, "3", True, 2.5, None], dtype=object))
    assert [keys.names[c] if c >= 0 else None for c in keys.codes] == ["3", "3", "3", "True", "2.5", None]


def test_embedding_width_rule() -> None:
    assert [embedding_dim(n) for n in (2, 7, 14, 100, 10_000)] == [2, 5, 7, 16, 16]


def test_scaler_uses_train_statistics_only() -> None:
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"a": rng.normal(5, 2, 500), "Amount": rng.lognormal(2, 1, 500)})
    test = pd.DataFrame({"a": rng.normal(50, 20, 500), "Amount": rng.lognormal(6, 1, 500)})
    scaler = Scaler.fit(train, log1p=["Amount"])
    assert scaler.mean == pytest.approx([train["a"].mean(), np.log1p(train["Amount"]).mean()])
    scaled_train = scaler.transform(train)
    assert scaled_train.mean().abs().max() < 1e-5
    assert scaler.transform(test)["a"].mean() > 10  # test is not re-centred on its own statistics
