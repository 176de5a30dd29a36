"""The scoring endpoint under load and hostile input: ``python benchmarks/serve_load.py``.

Serves a fraud model (``--model URI``, default: the default MLP with BatchNorm, built here and saved as
evaluate would log it) with ``python -m pipeline.serve`` (``--server pipeline``, default) or
``mlflow models serve`` (``--server mlflow``) on 127.0.0.1, and sends ``--requests`` requests (fixed,
seeded) from ``--clients`` concurrent clients: valid batches (1 to 200 raw rows; some with extra
columns, which the model ignores) mixed with hostile ones (a non-numeric value, a missing column, NaN,
Infinity, an empty body, a body of 5 MB, JSON nested 10,000 deep, invalid UTF-8, a value that
overflows float32). A valid answer must equal ``pipeline.score``'s probabilities on the same rows
(to 1e-7) and labels; a hostile one must be a 4xx whose JSON message names the problem. At the end
the server must still answer. Writes throughput and p50 / p99 latency to
``benchmarks/results/serve_load.json`` (one entry per ``--server``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from common import SETTING, batchnorm, ulb_transactions

from pipeline import score
from pipeline.data.encoder import Encoder, Scaler
from pipeline.modeling.network import MLP, checkpoint
from pipeline.project.params import load_params
from pipeline.serving import packaging, scorer
from pipeline.training.jobs import mlp_config

OUT = Path(__file__).resolve().parent / "results" / "serve_load.json"
ROOT = Path(__file__).resolve().parents[1]
# kind -> (expected status, a part of the message that names the problem)
HOSTILE = {
    "wrong_type": (400, "non-numeric values in feature columns V4"),
    "missing_column": (400, "V3"),
    "nan": (400, "NaN or infinite"),
    "infinity": (400, "NaN or infinite"),
    "empty_body": (400, "body is empty"),
    "big_body": (413, "exceeds"),
    "nested": (400, "nests"),
    "invalid_utf8": (400, "UTF-8"),
    "overflow": (400, "V1 = 1e+308 is outside"),
}
# `mlflow models serve` has messages of its own where the guard answers first: any 4xx counts there
MLFLOW_HOSTILE = {**HOSTILE, **dict.fromkeys(("empty_body", "big_body", "nested", "invalid_utf8"), (400, ""))}


def build_model(folder: Path) -> Path:
    """The default MLP with BatchNorm (seeded initial weights), saved as a servable MLflow model."""
    params = load_params(ROOT / "params.yaml")
    frame = ulb_transactions(50_000).drop(columns="Class")
    scaler = Scaler.fit(frame, params.prepare.log1p)
    config = mlp_config(batchnorm(params).model, frame.shape[1], SETTING)
    torch.save(checkpoint(config, MLP.initialised(config, [0]).member_state(0)), folder / "net.pt")
    Encoder(dict.fromkeys(scaler.features, "numeric"), {}, {}, {}, scaler).save(folder / "encoder.json")
    packaging.save_fraud_model(
        folder / "model",
        folder / "net.pt",
        folder / "encoder.json",
        scorer.settings(0.5, "error", "benchmark", model="batchnorm"),
        frame.head(5),
    )
    return folder / "model"


def body(rows: pd.DataFrame) -> bytes:
    """A `dataframe_split` request (NaN and infinities as JSON's NaN / Infinity tokens)."""
    return json.dumps({"dataframe_split": {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}}).encode()


def plan(pool: pd.DataFrame, count: int, seed: int) -> list[tuple[str, bytes, np.ndarray | None]]:
    """``count`` requests (kind, body, row positions of a valid batch), 70% valid, in a seeded order."""
    rng = np.random.default_rng(seed)
    kinds = list(HOSTILE)
    out = []
    for i in range(count):
        rows = rng.choice(len(pool), size=int(rng.integers(1, 201)), replace=False)
        batch = pool.iloc[rows].reset_index(drop=True)
        if rng.random() < 0.7:
            extra = rng.random() < 0.2
            out.append(
                (
                    "valid_extra_columns" if extra else "valid",
                    body(batch.assign(Class=0, note=1.5) if extra else batch),
                    rows,
                )
            )
            continue
        kind = kinds[i % len(kinds)]
        out.append((kind, hostile(kind, batch), None))
    return out


def hostile(kind: str, batch: pd.DataFrame) -> bytes:
    """One hostile request body of ``kind``."""
    if kind == "wrong_type":
        return body(batch.astype({"V4": object}).assign(V4="12,50"))
    if kind == "missing_column":
        return body(batch.drop(columns=["V3"]))
    if kind in ("nan", "infinity", "overflow"):
        column, value = {"nan": ("V2", np.nan), "infinity": ("Amount", np.inf), "overflow": ("V1", 1e308)}[kind]
        batch = batch.copy()
        batch.loc[len(batch) // 2, column] = value
        return body(batch)
    if kind == "empty_body":
        return b""
    if kind == "big_body":
        return body(pd.concat([batch] * (5 * 1024 * 1024 // max(1, len(body(batch)))), ignore_index=True))
    if kind == "nested":
        return b'{"dataframe_split": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    if kind == "invalid_utf8":
        return body(batch).replace(b'"V1"', b'"V\xff\xfe1"')
    raise AssertionError(kind)


def send(port: int, payload: bytes) -> tuple[int, bytes, float]:
    """POST /invocations; (status, body, seconds)."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("POST", "/invocations", body=payload, headers={"Content-Type": "application/json"})
    answer = conn.getresponse()
    content = answer.read()
    conn.close()
    return answer.status, content, time.perf_counter() - start


def judge(
    kind: str, status: int, content: bytes, rows: np.ndarray | None, expected: pd.DataFrame, hostile_table: dict
) -> bool:
    """Whether the answer is right: the same numbers as pipeline.score, or a 4xx that says why."""
    try:
        answer = json.loads(content, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    except ValueError:
        return False  # not JSON (a bare NaN included)
    if rows is not None:
        got = pd.DataFrame(answer.get("predictions", [])) if status == 200 else pd.DataFrame()
        want = expected.iloc[rows]
        return (
            len(got) == len(rows)
            and bool(np.allclose(got["fraud_probability"], want["fraud_probability"], rtol=0, atol=1e-7))
            and got["fraud"].tolist() == want["fraud"].tolist()
        )
    _, words = hostile_table[kind]
    return 400 <= status < 500 and words in str(answer.get("message", ""))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(kind: str, model: str, port: int) -> subprocess.Popen:
    """The endpoint under test, on 127.0.0.1, waited for."""
    command = (
        [sys.executable, "-m", "pipeline.serve", "--model", model, "--port", str(port)]
        if kind == "pipeline"
        else [
            str(Path(sys.executable).with_name("mlflow")),
            "models",
            "serve",
            "-m",
            model,
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ]
    )
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # uvicorn
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while not alive(port):
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{' '.join(command)} did not start")
        time.sleep(0.5)
    return server


def alive(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/ping")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def percentiles(seconds: list[float]) -> dict[str, float]:
    return (
        {
            "p50_ms": float(np.percentile(seconds, 50) * 1e3),
            "p99_ms": float(np.percentile(seconds, 99) * 1e3),
            "max_ms": float(max(seconds) * 1e3),
        }
        if seconds
        else {}
    )


def drive(
    port: int,
    requests: list[tuple[str, bytes, np.ndarray | None]],
    clients: int,
    expected: pd.DataFrame,
    hostile_table: dict,
) -> tuple[list[tuple[str, int, bool, float]], float]:
    """Send every request from ``clients`` threads; (kind, status, right, seconds) each, and the wall time."""

    def one(item: tuple[str, bytes, np.ndarray | None]) -> tuple[str, int, bool, float]:
        kind, payload, rows = item
        try:
            status, content, seconds = send(port, payload)
        except OSError:
            return kind, 0, False, float("nan")  # the connection broke: lost
        return kind, status, judge(kind, status, content, rows, expected, hostile_table), seconds

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        answers = list(pool.map(one, requests))
    return answers, time.perf_counter() - start


def summary(answers: list[tuple[str, int, bool, float]], wall: float, requests: list, still_alive: bool) -> dict:
    """Counts per kind, throughput and latency."""
    kinds = sorted({a[0] for a in answers})
    valid = [a for a in answers if a[0].startswith("valid")]
    rows = sum(len(r[2]) for r in requests if r[2] is not None)
    return {
        "requests": len(answers),
        "answered_correctly": sum(a[2] for a in answers),
        "lost": sum(a[1] == 0 for a in answers),
        "server_alive_after": still_alive,
        "per_kind": {
            k: {
                "sent": sum(a[0] == k for a in answers),
                "correct": sum(a[0] == k and a[2] for a in answers),
                "statuses": sorted({a[1] for a in answers if a[0] == k}),
            }
            for k in kinds
        },
        "wall_seconds": wall,
        "requests_per_second": len(answers) / wall,
        "valid_rows_per_second": rows / wall,
        "latency_valid": percentiles([a[3] for a in valid]),
        "latency_hostile": percentiles([a[3] for a in answers if not a[0].startswith("valid") and a[1]]),
    }


def main() -> int:
    """Build (or take) the model, score the pool with pipeline.score, serve, drive, check, save."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", choices=["pipeline", "mlflow"], default="pipeline")
    parser.add_argument("--model", help="a model URI (default: build one)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(build_model(Path(tmp)))
        pool = ulb_transactions(20_000).sample(frac=1.0, random_state=1).drop(columns="Class")
        pool.to_parquet(Path(tmp) / "pool.parquet", index=False)
        score.run(model, Path(tmp) / "pool.parquet", Path(tmp) / "expected.parquet")
        expected = pd.read_parquet(Path(tmp) / "expected.parquet")
        requests = plan(pool, args.requests, seed=0)
        port = free_port()
        server = start_server(args.server, model, port)
        try:
            answers, wall = drive(
                port, requests, args.clients, expected, HOSTILE if args.server == "pipeline" else MLFLOW_HOSTILE
            )
            still_alive = server.poll() is None and alive(port)
        finally:
            server.terminate()
            server.wait(30)
    result = {
        "server": "python -m pipeline.serve" if args.server == "pipeline" else "mlflow models serve",
        "device": f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "clients": args.clients,
        **summary(answers, wall, requests, still_alive),
    }
    result["all_correct"] = result["answered_correctly"] == result["requests"] and still_alive
    saved = json.loads(OUT.read_text()) if OUT.exists() else {}
    OUT.write_text(json.dumps({**saved, args.server: result}, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "per_kind"}, indent=1))
    for kind, counts in result["per_kind"].items():
        print(f"{kind:20s} {counts['correct']:5d} / {counts['sent']:5d} right, statuses {counts['statuses']}")
    print(f"{'every answer right, server alive' if result['all_correct'] else 'NOT ALL RIGHT'}; wrote {OUT}")
    return 0 if result["all_correct"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
