"""Scaling: seconds and peak memory per stage on the synthetic source at 10^5, 10^6 and 10^7 rows.

Run: ``python benchmarks/scaling.py [--rows 100000 1000000 10000000]``.
For each size, a throw-away folder gets params.yaml with ``prepare.synthetic.rows`` set, one seed,
one learning rate, one tuning seed, one epoch and no reference models; then every stage runs as
its own process, as DVC runs it (``python -m pipeline.<stage>``). Each stage's wall seconds and peak
resident memory (that process's own ``ru_maxrss``, from ``os.wait4``) are recorded. The stages
reported are prepare, one training epoch (``train`` for batchnorm-s0), evaluate and report.
Writes ``benchmarks/results/scaling.json`` with, per stage, seconds per row at the largest size
relative to the size before it (target <= 1.5) and peak RSS relative to the float32 feature matrix
(rows x features x 4 bytes; target <= 4).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "scaling.json"
FEATURES = 38  # the network input: Time, V1..V28, Amount, 5 from timestamp, 3 category indices
REPORTED = ("prepare", "train", "evaluate", "report")
TARGETS = {"seconds_per_row_vs_previous": 1.5, "peak_rss_vs_features": 4.0}


def params_for(rows: int) -> dict:
    """The project's params, shrunk to what a scaling run needs."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["prepare"]["synthetic"]["rows"] = rows
    raw["prepare"]["replicates"] = 1
    raw["train"].update(epochs=1, patience=0, device="cpu")
    raw["train"]["tune"].update(trials=1, seeds=[100], sampler="grid", parallel=1)
    raw["train"]["tune"]["space"] = {
        "lr": {"choices": [0.003]},
        "weight_decay": {"choices": [0.0]},
        "batch_size": {"choices": [1024]},
        "pos_weight": {"choices": ["none"]},
        "dropout": {"choices": [0.0]},
    }
    raw["evaluate"]["references"] = {}
    return raw


def measured(command: list[str], cwd: Path, env: dict[str, str]) -> dict[str, float]:
    """Wall seconds and the peak RSS (bytes) of one process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = process.stderr.read() if process.stderr else b""
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr.decode()[-3000:]}")
    return {"seconds": seconds, "peak_rss_bytes": usage.ru_maxrss * 1024}


def run_size(rows: int, folder: Path) -> dict[str, dict[str, float]]:
    """Every stage at one size; the measurements of the reported ones."""
    folder.mkdir(parents=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(params_for(rows), sort_keys=False))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}", "PYTHONPATH": str(REPO)}
    steps = [("prepare", ["-m", "pipeline.prepare"])]
    steps += [(f"tune-{v}", ["-m", "pipeline.train", "--variant", v, "--tune"]) for v in ("batchnorm", "baseline")]
    steps += [("select", ["-m", "pipeline.select"])]
    steps += [
        ("train" if v == "batchnorm" else f"train-{v}", ["-m", "pipeline.train", "--variant", v, "--seed", "0"])
        for v in ("batchnorm", "baseline")
    ]
    steps += [("evaluate", ["-m", "pipeline.evaluate"]), ("report", ["-m", "pipeline.report"])]
    out = {}
    for name, args in steps:
        out[name] = measured([sys.executable, *args], folder, env)
        print(
            f"  {rows:>11,} rows  {name:<16} {out[name]['seconds']:8.1f} s  "
            f"{out[name]['peak_rss_bytes'] / 2**30:6.2f} GiB",
            flush=True,
        )
    return {name: out[name] for name in REPORTED}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    sizes = sorted(args.rows)
    base = Path(tempfile.mkdtemp(prefix="bn-fraud-scaling-"))
    results: dict[str, dict] = {}
    try:
        for rows in sizes:
            results[str(rows)] = run_size(rows, base / str(rows))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    largest, previous = str(sizes[-1]), str(sizes[-2]) if len(sizes) > 1 else None
    verdicts = {}
    for stage in REPORTED:
        features_bytes = int(largest) * FEATURES * 4
        rss_ratio = results[largest][stage]["peak_rss_bytes"] / features_bytes
        entry = {"peak_rss_vs_features": rss_ratio, "peak_rss_met": rss_ratio <= TARGETS["peak_rss_vs_features"]}
        if previous:
            per_row = [results[size][stage]["seconds"] / int(size) for size in (largest, previous)]
            entry["seconds_per_row_vs_previous"] = per_row[0] / per_row[1]
            entry["seconds_met"] = entry["seconds_per_row_vs_previous"] <= TARGETS["seconds_per_row_vs_previous"]
        verdicts[stage] = entry
    report = {
        "device": "cpu",
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "sizes": sizes,
        "stages": results,
        "at_largest": verdicts,
        "targets": {k: f"<= {v}" for k, v in TARGETS.items()},
        "note": "RSS includes the Python interpreter, torch and pandas (about 0.4-0.6 GiB at any size).",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"at {int(largest):,} rows (features {int(largest) * FEATURES * 4 / 2**30:.2f} GiB as float32):")
    for stage, entry in verdicts.items():
        time_text = (
            (
                f"s/row x{entry['seconds_per_row_vs_previous']:.2f} vs {int(previous):,} "
                f"({'met' if entry['seconds_met'] else 'MISSED'})"
            )
            if previous
            else ""
        )
        print(
            f"  {stage:<9} {time_text}  peak RSS {entry['peak_rss_vs_features']:.2f}x features "
            f"({'met' if entry['peak_rss_met'] else 'MISSED'})"
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
