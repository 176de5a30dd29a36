"""The guard in front of MLflow's scoring app, driven as ASGI (no server): what it refuses, what it passes on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest

from pipeline.serving.endpoint import Guard, depth

VALID = json.dumps({"dataframe_split": {"columns": ["V1"], "data": [[0.5]]}}).encode()


def _call(
    body: bytes, content_type: str = "application/json", chunk: int = 1 << 20, limit: int = 20_000
) -> tuple[int, dict, list[bytes]]:
    """(status, JSON answer, bodies the inner app received) of one POST /invocations."""
    seen: list[bytes] = []

    async def inner(
        scope: dict, receive: Callable[[], Awaitable[dict]], send: Callable[[dict], Awaitable[None]]
    ) -> None:
        seen.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"predictions": []}'})

    parts = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "path": "/invocations",
        "method": "POST",
        "headers": [(b"content-type", content_type.encode())],
    }
    asyncio.run(Guard(inner, max_bytes=limit)(scope, receive, send))
    return sent[0]["status"], json.loads(sent[1]["body"]), seen


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"", 400, "the request body is empty"),
        (b"  \n", 400, "the request body is empty"),
        (b"[" * 5000 + b"]" * 5000, 400, "nests 5000 levels deep; the scoring formats need at most 16"),
        (VALID.replace(b'"V1"', b'"V\xff1"'), 400, "not valid UTF-8"),
        (b'{"dataframe_split": ', 400, "not valid JSON"),
        (VALID * 400, 413, "exceeds 20,000 bytes; send fewer rows per request"),
    ],
)
def test_bodies_mlflow_would_mishandle_get_a_4xx_and_one_message(body: bytes, status: int, message: str) -> None:
    for chunk in (7, 1 << 20):  # whether the body arrives in one piece or many
        got, answer, seen = _call(body, chunk=chunk)
        assert got == status and message in answer["message"] and seen == [], answer


def test_a_valid_body_reaches_mlflow_whole_even_in_pieces() -> None:
    got, _, seen = _call(VALID, chunk=5)
    assert got == 200 and seen == [VALID]


def test_other_content_types_pass_to_mlflow() -> None:
    csv = b"V1\n0.5\n"
    assert _call(csv, "text/csv")[2] == [csv]


def test_depth_ignores_brackets_inside_strings() -> None:
    assert depth(b'{"a": [[1], {"b": "[[[[{{"}], "c": "\\"]]"}') == 3
    assert depth(b"1") == 0
