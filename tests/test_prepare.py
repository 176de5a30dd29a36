"""The prepare stage end to end on small data, the real ULB sample, and every bad input."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import prepare
from pipeline.data.encoder import Encoder
from pipeline.data.prepared import Prepared
from pipeline.project.artefacts import PrepareSummary
from pipeline.project.layout import Layout
from pipeline.project.params import parse
from pipeline.runtime.errors import DataError
from tests.helpers.mixed import ROLES, mixed_params, mixed_table


def _run(raw_params: dict, tmp_path: Path) -> PrepareSummary:
    return prepare.run(parse(raw_params).prepare, Layout(tmp_path))


def test_synthetic_outputs(raw_params: dict, tmp_path: Path) -> None:
    raw_params["prepare"]["replicates"] = 2
    summary = _run(raw_params, tmp_path)
    layout = Layout(tmp_path)
    out = layout.prepared
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "encoders/r0.json",
        "encoders/r1.json",
        "encoders/tuning.json",
        "splits/r0.npz",
        "splits/r1.npz",
        "splits/tuning.npz",
        "summary.json",
        "table.parquet",
    ]
    assert PrepareSummary.read(layout.prepare_summary, "prepare") == summary
    assert PrepareSummary.read(layout.prepare_summary, "prepare").params == parse(raw_params).prepare.model_dump()
    assert summary.replicates == ["r0", "r1"] and summary.redrawn is True
    assert summary.rows == {"train": 2400, "val": 800, "test": 800}
    assert summary.positives == {"train": 48, "val": 16, "test": 16}
    assert summary.prevalence["test"] == pytest.approx(0.02)
    assert summary.n_features == 34 and summary.features[0] == "Time"
    assert summary.roles == {
        "Time": "numeric",
        **{f"V{i}": "numeric" for i in range(1, 29)},
        "Amount": "numeric",
        "merchant_category": "categorical",
        "channel": "categorical",
        "country": "categorical",
        "timestamp": "datetime",
        "card_id": "id",
    }
    assert summary.entity == "card_id" and "card_id" not in summary.features
    assert summary.inputs[-5:] == [
        f"timestamp:{p}" for p in ("hour_sin", "hour_cos", "weekday_sin", "weekday_cos", "days")
    ]
    assert list(summary.categories) == ["merchant_category", "channel", "country"]
    numeric = len(summary.inputs)
    prepared = Prepared(layout, PrepareSummary.read(layout.prepare_summary, "prepare"))
    for split in ("tuning", "r0", "r1"):
        rows = prepared.indices(split)
        together = np.concatenate([rows["train"], rows["val"], rows["test"]])
        assert np.array_equal(np.sort(together), np.arange(4000))  # every row in exactly one part
        parts = prepared.parts(split)
        assert [int(parts[p].y.sum()) for p in ("train", "val", "test")] == [48, 16, 16]  # stratified
        assert np.abs(parts["train"].x[:, :numeric].mean(axis=0)).max() < 1e-4  # scaled on its own training part
        indices = parts["train"].x[:, numeric:]
        assert (indices == np.round(indices)).all() and indices.min() >= 0  # category indices
        assert (indices.max(axis=0) < list(summary.categories.values())).all()
        raw = prepared.raw(split, "test")
        assert list(raw.columns) == [*summary.features, "card_id", "Class"]  # as they came, ids and label included
        encoded = Encoder.load(str(layout.encoder(split))).encode(raw.drop(columns="Class"))  # a str path works
        np.testing.assert_array_equal(encoded, parts["test"].x)
    # Each replicate redraws the split (and so refits the encoder).
    assert not np.array_equal(prepared.indices("r0")["test"], prepared.indices("r1")["test"])
    assert Encoder.load(layout.encoder("r0")).scaler.log1p == ["Amount"]
    assert len(summary.source_sha256) == 64
    assert _run(raw_params, tmp_path).source_sha256 == summary.source_sha256


def test_real_ulb_sample_drops_index_column(
    raw_params: dict, tmp_path: Path, sample_csv: Path, caplog: pytest.LogCaptureFixture
) -> None:
    raw_params["prepare"]["source"] = str(sample_csv)
    with caplog.at_level("INFO", logger="pipeline.prepare"):
        summary = _run(raw_params, tmp_path)
    assert summary.features == ["Time", *[f"V{i}" for i in range(1, 29)], "Amount"]
    assert set(summary.roles.values()) == {"numeric"} and summary.categories == {} and summary.entity is None
    assert summary.inputs == summary.features  # all numbers: the encoder is the scaler alone
    table = next(r.getMessage() for r in caplog.records if "column roles" in r.getMessage()).splitlines()
    assert [line.split()[:2] for line in table[2:]] == [[c, "numeric"] for c in summary.features] + [["Class", "label"]]
    assert sum(summary.positives.values()) == 96
    assert sum(summary.rows.values()) == 5099


def test_parquet_source_and_time_split(raw_params: dict, tmp_path: Path, sample_csv: Path) -> None:
    frame = pd.read_csv(sample_csv, index_col=0)
    frame.to_parquet(tmp_path / "cc.parquet")
    raw_params["prepare"]["source"] = str(tmp_path / "cc.parquet")
    raw_params["prepare"]["split"]["method"] = "time"
    raw_params["prepare"]["replicates"] = 2
    summary = _run(raw_params, tmp_path)
    assert sum(summary.rows.values()) == len(frame) and summary.redrawn is False
    prepared = Prepared(Layout(tmp_path), PrepareSummary.read(Layout(tmp_path).prepare_summary, "prepare"))
    train, test = prepared.raw("r0", "train"), prepared.raw("r0", "test")
    assert train["Time"].max() <= test["Time"].min()
    # A time split cannot be redrawn: every replicate holds the same rows.
    for part in ("train", "val", "test"):
        assert np.array_equal(prepared.indices("r0")[part], prepared.indices("r1")[part])


def _csv(tmp_path: Path, text: str, name: str = "bad.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _frame_csv(tmp_path: Path, **columns: list) -> Path:
    path = tmp_path / "bad.csv"
    pd.DataFrame(columns).to_csv(path, index=False)
    return path


N = 60  # rows in the small bad-input frames


def _labels(k: int = 30) -> list[int]:
    return [1] * k + [0] * (N - k)


BAD_INPUTS = {
    "missing file": (lambda t: t / "nope.csv", "file not found"),
    "empty file": (lambda t: _csv(t, ""), "file is empty"),
    "header only": (lambda t: _csv(t, "Time,V1,Amount,Class\n"), "header but no data rows"),
    "corrupt parquet": (lambda t: _csv(t, "PAR1 this is not parquet", "bad.parquet"), "cannot be read as Parquet"),
    "binary csv": (lambda t: (t / "bad.csv").write_bytes(b"\x00\x01\x02garbage") and t / "bad.csv", "not a text CSV"),
    "unsupported extension": (lambda t: _csv(t, "a,b\n1,2\n", "data.txt"), "unsupported file type '.txt'"),
    "duplicated column": (
        lambda t: _csv(t, "Time,V1,V1,Class\n" + "0,1,2,0\n" * N),
        "column name\\(s\\) V1 appear more than once; rename or drop",
    ),
    "semicolon-delimited": (
        lambda t: _csv(t, "Time;V1;Class\n" + "0;1,5;0\n" * N),
        "looks semicolon-delimited .*sep=';'",
    ),
    "tab-delimited": (lambda t: _csv(t, "Time\tV1\tClass\n" + "0\t1\t0\n" * N), "looks tab-delimited"),
    "truncated gzip": (
        lambda t: (t / "bad.csv.gz").write_bytes(gzip.compress(b"Time,V1,Class\n" * 500)[:40]) and t / "bad.csv.gz",
        "cannot be read as CSV \\(corrupt or truncated file\\?\\).*re-export",
    ),
    "missing label": (lambda t: _frame_csv(t, V1=list(range(N))), "label column 'Class' not found"),
    "three classes": (
        lambda t: _frame_csv(t, V1=list(range(N)), Class=[0, 1, 2] * (N // 3)),
        "must be binary 0/1, found 3 distinct values",
    ),
    "string labels": (
        lambda t: _frame_csv(t, V1=list(range(N)), Class=["fraud", "ok"] * (N // 2)),
        "must hold 0/1 values, found text",
    ),
    "nan values": (
        lambda t: _frame_csv(t, V1=[np.nan, *range(N - 1)], Class=_labels()),
        "1 rows hold NaN or infinite values \\(columns: V1\\)",
    ),
    "infinite values": (
        lambda t: _frame_csv(t, V1=[np.inf] * 2 + list(range(N - 2)), Class=_labels()),
        "2 rows hold NaN or infinite",
    ),
    "column changes type": (
        lambda t: _frame_csv(t, V1=list(range(N)), Amt=[str(i) for i in range(N - 1)] + ["1,5"], Class=_labels()),
        "column 'Amt' changes type between rows",
    ),
    "date does not parse": (
        lambda t: _frame_csv(
            t,
            V1=list(range(N)),
            Day=[f"2024-01-{1 + i % 28:02d}" for i in range(N - 1)] + ["2024-13-01"],
            Class=_labels(),
        ),
        "date column 'Day' does not parse",
    ),
    "too many categories": (
        lambda t: _frame_csv(t, V1=list(range(N)), Shop=[f"s{i % 25}" for i in range(N)], Class=_labels()),
        "categorical column 'Shop' has 25 distinct values, more than 36 training rows",
    ),
    "nothing but ids": (
        lambda t: _frame_csv(t, card_id=list(range(N)), Kind=["x"] * N, Class=_labels()),
        "no feature columns left",
    ),
    "negative amounts": (
        lambda t: _frame_csv(t, V1=list(range(N)), Amount=[-1.0, -2.0] + [1.5] * (N - 2), Class=_labels()),
        "prepare.amount column 'Amount' holds 2 negative values; .*set prepare.amount to",
    ),
    "amounts as categories": (
        lambda t: _frame_csv(t, V1=list(range(N)), Amount=["low", "high"] * (N // 2), Class=_labels()),
        "prepare.amount column 'Amount' is categorical, not numbers; declare it numeric",
    ),
    "single class": (lambda t: _frame_csv(t, V1=list(range(N)), Class=[0] * N), "holds a single class"),
    "too few positives": (lambda t: _frame_csv(t, V1=list(range(N)), Class=_labels(6)), "only 6 positives in the data"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_fails_cleanly(case: str, raw_params: dict, tmp_path: Path) -> None:
    make, message = BAD_INPUTS[case]
    source = make(tmp_path)
    raw_params["prepare"]["source"] = str(source)
    raw_params["prepare"]["log1p"] = []
    if case == "unsupported extension":  # params validation refuses it first; the reader too
        from pipeline.data.sources import read_table

        with pytest.raises(DataError, match=message):
            read_table(source)
        return
    with pytest.raises(DataError, match=message):
        _run(raw_params, tmp_path)
    assert not Layout(tmp_path).prepared.exists() and not Layout(tmp_path).prepare_summary.exists()
    assert [p for p in tmp_path.rglob("*") if p.is_file() and p != source] == []  # no temporary leftovers


@pytest.mark.parametrize("suffix", [".csv.gz", ".csv.zip", ".csv.bz2", ".csv.xz"])
def test_compressed_csv_reads_like_the_plain_one(
    suffix: str, raw_params: dict, tmp_path: Path, sample_csv: Path
) -> None:
    packed = tmp_path / f"creditcard{suffix}"
    pd.read_csv(sample_csv).to_csv(packed, index=False)  # pandas compresses by suffix
    raw_params["prepare"]["source"] = str(packed)
    summary = _run(raw_params, tmp_path / "packed")
    raw_params["prepare"]["source"] = str(sample_csv)
    plain = _run(raw_params, tmp_path / "plain")
    assert summary.rows == plain.rows and summary.positives == plain.positives
    pd.testing.assert_frame_equal(
        pd.read_parquet(Layout(tmp_path / "packed").table), pd.read_parquet(Layout(tmp_path / "plain").table)
    )
    for split in ("tuning", "r0"):
        assert (
            Layout(tmp_path / "packed").split_file(split).read_bytes()
            == Layout(tmp_path / "plain").split_file(split).read_bytes()
        )


def test_a_mixed_table_gets_its_roles_encoders_and_raw_rows(raw_params: dict, tmp_path: Path) -> None:
    """Categories, date-time text, identifiers and missing cells: every column's role, missing amounts
    dropped, ids kept in the table but never features, and raw rows that encode as the training parts."""
    frame = mixed_table()
    frame.to_csv(tmp_path / "cards.csv", index=False)
    summary = _run(mixed_params(raw_params, str(tmp_path / "cards.csv")), tmp_path)
    assert summary.roles == {k: v for k, v in ROLES.items() if v != "label"}
    assert summary.entity == "cc_num" and summary.dropped_nonfinite == 3
    assert summary.features == [c for c, r in ROLES.items() if r not in ("id", "label")]
    layout = Layout(tmp_path)
    prepared = Prepared(layout, PrepareSummary.read(layout.prepare_summary, "prepare"))
    raw = prepared.raw("r0", "test")
    assert raw["trans_date_trans_time"].dtype == frame["trans_date_trans_time"].dtype  # text, as it came
    assert raw["category"].isna().any() and "cc_num" in raw.columns
    encoder = prepared.encoder("r0")
    assert encoder.formats == {"trans_date_trans_time": "%Y-%m-%d %H:%M:%S", "dob": "%Y-%m-%d", "unix_time": "unix"}
    np.testing.assert_array_equal(encoder.encode(raw), prepared.parts("r0")["test"].x)
    merchant = prepared.parts("r0")["train"].x[:, len(encoder.scaler.features) + encoder.categorical.index("merchant")]
    assert (merchant == 0).mean() > 0.01  # the one-off merchants share "other" in training too


def test_nan_drop_policy_counts_rows(raw_params: dict, tmp_path: Path) -> None:
    path = _frame_csv(tmp_path, V1=[np.nan] * 3 + list(range(N - 3)), Class=_labels())
    raw_params["prepare"].update(source=str(path), log1p=[], nonfinite="drop")
    assert _run(raw_params, tmp_path).dropped_nonfinite == 3


def test_failure_keeps_previous_outputs(raw_params: dict, tmp_path: Path) -> None:
    _run(raw_params, tmp_path)
    before = Layout(tmp_path).prepare_summary.read_text()
    raw_params["prepare"]["source"] = str(tmp_path / "missing.csv")
    with pytest.raises(DataError):
        _run(raw_params, tmp_path)
    assert Layout(tmp_path).prepare_summary.read_text() == before
    assert Layout(tmp_path).table.is_file() and Layout(tmp_path).split_file("r0").is_file()


def test_main_prints_one_line_and_exits_nonzero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    params_file = Path(__file__).resolve().parents[1] / "params.yaml"
    text = params_file.read_text().replace("source: synthetic", f"source: {tmp_path / 'gone.csv'}")
    (tmp_path / "params.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    assert prepare.main(["--params", "params.yaml"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "file not found" in err[0]
    assert not (tmp_path / "data").exists() and not (tmp_path / "metrics").exists()
