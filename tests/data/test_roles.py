"""Column roles: each inference rule on tiny literal columns, declarations over inference, the entity,
the role table, and the three kinds of column that stop prepare with one line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.data.roles import Columns, id_like, infer_roles, role_table, special_columns
from pipeline.project.params import Params, PrepareParams
from pipeline.runtime.errors import DataError

N = 40


def _roles(
    declared: dict[str, str] | None = None,
    drop: list[str] | None = None,
    train_rows: int = 1000,
    min_count: int = 1,
    **columns: list,
) -> dict[str, str]:
    return infer_roles(pd.DataFrame(columns), declared or {}, drop or [], train_rows, min_count).roles


@pytest.mark.parametrize(
    ("values", "role"),
    [
        (np.linspace(0, 1, N), "numeric"),
        (list(range(N)), "numeric"),  # whole numbers, many of them
        ([1, 2, 3, 4] * (N // 4), "categorical"),  # whole numbers, few of them
        ([0, 1] * (N // 2), "boolean"),
        ([True, False] * (N // 2), "boolean"),
        ([7] * N, "constant"),
        ([None] * N, "constant"),
        (["a", "b", "c", None] * (N // 4), "categorical"),
        ([f"id-{i}" for i in range(N)], "id"),  # near-unique text
        ([str(i / 3) for i in range(N)], "numeric"),  # numbers as text
        ([f"2024-01-{1 + i % 28:02d} 10:{i:02d}:00" for i in range(N)], "datetime"),
        ([f"{1 + i % 28:02d}/03/2019" for i in range(N)], "datetime"),
        (pd.date_range("2024-01-01", periods=N, freq="h"), "datetime"),
    ],
)
def test_each_rule(values: list, role: str) -> None:
    assert _roles(column=values) == {"column": role}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("id", True),
        ("card_id", True),
        ("cc_num", True),
        ("trans_num", True),
        ("accountNumber", True),
        ("order_no", True),
        ("id_card", True),
        ("Amount", False),
        ("V14", False),
        ("card_type", False),
        ("number_of_items", False),
        ("valid", False),
    ],
)
def test_identifier_names(name: str, expected: bool) -> None:
    assert id_like(name) is expected


def test_an_identifier_by_name_is_never_a_feature_whatever_its_values() -> None:
    assert _roles(cc_num=[4000 + i % 5 for i in range(N)]) == {"cc_num": "id"}


def test_declarations_win_over_inference() -> None:
    declared = {"a": "categorical", "b": "numeric", "c": "id", "d": "drop", "e": "datetime", "f": "entity"}
    roles = _roles(
        declared,
        a=np.linspace(0, 1, N),
        b=[str(i) for i in range(N)],
        c=list(range(N)),
        d=list(range(N)),
        e=[1_546_300_800 + 3600 * i for i in range(N)],
        f=[i % 4 for i in range(N)],
    )
    assert roles == {"a": "categorical", "b": "numeric", "c": "id", "d": "drop", "e": "datetime", "f": "id"}
    assert _roles(drop=["x"], x=list(range(N)), y=list(range(N))) == {"x": "drop", "y": "numeric"}


def test_the_entity_is_the_repeating_id_with_a_card_or_customer_name() -> None:
    frame = pd.DataFrame(
        {
            "trans_num": [f"t{i}" for i in range(N)],
            "cc_num": [i % 5 for i in range(N)],
            "merchant_id": [i % 3 for i in range(N)],
            "amt": np.linspace(1, 2, N),
        }
    )
    assert infer_roles(frame, {}, [], 1000, 1).entity == "cc_num"  # named like a card; merchant_id repeats too
    assert infer_roles(frame.drop(columns="cc_num"), {}, [], 1000, 1).entity == "merchant_id"
    assert infer_roles(frame[["trans_num", "amt"]], {}, [], 1000, 1).entity is None  # unique ids name no entity
    assert infer_roles(frame, {"merchant_id": "entity"}, [], 1000, 1).entity == "merchant_id"


def test_the_role_table_lists_every_column_once_with_the_label() -> None:
    frame = pd.DataFrame(
        {"amt": np.linspace(1, 2, N), "card_id": [i % 4 for i in range(N)], "kind": ["x", "y"] * (N // 2)}
    )
    lines = role_table(infer_roles(frame, {}, [], 1000, 1), "is_fraud")
    assert lines[0].split() == ["column", "role", "why"]
    assert [line.split()[:2] for line in lines[1:]] == [
        ["amt", "numeric"],
        ["card_id", "id"],
        ["kind", "categorical"],
        ["is_fraud", "label"],
    ]
    assert "(entity)" in lines[2]


BAD = {
    "changes type": (
        {"amt": [str(i) for i in range(N - 2)] + ["12,50", "n.a."]},
        "column 'amt' changes type between rows: 38 of its 40 distinct values are numbers and 2 are not "
        r"\(e.g. '12,50', 'n.a.'\); fix those values, or declare its role in prepare.columns",
    ),
    "date does not parse": (
        {"when": [f"2024-01-{1 + i % 28:02d}" for i in range(N - 1)] + ["2024-02-31"]},
        r"date column 'when' does not parse: 1 of its values are not date-times in the format "
        r"%Y-%m-%d of its first value \(e.g. '2024-02-31'\); fix them, or declare the column "
        "categorical or drop in prepare.columns",
    ),
    "declared numeric": (
        {"b": ["1", "x"] * (N // 2)},
        "prepare.columns declares 'b' numeric, but 20 values are not numbers",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_columns_it_cannot_use_stop_with_one_line_naming_the_fix(case: str) -> None:
    columns, message = BAD[case]
    declared = {"b": "numeric"} if case == "declared numeric" else {}
    with pytest.raises(DataError, match=message) as raised:
        infer_roles(pd.DataFrame(columns), declared, [], 24, 2)
    assert "\n" not in str(raised.value)


def test_many_valued_categories_never_stop_rare_values_share_other_and_rare_columns_drop() -> None:
    """Rule 8: a column of 700 merchants (a few common, most rare) keeps the common ones and says how many rows
    fall in "other"; one whose kept values hold almost no rows (streets) is dropped with its reason, unless
    declared; neither stops prepare."""
    rng = np.random.default_rng(0)
    zipf = 1 / np.arange(1, 701)
    frame = pd.DataFrame(
        {
            "merchant": [f"m{i}" for i in rng.choice(700, 3000, p=zipf / zipf.sum())],
            "street": [f"{i} Main St" for i in rng.permutation(np.arange(3000) % 1000)],  # 1,000 values, 3 rows each
        }
    )
    columns = infer_roles(frame, {}, [], 1800, 10)
    assert columns.roles == {"merchant": "categorical", "street": "rare"}
    kept = int(columns.notes["merchant"].split("about ")[1].split()[0])
    assert 15 <= kept <= 40 and 'of rows "other"' in columns.notes["merchant"]
    assert columns.notes["street"].startswith("1,000 values; those seen 10+ times in a training part hold 0.0%")
    assert "declare it categorical to keep it" in columns.notes["street"]
    assert infer_roles(frame, {"street": "categorical"}, [], 1800, 10).roles["street"] == "categorical"
    lines = role_table(columns, "is_fraud")
    assert [line.split()[:2] for line in lines[1:3]] == [["merchant", "categorical"], ["street", "rare"]]


def test_every_column_that_cannot_be_read_is_named_in_one_message() -> None:
    frame = pd.DataFrame(
        {
            "amt": [str(i) for i in range(N - 1)] + ["12,50"],
            "day": [f"2024-01-{1 + i % 28:02d}" for i in range(N - 1)] + ["2024-13-01"],
            "b": ["1", "x"] * (N // 2),
        }
    )
    with pytest.raises(DataError) as raised:
        infer_roles(frame, {"b": "numeric"}, [], 24, 2)
    message = str(raised.value)
    assert message.startswith("3 problems, each with its fix: (1) column 'amt' changes type between rows")
    assert "(2) date column 'day' does not parse" in message and "(3) prepare.columns declares 'b' numeric" in message
    assert "\n" not in message and len(raised.value.problems) == 3


def _special(frame: pd.DataFrame, params: PrepareParams, **declared: str) -> Columns:
    params = params.model_copy(update={"columns": declared})
    return special_columns(frame, infer_roles(frame, declared, [], 1000, 1), params)


STAMPS = [f"2024-03-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:00" for i in range(N)]


@pytest.mark.parametrize("name", ["amt", "TransactionAmt", "transaction_amount", "amount_usd"])
def test_the_amount_is_found_by_name_among_non_negative_numbers(name: str, params: Params) -> None:
    frame = pd.DataFrame({"v": np.linspace(-1, 1, N), name: np.linspace(0, 99, N), "kind": ["a", "b"] * (N // 2)})
    columns = _special(frame, params.prepare)
    assert columns.amount == name and columns.inferred == {"amount": "inferred (no column 'Amount')"}
    assert columns.log1p == [name]  # prepare.log1p's entry naming prepare.amount follows the amount found
    row = next(line for line in role_table(columns, "y") if line.split()[0] == name)
    assert row.endswith("the amount, inferred (no column 'Amount'); log1p'd")


def test_an_amount_named_but_not_numbers_or_negative_is_not_taken(params: Params) -> None:
    text = pd.DataFrame({"amt": ["low", "high"] * (N // 2), "amount": np.linspace(-5, 5, N), "v": np.arange(N)})
    columns = _special(text, params.prepare)
    assert columns.amount is None and columns.log1p == [] and columns.inferred == {}
    named = pd.DataFrame({"Amount": np.linspace(0, 1, N), "amt": np.linspace(0, 2, N)})
    assert _special(named, params.prepare).amount == "Amount"  # prepare.amount wins when the data has it
    off = params.prepare.model_copy(update={"amount": None, "log1p": []})
    assert _special(named.drop(columns="Amount"), off).amount is None  # null turns money off


def test_the_time_is_the_only_date_time_and_a_birth_date_becomes_an_age(params: Params) -> None:
    frame = pd.DataFrame(
        {
            "trans_date_trans_time": STAMPS,
            "dob": [f"19{50 + i % 40}-0{1 + i % 9}-1{i % 10}" for i in range(N)],
            "v": np.arange(N, dtype=float),
        }
    )
    columns = _special(frame, params.prepare)
    assert columns.time == "trans_date_trans_time" and columns.roles["dob"] == "age"
    assert columns.anchors == {"dob": "trans_date_trans_time"} and columns.date_only == ["dob"]
    assert columns.inferred["time"] == "inferred (no column 'Time'; the only date-time)"
    table = {line.split()[0]: line for line in role_table(columns, "y")}
    assert (
        "age in years at trans_date_trans_time" in table["dob"]
        and "the time, inferred" in table["trans_date_trans_time"]
    )
    declared = _special(frame, params.prepare, dob="datetime")  # declared otherwise: a date-time, dates only
    assert declared.roles["dob"] == "datetime" and declared.date_only == ["dob"] and declared.anchors == {}
    untimed = _special(frame.drop(columns="trans_date_trans_time"), params.prepare)
    assert untimed.time is None and untimed.roles["dob"] == "datetime"  # no transaction time: no age
    assert _special(frame.assign(Time=np.arange(N)), params.prepare).time == "Time"  # named: taken


def test_a_time_split_without_a_time_column_names_why(params: Params) -> None:
    by_time = params.prepare.model_copy(update={"split": params.prepare.split.model_copy(update={"method": "time"})})
    two = pd.DataFrame({"a_time": STAMPS, "b_time": STAMPS[::-1], "v": np.arange(N, dtype=float)})
    with pytest.raises(DataError, match="the data has no column 'Time' .* and date-time columns a_time, b_time; set"):
        _special(two, by_time)
    gaps = pd.DataFrame({"Time": [np.nan] * 3 + list(range(N - 3)), "v": np.arange(N, dtype=float)})
    with pytest.raises(DataError, match="its time column 'Time' has 3 empty cells"):
        _special(gaps, by_time)
    assert _special(gaps, params.prepare).time is None  # stratified: no time column, no stop
