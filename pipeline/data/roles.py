"""Column roles: what each column of the source is to the model, inferred from its values and its name,
or declared in ``prepare.columns`` (the declaration wins); and the columns with a part to play: the amount,
the time, dates of birth.

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
   half of its present values distinct); else **categorical**;
8. an inferred categorical column whose values a training part sees at least ``prepare.min_category_count``
   times (the encoder's levels; rarer ones share "other") hold under ``MIN_COVERAGE`` (10%) of its rows is
   **rare**: dropped, with its reason (names, streets: near-unique text that is not quite unique). However
   many values a column has, it never stops prepare: rare values share "other".

A date-time column whose values all fall on midnight (dates without a time of day) is **date-only**: it
gives no hour-of-day inputs. Two kinds of column stop prepare, every one named in one message with its
fix: text in which most distinct values are numbers but some are not (a column that changes type between
rows) and a date column in which some values do not parse (and a declared role the values contradict).

The **entity** (the card or customer a transaction belongs to, for per-entity metrics; never a feature)
is the id declared ``entity``; else, among the id columns whose values repeat (under 90% distinct), the
first whose name has a word card, cc, customer, account, user or client, else the one with the fewest
distinct values. A transaction id (unique values) never is.

``special_columns`` then finds the columns with a part to play (``find_amount``, ``find_time``): the
**amount** is ``prepare.amount`` when the data has that column, else the first numeric, non-negative column
named like an amount (``Amount``, ``amt``, ``TransactionAmt``, ``transaction_amount``; a word amount or
amt); the **time** is ``prepare.split.time_column`` when the data has it, else the only date-time column
(dates of birth aside). ``prepare.log1p``'s entry that names ``prepare.amount`` follows the amount found.
An inferred date-time column named like a birth date (a word dob, birth, birthday or birthdate) becomes
an **age**: years from it to the transaction's time, when that time is a date-time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np
import pandas as pd

from pipeline.data.values import (
    FEATURE_ROLES,
    NUMBER_ROLES,
    category_keys,
    date_format,
    date_like_share,
    examples,
    instants,
    numbers,
)
from pipeline.project.params import PrepareParams
from pipeline.runtime.errors import DataError, Problems

INTEGER_LEVELS = 10  # whole numbers with at most this many distinct values are categories
NEAR_UNIQUE = 0.5  # text with a larger share of distinct values is an identifier
MOSTLY = 0.5  # text whose distinct values are mostly numbers (or date-like) must all be
REPEATING = 0.9  # an id column with a smaller share of distinct values names an entity
ID_WORDS = frozenset({"id", "uuid", "key", "num", "number", "no", "nr"})
ENTITY_WORDS = frozenset({"card", "cc", "customer", "account", "user", "client"})
MIN_COVERAGE = 0.1  # an inferred categorical column whose kept values hold a smaller share of its rows is rare
AMOUNT_WORDS = frozenset({"amount", "amt"})
BIRTH_WORDS = frozenset({"dob", "birth", "birthday", "birthdate"})
DAY = 86_400.0


@dataclass(frozen=True)
class Columns:
    """Every column's role (the label's aside), in the source's order, and what the encoder needs to read
    the date-time columns; ``notes`` say why each role was given (the role table)."""

    roles: dict[str, str]  # numeric | boolean | categorical | datetime | age (features), id, constant, rare, drop
    formats: dict[str, str]  # date-time and age columns: their text format (values.date_format)
    entity: str | None  # the id column that names the card or customer
    notes: dict[str, str]
    date_only: list[str] = field(default_factory=list)  # date-time columns whose values carry no time of day
    amount: str | None = None  # each transaction's amount (special_columns)
    time: str | None = None  # the column that orders the rows in time (special_columns)
    log1p: list[str] = field(default_factory=list)  # numeric columns log1p'd before scaling
    anchors: dict[str, str] = field(default_factory=dict)  # age column -> the time column it is measured at
    inferred: dict[str, str] = field(default_factory=dict)  # "amount" or "time" -> how it was found
    no_time: str = ""  # why no column orders the rows in time (when none does)

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
    """Every column's role (``frame`` without its label); a category is kept when a training part of
    ``train_rows`` rows would see it at least ``min_count`` times (rule 8). Every column that cannot be read
    is named, with its fix, in one DataError."""
    roles, formats, notes, date_only = {}, {}, {}, []
    problems = Problems()
    share = train_rows / max(len(frame), 1)  # of each value's rows, those a training part sees
    for name in map(str, frame.columns):
        found = problems.collect(
            partial(_role, name, frame[name], declared.get(name) or ("drop" if name in drop else None))
        )
        if found is None:
            continue
        role, note = found
        if role == "categorical":
            role, note = _coverage(frame[name], note, share, min_count, declared=name in declared)
        if role == "datetime":
            dates = problems.collect(partial(_dates, name, frame[name]))
            if dates is None:
                continue
            formats[name], only = dates
            note = f"text, format {formats[name]}" if note == "text" else note
            if only:
                date_only.append(name)
                note += "; dates only (no time of day)"
        roles[name], notes[name] = role, note
    problems.raise_any()
    entity = next((n for n, r in declared.items() if r == "entity"), None) or _entity(frame, roles)
    return Columns(roles, formats, entity, notes, date_only)


def _role(name: str, values: pd.Series, declared: str | None) -> tuple[str, str]:
    """A column's role and why: declared, or inferred."""
    return _declared(name, values, declared) if declared else _inferred(name, values)


