"""The code and dvc.yaml agree: stage deps (generated from the imports: `make deps`), stage params and output
paths; the package's shape (commands on top, no cycles, each stage's code closure only what it needs, one
name per public function). The layering itself is import-linter's (pyproject.toml), run by .ci/run."""

from __future__ import annotations

import ast
import copy
import importlib
import itertools
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from pipeline.project import provenance
from pipeline.project.params import Params, parse
from tests.helpers.params import REPO, small_raw_params

DVC_YAML = yaml.safe_load((REPO / "dvc.yaml").read_text())
PACKAGE = REPO / "pipeline"
FILES = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py"))
COMMANDS = {f for f in FILES if "/" not in f and f != "__init__.py"}  # `python -m pipeline.X`
stage_modules = provenance.stage_modules


def dep_problems(dvc: dict[str, Any]) -> list[str]:
    """Code deps that dvc.yaml misses or lists in vain, per stage (`make deps` writes them)."""
    problems = []
    for stage, code in provenance.stage_code(dvc).items():
        needed = set(code)
        listed = {d for d in dvc["stages"][stage]["deps"] if str(d).startswith("pipeline/")}
        problems += [f"{stage}: missing dep {d} (run `make deps`)" for d in sorted(needed - listed)]
        problems += [f"{stage}: {d} listed but never imported (run `make deps`)" for d in sorted(listed - needed)]
    return problems


def test_no_module_imports_a_command() -> None:
    """Commands (the stages among them) sit on top: library code never imports one, nor does another command."""
    for path in FILES:
        assert provenance.direct_imports(path) & COMMANDS == set(), path


def test_the_imports_have_no_cycle() -> None:
    graph = {path: provenance.direct_imports(path) for path in FILES}
    done: set[str] = set()

    def visit(path: str, trail: tuple[str, ...]) -> None:
        assert path not in trail, " -> ".join((*trail, path))
        if path not in done:
            for other in graph[path]:
                visit(other, (*trail, path))
            done.add(path)

    for path in FILES:
        visit(path, ())


@pytest.mark.parametrize(
    ("module", "never"),
    [
        ("train", "serving/"),
        ("train", "reporting/"),
        ("train", "analysis/"),
        ("evaluate", "training/"),
        ("evaluate", "reporting/"),
        ("evaluate", "analysis/"),
        ("prepare", "tracking/"),
        ("prepare", "modeling/"),
        ("report", "modeling/"),
        ("report", "training/"),
        ("report", "serving/"),
        ("score", "reporting/"),
        ("score", "training/"),
    ],
)
def test_each_stage_depends_only_on_its_own_code(module: str, never: str) -> None:
    """Editing serving code retrains nothing; editing the report's rendering re-runs only the report."""
    assert not [f for f in provenance.imported_files(module) if f.startswith(never)]


@pytest.mark.parametrize("command", ["compare", "study"])
def test_compare_and_study_load_neither_scikit_learn_nor_scipy(command: str) -> None:
    """They read MLflow and draw tables: importing them must not pay for sklearn or scipy."""
    code = f"import sys; import pipeline.{command}; print(sorted(m for m in ('sklearn', 'scipy') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


def test_dvc_yaml_lists_exactly_the_code_each_stage_imports() -> None:
    assert dep_problems(DVC_YAML) == []


@pytest.mark.parametrize("stage", list(DVC_YAML["stages"]))
def test_dep_check_catches_a_removed_or_surplus_dep(stage: str) -> None:
    dropped = copy.deepcopy(DVC_YAML)
    deps = dropped["stages"][stage]["deps"]
    removed = next(d for d in deps if d.startswith("pipeline/") and d != f"pipeline/{stage}.py")
    deps.remove(removed)
    assert dep_problems(dropped) == [f"{stage}: missing dep {removed} (run `make deps`)"]
    surplus = copy.deepcopy(DVC_YAML)
    unused = next(f"pipeline/{f}" for f in FILES if f"pipeline/{f}" not in surplus["stages"][stage]["deps"])
    surplus["stages"][stage]["deps"].append(unused)
    assert dep_problems(surplus) == [f"{stage}: {unused} listed but never imported (run `make deps`)"]


