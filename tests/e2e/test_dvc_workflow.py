"""The DVC examples of docs/mlflow.md, run as written in a copy of the repository, and what they print."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from tests.helpers.params import REPO, small_raw_params, space
from tests.helpers.repository import copy_repository, dvc, env_for, run

pytestmark = pytest.mark.slow
MARKER = "<!-- tests/e2e/test_dvc_workflow.py runs every line of the next block"
NUMBER = re.compile(r"\d+\.\d+")


def readme_commands() -> list[str]:
    """The commands of the docs/mlflow.md block that follows MARKER (comments stripped)."""
    text = (REPO / "docs" / "mlflow.md").read_text()
    after = text[text.index(MARKER) :]
    start = after.index("```sh\n") + len("```sh\n")
    block = after[start : after.index("```", start)]
    return [re.split(r"\s#", line)[0].strip() for line in block.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def workflow(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, dict[str, subprocess.CompletedProcess[str]]]]:
    """A copy with committed results (dvc.lock and metrics/summary.json), then the docs' block."""
    raw = small_raw_params()
    raw["train"]["epochs"] = 6
    # A four-point grid, of which HEAD runs one trial (lr 0.003, batch 128: both variants still improve
    # after epoch 3, so `-S train.epochs=3` changes both, as it does on the default data) and the docs'
    # queued sweep two and four.
    space(raw, lr=[0.01, 0.003], batch_size=[128, 256])
    raw["train"]["tune"]["trials"] = 1
    raw["evaluate"]["references"] = {"logistic_regression": {"C": [1.0]}}
    repo = copy_repository(tmp_path_factory.mktemp("dvc-workflow"), raw)
    dvc(repo, "repro")
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    run(repo, *git, "add", "dvc.lock", "metrics/summary.json", "metrics/answer.json")
    run(repo, *git, "commit", "-q", "-m", "results of dvc repro")
    env = {**env_for(repo), "COLUMNS": "160"}  # a 160-column terminal
    outputs = {command: _shell(repo, command, env) for command in readme_commands()}
    deadline = time.time() + 900
    while "Queued" in (status := dvc(repo, "queue", "status").stdout) or "Running" in status:
        assert time.time() < deadline, status
        time.sleep(3)
    yield repo, outputs
    dvc(repo, "queue", "stop", "--kill", check=False)  # queue workers are daemons that outlive the queue


