"""The benchmark scripts run on the project's current API (they are no tests' imports otherwise): the
many-models and scoring benchmarks, tiny, end to end, and the GPU check's CPU fallback (which runs the single-model and
stacked benchmarks the way a lent device would). Their figures are not checked here: timings live in the
scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.params import REPO


def test_the_many_models_benchmark_runs_on_the_declared_batchnorm(tmp_path: Path) -> None:
    out = tmp_path / "many_models.json"
    tiny = ["--rows", "3000", "--stacks", "1", "2", "--epochs", "1", "--repeats", "1", "--device", "cpu"]
    subprocess.run(
        [sys.executable, "benchmarks/many_models.py", *tiny, "--out", str(out)],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=300,
    )
    written = json.loads(out.read_text())
    assert written["model"]["norm"] == "batchnorm" and written["model"]["activation"] == "relu"
    assert set(written["by_k"]) == {"1", "2"}


def test_the_gpu_check_runs_its_cpu_fallback_end_to_end_without_what_the_device_lacks(tmp_path: Path) -> None:
    """benchmarks/device_check.py without CUDA: every step at a tiny size, MLflow, DVC and Optuna unimportable
    in each (as on the device's image); the summary and each benchmark's JSON written."""
    done = subprocess.run(
        [sys.executable, "benchmarks/device_check.py", "--out", str(tmp_path), "--wheels", str(tmp_path / "none")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((tmp_path / "device_check.json").read_text())
    assert summary["tiny"] and summary["device"] == "cpu"
    assert [(s["name"], s["status"]) for s in summary["steps"]] == [
        ("cuda_tests", "passed"),
        ("train_throughput", "passed"),
        ("many_models", "passed"),
    ]
    assert "skipped" in summary["steps"][0]["output_tail"]  # the CUDA tests were collected, and skip here
    assert set(summary["headline"]) == {"epoch_seconds", "stacks"}
    assert json.loads((tmp_path / "many_models.json").read_text())["process_start_seconds"] is None
    assert "tracking_overhead" not in json.loads((tmp_path / "train_throughput.json").read_text())


def test_a_gpu_check_step_cannot_import_what_the_device_lacks(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from device_check import Step, run_step
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    probe = tmp_path / "probe.py"
    probe.write_text("import json, torch\nimport mlflow\n")
    result = run_step(Step("probe", "script", str(probe), ()), {**os.environ, "PYTHONPATH": str(REPO)}, 120)
    assert result["status"] == "failed (exit 1)"
    assert "No module named 'mlflow' (not on the device's image)" in result["output_tail"]


def test_the_gpu_check_carries_the_lock_files_pins() -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from device_check import CARRIED, pinned
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    pins = pinned(CARRIED, REPO / "requirements.lock")
    lock = (REPO / "requirements.lock").read_text().splitlines()
    assert len(pins) == len(CARRIED) and all(pin in lock for pin in pins)
    assert any(pin.startswith("pydantic==") for pin in pins) and any(pin.startswith("pytest==") for pin in pins)


def test_the_scoring_benchmark_times_each_part_and_keeps_the_attempts(tmp_path: Path) -> None:
    out = tmp_path / "score_throughput.json"
    out.write_text(json.dumps({"attempts": [{"attempt": "an earlier try", "kept": False}]}))
    done = subprocess.run(
        [sys.executable, "benchmarks/score_throughput.py", "--rows", "20000", "--repeats", "2", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    written = json.loads(out.read_text())
    assert set(written["rows_per_second"]) == {"bare", "read_parquet", "encode", "write", "score_parquet", "score_csv"}
    ceilings = written["ceiling_without_network"], written["ceiling_sequential"]
    assert all(0 < c["min"] <= c["median"] <= c["max"] for c in ceilings)
    assert ceilings[1]["max"] < 1 and written["attempts"] == [{"attempt": "an earlier try", "kept": False}]
