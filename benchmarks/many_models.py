"""Many models in one pass: k models of a variant trained as one stack, against the same k models
trained one after another.

Run: ``python benchmarks/many_models.py [--stacks 1 4 8 16 32] [--epochs 2] [--repeats 3] [--device auto]
[--bf16] [--no-processes]``.
The data have the default shape (``--rows`` 200,000 synthetic rows: 120,000 train and 40,000
validation, 30 features), the model is the default MLP with BatchNorm (64-32 units, batch 1024),
each model its own seed and learning rate. For every k and every repeat, in an order that rotates
from repeat to repeat, three ways are timed, each training k models for ``--epochs`` epochs with
validation after every epoch (patience off, so every way trains the same number of epochs):

- ``stack``: the k models as one stack (``train.stack: k``), in this process;
- ``loop``: one after another, each a stack of one (``train.stack: 1``), in this process;
- ``processes``: one after another, each in its own process as the pipeline's stages did before
  (a process per model or grid point): ``loop`` plus k times the measured start of a training
  process (``python -c "import pipeline.train"``), against ``stack`` plus one start. ``--no-processes``
  leaves this way out (where MLflow, which a stage process imports, is not installed: the GPU check).

Each ratio is computed within one repeat (paired) and reported as the median over repeats with its
min and max; models per second and the peak RSS above the start (sampled every 5 ms) come beside
it. For k = 8 a torch profile of the stack's steps says where the time goes, and the stack's
achieved arithmetic (forward and backward products) is set against this machine's large-product
speed, the limit of what batching can reach. Prints the figures and writes
``benchmarks/results/many_models.json`` (with the device name). Target on 2 CPU cores: at least
4x at k = 8.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from common import SETTING, batchnorm, make_data, spread

from pipeline.evaluation.ranking import epoch_metrics
from pipeline.project.params import load_params
from pipeline.training.distributed import resolve_device
from pipeline.training.jobs import fit_config, mlp_config
from pipeline.training.loop import FitData, FitEnv, FitHooks, Member, fit

REPO = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent / "results" / "many_models.json"
TARGET_K, TARGET = 8, 4.0


class PeakRss:
    """The largest resident set above the start while the block runs, sampled every 5 ms."""

    def __enter__(self) -> PeakRss:
        self.start = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())

    @property
    def bytes(self) -> int:
        """Peak minus start."""
        return self.peak - self.start


def _rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def process_start() -> float:
    """Seconds for a fresh process to import the training stack (what every stage process paid)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import pipeline.train"], cwd=REPO, check=True)
    return time.perf_counter() - start


def step_flops(widths: list[int], rows: int) -> float:
    """Multiply-adds x 2 of one model's step: each layer forward, and backward twice (inputs and
    weights) except the first layer's inputs."""
    layers = list(itertools.pairwise(widths))
    forward = sum(2 * rows * a * b for a, b in layers)
    return forward + 2 * forward - 2 * rows * widths[0] * widths[1]


def gemm_limit(device: torch.device) -> float:
    """FLOP/s of a large float32 product on this device: the arithmetic the stack's steps could reach."""
    a, b = torch.randn(2048, 2048, device=device), torch.randn(2048, 2048, device=device)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * 2048**3 / best


