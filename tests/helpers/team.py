"""The team stack for end-to-end tests: ports, moto's S3 on 127.0.0.1, `pipeline.server` and its users."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

S3_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def need_postgres() -> None:
    """Skip (outside CI) when PostgreSQL is not installed."""
    from pipeline.hosting.postgres import postgres_bin
    from pipeline.runtime.errors import StageError

    try:
        postgres_bin()
    except StageError as exc:  # .ci/run installs PostgreSQL; a developer's machine may lack it
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, seconds: float = 60) -> None:
    """Until something listens on 127.0.0.1:port."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise AssertionError(f"nothing listens on port {port} after {seconds} s")


def start_moto(port: int, env: dict[str, str], buckets: tuple[str, ...] = ("mlflow", "dvc")) -> subprocess.Popen:
    """moto's S3 server on 127.0.0.1:port with the buckets made."""
    moto = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    wait_for_port(port)
    for bucket in buckets:
        s3_client(port).create_bucket(Bucket=bucket)
    return moto


def s3_client(port: int) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


def admin_password(start_output: str) -> str | None:
    """The admin password the first `pipeline.server start` prints (None when it printed none)."""
    found = re.search(r"^admin password \(shown once.*\): (\S+)$", start_output, re.M)
    return found.group(1) if found else None


def user_password(add_output: str) -> str:
    """The password `pipeline.server user add` prints."""
    return re.search(r"shown once and stored nowhere: (\S+)", add_output).group(1)


def credentials(name: str, password: str) -> dict[str, str]:
    """MLflow's client variables for a user."""
    return {"MLFLOW_TRACKING_USERNAME": name, "MLFLOW_TRACKING_PASSWORD": password}


def stored_secrets(state: Path) -> dict[str, str]:
    """What the server keeps in its state folder."""
    return json.loads((state / "secrets.json").read_text())
