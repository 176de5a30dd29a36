"""Where a result came from: repository, git state, code hash, changed params, DVC hashes.

Nothing here talks to MLflow; tracking and the report both build on it.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.config import flatten, read_yaml
from pipeline.layout import PATHS

PACKAGE_DIR = Path(__file__).resolve().parent


def _git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def repo_root() -> Path:
    """The original repository: DVC_ROOT under DVC, else the git top level, else the working dir."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    try:
        return Path(_git("rev-parse", "--show-toplevel").strip()).resolve()
    except (OSError, subprocess.CalledProcessError):
        return Path.cwd().resolve()


@dataclass(frozen=True)
class GitState:
    """The commit, and what differs from it: code or params (a real difference from the commit)
    apart from the records the pipeline itself writes (dvc.lock, the headline metrics)."""

    commit: str
    changed_code: list[str]
    changed_outputs: list[str]

    @property
    def dirty(self) -> bool:
        """Code or params differ from the commit."""
        return bool(self.changed_code)


def git_state(cwd: Path | None = None) -> GitState:
    """The working tree against HEAD (tracked files only); "unknown" outside git."""
    try:
        commit = _git("rev-parse", "HEAD", cwd=cwd).strip()
        status = _git("status", "--porcelain", "--untracked-files=no", cwd=cwd)
    except (OSError, subprocess.CalledProcessError):
        return GitState("unknown", [], [])
    changed = sorted(line[3:].strip() for line in status.splitlines() if line.strip())
    records = {PATHS["lock"], PATHS["summary"]}
    return GitState(commit, [f for f in changed if f not in records], [f for f in changed if f in records])


def imported_modules(module: str, package_dir: Path = PACKAGE_DIR) -> set[str]:
    """The package's modules that ``module`` imports, directly or through others (itself included).

    Read from the source with ``ast``, imports inside functions too: what DVC must list as the
    stage's code deps.
    """
    package = package_dir.name
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or not (package_dir / f"{name}.py").is_file():
            continue
        seen.add(name)
        for node in ast.walk(ast.parse((package_dir / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == package:
                todo.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(package + "."):
                todo.append(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                todo.extend(a.name.split(".")[1] for a in node.names if a.name.startswith(package + "."))
    return seen


def code_sha256(module: str) -> str:
    """Hash of the source of ``module`` and every package module it imports."""
    digest = hashlib.sha256()
    for name in sorted(imported_modules(module)):
        digest.update(name.encode() + b"\0" + (PACKAGE_DIR / f"{name}.py").read_bytes())
    return digest.hexdigest()


def group_key(config: Mapping[str, Any]) -> str:
    """A short, stable id of one training configuration (data, params, training code, DVC experiment)."""
    payload = {"config": config, "code": code_sha256("train"), "dvc_exp": os.environ.get("DVC_EXP_NAME", "")}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


def changed_params(params_file: str = "params.yaml") -> dict[str, Any]:
    """Params that differ from the committed params.yaml (what `dvc exp run -S` changed)."""
    try:
        before = flatten(read_yaml(_git("show", f"HEAD:{params_file}")))
        after = flatten(read_yaml(Path(params_file).read_text()))
    except (OSError, subprocess.CalledProcessError, yaml.YAMLError):
        return {}
    return {k: v for k, v in sorted(after.items()) if before.get(k) != v}


def lock_hashes(lock: Path) -> list[tuple[str, str]]:
    """(path, md5) of the prepared data and the model checkpoints recorded in dvc.lock.

    Only deterministic outputs: run files (run ids) and histories (timings) differ between runs.
    """
    if not lock.is_file():
        return []
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    rows = []
    for _, entry in sorted(stages.items()):
        for out in entry.get("outs", []):
            path = str(out["path"])
            if out.get("md5") and (path == "data/prepared" or path.endswith(".pt")):
                rows.append((path, out["md5"]))
    return rows
