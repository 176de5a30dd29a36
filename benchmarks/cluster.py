"""The stacks on a Ray cluster (train.cluster.backend: ray) against in this process, on this machine's loopback.

Run as root: ``python benchmarks/cluster.py [--rows 40000] [--epochs 2] [--stack 4] [--models 8]
[--repeats 3]``. It runs itself again inside a network namespace that has only loopback (where Ray binds
127.0.0.1: tests/helpers/ray_cluster.py), starts a cluster of one-CPU nodes with a head without CPUs, and
drives it through the pipeline's own backend (training.cluster.Cluster: the connection, the rows shipped
once, the tasks and their reports, as the stages use them); everything trains with one torch thread. The
data have the default shape (30 features; ``--rows`` synthetic rows, 60% train, 20% validation), the model
is the default MLP with BatchNorm at batch 1024, each model its own seed and learning rate, patience off.
Measured in one run:

- ``connect``: Cluster.connect (the trial join under its deadline, then ray.init shipping the code);
- ``cold``: a job's first two stacks, submitted at once (its workers started, torch and the package
  imported there), against one such stack trained here;
- ``overhead``: one stack of ``--stack`` models trained here (training.loop.fit) against as one task on a
  warm worker (submitted, trained, its report back here), interleaved in a rotating order: the paired ratio
  task/here and the seconds a task adds;
- ``models per second``: ``--models`` models as one stack, as two stacks and as stacks of one, on one node
  and on two (a node removed, then a fresh one added and warmed, between the phases; their order rotates
  from repeat to repeat), and here for reference (one stack; stacks of one, one after another); the
  two-node over one-node ratio of each way, paired within a repeat;
- ``same numbers``: the models of a task equal those trained here, bit for bit.

Prints the figures and writes ``benchmarks/results/cluster.json``. GPU nodes are not measured: this script
knows no GPU of its own (a stack with ``gpus: 1`` trains on CUDA on its node; docs/cluster.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from common import SETTING, batchnorm, make_data, spread

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the loopback cluster of the tests: tests/helpers/ray_cluster.py

from pipeline.evaluation.ranking import epoch_metrics  # noqa: E402
from pipeline.project.params import ClusterParams, load_params  # noqa: E402
from pipeline.training.cluster import Cluster, Done, Trained  # noqa: E402
from pipeline.training.jobs import fit_config, mlp_config  # noqa: E402
from pipeline.training.loop import FitData, FitEnv, FitHooks, Member, fit  # noqa: E402
from tests.helpers.ray_cluster import in_namespace, localhost_cluster, namespace_problem  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "cluster.json"
RATES = [3e-4, 1e-3, 3e-3, 1e-2]


class Bench:
    """The workload and the two places it trains: here, and the cluster's tasks."""

    def __init__(self, args: argparse.Namespace, backend: Cluster) -> None:
        full = load_params(REPO / "params.yaml")
        params, variant = full.train, batchnorm(full)
        train, rest = make_data(args.rows, train_share=0.6)
        val = (rest[0][: int(args.rows * 0.2)], rest[1][: int(args.rows * 0.2)])
        self.data = FitData(train, val)
        self.config = mlp_config(variant.model, train[0].shape[1], SETTING)
        self.base = replace(
            fit_config(params, variant.optimizer, 0, SETTING, 1, 1), epochs=args.epochs, patience=0, probe_growth=0.0
        )
        self.backend, self.stack = backend, args.stack
        self.shipped, _ = backend.ship("benchmark", lambda: (self.data, (1, 1)))

    def members(self, k: int, first: int = 0) -> list[Member]:
        """k models, each its own seed and learning rate."""
        return [Member(self.config, replace(self.base, seed=first + i, lr=RATES[i % len(RATES)])) for i in range(k)]

    def here(self, sizes: list[int]) -> tuple[float, list[dict[str, torch.Tensor]]]:
        """Stacks of these sizes trained here, one after another: seconds, and every model's weights."""
        began, states = time.perf_counter(), []
        for index, k in enumerate(sizes):
            outcomes = fit(
                self.members(k, 100 * index), self.data, FitEnv(torch.device("cpu")), FitHooks(epoch_metrics)
            )
            states += [o.state for o in outcomes]  # type: ignore[misc]
        return time.perf_counter() - began, states

    def tasks(self, sizes: list[int]) -> tuple[float, list[dict[str, torch.Tensor]]]:
        """Stacks of these sizes as tasks, all at once: seconds until the last report, every model's weights."""
        began = time.perf_counter()
        reports = self.reports(sizes)
        seconds = time.perf_counter() - began
        states = []
        for index in range(len(sizes)):
            done = sorted((e for e in reports[index].events if isinstance(e, Done)), key=lambda e: e.member)
            states += [e.outcome.state for e in done]
        return seconds, states  # type: ignore[return-value]

    def reports(self, sizes: list[int]) -> dict[int, Trained]:
        """Each stack's report, by its index."""
        pending = {
            self.backend.submit(self.members(k, 100 * index), self.shipped): index for index, k in enumerate(sizes)
        }
        return dict(self.backend.completed(pending))

    def warm(self, nodes: int) -> None:
        """Until every node has trained a stack (a worker's first stack starts it and imports torch there;
        a free worker takes the next waiting stack before a new node's worker has started, hence rounds
        of several stacks)."""
        seen: set[str] = set()
        while len(seen) < nodes:
            seen |= {report.node for report in self.reports([self.stack] * 2 * nodes).values()}


