"""An attempt at the stack's 4x (docs/benchmarks.md): does fusing the stack's element-wise passes pay? The
training step of the default MLP with BatchNorm (64-32 units, batch 1024, 30 features, Adam), forward, loss,
backward and optimizer step, timed as the loop runs it, eagerly and with the forward and loss compiled by
``torch.compile`` (inductor fuses BatchNorm's statistics and normalisation with the ReLU in one kernel forward
and backward), at k = 1 and k = 8.

Run: ``python benchmarks/stack_fusion.py [--steps 200] [--repeats 5]``. Each repeat times the four (k, way)
pairs in a rotating order; ratios are paired within a repeat and reported as median [min, max]:

- ``stack_speedup_eager``    = 8 x (k=1 eager step) / (k=8 eager step): the stack's gain as the loop has it
- ``stack_speedup_compiled`` = 8 x (k=1 eager step) / (k=8 compiled step): what compiling the stack would give
- ``compile_gain_k8``        = (k=8 eager step) / (k=8 compiled step)

The compiled step's losses are checked against the eager step's over the first steps (same start, float32).
Appends its figures to the ``attempts`` of ``benchmarks/results/many_models.json``, kept or not.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from common import SETTING, batchnorm, make_data, spread

from pipeline.modeling.network import MLP
from pipeline.project.params import load_params
from pipeline.training.jobs import mlp_config
from pipeline.training.optimizer import StackOptimizer

REPO = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent / "results" / "many_models.json"
BATCH = 1024


def main(argv: list[str] | None = None) -> int:
    """Measure, check, print and record."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    config = mlp_config(batchnorm(load_params(REPO / "params.yaml")).model, 30, SETTING)
    (x, y), _ = make_data(200_000)
    rng = torch.Generator().manual_seed(0)

    def stepper(k: int, compiled: bool):  # noqa: ANN202 - a closure over its own stack
        stack = MLP.initialised(config, list(range(k))).train()
        optimizer = StackOptimizer(stack.flat, "adam", [1e-3] * k, [0.0] * k, 0.9)

        def loss_of(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            logits = stack(xb)
            return torch.nn.functional.binary_cross_entropy_with_logits(logits, yb, reduction="none").mean(1).sum()

        forward = torch.compile(loss_of, dynamic=False) if compiled else loss_of

        def step(index: torch.Tensor) -> float:
            xb, yb = x[index], y[index].float()
            loss = forward(xb, yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return float(loss.detach())

        return step

    batches = [torch.randint(0, x.shape[0], (k, BATCH), generator=rng) for k in (1, 8) for _ in range(args.steps)]
    by_k = {1: batches[: args.steps], 8: batches[args.steps :]}

    # numerics: the compiled step trains what the eager one does (same start, the first 20 steps)
    eager, compiled = stepper(8, False), stepper(8, True)
    first = [(eager(b), compiled(b)) for b in by_k[8][:20]]
    worst = max(abs(a - c) / abs(a) for a, c in first)
    print(f"compiled vs eager loss, first 20 steps at k=8: worst relative difference {worst:.1e}", flush=True)

    ways = {(k, c): stepper(k, c) for k in (1, 8) for c in (False, True)}
    for (k, _), step in ways.items():  # warm-up (compiles)
        for b in by_k[k][:5]:
            step(b)
    seconds: dict[tuple[int, bool], list[float]] = {key: [] for key in ways}
    keys = list(ways)
    for repeat in range(args.repeats):
        for key in keys[repeat % len(keys) :] + keys[: repeat % len(keys)]:
            began = time.perf_counter()
            for b in by_k[key[0]]:
                ways[key](b)
            seconds[key].append((time.perf_counter() - began) / args.steps)
        print(
            f"repeat {repeat + 1}/{args.repeats}: "
            + "  ".join(f"k={k}{' compiled' if c else ''} {seconds[k, c][-1] * 1e3:.2f} ms" for k, c in keys),
            flush=True,
        )

    def paired(values: list[tuple[float, float]]) -> dict[str, float]:
        return spread([a / b for a, b in values])

    one = seconds[1, False]
    figures = {
        "attempt": "torch.compile (inductor) of the stacked forward and loss, backward through the compiled graph",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "steps": args.steps,
        "repeats": args.repeats,
        "step_ms": {f"k{k}{'_compiled' if c else ''}": spread([s * 1e3 for s in v]) for (k, c), v in seconds.items()},
        "stack_speedup_eager": paired([(8 * a, b) for a, b in zip(one, seconds[8, False])]),
        "stack_speedup_compiled": paired([(8 * a, b) for a, b in zip(one, seconds[8, True])]),
        "compile_gain_k1": paired(list(zip(one, seconds[1, True]))),
        "compile_gain_k8": paired(list(zip(seconds[8, False], seconds[8, True]))),
        "worst_relative_loss_difference_first_20_steps": worst,
    }
    for key in ("stack_speedup_eager", "stack_speedup_compiled", "compile_gain_k1", "compile_gain_k8"):
        r = figures[key]
        print(f"{key:<24} {r['median']:.2f} [{r['min']:.2f}, {r['max']:.2f}]")
    result = json.loads(args.out.read_text()) if args.out.exists() else {}
    result.setdefault("attempts", []).append(figures)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"appended to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
