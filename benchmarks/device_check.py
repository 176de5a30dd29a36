"""The GPU check: one command that, on a lent CUDA device, runs the CUDA tests, the single-model and stacked
benchmarks on the GPU (k up to 64, bf16 off and on) with one epoch of 200,000 training rows among them, and
writes their JSON with a summary, within a time budget (8 minutes by default).

A lent device's image has Python 3.12, torch with CUDA, numpy, pandas, pyarrow and scikit-learn, but no
MLflow, DVC, Optuna or pydantic, and no network. So, on this machine first:

    python benchmarks/device_check.py --download-wheels     # pinned from requirements.lock into .device-wheels/

and then on the device (the `run` tool, `carry: [".device-wheels"]`, see docs/benchmarks.md):

    python benchmarks/device_check.py --out "$OUT"

The carried wheels (pydantic, PyYAML, pytest and their dependencies, all small) are unpacked into
``.device-wheels/site``, which goes on the steps' ``PYTHONPATH`` where this Python lacks them: no pip and no
network needed. Each step runs
in its own process with MLflow, DVC and Optuna made unimportable, as on the device, so a step that came to
need them fails here first. Without CUDA the same steps run at a tiny size and in float32 only (``--tiny``,
chosen by itself): that is the CPU fallback a test runs, so the check cannot rot before a device is lent.

Writes ``device_check.json`` (device, torch version, each step's status, seconds and output tail, and the
headline figures) beside each benchmark's own JSON in ``--out``. Exit 0 when every step passed, else 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
WHEELS = REPO / ".device-wheels"
# What the steps import that the device's image lacks: small wheels, pinned by requirements.lock.
CARRIED = (
    "pydantic",
    "pydantic_core",
    "annotated-types",
    "typing-inspection",
    "typing_extensions",
    "PyYAML",
    "pytest",
    "pluggy",
    "iniconfig",
    "packaging",
    "Pygments",
)
ABSENT = ("mlflow", "dvc", "optuna")  # on the device's image; made unimportable in every step
# Each step's process: the absent packages refused, then the script (or module) run as __main__.
BOOT = """
import importlib.abc, runpy, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {absent!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not on the device's image)", name=name)
sys.meta_path.insert(0, Absent())
kind, target, *sys.argv[1:] = sys.argv[1:]
if kind == "module":
    sys.argv[0] = target
    runpy.run_module(target, run_name="__main__", alter_sys=True)
else:
    sys.argv[0] = target
    sys.path.insert(0, target.rpartition("/")[0])
    runpy.run_path(target, run_name="__main__")
"""
CUDA_TESTS = ["tests/training/test_loop.py", "tests/modeling/test_network.py"]


@dataclass(frozen=True)
class Step:
    """One command of the check: a script or module with its arguments, and the JSON it writes (if any)."""

    name: str
    kind: str  # "script" | "module"
    target: str
    args: tuple[str, ...]
    writes: str | None = None


def pinned(names: tuple[str, ...], lock: Path) -> list[str]:
    """``name==version`` for each name, from the lock file (a name it does not pin is an error)."""
    pins = {}
    for line in lock.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;#]+)", line)
        if match:
            pins[_normal(match[1])] = f"{match[1]}=={match[2]}"
    missing = [name for name in names if _normal(name) not in pins]
    if missing:
        raise SystemExit(f"device_check: {lock} pins none of {', '.join(missing)}; add them to the lock file")
    return [pins[_normal(name)] for name in names]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def download_wheels(folder: Path, python: str) -> int:
    """Fetch the carried wheels, pinned, for the device's Python (run here, where the registry is reachable)."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        python,
        "--platform",
        "manylinux_2_17_x86_64",
        "--platform",
        "manylinux2014_x86_64",
        "--platform",
        "any",
        "-d",
        str(folder),
        *pinned(CARRIED, REPO / "requirements.lock"),
    ]
    return subprocess.run(command, check=False).returncode


def unpack_wheels(folder: Path) -> Path | None:
    """The carried wheels unpacked into ``folder/site`` (a wheel is a zip of an installed tree), or None when
    there are none to unpack."""
    wheels = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    if not wheels:
        return None
    site = folder / "site"
    site.mkdir(exist_ok=True)
    for wheel in wheels:
        stamp = site / f".{wheel.name}.unpacked"
        if not stamp.exists():
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(site)
            stamp.touch()
    return site


