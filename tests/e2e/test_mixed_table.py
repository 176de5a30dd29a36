"""A card table in the common mixed format (categories, date-time text, identifiers, missing cells) through
the whole pipeline: in-process (column roles, encoders, networks with embeddings, reference models that
see the categories, the report's setup, the saved model scoring raw rows exactly as evaluate scored them)
and from a fresh clone with prepare's defaults (`dvc repro` on 700 merchants and empty cells, then the
registered champion scoring the raw rows)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from pipeline import score
from pipeline.analysis.evidence import read_scores
from pipeline.project.artefacts import ModelMetrics, PrepareSummary
from pipeline.project.layout import Layout
from pipeline.project.params import parse, read_yaml
from tests.helpers.mixed import mixed_params, mixed_table
from tests.helpers.params import REPO, small_raw_params
from tests.helpers.repository import copy_repository, dvc, run
from tests.helpers.stages import raw_test, run_pipeline, save_model


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    root = tmp_path_factory.mktemp("mixed")
    mixed_table().to_csv(root / "cards.csv", index=False)
    raw = mixed_params(small_raw_params(), str(root / "cards.csv"))
    raw["train"]["epochs"] = 2
    run_pipeline(parse(raw), Layout(root), track=False)
    return Layout(root)


@pytest.fixture(scope="module")
def served(mixed_run: Layout, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(mixed_run, "batchnorm-s0", tmp_path_factory.mktemp("served") / "model")


def test_every_model_sees_the_categories(mixed_run: Layout) -> None:
    summary = PrepareSummary.read(mixed_run.prepare_summary, "prepare")
    payload = torch.load(mixed_run.checkpoint("baseline-s0"), weights_only=True)
    assert [rows for rows, _ in payload["config"]["embeddings"]] == list(summary.embedding_rows.values())
    assert payload["config"]["n_features"] == len(summary.numeric_inputs)
    for name in ("logistic_regression-s0", "hist_gradient_boosting-s0"):
        assert ModelMetrics.read(mixed_run.model_metrics(name), "evaluate")["test_ap"] > summary.prevalence["test"]


def test_the_report_setup_lists_the_column_roles(mixed_run: Layout) -> None:
    setup = (mixed_run.reports / "report.md").read_text().split("## 2. Setup", 1)[1].split("\n## ", 1)[0]
    assert "| categorical | 6 |" in setup and "`merchant` (" in setup
    assert "| datetime | 3 | `trans_date_trans_time`, `dob`, `unix_time` |" in setup
    assert "`cc_num` (the entity), `trans_num`" in setup and "`amt` (log1p)" in setup


def test_the_saved_model_scores_raw_rows_as_evaluate_did(mixed_run: Layout, served: Path, tmp_path: Path) -> None:
    """Raw test rows as a user's CSV holds them: date-time strings, card and transaction ids, missing
    categories, merchants never seen in training (the one-offs): pipeline.score and the pyfunc give
    evaluate's probabilities."""
    raw = raw_test(mixed_run)
    assert raw["category"].isna().any()
    raw.to_csv(tmp_path / "new.csv", index=False)
    score.run(str(served), tmp_path / "new.csv", tmp_path / "scored.parquet", rows=200)
    scores = read_scores(mixed_run, "batchnorm-s0")
    expected = scores.loc[scores["split"] == "test", "score"].to_numpy()
    np.testing.assert_allclose(
        pd.read_parquet(tmp_path / "scored.parquet")["fraud_probability"], expected, rtol=0, atol=1e-6
    )
    model = mlflow.pyfunc.load_model(str(served))
    inputs = {c.name: getattr(c.type, "name", str(c.type)) for c in model.metadata.get_input_schema().inputs}
    assert inputs["merchant"] == "string" and inputs["trans_date_trans_time"] == "string" and "cc_num" not in inputs
    assert model.metadata.metadata["roles"]["dob"] == "datetime"
    predicted = model.predict(pd.read_csv(tmp_path / "new.csv")[list(inputs)])
    np.testing.assert_allclose(predicted["fraud_probability"], expected, rtol=0, atol=1e-6)


