"""A card table in the common mixed format (categories, date-time text, identifiers, missing cells),
from a fresh clone: `dvc repro`, the report's setup listing the column roles, and the registered
champion scoring the raw rows, unseen categories included, with evaluate's probabilities."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from tests.helpers.mixed import mixed_params, mixed_table
from tests.helpers.params import small_raw_params
from tests.helpers.repository import copy_repository, dvc, run

pytestmark = pytest.mark.slow


def test_a_mixed_table_runs_from_a_fresh_clone_and_its_champion_scores_raw_rows(tmp_path: Path) -> None:
    raw = mixed_params(small_raw_params(), "data/raw/cards.csv")
    repo = copy_repository(tmp_path / "repo", raw)
    mixed_table().to_csv(repo / "data" / "raw" / "cards.csv", index=False)
    out = dvc(repo, "repro")
    assert "column roles" in out.stderr + out.stdout and "cc_num                 id (entity)" in out.stderr + out.stdout
    setup = (repo / "reports" / "report.md").read_text().split("## 2. Setup", 1)[1].split("\n## ", 1)[0]
    assert "| categorical | 6 |" in setup and "`cc_num` (the entity)" in setup

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("bn-fraud", "champion").tags
    name = f"{champion['pipeline.variant']}-s{champion['pipeline.seed']}"
    split = f"r{champion['pipeline.seed']}"
    table = pd.read_parquet(repo / "data" / "prepared" / "table.parquet")
    with np.load(repo / "data" / "prepared" / "splits" / f"{split}.npz") as parts:
        rows = table.iloc[parts["test"]].reset_index(drop=True)  # as they came: text, ids, missing cells
    levels = json.loads((repo / "data" / "prepared" / "encoders" / f"{split}.json").read_text())["levels"]
    assert (~rows["merchant"].isin(levels["merchant"])).sum() >= 5  # merchants the training part never showed
    assert rows["category"].isna().any()
    rows.to_csv(tmp_path / "new.csv", index=False)
    run(repo, sys.executable, "-m", "pipeline.score", "--model", "models:/bn-fraud@champion", "--input",
        str(tmp_path / "new.csv"), "--output", str(tmp_path / "scored.parquet"), "--keep", "trans_num")
    scored = pd.read_parquet(tmp_path / "scored.parquet")
    assert scored["trans_num"].tolist() == rows["trans_num"].tolist()
    saved = pd.read_parquet(repo / "evaluation" / "scores" / f"{name}.parquet")
    np.testing.assert_allclose(scored["fraud_probability"], saved.loc[saved["split"] == "test", "score"], rtol=0,
                               atol=1e-6)