def _shell(repo: Path, command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run one line of the docs as a user's shell would. Output goes to files, not pipes: `dvc queue
    start` leaves worker daemons that inherit the command's stdout and would hold a pipe open."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        code = subprocess.run(
            ["bash", "-c", command], cwd=repo, env=env, stdout=out, stderr=err, timeout=1200
        ).returncode
        out.seek(0)
        err.seek(0)
        result = subprocess.CompletedProcess(command, code, out.read(), err.read())
    assert code == 0, f"{command} exited {code}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _output(outputs: dict[str, subprocess.CompletedProcess[str]], prefix: str) -> str:
    (command,) = [c for c in outputs if c.startswith(prefix)]
    return outputs[command].stdout + outputs[command].stderr


def test_readme_block_is_the_workflow_we_test() -> None:
    commands = readme_commands()
    assert commands[0].startswith("dvc exp run -S train.epochs=3")
    assert [c.split()[1] for c in commands] == ["exp", "exp", "metrics", "plots", "exp"]


def test_exp_show_fits_160_columns_and_shows_both_aps_first(workflow: tuple) -> None:
    repo, outputs = workflow
    shown = _output(outputs, "dvc exp show --only-changed --no-pager")
    lines = [line for line in shown.splitlines() if line.strip()]
    assert max(len(line) for line in lines) <= 160, shown
    assert "!" not in shown, shown  # every commit and experiment has its metrics
    header = next(line for line in lines if "Experiment" in line)
    assert header.index("test_ap.batchnorm") < header.index("test_ap.baseline"), header
    committed = json.loads(run(repo, "git", "show", "HEAD:metrics/summary.json").stdout)
    main_row = next(line for line in lines if line.split()[0] == "main")
    assert str(committed["test_ap"]["batchnorm"]) in main_row and str(committed["test_ap"]["baseline"]) in main_row
    experiment_row = next(line for line in lines if "└──" in line or "├──" in line)
    assert len(NUMBER.findall(experiment_row)) >= 2, experiment_row  # the experiment's own APs


def test_metrics_diff_loads_head_and_shows_the_headline(workflow: tuple) -> None:
    _, outputs = workflow
    diff = _output(outputs, "dvc metrics diff")
    assert "failed to load" not in diff.lower() and "test_ap.batchnorm" in diff and "test_ap.baseline" in diff
    assert max(len(line) for line in diff.splitlines()) <= 160


def test_plots_diff_draws_both_revisions(workflow: tuple) -> None:
    repo, outputs = workflow
    assert "dvc_plots" in _output(outputs, "dvc plots diff HEAD")
    page = (repo / "dvc_plots" / "index.html").read_text()
    for plot in (
        "models_history_batchnorm_batchnorm-s0_csv",
        "models_history_baseline_baseline-s0_csv",
        "Precision-recall__test_",
        "ROC__test_",
    ):
        assert f"vegaEmbed('#{plot}'" in page, plot
    assert "HEAD" in page and "workspace" in page  # both revisions on each chart


def test_queued_sweep_ran_with_two_workers(workflow: tuple) -> None:
    """Both queued tuning budgets ran to their metrics, each experiment with its own number of trials."""
    repo, _ = workflow
    shown = json.loads(dvc(repo, "exp", "show", "--json").stdout)
    trials = []
    for baseline in shown:
        for experiment in baseline.get("experiments") or []:
            for revision in experiment["revs"]:
                data = revision.get("data") or {}
                params = data.get("params", {}).get("params.yaml", {}).get("data", {})
                metrics = data.get("metrics", {}).get("metrics/summary.json", {}).get("data", {})
                if metrics.get("test_ap"):
                    trials.append(params["train"]["tune"]["trials"])
    assert sorted(trials) == [1, 2, 4]  # `-S train.epochs=3` (HEAD's one trial), then the sweep's 2 and 4
    assert dvc(repo, "queue", "status").stdout.count("Success") == 2


def test_the_two_workers_lost_no_mlflow_run(workflow: tuple) -> None:
    """The sweep's two experiments ran at once against one SQLite store: every model and tuning run of
    each is there, FINISHED, and neither worker hit a locked database."""
    repo, _ = workflow
    c = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    exp = c.get_experiment_by_name("batchnorm-vs-baseline")
    assert not c.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'")
    swept = {}
    for r in c.search_runs([exp.experiment_id], "tags.`pipeline.role` = 'tuning'"):
        if "train.tune.trials" in r.data.tags.get("dvc.changed_params", ""):
            swept.setdefault(r.data.tags["dvc.exp_name"], []).append(r)
    # both variants' new trials only (HEAD's one trial is reused): 2 - 1 and 4 - 1 per variant
    assert sorted(len(runs) for runs in swept.values()) == [2 * 1, 2 * 3]
    for name, tuning in swept.items():
        assert all(r.info.status == "FINISHED" for r in tuning), name
        models = c.search_runs(
            [exp.experiment_id], f"tags.`pipeline.role` = 'model' and tags.`dvc.exp_name` = '{name}'"
        )
        assert sorted(r.info.run_name for r in models) == ["baseline-s0", "batchnorm-s0"], name
        assert all(r.info.status == "FINISHED" and "test_ap" in r.data.metrics for r in models), name
        logs = dvc(repo, "queue", "logs", name, check=False)
        assert "database is locked" not in logs.stdout + logs.stderr, name


def test_push_then_a_fresh_clone_pulls_and_has_nothing_to_rerun(workflow: tuple, tmp_path: Path) -> None:
    """docs/team.md "Sharing results": `dvc push` to the default remote (its path set per machine with
    `dvc remote modify --local`); a fresh clone's `dvc pull` then makes `dvc repro` a no-op, and the
    report is the same outside its volatile blocks."""
    from pipeline.reporting.document import strip_volatile

    repo, _ = workflow
    remote = tmp_path / "remote"
    run(repo, "git", "checkout", "-q", "HEAD", "--", ".")  # back from the experiments to the commit
    dvc(repo, "checkout", "--force")
    dvc(repo, "remote", "modify", "--local", "local", "url", str(remote))
    assert "pushed" in dvc(repo, "push").stdout
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    dvc(clone, "remote", "modify", "--local", "local", "url", str(remote))
    dvc(clone, "pull")
    status = dvc(clone, "status").stdout
    assert "up to date" in status, status
    repro = dvc(clone, "repro").stdout
    assert "Running stage" not in repro and "up to date" in repro, repro
    original, pulled = ((r / "reports" / "report.md").read_text() for r in (repo, clone))
    assert strip_volatile(pulled) == strip_volatile(original)