def _same(a: list[dict[str, torch.Tensor]], b: list[dict[str, torch.Tensor]]) -> bool:
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x) for x, y in zip(a, b)
    )


def _rotated(items: list[Any], repeat: int) -> list[Any]:
    shift = repeat % len(items)
    return items[shift:] + items[:shift]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every figure of the module's docstring, inside the namespace."""
    torch.set_num_threads(1)
    load = os.getloadavg()  # the machine is shared: how busy it was is part of the figures
    with localhost_cluster(workers=2) as ray_cluster:
        params = ClusterParams(backend="ray", address=ray_cluster.address, cpus=1, gpus=0, retries=0)
        began = time.perf_counter()
        backend = Cluster.connect(params)
        connect = time.perf_counter() - began
        bench = Bench(args, backend)
        cold_here, _ = bench.here([args.stack])
        cold, _ = bench.tasks([args.stack, args.stack])  # a job's first stacks: its workers start
        bench.warm(nodes=2)
        overhead: dict[str, list[float]] = {"here": [], "task": []}
        same = []
        for repeat in range(args.repeats):
            states = {}
            for way in _rotated(["here", "task"], repeat):
                seconds, states[way] = (bench.here if way == "here" else bench.tasks)([args.stack])
                overhead[way].append(seconds)
            same.append(_same(states["here"], states["task"]))
            here, task = overhead["here"][-1], overhead["task"][-1]
            print(f"overhead {repeat + 1}/{args.repeats}: here {here:.2f}s task {task:.2f}s")

        half = args.models // 2
        ways: dict[str, list[int]] = {
            "one stack": [args.models],
            "two stacks": [half, args.models - half],
            "stacks of one": [1] * args.models,
        }
        seconds: dict[str, dict[str, list[float]]] = {
            nodes: {way: [] for way in ways} for nodes in ("1 node", "2 nodes", "here")
        }
        extra = max(ray_cluster.worker_nodes, key=lambda node: node.node_id)
        for repeat in range(args.repeats):
            for nodes in _rotated(["2 nodes", "1 node", "here"], repeat):
                if nodes == "1 node" and extra is not None:
                    ray_cluster.remove_node(extra)
                    extra = None
                    _wait_for_cpus(1)
                if nodes == "2 nodes" and extra is None:
                    extra = ray_cluster.add_node(num_cpus=1, object_store_memory=80 * 2**20)
                    _wait_for_cpus(2)
                    bench.warm(nodes=2)  # the new node's worker started before the clock
                for way, sizes in _rotated(list(ways.items()), repeat):
                    if nodes == "here" and way == "two stacks":
                        continue  # here, two stacks are one after another: stacks of one and one stack bound it
                    took, states = (bench.here if nodes == "here" else bench.tasks)(sizes)
                    seconds[nodes][way].append(took)
            print(
                f"models/s {repeat + 1}/{args.repeats}: "
                + "  ".join(
                    f"{nodes} {way} {args.models / values[-1]:.2f}"
                    for nodes, by_way in seconds.items()
                    for way, values in by_way.items()
                    if values
                )
            )
        backend.close()
    return summarise(args, connect, cold, cold_here, overhead, seconds, same, load)


