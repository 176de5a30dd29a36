"""Column roles: what each column of the source is to the model, inferred from its values and its name,
or declared in ``prepare.columns`` (the declaration wins).

The rules, in order (the first that applies):

1. declared in ``prepare.columns`` (numeric, categorical, datetime, id, entity or drop), or listed in
   ``prepare.drop_columns`` (drop);
2. **constant**: one value in every row, or no value at all: dropped;
3. **boolean**: a bool column, or numbers that are all 0 or 1;
4. **datetime**: a column of date-times (a datetime dtype);
5. **id**: a name that reads as an identifier, its last word one of id, uuid, key, num, number, no, nr (or
   its first word id): ``id``, ``card_id``, ``cc_num``, ``trans_num``, ``accountNumber``; never a feature;
6. numbers: **categorical** when whole numbers with at most ``INTEGER_LEVELS`` (10) distinct values, else
   **numeric** (an amount in cents or a Unix time is near-unique and still a number: integer ids are
   found by name);
7. text: **numeric** when every value reads as a number; **datetime** when most distinct values look
   like dates (digits with ``-``, ``/`` or ``.``) and every one parses; **id** when near-unique (more than
   half of its present values distinct); else **categorical**.

Three kinds of column stop prepare with one line naming the fix: text in which most distinct values are
numbers but some are not (a column that changes type between rows), a date column in which some values
do not parse, and a categorical column with more distinct values than the training part can teach at
``prepare.min_category_count`` (its training rows divided by that count).

The **entity** (the card or customer a transaction belongs to, for per-entity metrics; never a feature)
is the id declared ``entity``; else, among the id columns whose values repeat (under 90% distinct), the
first whose name has a word card, cc, customer, account, user or client, else the one with the fewest
distinct values. A transaction id (unique values) never is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.data.values import FEATURE_ROLES, date_format, date_like_share, examples, instants, numbers
from pipeline.runtime.errors import DataError

INTEGER_LEVELS = 10  # whole numbers with at most this many distinct values are categories
NEAR_UNIQUE = 0.5  # text with a larger share of distinct values is an identifier
MOSTLY = 0.5  # text whose distinct values are mostly numbers (or date-like) must all be
REPEATING = 0.9  # an id column with a smaller share of distinct values names an entity
ID_WORDS = frozenset({"id", "uuid", "key", "num", "number", "no", "nr"})
ENTITY_WORDS = frozenset({"card", "cc", "customer", "account", "user", "client"})


@dataclass(frozen=True)
class Columns:
    """Every column's role (the label's aside), in the source's order, and what the encoder needs to read
    the date-time columns; ``notes`` say why each role was given (the role table)."""

    roles: dict[str, str]  # numeric | boolean | categorical | datetime (features), id, constant or drop
    formats: dict[str, str]  # date-time columns: their text format (values.date_format)
    entity: str | None  # the id column that names the card or customer
    notes: dict[str, str]

    @property
    def features(self) -> dict[str, str]:
        """The columns the network reads, and their roles."""
        return {name: role for name, role in self.roles.items() if role in FEATURE_ROLES}

    @property
    def kept(self) -> list[str]:
        """The columns prepare keeps in its table: the features and the ids."""
        return [name for name, role in self.roles.items() if role in (*FEATURE_ROLES, "id")]


def words(name: str) -> list[str]:
    """A column name's words: split at separators and at lower-to-upper case changes."""
    return re.findall(r"[a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower())


def id_like(name: str) -> bool:
    """Whether a name reads as an identifier's (``card_id``, ``cc_num``, ``accountNumber``)."""
    parts = words(name)
    return bool(parts) and (parts[-1] in ID_WORDS or parts[0] == "id")


def infer_roles(
    frame: pd.DataFrame, declared: dict[str, str], drop: list[str], train_rows: int, min_count: int
) -> Columns:
    """Every column's role (``frame`` without its label); ``train_rows`` and ``min_count`` bound the
    distinct values a categorical column may have."""
    roles, formats, notes = {}, {}, {}
    for name in map(str, frame.columns):
        values = frame[name]
        wanted = declared.get(name) or ("drop" if name in drop else None)
        role, note = _declared(name, values, wanted) if wanted else _inferred(name, values)
        roles[name], notes[name] = role, note
        if role == "datetime":
            formats[name] = date_format(values)
    for name, role in roles.items():
        if role == "categorical":
            _learnable(name, frame[name], train_rows, min_count)
    entity = next((n for n, r in declared.items() if r == "entity"), None) or _entity(frame, roles)
    return Columns(roles, formats, entity, notes)


def _declared(name: str, values: pd.Series, role: str) -> tuple[str, str]:
    """A declared role, checked against the values (a numeric column must hold numbers, a date-time column
    must parse)."""
    if role == "numeric":
        _, bad = numbers(values)
        if bad.any():
            raise DataError(
                f"prepare.columns declares '{name}' numeric, but {int(bad.sum()):,} values are not "
                f"numbers (e.g. {examples(values, bad)}); fix them, or declare it categorical"
            )
    if role == "datetime":
        _parses(name, values, date_format(values))
    return ("id" if role == "entity" else role), "declared"


def _inferred(name: str, values: pd.Series) -> tuple[str, str]:
    """A role from the values and the name (the module's rules 2 to 7)."""
    if values.nunique(dropna=False) <= 1:
        return "constant", "one value: dropped"
    present = values.dropna()
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if pd.api.types.is_bool_dtype(values) or (numeric and present.isin([0, 1]).all()):
        return "boolean", "two values, 0 and 1"
    if pd.api.types.is_datetime64_any_dtype(values):
        return "datetime", "date-times"
    if id_like(name):
        return "id", "named like an identifier"
    distinct = int(present.nunique())
    if numeric:
        whole = bool(np.isfinite(present).all() and (present == present.round()).all())
        if whole and distinct <= INTEGER_LEVELS:
            return "categorical", f"{distinct} whole-number values"
        return "numeric", str(values.dtype)
    return _text(name, values, present, distinct)


def _text(name: str, values: pd.Series, present: pd.Series, distinct: int) -> tuple[str, str]:
    """The role of a text column: numbers, date-times, an identifier or categories."""
    uniques = pd.Series(present.unique(), dtype=object)
    _, not_numbers = numbers(uniques)
    if not not_numbers.any():
        return "numeric", "numbers as text"
    if 1 - not_numbers.mean() >= MOSTLY:
        raise DataError(
            f"column '{name}' changes type between rows: {int((~not_numbers).sum()):,} of its "
            f"{len(uniques):,} distinct values are numbers and {int(not_numbers.sum()):,} are not "
            f"(e.g. {examples(uniques, not_numbers)}); fix those values, or declare its role in "
            "prepare.columns (categorical keeps every value as a category)"
        )
    if date_like_share(present) >= MOSTLY:
        fmt = date_format(values)
        _parses(name, uniques, fmt)
        return "datetime", f"text, format {fmt}"
    if distinct > NEAR_UNIQUE * len(present):
        return "id", f"near-unique ({distinct / len(present):.0%} distinct)"
    return "categorical", f"{distinct} values"


def _parses(name: str, values: pd.Series, fmt: str) -> None:
    """A date-time column whose present values all parse in ``fmt``, or one error naming the fix."""
    _, bad = instants(values, fmt)
    if bad.any():
        raise DataError(
            f"date column '{name}' does not parse: {int(bad.sum()):,} of its values are not "
            f"date-times in the format {fmt} of its first value (e.g. {examples(values, bad)}); fix "
            "them, or declare the column categorical or drop in prepare.columns"
        )


def _learnable(name: str, values: pd.Series, train_rows: int, min_count: int) -> None:
    """A categorical column the training part can learn: at most train_rows / min_count distinct values."""
    distinct, most = int(values.nunique(dropna=True)), train_rows // min_count
    if distinct > most:
        raise DataError(
            f"categorical column '{name}' has {distinct:,} distinct values, more than {train_rows:,} "
            f"training rows can teach at prepare.min_category_count={min_count} (at most {most:,}); "
            "declare it id or drop in prepare.columns, or lower prepare.min_category_count"
        )


def _entity(frame: pd.DataFrame, roles: dict[str, str]) -> str | None:
    """The id column that names the entity (see the module's docstring), or None."""
    shares = {}
    for name, role in roles.items():
        present = frame[name].dropna()
        if role == "id" and len(present) and present.nunique() < REPEATING * len(present):
            shares[name] = present.nunique() / len(present)
    named = [n for n in shares if ENTITY_WORDS & set(words(n))]
    return named[0] if named else min(shares, key=lambda n: (shares[n], n), default=None)


def role_table(columns: Columns, label: str) -> list[str]:
    """The roles as lines of a table: column, role, why."""
    rows = [
        (name, role + (" (entity)" if name == columns.entity else ""), columns.notes[name])
        for name, role in columns.roles.items()
    ] + [(label, "label", "0/1")]
    width = [max(len(r[i]) for r in [("column", "role", ""), *rows]) for i in range(2)]
    return [f"  {a:<{width[0]}}  {b:<{width[1]}}  {c}".rstrip() for a, b, c in [("column", "role", "why"), *rows]]
