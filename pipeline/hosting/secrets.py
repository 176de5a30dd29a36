"""The team server's secrets, generated on the first start and kept in the state folder, readable
by its owner only: the PostgreSQL password of the `mlflow` role, the basic-auth admin's password and
the Flask secret key every MLflow worker signs with.

They reach the processes that need them through the environment (MLflow's own variables) and a
libpq password file, never a command line (any local user can read another's arguments with `ps`).
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.runtime.errors import StageError

FILE = "secrets.json"
PGPASS = "pgpass"
ADMIN = "admin"
PG_USER = "mlflow"


@dataclass(frozen=True)
class Secrets:
    """What the first start generated (see module docstring)."""

    postgres_password: str
    admin_password: str
    secret_key: str

    @classmethod
    def generate(cls) -> Secrets:
        """Fresh random values (256 bits each; MLflow wants passwords of 12 characters or more)."""
        return cls(secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_hex(32))

    def values(self) -> list[str]:
        """Every secret value (what must never appear in a log, a run or an output)."""
        return list(asdict(self).values())


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read, all or nothing."""
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(partial, 0o600)
    os.replace(partial, path)


def load(state: Path) -> Secrets | None:
    """The state folder's secrets, or None before the first start; refuses a file others may read."""
    path = state / FILE
    if not path.exists():
        return None
    if path.stat().st_mode & 0o077:
        raise StageError(
            f"{path} is readable by other users; make it private with `chmod 600 {path}` "
            "and change the passwords it holds if others may have read it"
        )
    return Secrets(**json.loads(path.read_text()))


def load_or_create(state: Path) -> tuple[Secrets, bool]:
    """The state folder's secrets, generated on the first call; and whether they were just made."""
    found = load(state)
    if found is not None:
        return found, False
    made = Secrets.generate()
    write_private(state / FILE, json.dumps(asdict(made), indent=1) + "\n")
    return made, True


def write_pgpass(state: Path, found: Secrets) -> Path:
    """A libpq password file for the `mlflow` role on 127.0.0.1 (any port, any database)."""
    path = state / PGPASS
    write_private(path, f"127.0.0.1:*:*:{PG_USER}:{found.postgres_password}\n")
    return path
