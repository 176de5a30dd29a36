"""A suite: the tables one question is asked of, read from a YAML file (``suites/default.yaml``).

Each table is the single-table protocol with a few prepare settings of its own (its source, label and
any ``prepare.*`` key); ``params`` applies to every table (e.g. a smaller budget for a quick suite).
Values not given come from params.yaml. A table's settings become ``dvc exp run -S`` items.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from pipeline.project.params import Params, Strict, flatten, parse, read_yaml
from pipeline.runtime.errors import ConfigError

NAME = r"^[a-z0-9][a-z0-9-]{0,39}$"  # part of a DVC experiment name and an MLflow tag


class TableSpec(Strict):
    """One table of the suite: where its rows come from and its own prepare settings."""

    name: str = Field(pattern=NAME)
    source: str = Field(min_length=1)  # 'synthetic' or a path (relative to the repository root)
    label: str | None = None
    prepare: dict[str, Any] = Field(default_factory=dict)  # any prepare.* keys, nested as in params.yaml
    question: str = ""  # what the table is there to test (shown in the report)


class Suite(Strict):
    """The tables and the params every table shares."""

    name: str = Field(pattern=NAME)
    description: str = ""
    params: dict[str, Any] = Field(default_factory=dict)  # dotted keys, e.g. train.tune.trials: 4
    tables: list[TableSpec] = Field(min_length=1)

    @field_validator("tables")
    @classmethod
    def _unique(cls, value: list[TableSpec]) -> list[TableSpec]:
        names = [t.name for t in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"table names must be unique (twice: {', '.join(twice)})")
        return value


def load_suite(path: Path) -> Suite:
    """Read and validate a suite file."""
    try:
        raw = read_yaml(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found (give a suite file, e.g. suites/default.yaml)") from None
    except Exception as exc:  # a YAML error: one line
        raise ConfigError(f"{path}: not valid YAML ({exc})".replace("\n", " ")) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: must be a mapping with name, tables (and optionally params)")
    return parse(raw, Suite, str(path))


def overrides(suite: Suite, table: TableSpec, root: Path) -> dict[str, Any]:
    """Every param the table's experiment sets, dotted: the suite's, then the table's own."""
    source = table.source if table.source == "synthetic" else str((root / table.source).resolve())
    own = {
        "prepare.source": source,
        **({"prepare.label": table.label} if table.label else {}),
        **flatten(table.prepare, "prepare."),
    }
    shared = flatten(suite.params)
    return {**shared, **own}


def params_for(base: dict[str, Any], sets: dict[str, Any], table: str) -> Params:
    """params.yaml with a table's settings applied, validated (a problem names the table and the key)."""
    raw = copy.deepcopy(base)
    for key, value in sets.items():
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"table {table}: unknown key {key} (check its spelling against params.yaml)")
            node = node[part]
        node[leaf] = value
    return parse(raw, Params, f"table {table}")


def override_items(sets: dict[str, Any]) -> list[str]:
    """``dvc exp run -S`` items (Hydra's override syntax: lists in brackets, strings quoted when needed)."""
    return [f"{key}={_value(value)}" for key, value in sets.items()]


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_value(v) for v in value) + "]"
    if isinstance(value, str) and (not value or any(c in value for c in " ,'\"[]{}()=")):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return str(value)
