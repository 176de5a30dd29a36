"""The scoring endpoint: MLflow's own scoring app (what `mlflow models serve` runs) behind a guard.

MLflow's app answers a deeply nested JSON body with HTTP 500 (its parser's RecursionError escapes),
reads a body of any size, and echoes a whole invalid body back in its error message. The guard reads
at most ``max_bytes`` of a request and answers, before MLflow sees it, an empty body, a body over the
limit (413), one nested deeper than ``max_depth``, invalid UTF-8 and invalid JSON with a 4xx and one
short message, in MLflow's error format. Everything else (the rows, their columns and values) is
MLflow's and the model's to check, exactly as under `mlflow models serve`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

MAX_BYTES = 2 * 1024 * 1024  # about 3,000 rows of 30 features; larger files: pipeline.score
MAX_DEPTH = 16  # MLflow's formats need 3 ({"dataframe_split": {"data": [[...]]}})
STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
Message = dict[str, Any]


def depth(body: bytes) -> int:
    """How deeply JSON arrays and objects nest in ``body`` (brackets inside strings do not count)."""
    bare = np.frombuffer(STRINGS.sub(b'""', body), dtype=np.uint8)
    steps = np.isin(bare, (ord("["), ord("{"))).astype(np.int32) - np.isin(bare, (ord("]"), ord("}")))
    return int(np.cumsum(steps).max(initial=0))


def problem(body: bytes, content_type: str, max_depth: int = MAX_DEPTH) -> str | None:
    """Why a JSON request is refused before MLflow parses it, or None."""
    if not body.strip():
        return 'the request body is empty; send JSON such as {"dataframe_split": {"columns": [...], "data": [[...]]}}'
    if content_type.split(";")[0].strip().lower() != "application/json":
        return None
    if (found := depth(body)) > max_depth:
        return f"the JSON body nests {found} levels deep; the scoring formats need at most {max_depth}"
    try:
        json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return f"the request body is not valid UTF-8 (byte {exc.start}); send UTF-8 JSON"
    except ValueError as exc:
        return f"the request body is not valid JSON ({str(exc)[:120]})"
    return None


async def _answer(send: Callable[[Message], Awaitable[None]], status: int, message: str) -> None:
    code = "BAD_REQUEST" if status == 400 else "REQUEST_LIMIT_EXCEEDED"
    body = json.dumps({"error_code": code, "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware in front of MLflow's scoring app (see module docstring)."""

    def __init__(self, app: Any, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> None:
        self.app, self.max_bytes, self.max_depth = app, max_bytes, max_depth

    async def __call__(
        self, scope: Message, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        """Check an /invocations request, then hand it, replayed, to MLflow's app."""
        if scope["type"] != "http" or scope["path"] != "/invocations" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        too_big = (
            f"the request body exceeds {self.max_bytes:,} bytes; send fewer rows per request "
            "(or score a file with pipeline.score)"
        )
        if int(headers.get("content-length", "0") or 0) > self.max_bytes:
            return await _answer(send, 413, too_big)
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                return await _answer(send, 413, too_big)
            if not message.get("more_body"):
                break
        if (why := problem(bytes(body), headers.get("content-type", ""), self.max_depth)) is not None:
            return await _answer(send, 400, why)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)


def app(model: Any, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Guard:
    """MLflow's scoring app for a loaded pyfunc model, guarded."""
    from mlflow.pyfunc import scoring_server

    return Guard(scoring_server.init(model), max_bytes, max_depth)
