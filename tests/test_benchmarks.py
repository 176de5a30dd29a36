"""The benchmark scripts run on the project's current API (they are no tests' imports otherwise): the
many-models benchmark, tiny, end to end. Its figures are not checked here: timings live in the scripts."""

from __future__ import annotations

import json
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