def profile_stack(members: list[Member], data: FitData, env: FitEnv) -> dict[str, object]:
    """Where one epoch of a stack's time goes: the operators with the largest self time."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if env.device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        fit([replace(m, fit=replace(m.fit, epochs=1)) for m in members], data, env, FitHooks(epoch_metrics))
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return {
        "total_ms": total / 1e3,
        "top": [
            {
                "op": e.key,
                "calls": e.count,
                "self_ms": e.self_cpu_time_total / 1e3,
                "share": e.self_cpu_time_total / total,
            }
            for e in events[:12]
        ],
    }


def main(argv: list[str] | None = None) -> int:
    """Measure, print, and write the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--stacks", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast in both ways (CUDA only)")
    parser.add_argument("--no-processes", action="store_true", help="leave out the process-per-model way")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    full = load_params(REPO / "params.yaml")
    params, variant = full.train, batchnorm(full)
    device = resolve_device(args.device)
    env = FitEnv(device)
    train, rest = make_data(args.rows, train_share=0.6)  # prepare's default fractions: 60% train, 20% validation
    val = (rest[0][: int(args.rows * 0.2)], rest[1][: int(args.rows * 0.2)])
    data = FitData(train, val)
    config = mlp_config(variant.model, train[0].shape[1], SETTING)
    base = replace(
        fit_config(params, variant.optimizer, 0, SETTING, 1, 1),
        epochs=args.epochs,
        patience=0,
        probe_growth=0.0,
        bf16=args.bf16,
    )
    rates = [3e-4, 1e-3, 3e-3, 1e-2]

    def members(k: int) -> list[Member]:
        return [Member(config, replace(base, seed=i, lr=rates[i % len(rates)])) for i in range(k)]

    def loop(k: int) -> None:
        for member in members(k):
            fit([member], data, env, FitHooks(epoch_metrics))

    def stack(k: int) -> None:
        fit(members(k), data, env, FitHooks(epoch_metrics))

    ways: dict[str, Callable[[int], None]] = {"stack": stack, "loop": loop}
    seconds = {k: {way: [] for way in ways} for k in args.stacks}
    memory = {k: {way: [] for way in ways} for k in args.stacks}
    starts: list[float] = []
    stack(2), loop(1)  # warm-up: one-time costs hit neither way's timings
    for repeat in range(args.repeats):
        if not args.no_processes:
            starts.append(process_start())
        order = [(k, way) for k in args.stacks for way in ways]
        shift = repeat * len(ways) % len(order)
        for k, way in order[shift:] + order[:shift]:
            with PeakRss() as peak:
                began = time.perf_counter()
                ways[way](k)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                seconds[k][way].append(time.perf_counter() - began)
            memory[k][way].append(peak.bytes)
        print(
            f"repeat {repeat + 1}/{args.repeats}: "
            + (f"process start {starts[-1]:.2f}s  " if starts else "")
            + "  ".join(
                f"k={k} stack {seconds[k]['stack'][-1]:.2f}s loop {seconds[k]['loop'][-1]:.2f}s" for k in args.stacks
            ),
            flush=True,
        )

    result = summarise(args, device, config, seconds, memory, starts)
    if TARGET_K in args.stacks:
        k_step = step_flops([config.n_features, *config.hidden, 1], base.batch_size)
        steps = args.epochs * (train[0].shape[0] // base.batch_size)
        achieved = TARGET_K * k_step * steps / result["by_k"][str(TARGET_K)]["seconds"]["stack"]["median"]
        limit = gemm_limit(device)
        result["arithmetic"] = {
            "achieved_flops": achieved,
            "large_gemm_flops": limit,
            "ratio_to_limit": achieved / limit,
            "note": "forward and backward products of the stack's steps per wall second, "
            "validation and every other operator included in the time",
        }
        result["profile_k8"] = profile_stack(members(TARGET_K), data, env)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.exists():  # the attempts at the target (benchmarks/stack_fusion.py and others) stay on record
        result["attempts"] = json.loads(args.out.read_text()).get("attempts", [])
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    show(result, args.out)
    return 0


def summarise(
    args: argparse.Namespace, device: torch.device, config: object, seconds: dict, memory: dict, starts: list[float]
) -> dict:
    """Medians with min and max of every way, and the paired ratios (the process way's only where its start was
    measured)."""
    by_k = {}
    for k, ways in seconds.items():
        stack, loop = ways["stack"], ways["loop"]
        by_k[str(k)] = {
            "seconds": {"stack": spread(stack), "loop": spread(loop)},
            "models_per_second": {"stack": spread([k / t for t in stack]), "loop": spread([k / t for t in loop])},
            "speedup_vs_loop": spread([lp / st for lp, st in zip(loop, stack)]),
            "peak_rss_bytes": {way: spread([float(b) for b in values]) for way, values in memory[k].items()},
        }
        if starts:
            processes = [lp + k * s for lp, s in zip(loop, starts)]
            stacked_process = [st + s for st, s in zip(stack, starts)]
            by_k[str(k)]["seconds"]["processes"] = spread(processes)
            by_k[str(k)]["speedup_vs_processes"] = spread([p / sp for p, sp in zip(processes, stacked_process)])
    target = by_k.get(str(TARGET_K), {})
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "bf16": bool(args.bf16 and device.type == "cuda"),
        "torch_threads": torch.get_num_threads(),
        "rows": args.rows,
        "epochs_per_model": args.epochs,
        "repeats": args.repeats,
        "model": config.to_dict(),
        "batch_size": 1024,  # type: ignore[attr-defined]
        "process_start_seconds": spread(starts) if starts else None,
        "by_k": by_k,
        "target": f"speedup at k={TARGET_K} >= {TARGET}",
        "met": {
            "vs_loop": bool(target) and target["speedup_vs_loop"]["median"] >= TARGET,
            "vs_processes": bool(starts and target) and target["speedup_vs_processes"]["median"] >= TARGET,
        },
    }


def show(result: dict, out: Path) -> None:
    """The figures in a few lines."""
    start = result["process_start_seconds"]
    print(
        f"device {result['device']}{' bf16' if result['bf16'] else ''}, {result['torch_threads']} threads, "
        f"{result['epochs_per_model']} epochs per model, {result['repeats']} repeats (median [min, max] of paired "
        "ratios)" + (f"; process start {start['median']:.2f}s" if start else "")
    )
    for k, row in result["by_k"].items():
        vs_loop, vs_proc = row["speedup_vs_loop"], row.get("speedup_vs_processes")
        print(
            f"k={k:>2}  models/s stack {row['models_per_second']['stack']['median']:.2f} "
            f"loop {row['models_per_second']['loop']['median']:.2f}  speedup vs loop {vs_loop['median']:.2f} "
            f"[{vs_loop['min']:.2f}, {vs_loop['max']:.2f}]  "
            + (
                f"vs processes {vs_proc['median']:.2f} [{vs_proc['min']:.2f}, {vs_proc['max']:.2f}]  "
                if vs_proc
                else ""
            )
            + f"peak RSS stack {row['peak_rss_bytes']['stack']['median'] / 2**20:.0f} MiB"
        )
    if "arithmetic" in result:
        a = result["arithmetic"]
        print(
            f"k={TARGET_K} arithmetic {a['achieved_flops'] / 1e9:.1f} GFLOP/s of a large product's "
            f"{a['large_gemm_flops'] / 1e9:.1f} ({a['ratio_to_limit']:.1%}); profile: "
            + ", ".join(f"{t['op']} {t['share']:.0%}" for t in result["profile_k8"]["top"][:6])
        )
    met = result["met"]
    processes = ("met" if met["vs_processes"] else "MISSED") if result["process_start_seconds"] else "not measured"
    print(
        f"target {result['target']}: vs loop {'met' if met['vs_loop'] else 'MISSED'}, "
        f"vs processes {processes}; wrote {out}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
