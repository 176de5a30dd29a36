"""The team stack, locked: PostgreSQL with a password, `mlflow server` with MLflow's basic-auth app,
artifacts on S3 (moto on 127.0.0.1). Only the team gets in, only maintainers move the champion, no
secret leaks into what the project writes, an overflowing row is never labelled, and a `.team-server/`
of the version before login is migrated with its runs."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import mlflow
import psycopg
import pytest
import requests

from pipeline.project.layout import Layout
from tests.helpers.params import small_raw_params
from tests.helpers.repository import REPO, copy_repository, dvc, env_for, run
from tests.helpers.stages import raw_test
from tests.helpers.team import (
    S3_KEYS,
    admin_password,
    credentials,
    free_port,
    need_postgres,
    s3_client,
    start_moto,
    stored_secrets,
    user_password,
)

pytestmark = pytest.mark.slow
EXPERIMENT, MODEL = "batchnorm-vs-baseline", "bn-fraud"


def _server(state: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.server", *args, "--state-dir", str(state)]


@pytest.fixture(scope="module")
def stack() -> Iterator[dict]:
    need_postgres()
    base = Path(tempfile.mkdtemp(prefix="bn-fraud-secure-"))
    base.chmod(0o755)  # PostgreSQL runs as the postgres user when we are root
    s3_port, port, pg_port = free_port(), free_port(), free_port()
    env = {**env_for(base), **S3_KEYS, "MLFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}"}
    state, repo, logs = base / "server", base / "repo", []
    moto = start_moto(s3_port, env)
    start = [
        *_server(state, "start"),
        "--port",
        str(port),
        "--pg-port",
        str(pg_port),
        "--artifacts",
        "s3://mlflow/artifacts",
    ]
    try:
        first = run(REPO, *start, env=env)
        again = run(REPO, *start, env=env)  # idempotent, and the password is printed once only
        logs += [first.stderr, again.stdout, again.stderr]  # first.stdout prints the admin password, by design
        added = {
            name: run(REPO, *_server(state, "user", "add", name, "--role", role), env=env).stdout
            for name, role in (("maria", "maintainer"), ("mike", "member"))
        }
        users = {name: user_password(out) for name, out in added.items()}
        uri = f"http://127.0.0.1:{port}"
        raw = small_raw_params()
        raw["evaluate"]["references"] = {"logistic_regression": {"C": [1.0]}}
        copy_repository(repo, raw)
        maintainer = {**env, "MLFLOW_TRACKING_URI": uri, **credentials("maria", users["maria"])}
        repro = dvc(repo, "repro", env=maintainer)
        logs += [repro.stdout, repro.stderr]
        yield {
            "base": base,
            "state": state,
            "repo": repo,
            "uri": uri,
            "env": env,
            "s3_port": s3_port,
            "first": first.stdout,
            "again": again.stdout,
            "users": users,
            "logs": logs,
            "pg_port": pg_port,
            "member": {**env, "MLFLOW_TRACKING_URI": uri, **credentials("mike", users["mike"])},
            "maintainer": maintainer,
            "admin": admin_password(first.stdout),
        }
    finally:
        run(REPO, *_server(state, "stop"), check=False, env=env)
        moto.terminate()
        moto.wait(10)
        shutil.rmtree(base, ignore_errors=True)


def _as(monkeypatch: pytest.MonkeyPatch, stack: dict, who: str) -> mlflow.MlflowClient:
    for key, value in stack[who].items():
        if key.startswith(("AWS_", "MLFLOW_")):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(stack["uri"])
    return mlflow.MlflowClient(stack["uri"], registry_uri=stack["uri"])


def test_the_admin_password_is_generated_kept_private_and_printed_once(stack: dict) -> None:
    secrets = stored_secrets(stack["state"])
    assert stack["admin"] == secrets["admin_password"] and len(stack["admin"]) >= 32
    assert admin_password(stack["again"]) is None and stack["admin"] not in stack["again"]
    for name in ("secrets.json", "pgpass", "basic_auth.ini"):
        assert (stack["state"] / name).stat().st_mode & 0o077 == 0, name
    assert not list(REPO.glob("basic_auth.db")) and not list(stack["repo"].glob("*.db"))  # no SQLite user store


def test_anonymous_requests_sign_up_and_the_default_admin_password_are_refused(stack: dict) -> None:
    api = f"{stack['uri']}/api/2.0/mlflow/experiments/search?max_results=5"
    member = ("mike", stack["users"]["mike"])
    assert requests.get(api, timeout=10).status_code == 401
    assert requests.get(api, auth=("admin", "password1234"), timeout=10).status_code == 401  # MLflow's old default
    assert requests.get(api, auth=("mike", "a-wrong-password"), timeout=10).status_code == 401
    assert requests.get(api, auth=("admin", stack["admin"]), timeout=10).status_code == 200
    assert requests.get(f"{stack['uri']}/signup", timeout=10).status_code == 401
    assert requests.get(f"{stack['uri']}/signup", auth=member, timeout=10).status_code == 403
    create = f"{stack['uri']}/api/2.0/mlflow/users/create"
    body = {"username": "intruder", "password": "x" * 20}
    assert requests.post(create, json=body, timeout=10).status_code == 401
    assert requests.post(create, json=body, auth=member, timeout=10).status_code == 403
    assert requests.post(f"{stack['uri']}/api/2.0/mlflow/users/create-ui", data=body, timeout=10).status_code == 401
    listed = run(REPO, *_server(stack["state"], "user", "list"), env=stack["env"]).stdout
    assert "intruder" not in listed and "maria\tmaintainer" in listed and "mike\tmember" in listed


def test_a_member_logs_runs_but_cannot_move_the_champion(stack: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    client = _as(monkeypatch, stack, "member")
    champion = client.get_model_version_by_alias(MODEL, "champion")  # members read the registry
    experiment = client.get_experiment_by_name(EXPERIMENT)
    logged = client.create_run(experiment.experiment_id, run_name="member-run")
    client.log_metric(logged.info.run_id, "test_ap", 0.5)
    client.set_terminated(logged.info.run_id)
    assert client.get_run(logged.info.run_id).info.status == "FINISHED"
    with pytest.raises(mlflow.exceptions.MlflowException, match="403"):
        client.set_registered_model_alias(MODEL, "champion", champion.version)
    with pytest.raises(mlflow.exceptions.MlflowException, match="403"):
        mlflow.register_model(champion.source, MODEL)
    report = stack["repo"] / "reports" / "report.md"
    before = report.read_bytes()
    refused = run(stack["repo"], sys.executable, "-m", "pipeline.report", check=False, env=stack["member"])
    stack["logs"] += [refused.stdout, refused.stderr]
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1, refused.stderr[-3000:]
    assert (
        lines[0].startswith(
            "report: error: mike may not register versions of bn-fraud or move its `champion` "
            "alias: only maintainers may"
        )
        and f"stays version {champion.version}" in lines[0]
    )
    assert client.get_model_version_by_alias(MODEL, "champion").version == champion.version
    assert report.read_bytes() == before
    pipeline_runs = client.search_runs([experiment.experiment_id], "tags.`pipeline.role` = 'pipeline'")
    assert [r.info.status for r in pipeline_runs] == ["FAILED"]


def test_a_maintainer_registers_and_moves_the_champion(stack: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    client = _as(monkeypatch, stack, "maintainer")
    champion = client.get_model_version_by_alias(MODEL, "champion")  # registered by the maintainer's dvc repro
    assert champion.tags["pipeline.variant"] in ("batchnorm", "baseline")
    again = mlflow.register_model(champion.source, MODEL)
    client.set_registered_model_alias(MODEL, "champion", again.version)
    assert client.get_model_version_by_alias(MODEL, "champion").version == again.version
    client.set_registered_model_alias(MODEL, "champion", champion.version)


def test_postgres_refuses_connections_without_the_password(stack: dict) -> None:
    port, data = stack["pg_port"], stack["state"] / "pgdata"
    for where in ({"host": "127.0.0.1"}, {"host": str(data)}):
        for password in ({}, {"password": "not-the-password"}):
            with pytest.raises(psycopg.OperationalError, match="password"):
                psycopg.connect(
                    port=port, user="mlflow", dbname="mlflow", passfile="/nonexistent", **where, **password
                ).close()
    password = stored_secrets(stack["state"])["postgres_password"]
    with psycopg.connect(host="127.0.0.1", port=port, user="mlflow", dbname="mlflow", password=password) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone()[0] == "127.0.0.1"
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] > 0
    assert "trust" not in (data / "pg_hba.conf").read_text()


def test_an_overflowing_row_is_never_labelled(stack: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    rows = raw_test(Layout(stack["repo"])).head(20).reset_index(drop=True)
    rows.loc[7, "V1"] = 1e308
    rows.to_csv(tmp_path / "rows.csv", index=False)
    scored = run(
        stack["repo"],
        sys.executable,
        "-m",
        "pipeline.score",
        "--model",
        f"models:/{MODEL}@champion",
        "--input",
        str(tmp_path / "rows.csv"),
        "--output",
        str(tmp_path / "out.parquet"),
        check=False,
        env=stack["member"],
    )
    assert (
        scored.returncode == 2
        and "row 7: V1 = 1e+308 is outside what the model's scaler can represent" in scored.stderr
        and not (tmp_path / "out.parquet").exists()
    ), scored.stderr[-2000:]
    _as(monkeypatch, stack, "member")
    champion = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")  # through the server, as a member
    features = [c.name for c in champion.metadata.get_input_schema().inputs]
    with pytest.raises(mlflow.exceptions.MlflowException, match="row 7: V1 = 1e\\+308 is outside"):
        champion.predict(rows[features])


def _files_holding(root: Path, secrets: list[str]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.name not in ("secrets.json", "pgpass"):
            data = path.read_bytes()
            found += [f"{path}: secret {i}" for i, s in enumerate(secrets) if s.encode() in data]
    return found


def test_no_secret_in_the_store_the_outputs_or_the_logs(stack: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = [*stored_secrets(stack["state"]).values(), *stack["users"].values()]
    leaks = _files_holding(stack["repo"], secrets) + _files_holding(stack["state"], secrets)  # pgdata: the store
    s3 = s3_client(stack["s3_port"])
    for bucket in ("mlflow", "dvc"):
        for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            data = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            leaks += [f"s3://{bucket}/{item['Key']}" for s in secrets if s.encode() in data]
    leaks += [f"command output {i}" for i, text in enumerate(stack["logs"]) for s in secrets if s in text]
    client = _as(monkeypatch, stack, "maintainer")
    for r in client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id]):
        text = repr((r.data.params, r.data.tags))
        leaks += [f"run {r.info.run_name}" for s in secrets if s in text]
    assert leaks == []
    assert (stack["repo"] / "dvc.lock").is_file() and (stack["state"] / "server.log").stat().st_size > 0


def test_a_team_server_of_the_version_before_login_is_migrated(tmp_path_factory: pytest.TempPathFactory) -> None:
    need_postgres()
    base = Path(tempfile.mkdtemp(prefix="bn-fraud-legacy-"))
    base.chmod(0o755)
    state, port, pg_port = base / "server", free_port(), free_port()
    env, uri = env_for(base), f"http://127.0.0.1:{port}"
    legacy = [sys.executable, "-m", "tests.helpers.legacy_server"]
    try:
        run(REPO, *legacy, "start", "--state-dir", str(state), "--port", str(port), "--pg-port", str(pg_port), env=env)
        old = mlflow.MlflowClient(uri)  # anyone could write to it
        exp = old.create_experiment(EXPERIMENT)
        made = []
        for i in range(3):
            r = old.create_run(exp, run_name=f"old-{i}")
            old.log_metric(r.info.run_id, "test_ap", 0.1 * i)
            old.set_terminated(r.info.run_id)
            made.append(r.info.run_id)
        run(REPO, *legacy, "stop", "--state-dir", str(state), env=env)
        assert "trust" in (state / "pgdata" / "pg_hba.conf").read_text()
        started = run(REPO, *_server(state, "start"), "--port", str(port), "--pg-port", str(pg_port), env=env)
        password = admin_password(started.stdout)
        assert (
            password
            and requests.get(f"{uri}/api/2.0/mlflow/experiments/search?max_results=5", timeout=10).status_code == 401
        )
        admin = requests.post(
            f"{uri}/api/2.0/mlflow/runs/search", json={"experiment_ids": [exp]}, auth=("admin", password), timeout=10
        ).json()["runs"]
        assert sorted(r["info"]["run_id"] for r in admin) == sorted(made)
        assert all(r["info"]["status"] == "FINISHED" and r["data"]["metrics"] for r in admin)
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(
                host="127.0.0.1", port=pg_port, user="mlflow", dbname="mlflow", passfile="/nonexistent"
            ).close()
        assert "trust" not in (state / "pgdata" / "pg_hba.conf").read_text()
    finally:
        run(REPO, *_server(state, "stop"), check=False, env=env)
        shutil.rmtree(base, ignore_errors=True)
