"""A question the user declares, not BatchNorm's: GELU against ReLU, asked as docs/variants.md asks it
(`dvc exp run -S train.variants=[gelu,relu] -S variants.reference=relu`), then a suite of two tables asked
the same question. Everything the user reads names the declared variants: the report's question and claims,
the headline in `dvc exp show`, the MLflow runs and the saved grouped view, the suite's pages."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import yaml

from pipeline.project.layout import Layout
from pipeline.tracking import keys, ui
from tests.helpers.params import small_raw_params
from tests.helpers.repository import copy_repository, dvc, run

pytestmark = pytest.mark.slow
QUESTION = "Does GELU make this MLP learn faster and catch more fraud than ReLU?"
ASK = ["-S", "train.variants=[gelu,relu]", "-S", "variants.reference=relu"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    raw = small_raw_params()
    raw["evaluate"]["references"] = {"logistic_regression": {"C": [1.0]}}
    repo = copy_repository(tmp_path_factory.mktemp("variants-repo"), raw)
    dvc(repo, "exp", "run", "--name", "gelu-vs-relu", *ASK)
    yield repo
    dvc(repo, "queue", "stop", "--kill", check=False)


def test_the_report_and_headline_ask_the_declared_question(repo: Path) -> None:
    layout = Layout(repo)
    md = (layout.reports / "report.md").read_text()
    assert md.startswith("# Does GELU help on this imbalanced data? GELU versus ReLU")
    screen = md[: md.index("## 2. Setup")]
    assert QUESTION in screen and "| GELU catches more fraud (test average precision) |" in screen
    assert "BatchNorm" not in md and "baseline" not in screen  # no BatchNorm checks: no compared variant has it
    summary = json.loads(layout.summary.read_text())
    assert list(summary["test_ap"]) == ["gelu", "relu"] and summary["reference"] == "relu"
    assert summary["candidate"] == "gelu" and set(summary["verdict"]) == {"minority", "accuracy", "loss", "speed"}
    answer = json.loads(layout.answer.read_text())
    assert answer["sentences"]["gelu"].startswith("GELU ") and "ReLU" in answer["sentences"]["gelu"]
    assert "**" + answer["sentences"]["gelu"] + "**" in screen  # the answer heads the report
    shown = json.dumps(json.loads(dvc(repo, "exp", "show", "--json").stdout))
    assert "test_ap.gelu" in shown or '"gelu"' in shown


def test_mlflow_names_the_runs_and_saves_the_view_by_the_declared_variants(repo: Path) -> None:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    exp = client.get_experiment_by_name("batchnorm-vs-baseline")
    models = client.search_runs(
        [exp.experiment_id], f"tags.`{keys.ROLE}` = 'model' and tags.`dvc.exp_name` = 'gelu-vs-relu'"
    )
    assert sorted(r.info.run_name for r in models) == ["gelu-s0", "relu-s0"]
    assert {r.data.tags[keys.VARIANT] for r in models} == {"gelu", "relu"}
    gelu = next(r for r in models if r.info.run_name == "gelu-s0")
    assert gelu.data.params["train.model.activation"] == "gelu"
    (pipeline_run,) = client.search_runs(
        [exp.experiment_id], f"tags.`{keys.ROLE}` = 'pipeline' and tags.`dvc.exp_name` = 'gelu-vs-relu'"
    )
    group = pipeline_run.data.tags[keys.GROUP]
    note = pipeline_run.data.tags["mlflow.note.content"]
    assert note.startswith("**GELU ") and "than ReLU" in note.split("\n")[0]  # the answer opens the description
    key = ui.view_key(group, "gelu-vs-relu")  # the question's candidate first
    view = client.get_experiment(exp.experiment_id).tags[keys.VIEW_PREFIX + key]
    assert "GELU vs ReLU" in view and group in view


def test_a_suite_of_two_tables_asks_the_declared_question(repo: Path) -> None:
    suite = {
        "name": "gelu",
        "params": {"train": {"variants": ["gelu", "relu"]}, "variants": {"reference": "relu"}},
        "tables": [
            {"name": "mixed", "source": "synthetic", "question": "the small default"},
            {
                "name": "smooth",
                "source": "synthetic",
                "question": "a smooth signal",
                "prepare": {"seed": 1, "synthetic": {"signal": "linear"}},
            },
        ],
    }
    (repo / "suites" / "gelu.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    run(repo, sys.executable, "-m", "pipeline.suite", "suites/gelu.yaml", "-j", "1", timeout=1500)
    head = json.loads((repo / "reports" / "suite" / "headline.json").read_text())
    assert head["finished"] == 2, head["tables"]
    assert head["pooled"]["minority"]["tables"] == 2
    md = (repo / "reports" / "suite" / "suite.md").read_text()
    assert md.startswith("# Does GELU help across tables?")
    assert "GELU catches more fraud" in md and "BatchNorm" not in md
    for table in ("mixed", "smooth"):
        assert f"| `{table}` |" in md
