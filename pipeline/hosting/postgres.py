"""The team's PostgreSQL cluster in ``<state>/pgdata``: created with, or migrated to, password
authentication (scram-sha-256) for every connection, over 127.0.0.1 and over its socket alike.

A cluster made by an earlier version of ``pipeline.server`` trusted every local connection: the first
start of this version gives the `mlflow` role the generated password, rewrites ``pg_hba.conf`` and
reloads, keeping every run. PostgreSQL listens on 127.0.0.1 only, and its socket sits in the data
folder, which only the cluster's owner may open.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.hosting.secrets import PG_USER, Secrets
from pipeline.runtime.errors import StageError

if TYPE_CHECKING:  # psycopg is the [server] extra's: imported where the server needs it
    import psycopg

DATABASES = ("mlflow", "mlflow_auth")  # runs and registry; basic-auth users and permissions
HBA = (
    "# Written by `python -m pipeline.server start`: every connection gives the password (scram-sha-256).\n"
    "local   all   all                  scram-sha-256\n"
    "host    all   all   127.0.0.1/32   scram-sha-256\n"
)


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


def as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the `postgres` user then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def run(cmd: list[str], what: str, log: Path | None = None) -> None:
    """Run a tool; a failure is one line with its last line of output."""
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        where = f"; see {log}" if log else ""
        raise StageError(f"{what} failed: {detail[0]}{where}")


def uri(port: int, database: str) -> str:
    """A SQLAlchemy URI without the password (libpq reads it from PGPASSFILE)."""
    return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{port}/{database}"


def _prepare_folder(state: Path, data: Path, log: Path) -> None:
    data.mkdir(parents=True, exist_ok=True)
    log.touch()
    if os.geteuid() == 0:
        if subprocess.run(as_postgres(["test", "-x", str(state.resolve())])).returncode != 0:
            raise StageError(
                f"the postgres user cannot reach {state.resolve()} (a parent folder is private); "
                "pick a --state-dir that every user may traverse, e.g. /srv/bn-fraud-server"
            )
        shutil.chown(data, "postgres", "postgres")
        shutil.chown(log, "postgres", "postgres")
    data.chmod(0o700)


def _initdb(bin_dir: Path, data: Path, password: str) -> None:
    """A new cluster whose superuser `mlflow` has the password, scram-sha-256 everywhere."""
    pwfile = data.parent / ".pg-initial-password"
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres", "postgres")
        run(
            as_postgres(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data.resolve()),
                    "-U",
                    PG_USER,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile.resolve()}",
                    "-E",
                    "UTF8",
                ]
            ),
            "initdb",
        )
    finally:
        pwfile.unlink(missing_ok=True)


def _running(bin_dir: Path, data: Path) -> bool:
    return (
        subprocess.run(
            as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data.resolve()), "status"]), capture_output=True
        ).returncode
        == 0
    )


def _connect(port: int, database: str, password: str | None) -> psycopg.Connection:
    try:
        import psycopg
    except ImportError:
        raise StageError(
            "the team server needs psycopg and MLflow's auth extra; install them with "
            "`pip install -e '.[server]'` (or `make server`, which does)"
        ) from None
    kwargs = {"password": password} if password is not None else {}
    return psycopg.connect(host="127.0.0.1", port=port, user=PG_USER, dbname=database, autocommit=True, **kwargs)


def _require_passwords(bin_dir: Path, data: Path, port: int, password: str) -> None:
    """Rewrite pg_hba.conf to HBA; a cluster that trusted connections first gets the password."""
    hba = data / "pg_hba.conf"
    current = hba.read_text()
    if current == HBA:
        return
    if any(line.split()[-1:] == ["trust"] for line in current.splitlines() if not line.lstrip().startswith("#")):
        from psycopg import sql

        with _connect(port, "postgres", None) as conn:  # the old version's trust, one last time
            conn.execute("SET password_encryption = 'scram-sha-256'")
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(PG_USER), sql.Literal(password)))
    hba.write_text(HBA)
    run(as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data.resolve()), "reload"]), "reloading PostgreSQL")


def start_postgres(state: Path, port: int, found: Secrets) -> dict[str, str]:
    """Initialise (once), migrate (once) and start PostgreSQL on 127.0.0.1:port; return the URIs of
    the runs' and the users' databases (without the password)."""
    bin_dir, data, log = postgres_bin(), state / "pgdata", state / "postgres.log"
    _prepare_folder(state, data, log)
    if not (data / "PG_VERSION").exists():
        _initdb(bin_dir, data, found.postgres_password)
    if not _running(bin_dir, data):
        options = f"-p {port} -c listen_addresses=127.0.0.1 -k {data.resolve()}"
        run(
            as_postgres(
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
    _require_passwords(bin_dir, data, port, found.postgres_password)
    with _connect(port, "postgres", found.postgres_password) as conn:
        for name in DATABASES:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                conn.execute(f"CREATE DATABASE {name}")
    return {name: uri(port, name) for name in DATABASES}


def stop_postgres(state: Path) -> None:
    """Stop the cluster (fast shutdown); its data stay."""
    data = state / "pgdata"
    if (data / "postmaster.pid").exists():
        run(
            as_postgres([str(postgres_bin() / "pg_ctl"), "-D", str(data.resolve()), "-m", "fast", "-w", "stop"]),
            "stopping PostgreSQL",
        )
