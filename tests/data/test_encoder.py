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


def _gappy() -> pd.DataFrame:
    """Amounts and times with gaps: in training rows (0-5), in a later row (6) and infinite (row 7)."""
    return _frame().assign(
        amt=[1.0, np.nan, 3.0, 4.0, 9.0, np.nan, np.nan, np.inf],
        when=[*_frame()["when"][:3], None, *_frame()["when"][4:]],
    )


GAPPY_TRAIN = np.arange(6)


@pytest.fixture
def imputing() -> Encoder:
    frame = _gappy()
    return Encoder.fit(ROLES, FORMATS, decode(frame, ROLES, FORMATS), GAPPY_TRAIN, ["amt"], 2, impute=True)


def test_the_imputer_learns_medians_and_gaps_from_the_training_rows_only(imputing: Encoder) -> None:
    """Training amounts 1, 3, 4, 9 (two missing): median 3.5, whatever the later rows hold (row 6: missing, row
    7: infinite); both columns had gaps in training, so each gets a "was missing" input; the scaler sees the
    imputed values."""
    assert imputing.imputer is not None
    assert imputing.imputer.median["amt"] == 3.5 and imputing.imputer.indicators == ["amt", "when"]
    # the training instants: 01-01 00:00, 01-01 06:00, 01-02 12:00, 01-07 00:00, 01-08 00:00 (row 3: missing)
    assert imputing.imputer.median["when"] == pd.Timestamp("2024-01-02 12:00", tz="UTC").timestamp()
    assert imputing.scaler.features == ["amt", "amt:missing", *[f"when:{p}" for p in DATETIME_PARTS], "when:missing"]
    x = imputing.encode(_gappy())
    assert np.isfinite(x).all()
    filled = imputing.encode(_gappy().assign(amt=[1.0, 3.5, 3.0, 4.0, 9.0, 3.5, 3.5, 3.5]))
    np.testing.assert_array_equal(x[:, 0], filled[:, 0])  # missing, later missing and infinite: the median
    missing = x[:, 1] > 0
    assert missing.tolist() == [False, True, False, False, False, True, True, True]
    np.testing.assert_allclose(x[GAPPY_TRAIN, :2].mean(axis=0), 0, atol=1e-6)  # standardised after imputing


def test_a_column_without_gaps_in_training_imputes_without_an_indicator() -> None:
    frame = _frame()
    fitted = Encoder.fit(ROLES, FORMATS, decode(frame, ROLES, FORMATS), TRAIN, [], 2, impute=True)
    assert fitted.imputer is not None and fitted.imputer.indicators == []
    assert fitted.scaler.features == ["amt", *[f"when:{p}" for p in DATETIME_PARTS]]  # as without imputing
    np.testing.assert_array_equal(
        fitted.encode(frame), Encoder.fit(ROLES, FORMATS, decode(frame, ROLES, FORMATS), TRAIN, [], 2).encode(frame)
    )
    scored = fitted.encode(frame.assign(amt=[np.nan] * 8))  # at scoring time: the training median
    assert np.allclose(scored[:, 0], fitted.scaler.scaled(0, np.array([fitted.imputer.median["amt"]]))[0])


def test_the_imputed_cells_are_named_and_counted(imputing: Encoder) -> None:
    decoded = decode(_gappy(), ROLES, FORMATS)
    mask = imputing.imputed(decoded)
    assert mask is not None and mask.shape == (8, imputing.width)
    assert mask[:, 0].tolist() == [False, True, False, False, False, True, True, True]
    assert not mask[:, 1].any()  # the "was missing" input is never an imputed value
    assert mask[:, 2:7].any(axis=1).tolist() == [False, False, False, True, False, False, False, False]
    assert imputing.gaps(decoded, GAPPY_TRAIN) == {"amt": 2, "when": 1}
    assert imputing.gaps(decoded, np.array([6, 7])) == {"amt": 2}
    assert Encoder.fit(ROLES, FORMATS, decoded, GAPPY_TRAIN, [], 2).imputed(decoded) is None  # not imputing


def test_dates_only_give_no_hour_and_a_birth_date_gives_an_age(tmp_path: Path) -> None:
    roles = {"when": "datetime", "dob": "age", "day": "datetime"}
    formats = {"when": "%Y-%m-%d %H:%M:%S", "dob": "%Y-%m-%d", "day": "%Y-%m-%d"}
    frame = pd.DataFrame(
        {
            "when": ["2024-01-01 06:00:00", "2024-07-01 18:00:00", "2024-03-01 00:00:00"],
            "dob": ["1994-01-01", "1970-07-01", None],
            "day": ["2024-01-01", "2024-01-02", "2024-01-03"],
        }
    )
    rows = np.arange(3)
    fitted = Encoder.fit(
        roles, formats, decode(frame, roles, formats), rows, [], 1, ["day"], {"dob": "when"}, impute=True
    )
    assert fitted.scaler.features == [
        *[f"when:{p}" for p in DATETIME_PARTS],
        "dob:age",
        "dob:missing",
        "day:weekday_sin",
        "day:weekday_cos",
        "day:days",
    ]
    ages = fitted._numeric(decode(frame, roles, formats), None)["dob:age"]
    np.testing.assert_allclose(ages[:2], [30.0, 54.0], atol=0.01)  # years at the row's time
    assert ages[2] == pytest.approx(42.0, abs=0.01)  # the training median age
    fitted.save(tmp_path / "encoder.json")
    again = Encoder.load(tmp_path / "encoder.json")
    assert again == fitted
    np.testing.assert_array_equal(again.encode(frame), fitted.encode(frame))
