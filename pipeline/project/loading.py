"""Reading params.yaml into the typed models of ``project.config``: YAML as DVC reads it, and the first
problem as one line naming the key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from pipeline.project.config import Params
from pipeline.runtime.errors import ConfigError

PARAMS_FILE = Path("params.yaml")


def _yaml_loader() -> type[yaml.SafeLoader]:
    """A SafeLoader that reads YAML 1.2 floats such as ``1e-3`` as numbers, as DVC does."""

    class Loader(yaml.SafeLoader):
        pass

    float_re = re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    )
    Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    for first in "-+0123456789.":
        Loader.yaml_implicit_resolvers[first] = [
            (tag, rx) for tag, rx in Loader.yaml_implicit_resolvers.get(first, []) if tag != "tag:yaml.org,2002:float"
        ]
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", float_re, list("-+0123456789."))
    return Loader


def _describe(error: dict[str, Any]) -> str:
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]).lstrip(".")
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"unknown key {key} (remove it or check its spelling)"
    if kind == "missing":
        return f"{key} is missing (add it to params.yaml)"
    message = error["msg"].removeprefix("Value error, ")
    ctx = error.get("ctx") or {}
    bounds = {"greater_than": "> {gt}", "greater_than_equal": ">= {ge}", "less_than": "< {lt}",
              "less_than_equal": "<= {le}"}
    if kind in bounds:
        message = "must be " + bounds[kind].format(**ctx)
    elif kind == "literal_error":
        message = "must be one of " + str(ctx.get("expected", ""))
    elif kind in ("model_type", "dict_type"):
        message = "must be a mapping of names to settings (see params.yaml's comments)"
    return f"{key} {message[0].lower()}{message[1:]} (got {error.get('input')!r})"


Section = TypeVar("Section", bound=BaseModel)


def parse(raw: dict[str, Any], model: type[Section] = Params, where: str = "params.yaml") -> Section:
    """Validate a params mapping, turning the first problem into one readable ConfigError."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_describe(exc.errors()[0])}") from None


def read_yaml(text: str) -> Any:
    """Parse params YAML the way DVC does (YAML 1.2 floats); the one reader of params files."""
    return yaml.load(text, Loader=_yaml_loader())


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read and validate params.yaml."""
    try:
        raw = read_yaml(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found (run from the repository root)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})".replace("\n", " ")) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: must be a mapping of stage sections")
    return parse(raw, Params, str(path))


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested models/dicts into dotted keys (for MLflow params)."""
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}