def test_unseen_categories_score_as_the_other_category(served: Path, mixed_run: Layout) -> None:
    scorer = mlflow.pyfunc.load_model(str(served)).unwrap_python_model().scorer
    raw = raw_test(mixed_run).head(20)
    new = scorer.score(raw.assign(merchant="fraud_Opened yesterday", category="crypto", city=None))
    other = scorer.score(raw.assign(merchant="fraud_Another new one", category="nft", city=None))
    pd.testing.assert_frame_equal(new, other)  # every unseen value is the one "other" index
    assert not np.allclose(new["fraud_probability"], scorer.score(raw)["fraud_probability"])


@pytest.mark.slow
def test_a_mixed_table_runs_from_a_fresh_clone_and_its_champion_scores_raw_rows(tmp_path: Path) -> None:
    """The mixed card table as a new user has it (700 merchants, 2% of amounts, populations and birth dates
    empty) with prepare's default params, only the source and the label named (one replicate, small models):
    `dvc repro` finds the amount and the time, imputes the gaps, keeps the common merchants, counts money, prints
    no library warning; the registered champion scores the raw test rows, empty cells included, as evaluate
    did."""
    raw = small_raw_params()
    raw["prepare"] = {
        **read_yaml((REPO / "params.yaml").read_text())["prepare"],
        "source": "data/raw/cards.csv",
        "label": "is_fraud",
        "replicates": 1,
    }
    repo = copy_repository(tmp_path / "repo", raw)
    mixed_table(merchants=700, empty=0.02).to_csv(repo / "data" / "raw" / "cards.csv", index=False)
    out = dvc(repo, "repro")
    printed = out.stderr + out.stdout
    assert "Warning" not in printed and "warn(" not in printed, printed  # no library warning reaches the user
    table = printed.split("column roles", 1)[1].split("\nprepare", 1)[0]
    assert "cc_num                 id (entity)" in table and "dob                    age" in table
    assert "the time, inferred (no column 'Time'; the only date-time)" in table
    assert "the amount, inferred (no column 'Amount'); log1p'd" in table
    assert "merchant               categorical  700 values; about" in table
    assert "prepare: imputed missing or infinite cells" in printed
    report = (repo / "reports" / "report.md").read_text()
    setup = report.split("## 2. Setup", 1)[1].split("\n## ", 1)[0]
    assert (
        "| categorical | 6 |" in setup
        and "`cc_num` (the entity)" in setup
        and "`amt` (log1p) (the amount, inferred)" in setup
    )
    assert "empty or infinite cells imputed with the training part's median" in setup and "`dob` " in setup
    assert 'of rows "other")' in setup and "| age | 1 | `dob` |" in setup
    assert "**Money and alerts**" in report  # the amount found: money counted

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("bn-fraud", "champion").tags
    name = f"{champion['pipeline.variant']}-s{champion['pipeline.seed']}"
    split = f"r{champion['pipeline.seed']}"
    table = pd.read_parquet(repo / "data" / "prepared" / "table.parquet")
    with np.load(repo / "data" / "prepared" / "splits" / f"{split}.npz") as parts:
        rows = table.iloc[parts["test"]].reset_index(drop=True)  # as they came: text, ids, empty cells
    levels = json.loads((repo / "data" / "prepared" / "encoders" / f"{split}.json").read_text())["levels"]
    assert (~rows["merchant"].isin(levels["merchant"])).sum() >= 100  # "other": rare and unseen merchants
    assert rows[["amt", "city_pop", "dob"]].isna().any().all() and rows["category"].isna().any()
    rows.to_csv(tmp_path / "new.csv", index=False)
    scoring = run(
        repo,
        sys.executable,
        "-m",
        "pipeline.score",
        "--model",
        "models:/bn-fraud@champion",
        "--input",
        str(tmp_path / "new.csv"),
        "--output",
        str(tmp_path / "scored.parquet"),
        "--keep",
        "trans_num",
    )
    assert "Warning" not in scoring.stdout + scoring.stderr, scoring.stderr
    scored = pd.read_parquet(tmp_path / "scored.parquet")
    assert scored["trans_num"].tolist() == rows["trans_num"].tolist()  # every row scored, empty cells included
    saved = pd.read_parquet(repo / "evaluation" / "scores" / f"{name}.parquet")
    np.testing.assert_allclose(
        scored["fraud_probability"], saved.loc[saved["split"] == "test", "score"], rtol=0, atol=1e-6
    )