def _declared(name: str, values: pd.Series, role: str) -> tuple[str, str]:
    """A declared role, checked against the values (a numeric column must hold numbers; a date-time column
    must parse: ``_dates``)."""
    if role == "numeric":
        _, bad = numbers(values)
        if bad.any():
            raise DataError(
                f"prepare.columns declares '{name}' numeric, but {int(bad.sum()):,} values are not "
                f"numbers (e.g. {examples(values, bad)}); fix them, or declare it categorical"
            )
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
        return "datetime", "text"  # its format and whether every value parses: _dates
    if distinct > NEAR_UNIQUE * len(present):
        return "id", f"near-unique ({distinct / len(present):.0%} distinct)"
    return "categorical", f"{distinct} values"


def _dates(name: str, values: pd.Series) -> tuple[str, bool]:
    """A date-time column's format, and whether its values are dates only (every one at midnight: no time of
    day); a DataError naming the fix when some distinct values do not parse in that format."""
    fmt = date_format(values)
    uniques = pd.Series(values.dropna().unique())
    seconds, bad = instants(uniques, fmt)
    if bad.any():
        raise DataError(
            f"date column '{name}' does not parse: {int(bad.sum()):,} of its values are not "
            f"date-times in the format {fmt} of its first value (e.g. {examples(uniques, bad)}); fix "
            "them, or declare the column categorical or drop in prepare.columns"
        )
    present = seconds[np.isfinite(seconds)]
    return fmt, bool(present.size) and bool((np.mod(present, DAY) == 0).all())


