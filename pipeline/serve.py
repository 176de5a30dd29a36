"""Serve a logged fraud model over HTTP: ``python -m pipeline.serve --model models:/bn-fraud@champion``.

The same REST API as `mlflow models serve` (``POST /invocations``, ``GET /ping``), from MLflow's own
scoring app, with a guard in front (serving/endpoint.py): an empty, oversized, too deeply nested,
non-UTF-8 or invalid JSON body gets a 4xx with one short message instead of a 500 or an echo of the
body. It has no login: keep it on 127.0.0.1, or behind a proxy that authenticates.
"""

from __future__ import annotations

import argparse
import logging
import sys

from pipeline.runtime.errors import DataError
from pipeline.serving import endpoint
from pipeline.serving.pyfunc import fraud_scorer
from pipeline.tracking.lifecycle import load_model

log = logging.getLogger("pipeline.serve")


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="e.g. models:/bn-fraud@champion")
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1; the endpoint has no login)")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=endpoint.MAX_BYTES,
        help=f"largest request body accepted (default {endpoint.MAX_BYTES:,})",
    )
    args = parser.parse_args(argv)
    try:
        model = load_model(args.model)
        fraud_scorer(model, args.model)  # a fraud model of this pipeline, or one line and exit 2
    except DataError as exc:
        print(f"serve: error: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    uvicorn.run(endpoint.app(model, args.max_body_bytes), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