def _wait_for_cpus(cpus: int) -> None:
    """Until the cluster's alive nodes hold this many CPUs."""
    import ray

    deadline = time.time() + 60
    while time.time() < deadline:
        alive = sum(n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive"))
        if alive == cpus:
            return
        time.sleep(0.2)
    raise RuntimeError(f"the cluster never held {cpus} CPUs")


def summarise(
    args: argparse.Namespace,
    connect: float,
    cold: float,
    cold_here: float,
    overhead: dict[str, list[float]],
    seconds: dict[str, dict[str, list[float]]],
    same: list[bool],
    load: tuple[float, float, float],
) -> dict[str, Any]:
    """Medians with min and max, and the paired ratios."""
    models = args.models
    rate = {
        nodes: {way: spread([models / t for t in values]) for way, values in by_way.items() if values}
        for nodes, by_way in seconds.items()
    }
    scaling = {
        way: spread([one / two for one, two in zip(seconds["1 node"][way], seconds["2 nodes"][way])])
        for way in seconds["1 node"]
    }
    split = spread([one / two for one, two in zip(seconds["2 nodes"]["one stack"], seconds["2 nodes"]["two stacks"])])
    return {
        "device": "cpu",
        "torch_threads": 1,
        "load_average_1min": {"start": load[0], "end": os.getloadavg()[0], "cores": os.cpu_count()},
        "rows": args.rows,
        "epochs_per_model": args.epochs,
        "repeats": args.repeats,
        "nodes": "one-CPU Ray nodes on this machine's loopback (ray.cluster_utils), a head without CPUs",
        "connect_seconds": connect,
        "cold": {
            "note": f"a job's first two stacks of {args.stack} models, submitted at once (its workers start)",
            "task_seconds": cold,
            "here_seconds": cold_here,
        },
        "overhead": {
            "note": f"one stack of {args.stack} models: trained here, against as a task on a warm worker",
            "stack": args.stack,
            "seconds": {way: spread(values) for way, values in overhead.items()},
            "ratio_task_to_here": spread([t / h for t, h in zip(overhead["task"], overhead["here"])]),
            "added_seconds": spread([t - h for t, h in zip(overhead["task"], overhead["here"])]),
        },
        "models_per_second": {
            "note": f"{models} models, submitted at once (on the cluster) or one stack after another (here)",
            "models": models,
            "by_nodes": rate,
            "two_nodes_over_one": scaling,
            "two_stacks_over_one_stack_on_two_nodes": split,
        },
        "same_numbers": {"bit_for_bit": all(same), "checked": len(same)},
        "gpu": "not measured: no CUDA device on the machine that ran this",
    }


def show(result: dict[str, Any], out: Path) -> None:
    """The figures in a few lines."""
    over, rate = result["overhead"], result["models_per_second"]
    print(
        f"connect {result['connect_seconds']:.1f}s; cold first stacks {result['cold']['task_seconds']:.1f}s "
        f"(here {result['cold']['here_seconds']:.1f}s)"
    )
    ratio, added = over["ratio_task_to_here"], over["added_seconds"]
    print(
        f"overhead of a task, stack of {over['stack']}: {ratio['median']:.3f} [{ratio['min']:.3f}, {ratio['max']:.3f}] "
        f"x here, {added['median']:+.3f}s [{added['min']:+.3f}, {added['max']:+.3f}]"
    )
    for nodes, by_way in rate["by_nodes"].items():
        print(f"models/s {nodes:>7}: " + "  ".join(f"{way} {v['median']:.2f}" for way, v in by_way.items()))
    print(
        "two nodes over one: "
        + "  ".join(
            f"{way} {v['median']:.2f} [{v['min']:.2f}, {v['max']:.2f}]" for way, v in rate["two_nodes_over_one"].items()
        )
    )
    split = rate["two_stacks_over_one_stack_on_two_nodes"]
    print(
        f"two nodes: two stacks of {rate['models'] // 2} over one stack of {rate['models']}: {split['median']:.2f} "
        f"[{split['min']:.2f}, {split['max']:.2f}]; 1-min load {result['load_average_1min']['start']:.1f} on "
        f"{result['load_average_1min']['cores']} cores"
    )
    print(f"same numbers as here, bit for bit: {result['same_numbers']['bit_for_bit']}; wrote {out}")


def main(argv: list[str] | None = None) -> int:
    """Run inside a loopback-only namespace (re-running itself there), measure, print, write."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--stack", type=int, default=4)
    parser.add_argument("--models", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.inside:
        problem = namespace_problem()
        if problem is not None:
            print(f"cluster benchmark: {problem}", file=sys.stderr)
            return 2
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        return in_namespace([sys.executable, __file__, *argv, "--inside"], env, timeout=3600, capture=False).returncode
    result = measure(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    show(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
