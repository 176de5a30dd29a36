"""Scoring raw transactions with a logged model: `pipeline.score` in chunks, the same numbers as
evaluate, and one clear line (exit 2, no output file) for every kind of bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from pipeline import score
from pipeline.project.layout import Layout
from tests.helpers.stages import raw_test, save_model


@pytest.fixture
def raw_rows(evaluated_shared: Layout) -> pd.DataFrame:
    """The test split's raw rows with the label and an extra index column, as a user's file has them."""
    raw = raw_test(evaluated_shared)
    raw.insert(0, "Unnamed: 0", np.arange(len(raw)) + 1000)
    return raw


def _saved(layout: Layout, name: str) -> tuple[np.ndarray, float]:
    scores = pd.read_parquet(layout.scores(name))
    return scores.loc[scores["split"] == "test", "score"].to_numpy(), json.loads(
        layout.model_metrics(name).read_text()
    )["values"]["threshold"]


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_score_writes_evaluates_numbers_in_chunks(
    served_model: Path, evaluated_shared: Layout, raw_rows: pd.DataFrame, tmp_path: Path, suffix: str
) -> None:
    source = tmp_path / f"new{suffix}"
    raw_rows.to_parquet(source, index=False) if suffix == ".parquet" else raw_rows.to_csv(source, index=False)
    target = tmp_path / "out" / "scored.parquet"
    assert (
        score.main(
            [
                "--model",
                str(served_model),
                "--input",
                str(source),
                "--output",
                str(target),
                "--keep",
                "Unnamed: 0",
                "--keep",
                "Class",
                "--chunk-rows",
                "150",
            ]
        )
        == 0
    )
    out = pd.read_parquet(target)
    assert list(out.columns) == ["row", "Unnamed: 0", "Class", "fraud_probability", "fraud"]
    assert out["row"].tolist() == list(range(len(raw_rows)))  # 6 chunks, in order, none lost
    expected, threshold = _saved(evaluated_shared, "batchnorm-s0")
    np.testing.assert_allclose(out["fraud_probability"], expected, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(out["fraud"], (expected >= threshold).astype(int))
    assert out["Class"].tolist() == raw_rows["Class"].tolist()
    assert not list(target.parent.glob(".*partial"))


def test_pyfunc_predict_equals_score(served_model: Path, raw_rows: pd.DataFrame, tmp_path: Path) -> None:
    """The MLflow pyfunc (float32 numbers here: any float dtype; categories and date-times as text) gives
    what pipeline.score writes."""
    source = tmp_path / "rows.csv"
    raw_rows.to_csv(source, index=False)
    score.run(str(served_model), source, tmp_path / "scored.parquet")
    model = mlflow.pyfunc.load_model(str(served_model))
    features = [c.name for c in model.metadata.get_input_schema().inputs]
    numbers = {c: "float32" for c, role in model.metadata.metadata["roles"].items() if role in ("numeric", "boolean")}
    out = model.predict(raw_rows[features].astype(numbers).astype(dict.fromkeys(numbers, "float64")))
    written = pd.read_parquet(tmp_path / "scored.parquet")
    np.testing.assert_allclose(out["fraud_probability"], written["fraud_probability"], rtol=0, atol=1e-6)


def _corrupt(kind: str, rows: pd.DataFrame, path: Path) -> str:
    """Write one kind of bad input to path; return the message expected."""
    if kind == "missing columns":
        rows.drop(columns=["V3", "Amount"]).to_csv(path, index=False)
        return "lacks feature columns V3, Amount"
    if kind == "non-numeric":
        rows = rows.astype({"V7": object})
        rows.loc[rows.index[500], "V7"] = "12,50"
        rows.to_csv(path, index=False)
        return "rows 450 to 599.*non-numeric values in feature columns V7"
    if kind == "nan":
        rows.loc[rows.index[3], "V2"] = np.nan
        rows.loc[rows.index[700], "Amount"] = np.inf
        rows.to_csv(path, index=False)
        return "rows 0 to 149.*1 rows hold NaN or infinite values .columns: V2.*prepare.nonfinite: drop"
    if kind == "overflow":  # the float32 cast in the scaler would make it inf, then NaN, then `fraud: 0`
        rows.loc[rows.index[523], "V1"] = 1e308
        rows.to_csv(path, index=False)
        return (
            r"rows 450 to 599.*row 523: V1 = 1e\+308 is outside what the model's scaler can represent: scaled "
            r"for the network it overflows float32; the model takes V1 within .*no row was scored"
        )
    if kind == "empty":
        path.write_text("")
        return "file is empty"
    if kind == "header only":
        rows.head(0).to_csv(path, index=False)
        return "has a header but no rows"
    if kind == "not csv":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
        return "cannot be read as CSV"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind", ["missing columns", "non-numeric", "nan", "overflow", "empty", "header only", "not csv"]
)
def test_bad_input_is_one_line_exit_2_and_no_output(
    served_model: Path, raw_rows: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    tmp_path = tmp_path / "files"
    tmp_path.mkdir()
    source = tmp_path / "new.csv"
    expected = _corrupt(kind, raw_rows, source)
    target = tmp_path / "scored.parquet"
    target.write_bytes(b"the user's earlier results")  # must survive a failed run
    code = score.main(
        ["--model", str(served_model), "--input", str(source), "--output", str(target), "--chunk-rows", "150"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert re.search(expected, err[0]), err[0]
    assert target.read_bytes() == b"the user's earlier results"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.csv", "scored.parquet"]


def test_drop_policy_skips_nonfinite_rows(evaluated_shared: Layout, raw_rows: pd.DataFrame, tmp_path: Path) -> None:
    """A model trained with prepare.nonfinite: drop skips such rows, says how many, keeps positions."""
    model = save_model(evaluated_shared, "batchnorm-s0", tmp_path / "model", nonfinite="drop")
    raw_rows.loc[raw_rows.index[[3, 700]], ["V2", "Amount"]] = [np.nan, np.inf]
    raw_rows.to_csv(tmp_path / "new.csv", index=False)
    assert score.run(str(model), tmp_path / "new.csv", tmp_path / "scored.parquet", rows=150) == len(raw_rows) - 2
    out = pd.read_parquet(tmp_path / "scored.parquet")
    assert 3 not in set(out["row"]) and 700 not in set(out["row"]) and len(out) == len(raw_rows) - 2
    expected, _ = _saved(evaluated_shared, "batchnorm-s0")
    np.testing.assert_allclose(out["fraud_probability"], expected[out["row"]], rtol=0, atol=1e-6)


def test_unknown_model_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "new.csv").write_text("a\n1\n")
    code = score.main(
        [
            "--model",
            "models:/no-such-model@champion",
            "--input",
            str(tmp_path / "new.csv"),
            "--output",
            str(tmp_path / "scored.parquet"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "cannot load model models:/no-such-model@champion" in err[0], err
    assert not (tmp_path / "scored.parquet").exists()


def test_impute_policy_scores_rows_with_empty_cells(
    evaluated_shared: Layout, raw_rows: pd.DataFrame, tmp_path: Path
) -> None:
    """A model trained with prepare.nonfinite: impute (the default) scores rows with empty or infinite numbers
    and date-times, a missing amount included: each as the same row with the training part's median in place;
    the other rows as evaluate scored them. pipeline.score and the pyfunc agree."""
    model = save_model(evaluated_shared, "batchnorm-s0", tmp_path / "model", nonfinite="impute")
    rows = raw_rows.head(300).copy()
    rows.loc[rows.index[[3, 7]], "Amount"] = [np.nan, np.inf]
    rows.loc[rows.index[4], "V2"] = np.nan
    rows.loc[rows.index[5], "timestamp"] = None
    rows.to_csv(tmp_path / "new.csv", index=False)
    assert score.run(str(model), tmp_path / "new.csv", tmp_path / "scored.parquet", rows=100) == 300
    out = pd.read_parquet(tmp_path / "scored.parquet")
    expected, _ = _saved(evaluated_shared, "batchnorm-s0")
    others = np.setdiff1d(np.arange(300), [3, 4, 5, 7])
    np.testing.assert_allclose(out["fraud_probability"].to_numpy()[others], expected[others], rtol=0, atol=1e-6)
    loaded = mlflow.pyfunc.load_model(str(model))
    median = loaded.unwrap_python_model().scorer.encoder.imputer.median
    filled = rows.assign(timestamp=pd.to_datetime(rows["timestamp"]))
    filled.loc[filled.index[[3, 7]], "Amount"] = median["Amount"]
    filled.loc[filled.index[4], "V2"] = median["V2"]
    filled.loc[filled.index[5], "timestamp"] = pd.Timestamp(median["timestamp"], unit="s")
    by_hand = loaded.unwrap_python_model().scorer.score(filled)["fraud_probability"].to_numpy()
    np.testing.assert_allclose(out["fraud_probability"], by_hand, rtol=0, atol=1e-9)
    features = [c.name for c in loaded.metadata.get_input_schema().inputs]
    np.testing.assert_allclose(loaded.predict(rows[features])["fraud_probability"], by_hand, rtol=0, atol=1e-9)
