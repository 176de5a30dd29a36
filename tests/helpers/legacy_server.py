"""The team server as `python -m pipeline.server` was before login (commit 85c69ce): PostgreSQL with
trust authentication and an MLflow server anyone may use. Kept, code unchanged, so that a test can build a
`.team-server/` the way that version did and check that this version migrates it."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pipeline.runtime.errors import StageError
from pipeline.runtime.processes import alive

DEFAULT_STATE_DIR = Path(".team-server")
START_SECONDS = 90


def postgres_bin() -> Path:
    """The folder of PostgreSQL's server tools (initdb, pg_ctl), newest version first."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise StageError(
        "PostgreSQL is not installed (no initdb found); install it with "
        "`apt-get install postgresql` (Debian/Ubuntu) and run this again"
    )


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the `postgres` user then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _run(cmd: list[str], what: str, log: Path | None = None) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        where = f"; see {log}" if log else ""
        raise StageError(f"{what} failed: {detail[0]}{where}")


def start_postgres(state: Path, port: int) -> str:
    """Initialise (once) and start PostgreSQL on 127.0.0.1:port; return the backend store URI."""
    bin_dir, data = postgres_bin(), state / "pgdata"
    log = state / "postgres.log"
    data.mkdir(parents=True, exist_ok=True)
    log.touch()
    if os.geteuid() == 0:
        if subprocess.run(_as_postgres(["test", "-x", str(state.resolve())])).returncode != 0:
            raise StageError(
                f"the postgres user cannot reach {state.resolve()} (a parent folder is private); "
                "pick a --state-dir that every user may traverse, e.g. /srv/bn-fraud-server"
            )
        shutil.chown(data, "postgres", "postgres")
        shutil.chown(log, "postgres", "postgres")
        data.chmod(0o700)
    if not (data / "PG_VERSION").exists():
        _run(
            _as_postgres(
                [str(bin_dir / "initdb"), "-D", str(data.resolve()), "-U", "mlflow", "--auth=trust", "-E", "UTF8"]
            ),
            "initdb",
        )
    running = (
        subprocess.run(
            _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data.resolve()), "status"]), capture_output=True
        ).returncode
        == 0
    )
    if not running:
        options = f"-p {port} -c listen_addresses=127.0.0.1 -k {data.resolve()}"
        _run(
            _as_postgres(
                [
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(data.resolve()),
                    "-l",
                    str(log.resolve()),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            "starting PostgreSQL",
            log,
        )
    _create_database(port)
    return f"postgresql+psycopg://mlflow@127.0.0.1:{port}/mlflow"


def _create_database(port: int) -> None:
    try:
        import psycopg
    except ImportError:
        raise StageError(
            "the team server needs psycopg; install it with `pip install -e '.[server]'` (or `make server`, which does)"
        ) from None
    with psycopg.connect(f"host=127.0.0.1 port={port} user=mlflow dbname=postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = 'mlflow'").fetchone() is None:
            conn.execute("CREATE DATABASE mlflow")


def _healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def start(state: Path, port: int, pg_port: int, artifacts: str | None, host: str, workers: int) -> str:
    """Start what is down; return the tracking URI."""
    state.mkdir(parents=True, exist_ok=True)
    info_path = state / "server.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    uri = f"http://127.0.0.1:{port}"
    backend = start_postgres(state, pg_port)
    if info.get("pid") and alive(info["pid"]) and _healthy(uri):
        return uri
    artifacts = artifacts or str((state / "artifacts").resolve())
    _run([sys.executable, "-m", "mlflow", "db", "upgrade", backend], "migrating the mlflow database")
    log = state / "server.log"
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
                "--host",
                host,
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_SECONDS
    while not _healthy(uri):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise StageError(
                f"mlflow server did not start on {uri} (port taken?); see {log}, or pick another port with --port"
            )
        time.sleep(0.5)
    info_path.write_text(
        json.dumps(
            {"pid": process.pid, "uri": uri, "backend": backend, "artifacts": artifacts, "pg_port": pg_port}, indent=1
        )
    )
    return uri


def stop(state: Path) -> None:
    """Stop the MLflow server and PostgreSQL; keep their data."""
    info_path = state / "server.json"
    if info_path.exists():
        pid = json.loads(info_path.read_text()).get("pid")
        if pid and alive(pid):
            os.killpg(pid, signal.SIGTERM)
            for _ in range(40):
                if not alive(pid):
                    break
                time.sleep(0.25)
            else:
                os.killpg(pid, signal.SIGKILL)
        info_path.unlink()
    data = state / "pgdata"
    if (data / "postmaster.pid").exists():
        _run(
            _as_postgres([str(postgres_bin() / "pg_ctl"), "-D", str(data.resolve()), "-m", "fast", "-w", "stop"]),
            "stopping PostgreSQL",
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.server", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help="PostgreSQL data, artifacts and logs (default .team-server/)",
    )
    parser.add_argument("--port", type=int, default=5000, help="MLflow server port (default 5000)")
    parser.add_argument("--pg-port", type=int, default=15432, help="PostgreSQL port (default 15432)")
    parser.add_argument(
        "--artifacts", help="artifact destination: a folder or s3://bucket/prefix (default <state-dir>/artifacts)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on; 0.0.0.0 to serve other machines")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        if args.action == "stop":
            stop(args.state_dir)
            print(f"stopped the MLflow server and PostgreSQL; their data stay in {args.state_dir}/")
            return 0
        uri = start(args.state_dir, args.port, args.pg_port, args.artifacts, args.host, args.workers)
    except StageError as exc:
        print(f"pipeline.server: {exc}", file=sys.stderr)
        return 2
    print(
        f"MLflow server running at {uri} (runs in PostgreSQL, artifacts proxied); use it with:\n"
        f"  export MLFLOW_TRACKING_URI={uri}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