def steps(device: str, out: Path, tiny: bool) -> list[Step]:
    """The check's commands in the order they run: the most wanted figures first, so a budget that runs out
    leaves the bf16 repeats, not the basics."""
    if tiny:  # the CPU fallback: every code path, seconds each
        tests = ("-m", "gpu")  # the CUDA tests are collected (imports, markers) and skip without CUDA
        single = ("--rows", "3000", "--epochs", "1", "--repeats", "1")
        stacks = ("--rows", "3000", "--stacks", "1", "2", "--epochs", "1", "--repeats", "1")
    else:  # 250,000 rows: 200,000 train (one epoch of 200k rows, batch 2048), 50,000 validate
        tests = ()
        single = ("--rows", "250000", "--epochs", "2", "--repeats", "5")
        stacks = ("--rows", "200000", "--stacks", "1", "8", "16", "64", "--epochs", "1", "--repeats", "3")
    common = ("--device", device)
    precisions = (("", ()),) if tiny else (("", ()), ("_bf16", ("--bf16",)))  # bf16 autocast is CUDA only
    return [
        Step("cuda_tests", "module", "pytest", ("-p", "no:cacheprovider", "--noconftest", "-q", *tests, *CUDA_TESTS)),
        *(
            Step(
                f"{name}{suffix}",
                "script",
                f"benchmarks/{name}.py",
                (*sizes, *common, *extra, *bf16, "--out", str(out / f"{name}{suffix}.json")),
                f"{name}{suffix}.json",
            )
            for suffix, bf16 in precisions
            for name, sizes, extra in (
                ("train_throughput", single, ("--no-tracking",)),
                ("many_models", stacks, ("--no-processes",)),
            )
        ),
    ]


def run_step(step: Step, env: dict[str, str], seconds: float) -> dict[str, object]:
    """Run one step in its own process, within ``seconds``; its status, time and output tail."""
    command = [sys.executable, "-c", BOOT.format(absent=set(ABSENT)), step.kind, step.target, *step.args]
    began = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=seconds)
        status = "passed" if done.returncode == 0 else f"failed (exit {done.returncode})"
        output = done.stdout + done.stderr
    except subprocess.TimeoutExpired as expired:
        status = f"timed out after {seconds:.0f}s"
        output = _text(expired.stdout) + _text(expired.stderr)
    return {
        "name": step.name,
        "command": " ".join([step.target, *step.args]),
        "status": status,
        "seconds": round(time.perf_counter() - began, 2),
        "output_tail": output[-3000:],
    }


def _text(data: bytes | str | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def headline(out: Path) -> dict[str, object]:
    """The figures the check is for, read back from the benchmarks' JSON (those that ran)."""
    figures: dict[str, object] = {}
    for suffix in ("", "_bf16"):
        single, stacks = out / f"train_throughput{suffix}.json", out / f"many_models{suffix}.json"
        if single.exists():
            data = json.loads(single.read_text())
            figures[f"epoch_seconds{suffix}"] = {
                "rows_train": data["rows_train"],
                "batch_size": data["batch_size"],
                "project": data["seconds_per_epoch"]["project"],
                "slowdown_vs_bare": data["slowdown_vs_bare"],
            }
        if stacks.exists():
            data = json.loads(stacks.read_text())
            figures[f"stacks{suffix}"] = {
                k: {"speedup_vs_loop": row["speedup_vs_loop"], "models_per_second": row["models_per_second"]["stack"]}
                for k, row in data["by_k"].items()
            }
    return figures


def main(argv: list[str] | None = None) -> int:
    """Run the check (or, with --download-wheels, fetch what it carries) and write its summary."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "device")
    parser.add_argument("--budget", type=float, default=480.0, help="seconds for every step together")
    parser.add_argument("--device", default="auto", help="auto: cuda when there is one, else cpu (and --tiny)")
    parser.add_argument("--tiny", action="store_true", help="the CPU fallback's sizes (chosen without CUDA)")
    parser.add_argument("--wheels", type=Path, default=WHEELS)
    parser.add_argument("--download-wheels", action="store_true", help="fetch the carried wheels and stop")
    parser.add_argument("--python", default="3.12", help="the device's Python, for --download-wheels")
    args = parser.parse_args(argv)
    if args.download_wheels:
        return download_wheels(args.wheels, args.python)

    began = time.perf_counter()
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    tiny = args.tiny or device == "cpu"
    args.out.mkdir(parents=True, exist_ok=True)
    # the carried wheels only where this Python lacks what they hold (they are built for the device's Python)
    lacking = [name for name in ("pydantic", "yaml", "pytest") if importlib.util.find_spec(name) is None]
    site = unpack_wheels(args.wheels) if lacking else None
    if lacking and site is None:
        print(f"device_check: {', '.join(lacking)} missing and no wheels in {args.wheels}; run --download-wheels here")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        str(p) for p in (REPO, site, env.get("PYTHONPATH")) if p
    )  # the repository, then the carried wheels
    results = []
    for step in steps(device, args.out.resolve(), tiny):
        left = args.budget - (time.perf_counter() - began)
        if left < 5:
            results.append({"name": step.name, "status": "skipped (budget spent)", "seconds": 0.0})
            continue
        results.append(run_step(step, env, left))
        print(f"{results[-1]['name']:<22} {results[-1]['status']:<28} {results[-1]['seconds']:>7.1f}s", flush=True)
    summary = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": sys.version.split()[0],
        "tiny": tiny,
        "budget_seconds": args.budget,
        "wall_seconds": round(time.perf_counter() - began, 2),
        "carried_wheels": site is not None,
        "steps": results,
        "headline": headline(args.out),
    }
    (args.out / "device_check.json").write_text(json.dumps(summary, indent=2) + "\n")
    passed = all(r["status"] == "passed" for r in results)
    print(
        f"{'passed' if passed else 'FAILED'} in {summary['wall_seconds']:.0f}s; wrote {args.out / 'device_check.json'}"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
