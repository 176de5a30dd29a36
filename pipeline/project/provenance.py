"""Where a result came from: repository, git state, code hash, changed params, DVC hashes.

Nothing here talks to MLflow; tracking and the report both build on it.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.project.layout import ANSWER, LOCK, PREPARED, SUMMARY
from pipeline.project.params import flatten, read_yaml

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # pipeline/


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
    apart from the records the pipeline itself writes (dvc.lock, the headline metrics and answer)."""

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
    records = {LOCK, SUMMARY, ANSWER}
    return GitState(commit, [f for f in changed if f not in records], [f for f in changed if f in records])


def module_file(name: str, package_dir: Path = PACKAGE_DIR) -> str | None:
    """The file of a module of the package, relative to the package folder (``project.config`` ->
    ``project/config.py``, ``tracking`` -> ``tracking/__init__.py``, ``""`` -> ``__init__.py``), or
    None when the name is no module of it (a class or function imported from one)."""
    parts = name.split(".") if name else []
    module = package_dir.joinpath(*parts).with_suffix(".py") if parts else None
    if module is not None and module.is_file():
        return module.relative_to(package_dir).as_posix()
    init = package_dir.joinpath(*parts, "__init__.py")
    return init.relative_to(package_dir).as_posix() if init.is_file() else None


def direct_imports(path: str, package_dir: Path = PACKAGE_DIR) -> set[str]:
    """The package's files that one file imports itself (imports inside functions too, not those for type
    checkers alone: ``if TYPE_CHECKING:``), with the ``__init__.py`` of every package on the way, which
    Python runs first."""
    package = package_dir.name
    names: set[str] = set()
    for node in _running(ast.parse((package_dir / path).read_text())):
        if (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and node.module
            and (node.module == package or node.module.startswith(package + "."))
        ):
            base = node.module[len(package) + 1 :]
            names.add(base)
            names.update(f"{base}.{alias.name}".lstrip(".") for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name[len(package) + 1 :] for a in node.names if a.name.startswith(package + "."))
    # The packages this file sits in are initialised before it runs: importing a sibling runs no __init__.
    folders = Path(path).parents  # "serving/pyfunc.py": serving/, then the package folder itself
    own = {(folder / "__init__.py").as_posix() for folder in folders}
    files = set()
    for name in names:
        parts = name.split(".") if name else []
        for depth in range(len(parts)):  # the packages an imported module sits in
            found = module_file(".".join(parts[:depth]), package_dir)
            if found is not None and found not in own:
                files.add(found)
        found = module_file(name, package_dir)  # the module itself (or a package named outright)
        if found is not None:
            files.add(found)
    return files - {path}


def _running(tree: ast.AST) -> list[ast.AST]:
    """Every node of a module but those under ``if TYPE_CHECKING:`` (never run)."""
    skipped = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and _type_checking(block.test)
        for statement in block.body
        for n in ast.walk(statement)
    }
    return [node for node in ast.walk(tree) if id(node) not in skipped]


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_files(module: str, package_dir: Path = PACKAGE_DIR) -> set[str]:
    """Every file of the package that ``module`` (``train``, ``reporting.claims``) runs when imported,
    directly or through others, itself included, relative to the package folder: what DVC must list
    as the stage's code deps. Read from the source with ``ast``."""
    first = module_file(module, package_dir)
    if first is None:
        raise ValueError(f"{module} is not a module of {package_dir}")
    parts = module.split(".")
    seen: set[str] = set()
    todo = [
        first,
        *(init for depth in range(len(parts)) if (init := module_file(".".join(parts[:depth]), package_dir))),
    ]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(direct_imports(path, package_dir))
    return seen


def code_sha256(module: str) -> str:
    """Hash of the source of ``module`` and every package file it imports."""
    digest = hashlib.sha256()
    for path in sorted(imported_files(module)):
        digest.update(path.encode() + b"\0" + (PACKAGE_DIR / path).read_bytes())
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


def output_hashes(root: Path, checkpoints: list[Path]) -> list[tuple[str, str]]:
    """(path, md5) of the prepared data (as dvc.lock records it, when there is one) and of each
    compared model's checkpoint (hashed here: a train stage's output folder also holds run files and
    timings that differ between runs of the same params, so its DVC hash says nothing)."""
    rows = []
    lock = root / "dvc.lock"
    if lock.is_file():
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
        rows += [
            (str(out["path"]), str(out["md5"]))
            for out in stages.get("prepare", {}).get("outs", [])
            if out.get("md5") and out["path"] == PREPARED
        ]
    for path in checkpoints:
        if path.is_file():
            rows.append((path.relative_to(root).as_posix(), hashlib.md5(path.read_bytes()).hexdigest()))
    return rows


STAGE_MODULE = re.compile(r"^python -m pipeline\.(\w+)")


def stage_modules(dvc: Mapping[str, Any]) -> dict[str, str]:
    """DVC stage name -> the pipeline module its command runs."""
    return {
        name: STAGE_MODULE.match(stage["cmd"]).group(1)  # type: ignore[union-attr]
        for name, stage in dvc["stages"].items()
    }


def stage_code(dvc: Mapping[str, Any], package_dir: Path = PACKAGE_DIR) -> dict[str, list[str]]:
    """Each stage's code deps as dvc.yaml lists them: every file of the package its module runs when imported
    (``pipeline/train.py``, ...), sorted."""
    prefix = package_dir.name
    return {
        stage: sorted(f"{prefix}/{f}" for f in imported_files(module, package_dir))
        for stage, module in stage_modules(dvc).items()
    }


def write_stage_code(path: Path = Path("dvc.yaml")) -> list[str]:
    """Rewrite the code deps of every stage of dvc.yaml from the imports (its comments and other deps kept,
    the code first); return the stages that changed. `make deps` runs it after an import changed."""
    from ruamel.yaml import YAML

    yaml_rt = YAML()
    yaml_rt.width, yaml_rt.preserve_quotes = 4096, True
    yaml_rt.indent(mapping=2, sequence=4, offset=2)
    document = yaml_rt.load(path.read_text())
    changed = []
    for stage, code in stage_code(document).items():
        deps = document["stages"][stage]["deps"]
        others = [d for d in deps if not str(d).startswith(f"{PACKAGE_DIR.name}/")]
        if [d for d in deps if d not in others] != code:
            changed.append(stage)
            deps[:] = [*code, *others]
    if changed:
        with path.open("w") as handle:
            yaml_rt.dump(document, handle)
    return changed
