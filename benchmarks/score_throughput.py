"""Scoring throughput: ``pipeline.score`` on raw rows against the bare network on pre-scaled tensors.

Run: ``python benchmarks/score_throughput.py [--rows 1000000] [--repeats 7] [--out FILE]``.
One process, one model (the default MLP with BatchNorm, as evaluate would log it), one file of
``--rows`` raw synthetic transactions. Every repeat times, interleaved in a rotating order:

- ``bare``: the network alone, in eval mode, on the rows already scaled into one float32 tensor,
  in blocks of its fastest size (measured first, among 8,192 to 1,000,000 rows);
- ``score_parquet``: ``pipeline.score`` end to end on a Parquet file (read in chunks, check, log1p
  and scaler, network, threshold, write the Parquet output);
- ``score_csv``: the same on a CSV file (for information: parsing text dominates);
- ``read_parquet``: only reading the Parquet file in ``pipeline.score``'s chunks, the floor under
  any scorer of this file (for information);
- ``encode``: only checking and encoding those chunks (the scorer's ``check`` and the encoder's
  ``transform``), already read (for information);
- ``write``: only writing the finished output (row, probability, 0/1) as ``pipeline.score`` does
  (for information).

Each ratio is the median over repeats of the ratio within one repeat (paired: a shared machine's
slow drifts cancel out), with its min and max. ``throughput_ratio`` = rows/s of ``pipeline.score``
on Parquet / rows/s of the bare network; the target is >= 0.5. ``ceiling_without_network`` = bare /
(read + encode + write), paired: the ratio a scorer would reach if the network cost nothing and
nothing overlapped; ``ceiling_sequential`` = bare / (read + encode + write + bare): the same work
done one part after another. Writes ``benchmarks/results/score_throughput.json``, keeping its
``attempts`` (what was tried at the target, kept or not, with the ratios it gave).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from common import SETTING, batchnorm, spread, ulb_transactions

from pipeline import score
from pipeline.data.encoder import Encoder, Scaler
from pipeline.modeling.network import MLP, logits
from pipeline.project.params import load_params
from pipeline.serving.scorer import BATCH_ROWS, FraudScorer
from pipeline.training.jobs import mlp_config

OUT = Path(__file__).resolve().parent / "results" / "score_throughput.json"
TARGET = 0.5


@torch.inference_mode()
def bare(network: MLP, x: torch.Tensor, block: int) -> None:
    """The network alone on pre-scaled rows."""
    for part in torch.split(x, block):
        torch.sigmoid(logits(network, part))


def encode(scorer: FraudScorer, chunk: pd.DataFrame) -> list[np.ndarray]:
    """A chunk checked and encoded as the scorer does before its network runs (BATCH_ROWS at a time)."""
    decoded, _ = scorer.check(chunk)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return [scorer.encoder.transform(decoded, slice(i, i + BATCH_ROWS)) for i in range(0, decoded.rows, BATCH_ROWS)]


def write(table: pa.Table, target: Path, rows: int) -> None:
    """The output written as ``pipeline.score`` writes it: one Parquet row group per chunk."""
    with pq.ParquetWriter(target, table.schema, use_dictionary=[]) as writer:
        for start in range(0, table.num_rows, rows):
            writer.write_table(table.slice(start, rows))


def fastest_block(network: MLP, x: torch.Tensor) -> int:
    """The block size at which the bare network is fastest here (best of 3 per size)."""
    timings = {}
    for block in (8_192, 32_768, 131_072, 1_000_000):
        timings[block] = min(_seconds(lambda block=block: bare(network, x, block)) for _ in range(3))
    return min(timings, key=timings.get)


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    """Build the model and files, time the variants interleaved, print and save the ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=OUT, help="the JSON to write (its attempts are kept)")
    args = parser.parse_args()

    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    frame = ulb_transactions(args.rows)
    features = frame.drop(columns="Class")
    scaler = Scaler.fit(features, params.prepare.log1p)
    network = MLP.initialised(mlp_config(batchnorm(params).model, features.shape[1], SETTING), [0]).eval()
    encoder = Encoder(dict.fromkeys(scaler.features, "numeric"), {}, {}, {}, scaler)
    scorer = FraudScorer(network, encoder, threshold=0.5, nonfinite="error", settings={})
    x = torch.from_numpy(scaler.transform(features).to_numpy())
    block = fastest_block(network, x)

    with tempfile.TemporaryDirectory() as tmp:
        parquet, csv = Path(tmp) / "rows.parquet", Path(tmp) / "rows.csv"
        frame.to_parquet(parquet, index=False)
        frame.to_csv(csv, index=False)
        read = list(score.chunks(parquet, score.CHUNK_ROWS))
        scored = pa.table(
            {"row": np.arange(args.rows), "fraud_probability": np.random.default_rng(0).random(args.rows)}
        ).append_column("fraud", pa.array(np.zeros(args.rows, dtype=np.int64)))
        variants = {
            "bare": lambda: bare(network, x, block),
            "read_parquet": lambda: sum(len(c) for c in score.chunks(parquet, score.CHUNK_ROWS)),
            "encode": lambda: [encode(scorer, chunk) for chunk in read],
            "write": lambda: write(scored, Path(tmp) / "written.parquet", score.CHUNK_ROWS),
            "score_parquet": lambda: score.score_file(scorer, parquet, Path(tmp) / "out.parquet"),
            "score_csv": lambda: score.score_file(scorer, csv, Path(tmp) / "out.parquet"),
        }
        for fn in variants.values():  # warm-up: first-touch allocations, lazy imports
            fn()
        seconds: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for repeat in range(args.repeats):
            for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
                seconds[name].append(_seconds(variants[name]))

    ratios = {
        f"throughput_ratio{suffix}": spread([b / s for b, s in zip(seconds["bare"], seconds[name])])
        for suffix, name in (("", "score_parquet"), ("_csv", "score_csv"))
    }
    parts = list(zip(seconds["bare"], seconds["read_parquet"], seconds["encode"], seconds["write"]))
    ceilings = {
        "ceiling_without_network": spread([b / (r + e + w) for b, r, e, w in parts]),
        "ceiling_sequential": spread([b / (r + e + w + b) for b, r, e, w in parts]),
    }
    result = {
        "device": f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "rows": args.rows,
        "repeats": args.repeats,
        "bare_block_rows": block,
        "rows_per_second": {name: spread([args.rows / s for s in values]) for name, values in seconds.items()},
        **ratios,
        **ceilings,
        "target": TARGET,
        "meets_target": ratios["throughput_ratio"]["median"] >= TARGET,
        "attempts": json.loads(args.out.read_text()).get("attempts", []) if args.out.is_file() else [],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name, values in result["rows_per_second"].items():
        print(
            f"{name:14s} {values['median'] / 1e6:6.2f} M rows/s  [{values['min'] / 1e6:.2f}, {values['max'] / 1e6:.2f}]"
        )
    for key, value in {**ratios, **ceilings}.items():
        print(f"{key:22s} {value['median']:.3f}  [{value['min']:.3f}, {value['max']:.3f}]")
    print(f"target throughput_ratio >= {TARGET}: {'met' if result['meets_target'] else 'MISSED'}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
