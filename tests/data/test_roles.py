"""Column roles: each inference rule on tiny literal columns, declarations over inference, the entity,
the role table, and the three kinds of column that stop prepare with one line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.data.roles import id_like, infer_roles, role_table
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
    "too many categories": (
        {"city": [f"c{i % 15}" for i in range(N)]},
        "categorical column 'city' has 15 distinct values, more than 24 training rows can teach at "
        r"prepare.min_category_count=2 \(at most 12\); declare it id or drop in prepare.columns, "
        "or lower prepare.min_category_count",
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