def test_imported_files_follows_every_import_form_into_sub_packages(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub" / "deep").mkdir(parents=True)
    for init in ("", "sub/", "sub/deep/"):
        (package / f"{init}__init__.py").write_text("")
    (package / "a.py").write_text(
        "from typing import TYPE_CHECKING\nfrom pkg import b\nimport pkg.sub.c\n\n"
        "def f():\n    from pkg.sub.deep.d import x\n\nif TYPE_CHECKING:\n"
        "    from pkg.sub import unused\n"
    )  # for type checkers alone: never runs
    (package / "b.py").write_text("import os\nfrom pkg.sub import e\n")
    (package / "sub" / "c.py").write_text("from pkg.b import y\n")
    (package / "sub" / "deep" / "d.py").write_text("")
    (package / "sub" / "e.py").write_text("")
    (package / "sub" / "unused.py").write_text("import pkg.a\n")
    assert provenance.imported_files("a", package) == {
        "__init__.py",
        "a.py",
        "b.py",
        "sub/__init__.py",
        "sub/c.py",
        "sub/e.py",
        "sub/deep/__init__.py",
        "sub/deep/d.py",
    }
    assert provenance.imported_files("sub.c", package) == {
        "__init__.py",
        "sub/__init__.py",
        "sub/c.py",
        "b.py",
        "sub/e.py",
    }


def test_no_two_public_functions_share_a_name() -> None:
    """One name, one thing: a public module-level function (or class) name is used once in the package."""
    names = Counter(
        f"{node.name}"
        for f in FILES
        for node in ast.parse((PACKAGE / f).read_text()).body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and not node.name.startswith("_")
        and node.name not in ("main", "run")
    )
    assert [name for name, count in names.items() if count > 1] == []


def test_make_deps_rewrites_only_the_code_deps(tmp_path: Path) -> None:
    """`make deps` after an import changed: the code deps follow the code, every comment and other dep stays."""
    stale = (REPO / "dvc.yaml").read_text().replace("      - pipeline/train.py\n", "", 1)
    (tmp_path / "dvc.yaml").write_text(stale)
    assert provenance.write_stage_code(tmp_path / "dvc.yaml") == ["tune"]
    assert (tmp_path / "dvc.yaml").read_text() == (REPO / "dvc.yaml").read_text()
    assert provenance.write_stage_code(tmp_path / "dvc.yaml") == []


def _items(stage: dict[str, Any], raw: dict[str, Any]) -> list[dict[str, str]]:
    """Every matrix item of a stage (one empty item for a plain stage), from raw params."""
    matrix = stage.get("matrix") or {}
    values = []
    for key, spec in matrix.items():
        section, name = spec.strip("${}").split(".")
        values.append([(key, str(v)) for v in raw[section][name]])
    return [dict(combo) for combo in itertools.product(*values)]


def _fill(text: str, item: dict[str, str]) -> str:
    for key, value in item.items():
        text = text.replace(f"${{item.{key}}}", value)
    return text


def test_layout_paths_are_the_outputs_dvc_yaml_declares() -> None:
    from pipeline.project.layout import Layout, model_name

    layout = Layout(Path("."))
    declared: set[str] = set()
    raw = {"train": {"variants": ["batchnorm"], "seeds": [0], "lr": [0.003], "tune_seeds": [100]}}
    for stage in DVC_YAML["stages"].values():
        for item in _items(stage, raw):
            for section in ("outs", "metrics", "plots"):
                for entry in stage.get(section, []):
                    declared.add(_fill(next(iter(entry)) if isinstance(entry, dict) else entry, item))
    compared, tuning = model_name("batchnorm", 0), model_name("batchnorm", 100, 3)
    produced = {
        layout.prepared,
        layout.checkpoint(compared).parent,
        layout.history(compared).parent,
        layout.checkpoint(tuning, True).parent,
        layout.chosen,
        layout.selection,
        layout.timing,
        layout.evaluation,
        layout.curves,
        layout.reports,
        layout.summary,
        layout.answer,
    }
    assert layout.run_file(compared).parent == layout.checkpoint(compared).parent == layout.variant_folder("batchnorm")
    assert layout.history(tuning, True).parent.parent == layout.variant_folder("batchnorm", tuning=True)
    assert {p.as_posix() for p in produced} == declared
    train_deps = [_fill(d, {"variant": "batchnorm"}) for d in DVC_YAML["stages"]["train"]["deps"]]
    assert layout.chosen_setting("batchnorm").as_posix() in train_deps


# ---------------------------------------------------------------- params each stage reads


def _leaves(model: BaseModel, prefix: str, include: Any = None, exclude: Any = None) -> set[str]:
    out = set()
    for name in type(model).model_fields:
        if (include is not None and name not in include) or (exclude is not None and name in exclude):
            continue
        value = object.__getattribute__(model, name)
        out |= _leaves(value, f"{prefix}{name}.") if isinstance(value, BaseModel) else {prefix + name}
    return out


def recording(model: BaseModel, read: set[str], prefix: str = "") -> BaseModel:
    """A copy of a params model that records the dotted path of every leaf value read from it."""
    cls = type(model)

    def getattribute(self: BaseModel, name: str) -> Any:
        value = super(recorder, self).__getattribute__(name)
        if name in cls.model_fields and not isinstance(value, BaseModel):
            read.add(prefix + name)
        return value

    def model_dump(self: BaseModel, **kwargs: Any) -> dict[str, Any]:
        read.update(_leaves(self, prefix, kwargs.get("include"), kwargs.get("exclude")))
        return super(recorder, self).model_dump(**kwargs)

    recorder = type(f"Recording{cls.__name__}", (cls,), {"__getattribute__": getattribute, "model_dump": model_dump})
    values = {
        name: recording(v, read, f"{prefix}{name}.") if isinstance(v, BaseModel) else v
        for name in cls.model_fields
        for v in [getattr(model, name)]
    }
    return recorder.model_construct(**values)


@pytest.mark.slow  # runs the pipeline or training processes: over the fast suite's budget
def test_each_stage_reads_exactly_the_params_it_declares(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = small_raw_params()
    raw["evaluate"]["references"] = {"logistic_regression": {"C": [1.0]}}
    params = parse(raw)
    monkeypatch.chdir(tmp_path)
    for stage, module_name in stage_modules(DVC_YAML).items():
        read: set[str] = set()
        module = importlib.import_module(f"pipeline.{module_name}")
        monkeypatch.setattr(module, "load_params", lambda path, read=read: recording(params, read))
        for item in _items(DVC_YAML["stages"][stage], raw):  # every item: later stages need them all
            assert module.main(_fill(DVC_YAML["stages"][stage]["cmd"], item).split()[3:]) == 0, (stage, item)
        declared = DVC_YAML["stages"][stage]["params"]
        undeclared = sorted(r for r in read if not any(r == d or r.startswith(d + ".") for d in declared))
        unread = sorted(d for d in declared if not any(r == d or r.startswith(d + ".") for r in read))
        assert (undeclared, unread) == ([], []), stage


def test_recording_sees_reads_and_dumps() -> None:
    read: set[str] = set()
    params = recording(parse(small_raw_params()), read)
    assert params.train.epochs == 3
    params.train.model.model_dump()
    assert params.evaluate.threshold.strategy == "max_f1"  # a leaf, recorded; its section alone is not
    assert read == {
        "train.epochs",
        "train.model.hidden",
        "train.model.activation",
        "train.model.norm",
        "train.model.batchnorm_placement",
        "train.model.embedding_scale",
        "evaluate.threshold.strategy",
    }
    assert isinstance(params, Params)
