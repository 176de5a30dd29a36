"""The team stack on one host, for real: PostgreSQL + `mlflow server` (pipeline.server) with
artifacts on S3 (moto on 127.0.0.1 standing in for any S3-compatible store), and a DVC remote on
the same S3. The whole pipeline, `dvc exp run`, a 2-worker queue and compare run unchanged with
MLFLOW_TRACKING_URI pointing at the server; then the server dies mid-training and comes back."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from pipeline.project.layout import Layout
from tests.helpers.params import small_raw_params
from tests.helpers.repository import copy_repository, dvc, env_for, run, start_queue
from tests.helpers.stages import raw_test
from tests.helpers.team import S3_KEYS, admin_password, credentials, free_port, need_postgres, s3_client, start_moto

pytestmark = pytest.mark.slow
EXPERIMENT = "batchnorm-vs-baseline"
MODELS = ["batchnorm-s0", "baseline-s0"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    need_postgres()
    # PostgreSQL runs as the postgres user when we are root: pytest's private temp folders are out
    # of its reach, so the stack lives in a folder every user may traverse.
    base = Path(tempfile.mkdtemp(prefix="bn-fraud-team-"))
    base.chmod(0o755)
    s3_port, port, pg_port = free_port(), free_port(), free_port()
    s3_url = f"http://127.0.0.1:{s3_port}"
    env = {**env_for(base), **S3_KEYS, "MLFLOW_S3_ENDPOINT_URL": s3_url}
    moto = start_moto(s3_port, env)
    server = [
        sys.executable,
        "-m",
        "pipeline.server",
        "start",
        "--state-dir",
        str(base / "server"),
        "--port",
        str(port),
        "--pg-port",
        str(pg_port),
        "--artifacts",
        "s3://mlflow/artifacts",
    ]
    repo = base / "repo"
    try:
        s3 = s3_client(s3_port)
        started = run(base, *server, env=env)
        signed_in = credentials("admin", admin_password(started.stdout))  # login is on: the admin signs in
        env.update(signed_in)
        os.environ.update(signed_in)  # and the tests' own MLflow clients
        uri = f"http://127.0.0.1:{port}"
        assert f"export MLFLOW_TRACKING_URI={uri}" in started.stdout
        raw = small_raw_params()
        raw["evaluate"]["references"] = {"logistic_regression": {"C": [1.0]}}
        copy_repository(repo, raw)
        user_env = {**env, "MLFLOW_TRACKING_URI": uri}
        dvc(repo, "remote", "add", "--local", "-d", "s3", "s3://dvc/store", env=user_env)
        dvc(repo, "remote", "modify", "--local", "s3", "endpointurl", s3_url, env=user_env)
        dvc(repo, "repro", env=user_env)
        git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
        run(repo, *git, "add", "dvc.lock", "metrics/summary.json", "metrics/answer.json", env=env)
        run(repo, *git, "commit", "-q", "-m", "results of dvc repro", env=env)
        yield {"repo": repo, "env": user_env, "uri": uri, "s3": s3, "server": server, "base": base}
    finally:
        if repo.is_dir():
            dvc(repo, "queue", "stop", "--kill", check=False, env=env)
        run(base, sys.executable, "-m", "pipeline.server", "stop", "--state-dir", str(base / "server"), check=False)
        moto.terminate()
        moto.wait(10)
        shutil.rmtree(base, ignore_errors=True)
        for key in credentials("", ""):
            os.environ.pop(key, None)


def _client(stack: dict) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=stack["uri"])


def _model_runs(stack: dict, extra: str = "") -> list:
    c = _client(stack)
    exp = c.get_experiment_by_name(EXPERIMENT)
    return c.search_runs([exp.experiment_id], "tags.`pipeline.role` = 'model'" + extra)


def test_pipeline_runs_land_in_postgres_and_artifacts_in_s3(
    stack: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in stack["env"].items():
        if key.startswith(("AWS_", "MLFLOW_")):
            monkeypatch.setenv(key, value)
    runs = _model_runs(stack)
    assert sorted(r.info.run_name for r in runs) == sorted(MODELS)
    assert all(r.info.status == "FINISHED" and "test_ap" in r.data.metrics for r in runs)
    assert all(r.info.artifact_uri.startswith("mlflow-artifacts:") for r in runs)  # proxied by the server
    keys = [o["Key"] for o in stack["s3"].list_objects_v2(Bucket="mlflow")["Contents"]]
    assert any(k.endswith("report.html") for k in keys) and any(k.endswith("MLmodel") for k in keys)
    parent = _client(stack).search_runs([runs[0].info.experiment_id], "tags.`pipeline.role` = 'pipeline'")[0]
    report = mlflow.artifacts.download_artifacts(
        run_id=parent.info.run_id, artifact_path="report/report.md", dst_path=str(tmp_path), tracking_uri=stack["uri"]
    )
    assert Path(report).read_text() == (stack["repo"] / "reports" / "report.md").read_text()
    mlflow.set_tracking_uri(stack["uri"])
    champion = mlflow.pyfunc.load_model("models:/bn-fraud@champion")  # downloaded through the server
    rows = raw_test(Layout(stack["repo"])).head(5)  # transactions as they came, label included
    scored = champion.predict(rows)
    assert list(scored.columns) == ["fraud_probability", "fraud"] and len(scored) == 5


def test_exp_run_queue_and_compare_against_the_server(stack: dict) -> None:
    """Two queued experiments on two workers, both logging to the server at once (a plain `dvc exp run`
    against the server: the restart test below)."""
    repo, env = stack["repo"], stack["env"]
    for width in ("8", "32"):
        dvc(repo, "exp", "run", "--queue", "-S", f"train.model.hidden=[{width}]", "--name", f"h{width}", env=env)
    start_queue(repo, 2, env)
    deadline = time.time() + 600
    while "Queued" in (status := dvc(repo, "queue", "status", env=env).stdout) or "Running" in status:
        assert time.time() < deadline, status
        time.sleep(3)
    assert status.count("Success") == 2, status
    for name in ("h8", "h32"):
        runs = _model_runs(stack, f" and tags.`dvc.exp_name` = '{name}'")
        assert sorted(r.info.run_name for r in runs) == sorted(MODELS), name
        assert all(r.info.status == "FINISHED" for r in runs), name
    c = _client(stack)
    exp = c.get_experiment_by_name(EXPERIMENT)
    assert not c.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'")
    out = run(repo, sys.executable, "-m", "pipeline.compare", env=env).stdout
    assert "batchnorm (n=1)" in out and "test_ap" in out


def test_dvc_remote_on_s3_round_trip(stack: dict, tmp_path: Path) -> None:
    repo, env = stack["repo"], stack["env"]
    run(repo, "git", "checkout", "-q", "HEAD", "--", ".", env=env)
    dvc(repo, "checkout", "--force", env=env)
    dvc(repo, "push", env=env)
    assert stack["s3"].list_objects_v2(Bucket="dvc")["KeyCount"] > 0
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(repo), str(clone), env=env)
    dvc(clone, "remote", "add", "--local", "-d", "s3", "s3://dvc/store", env=env)
    dvc(clone, "remote", "modify", "--local", "s3", "endpointurl", env["MLFLOW_S3_ENDPOINT_URL"], env=env)
    dvc(clone, "pull", env=env)
    assert (clone / "models").is_dir() and "up to date" in dvc(clone, "status", env=env).stdout


def test_a_server_restart_mid_training_is_ridden_out(stack: dict) -> None:
    """The server process dies while a model trains and comes back ~15 s later: the client's
    bounded retries (store.ENV_DEFAULTS) carry the run through, which ends FINISHED with every epoch."""
    repo, env = stack["repo"], stack["env"]
    epochs = 40
    training = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("dvc")),
            "exp",
            "run",
            "-S",
            f"train.epochs={epochs}",
            "-S",
            "train.patience=0",
            "--name",
            "restart",
        ],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    c = _client(stack)
    exp = c.get_experiment_by_name(EXPERIMENT)
    deadline = time.time() + 300
    while True:
        assert time.time() < deadline and training.poll() is None, "training never got going"
        running = c.search_runs(
            [exp.experiment_id],
            "attributes.status = 'RUNNING' and tags.`pipeline.role` = 'model' and tags.`dvc.exp_name` = 'restart'",
        )
        if running and len(c.get_metric_history(running[0].info.run_id, "train_loss")) >= 2:
            break
        time.sleep(0.5)
    pid = int(__import__("json").loads((stack["base"] / "server" / "server.json").read_text())["pid"])
    os.killpg(pid, signal.SIGKILL)
    time.sleep(3)
    run(stack["base"], *stack["server"], env=env)  # restart: PostgreSQL kept running, data intact
    out, _ = training.communicate(timeout=900)
    assert training.returncode == 0, out[-4000:]
    runs = _model_runs(stack, " and tags.`dvc.exp_name` = 'restart'")
    assert sorted(r.info.run_name for r in runs) == sorted(MODELS)
    for r in runs:
        assert r.info.status == "FINISHED"
        steps = [m.step for m in c.get_metric_history(r.info.run_id, "train_loss")]
        assert steps == list(range(1, epochs + 1)), r.info.run_name
