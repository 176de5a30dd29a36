"""The team host's rules without a server: who may be exposed how, and the secrets' file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.hosting import launch, secrets
from pipeline.runtime.errors import StageError


@pytest.mark.parametrize(
    ("host", "login", "url", "unsafe", "message"),
    [
        ("0.0.0.0", False, "https://mlflow.example.com", False, "drop --no-login, or add --unsafe-no-login-on-network"),
        ("0.0.0.0", True, None, False, "--host 0.0.0.0 needs --public-url"),
        ("10.0.0.5", False, None, True, "needs --public-url"),
    ],
)
def test_serving_other_machines_needs_login_and_a_public_url(
    host: str, login: bool, url: str | None, unsafe: bool, message: str
) -> None:
    with pytest.raises(StageError, match=message):
        launch.check_exposure(host, login, url, unsafe)


@pytest.mark.parametrize(
    ("host", "login", "url", "unsafe"),
    [
        ("127.0.0.1", False, None, False),
        ("0.0.0.0", True, "https://mlflow.example.com", False),
        ("0.0.0.0", False, "https://mlflow.example.com", True),
    ],
)
def test_what_may_be_served(host: str, login: bool, url: str | None, unsafe: bool) -> None:
    launch.check_exposure(host, login, url, unsafe)


def test_the_public_url_sets_the_allowed_hosts_and_origins() -> None:
    assert launch.network_flags(5000, "https://mlflow.bank.example:8443/") == [
        "--allowed-hosts",
        "mlflow.bank.example:8443,127.0.0.1:5000,localhost:5000",
        "--cors-allowed-origins",
        "https://mlflow.bank.example:8443",
    ]
    assert launch.network_flags(5000, None) == []
    with pytest.raises(StageError, match="is not an http"):
        launch.network_flags(5000, "mlflow.bank.example")


def test_secrets_are_made_once_private_and_reused(tmp_path: Path) -> None:
    made, created = secrets.load_or_create(tmp_path)
    again, created_again = secrets.load_or_create(tmp_path)
    assert created and not created_again and made == again
    assert len(set(made.values())) == 3 and all(len(v) >= 32 for v in made.values())
    assert (tmp_path / secrets.FILE).stat().st_mode & 0o777 == 0o600
    pgpass = secrets.write_pgpass(tmp_path, made)
    assert pgpass.stat().st_mode & 0o777 == 0o600
    assert pgpass.read_text() == f"127.0.0.1:*:*:mlflow:{made.postgres_password}\n"
    assert json.loads((tmp_path / secrets.FILE).read_text())["admin_password"] == made.admin_password


def test_a_secrets_file_others_may_read_is_refused(tmp_path: Path) -> None:
    secrets.load_or_create(tmp_path)
    (tmp_path / secrets.FILE).chmod(0o644)
    with pytest.raises(StageError, match="readable by other users; make it private with `chmod 600"):
        secrets.load(tmp_path)


def test_the_server_environment_carries_the_secrets_but_never_a_users_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "the-operator's-own")
    made, _ = secrets.load_or_create(tmp_path)
    env = launch.server_environment(tmp_path, made, "postgresql+psycopg://mlflow@127.0.0.1:1/mlflow_auth")
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"] == made.secret_key and "MLFLOW_TRACKING_PASSWORD" not in env
    config = Path(env["MLFLOW_AUTH_CONFIG_PATH"]).read_text()
    assert "default_permission = NO_PERMISSIONS" in config and "mlflow_auth" in config
    assert not any(value in config for value in made.values())
    assert "MLFLOW_AUTH_CONFIG_PATH" not in launch.server_environment(tmp_path, made, None)
