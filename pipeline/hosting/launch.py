"""The `mlflow server` process of the team stack: MLflow's basic-auth app configured from the state
folder, the network guards set from the public URL, its health and its stop.

The login app keeps its users in PostgreSQL beside the runs (database ``mlflow_auth``), with
``default_permission = NO_PERMISSIONS``: a new user sees nothing until the admin gives them a role
(tracking/access.py). Every worker reads the same admin password and secret key from the environment,
so restarts and several workers agree; ``--allowed-hosts`` and ``--cors-allowed-origins`` accept the
public URL's host and origin (and 127.0.0.1 / localhost on the port, for the host's own admin).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.hosting.secrets import ADMIN, PGPASS, Secrets, write_private
from pipeline.runtime.errors import StageError
from pipeline.runtime.processes import alive

AUTH_CONFIG = "basic_auth.ini"
INFO = "server.json"
START_SECONDS = 90
LOOPBACK = ("127.0.0.1", "localhost", "::1")
UNSAFE_FLAG = "--unsafe-no-login-on-network"


def check_exposure(host: str, login: bool, public_url: str | None, unsafe: bool) -> None:
    """Serving other machines needs login (unless overridden by UNSAFE_FLAG) and a public URL."""
    if host in LOOPBACK:
        return
    if not login and not unsafe:
        raise StageError(
            f"--host {host} with --no-login lets anyone who reaches the port delete runs and move the "
            f"champion (whose code pipeline.score runs); drop --no-login, or add {UNSAFE_FLAG} to "
            "serve the network without login anyway"
        )
    if not public_url:
        raise StageError(
            f"--host {host} needs --public-url, the address clients use (e.g. https://mlflow.example.com "
            "behind your TLS proxy): the server's allowed hosts and CORS origins are set from it"
        )


def network_flags(port: int, public_url: str | None) -> list[str]:
    """`--allowed-hosts` and `--cors-allowed-origins` from the public URL (MLflow's defaults without one:
    localhost and private addresses)."""
    if not public_url:
        return []
    parts = urlsplit(public_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StageError(f"--public-url {public_url} is not an http(s) URL; give e.g. https://mlflow.example.com")
    hosts = [parts.netloc, f"127.0.0.1:{port}", f"localhost:{port}"]
    return ["--allowed-hosts", ",".join(hosts), "--cors-allowed-origins", f"{parts.scheme}://{parts.netloc}"]


def _auth_config(state: Path, users_uri: str) -> Path:
    """MLflow's basic_auth.ini for this stack (no password in it: libpq and the environment carry them)."""
    path = state / AUTH_CONFIG
    write_private(
        path,
        "[mlflow]\n"
        "# A new user has no permission until `python -m pipeline.server user add` gives a role.\n"
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = {users_uri}\n"
        f"admin_username = {ADMIN}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
    )
    return path


def server_environment(state: Path, found: Secrets, users_uri: str | None) -> dict[str, str]:
    """The server's environment: libpq's password file, and with login the auth app's settings."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    env["PGPASSFILE"] = str((state / PGPASS).resolve())
    if users_uri is not None:
        env.update(
            {
                "MLFLOW_AUTH_CONFIG_PATH": str(_auth_config(state, users_uri).resolve()),
                "MLFLOW_FLASK_SERVER_SECRET_KEY": found.secret_key,
                "MLFLOW_AUTH_ADMIN_PASSWORD": found.admin_password,
            }
        )
    return env


def healthy(uri: str) -> bool:
    """The server answers /health (open without login)."""
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def running(state: Path) -> dict | None:
    """The recorded server, when its process is alive and healthy."""
    path = state / INFO
    info = json.loads(path.read_text()) if path.exists() else {}
    return info if info.get("pid") and alive(info["pid"]) and healthy(info["uri"]) else None


def start_server(
    state: Path, env: dict[str, str], backend: str, artifacts: str, flags: list[str], port: int, info: dict
) -> None:
    """Migrate the runs' database, start `mlflow server` with ``flags`` and wait for /health."""
    upgrade = subprocess.run(
        [sys.executable, "-m", "mlflow", "db", "upgrade", backend], env=env, capture_output=True, text=True
    )
    if upgrade.returncode != 0:
        last = (upgrade.stderr or upgrade.stdout).strip().splitlines()[-1:] or ["no output"]
        raise StageError(f"migrating the mlflow database failed: {last[0]}")
    uri, log = f"http://127.0.0.1:{port}", state / "server.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                backend,
                "--artifacts-destination",
                artifacts,
                "--port",
                str(port),
                *flags,
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_SECONDS
    while not healthy(uri):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise StageError(
                f"mlflow server did not start on {uri} (port taken?); see {log}, or pick another port with --port"
            )
        time.sleep(0.5)
    (state / INFO).write_text(json.dumps({**info, "pid": process.pid, "uri": uri}, indent=1))


def stop_server(state: Path) -> None:
    """Stop the recorded MLflow server (its whole process group)."""
    path = state / INFO
    if not path.exists():
        return
    pid = json.loads(path.read_text()).get("pid")
    if pid and alive(pid):
        os.killpg(pid, signal.SIGTERM)
        for _ in range(40):
            if not alive(pid):
                break
            time.sleep(0.25)
        else:
            os.killpg(pid, signal.SIGKILL)
    path.unlink()