def _coverage(values: pd.Series, note: str, share: float, min_count: int, declared: bool) -> tuple[str, str]:
    """A categorical column's role and note from how many of its rows its kept categories hold (rule 8): the
    categories a training part (``share`` of the rows) would see at least ``min_count`` times."""
    keys = category_keys(values)
    counts = np.bincount(keys.codes[keys.codes >= 0], minlength=len(keys.names))
    kept = counts * share >= min_count
    held = float(counts[kept].sum() / max(counts.sum(), 1))
    if kept.all():
        return "categorical", note
    if held < MIN_COVERAGE and not declared:
        return "rare", (
            f"{len(counts):,} values; those seen {min_count}+ times in a training part hold {held:.1%} of its rows: "
            "dropped (declare it categorical to keep it)"
        )
    return "categorical", (
        f'{note}; about {int(kept.sum()):,} kept ({min_count}+ rows in a training part), {1 - held:.0%} of rows "other"'
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


def special_columns(frame: pd.DataFrame, columns: Columns, params: PrepareParams) -> Columns:
    """The columns with a part to play (see the module's docstring): the amount, the time, the ``log1p``
    columns (the amount's entry following the amount found) and the dates of birth, as ages. Every
    problem is named, with its fix, in one DataError."""
    problems = Problems()
    amount, amount_how = problems.collect(partial(find_amount, frame, columns.roles, params.amount)) or (None, None)
    time, time_how, no_time = find_time(frame, columns.roles, params.split.time_column, params.nonfinite == "drop")
    inferred = {part: how for part, how in (("amount", amount_how), ("time", time_how)) if how}
    if time is None and params.split.method == "time":
        problems.add(
            f"prepare.split.method is time, but {no_time}; set prepare.split.time_column to the column that "
            "orders the rows (numbers or date-times), or use prepare.split.method: stratified"
        )
    log1p = [amount if name == params.amount and name not in frame.columns else name for name in params.log1p]
    log1p = list(dict.fromkeys(name for name in log1p if name is not None))
    roles, notes, anchors = dict(columns.roles), dict(columns.notes), {}
    if time is not None and roles[time] == "datetime":
        for name, role in columns.roles.items():
            if role == "datetime" and name not in params.columns and birth_like(name):
                roles[name], anchors[name] = "age", time
                notes[name] = f"a date of birth: the age in years at {time}"
    problems.raise_any()
    return replace(
        columns,
        roles=roles,
        notes=notes,
        amount=amount,
        time=time,
        log1p=log1p,
        anchors=anchors,
        inferred=inferred,
        no_time=no_time,
    )


def birth_like(name: str) -> bool:
    """Whether a name reads as a date of birth's (``dob``, ``birth_date``, ``DateOfBirth``)."""
    return bool(BIRTH_WORDS & set(words(name)))


def amount_like(name: str) -> bool:
    """Whether a name reads as a transaction amount's (``Amount``, ``amt``, ``TransactionAmt``)."""
    return bool(AMOUNT_WORDS & set(words(name)))


def find_amount(frame: pd.DataFrame, roles: dict[str, str], name: str | None) -> tuple[str | None, str | None]:
    """The amount column and, when it was inferred, why: ``prepare.amount`` when the data has it (its values
    must be amounts), else the first numeric, non-negative column named like an amount; (None, None) for
    none (money metrics off) or ``prepare.amount: null``."""
    if name is None:
        return None, None
    if name in frame.columns:
        if roles.get(name) not in NUMBER_ROLES:
            raise DataError(
                f"prepare.amount column '{name}' is {roles.get(name)}, not numbers; declare it numeric in "
                "prepare.columns, or set prepare.amount to another column or null"
            )
        negative = int((numbers(frame[name])[0] < 0).sum())
        if negative:
            raise DataError(
                f"prepare.amount column '{name}' holds {negative} negative values; "
                "money caught and missed need amounts >= 0: set prepare.amount to another column or null"
            )
        return name, None
    for column, role in roles.items():
        if role == "numeric" and amount_like(column) and not (numbers(frame[column])[0] < 0).any():
            return column, f"inferred (no column '{name}')"
    return None, None


def find_time(
    frame: pd.DataFrame, roles: dict[str, str], name: str, gaps_dropped: bool = False
) -> tuple[str | None, str | None, str]:
    """The column that orders the rows in time, how it was inferred (None: named), and why there is none:
    ``prepare.split.time_column`` when the data has it, else the only date-time column (dates of birth aside).
    A column with empty cells orders nothing (its rows would have no place), unless those rows are dropped
    (``gaps_dropped``: prepare.nonfinite is drop)."""
    if name in frame.columns:
        column, how = name, None
        if roles.get(name) not in ("numeric", "datetime"):
            return None, None, f"its time column '{name}' is {roles.get(name)}, not numbers or date-times"
    else:
        dates = [c for c, role in roles.items() if role == "datetime" and not birth_like(c)]
        if len(dates) != 1:
            found = f"date-time columns {', '.join(dates)}" if dates else "no date-time column"
            return None, None, f"the data has no column '{name}' (prepare.split.time_column) and {found}"
        column, how = dates[0], f"inferred (no column '{name}'; the only date-time)"
    empty = int(frame[column].isna().sum())
    if empty and not gaps_dropped:
        return None, None, f"its time column '{column}' has {empty:,} empty cells"
    return column, how, ""


def role_table(columns: Columns, label: str) -> list[str]:
    """The roles as lines of a table: column, role, why (and the amount and time columns, inferred or not)."""

    def why(name: str) -> str:
        parts = [columns.notes[name]]
        for part, column, key in (
            ("amount", columns.amount, "prepare.amount"),
            ("time", columns.time, "prepare.split.time_column"),
        ):
            if name == column:
                how = columns.inferred.get(part)
                parts.append(f"the {part}, {how}" if how else f"the {part} ({key})")
        if name in columns.log1p:
            parts.append("log1p'd")
        return "; ".join(parts)

    rows = [
        (name, role + (" (entity)" if name == columns.entity else ""), why(name))
        for name, role in columns.roles.items()
    ] + [(label, "label", "0/1")]
    width = [max(len(r[i]) for r in [("column", "role", ""), *rows]) for i in range(2)]
    return [f"  {a:<{width[0]}}  {b:<{width[1]}}  {c}".rstrip() for a, b, c in [("column", "role", "why"), *rows]]
