"""The prepare stage end to end on small data, the real ULB sample, and every bad input."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

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


STOPPING = {"nan values": "error", "infinite values": "error"}  # prepare.nonfinite under which the case stops


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_fails_cleanly(case: str, raw_params: dict, tmp_path: Path) -> None:
    make, message = BAD_INPUTS[case]
    source = make(tmp_path)
    raw_params["prepare"]["source"] = str(source)
    raw_params["prepare"]["log1p"] = []
    raw_params["prepare"]["nonfinite"] = STOPPING.get(case, raw_params["prepare"]["nonfinite"])
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


def test_a_new_table_needs_only_its_source_and_label(
    raw_params: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The mixed card format with 700 merchants, streets, and empty amounts, populations and birth dates in
    every part, with only prepare.source and prepare.label set: the amount and time are found, the birth date
    becomes an age, many merchants share "other", streets are dropped, every gap is imputed from the training
    part and counted, and raw rows encode as the prepared parts."""
    frame = mixed_table(merchants=700, empty=0.02)
    frame.insert(3, "street", [f"{i} Main St" for i in np.random.default_rng(1).permutation(np.arange(3000) % 1000)])
    frame.to_csv(tmp_path / "cards.csv", index=False)
    raw_params["prepare"].update(source=str(tmp_path / "cards.csv"), label="is_fraud")
    with caplog.at_level("INFO", logger="pipeline.prepare"):
        summary = _run(raw_params, tmp_path)
    assert summary.amount == "amt" and summary.time_column == "trans_date_trans_time" and summary.log1p == ["amt"]
    assert set(summary.inferred) == {"amount", "time"}
    assert summary.roles["dob"] == "age" and summary.roles["street"] == "rare" and summary.dropped_nonfinite == 0
    assert summary.roles["unix_time"] == "numeric" and "dob:age" in summary.inputs and "amt:missing" in summary.inputs
    merchant = summary.coverage["merchant"]
    assert 10 < merchant.kept < 60 and merchant.values > 300 and 0.3 < merchant.other < 0.9
    assert set(summary.imputed) == {"amt", "city_pop", "dob"}
    assert all(n > 0 for by_part in summary.imputed.values() for n in by_part.values())  # in train, val and test
    table = next(r.getMessage() for r in caplog.records if "column roles" in r.getMessage())
    assert "the amount, inferred (no column 'Amount'); log1p'd" in table and "the time, inferred" in table
    assert "street                 rare" in table and 'of rows "other"' in table
    layout = Layout(tmp_path)
    prepared = Prepared(layout, PrepareSummary.read(layout.prepare_summary, "prepare"))
    encoder, train = prepared.encoder("r0"), prepared.raw("r0", "train")
    assert encoder.imputer is not None
    assert encoder.imputer.median["amt"] == np.nanmedian(train["amt"])  # the training part's, not the table's
    assert encoder.imputer.median["amt"] != np.nanmedian(prepared.table["amt"])
    parts = prepared.parts("r0")
    assert all(np.isfinite(part.x).all() for part in parts.values())
    for part in ("train", "test"):
        raw = prepared.raw("r0", part)
        np.testing.assert_array_equal(encoder.encode(raw), parts[part].x)
        assert parts[part].imputed is not None and parts[part].imputed.sum(axis=0).max() > 0
    raw_params["prepare"]["split"]["method"] = "time"  # ordered by the date-time found, no time_column named
    by_time = _run(raw_params, tmp_path / "by_time")
    assert by_time.time_column == "trans_date_trans_time" and by_time.blocks["r0"]["train"].end_text is not None
    train, test = (Prepared(Layout(tmp_path / "by_time"), by_time).raw("r0", p) for p in ("train", "test"))
    assert pd.to_datetime(train["trans_date_trans_time"]).max() <= pd.to_datetime(test["trans_date_trans_time"]).min()


def test_every_problem_is_named_in_one_message(
    raw_params: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Declarations that name no column, a column that changes type, a label with one class, too few positives
    for the splits: one run names them all, each with its fix, on one line; nothing is written."""
    frame = pd.DataFrame(
        {
            "V1": np.arange(N, dtype=float),
            "Amt": [str(i) for i in range(N - 1)] + ["1,5"],
            "Class": [0] * N,
        }
    )
    frame.to_csv(tmp_path / "bad.csv", index=False)
    raw_params["prepare"].update(source=str(tmp_path / "bad.csv"), columns={"nope": "numeric"}, log1p=["gone"])
    with pytest.raises(DataError) as raised:
        _run(raw_params, tmp_path)
    assert [p.split(";")[0] for p in raised.value.problems] == [
        "prepare.log1p names columns not in the data: gone",
        "prepare.columns names columns not in the data: nope",
        "column 'Amt' changes type between rows: 59 of its 60 distinct values are numbers and 1 are not (e.g. '1,5')",
        "label column 'Class' holds a single class (0)",
    ]
    frame.drop(columns="Class").to_csv(tmp_path / "bad.csv", index=False)  # no label: the rest is still checked
    with pytest.raises(DataError, match=r"^4 problems.*\(1\) label column 'Class' not found.*\(4\) column 'Amt'"):
        _run(raw_params, tmp_path)
    few = frame.assign(Amt=np.arange(N, dtype=float), Class=_labels(4))  # too few positives, and a declaration
    few.to_csv(tmp_path / "bad.csv", index=False)
    raw_params["prepare"]["log1p"] = []
    with pytest.raises(
        DataError,
        match=r"^2 problems, each with its fix: \(1\) prepare.columns names columns not in "
        r"the data: nope; fix prepare.columns\. \(2\) only 4 positives in the data, fewer than 3 splits",
    ):
        _run(raw_params, tmp_path)
    raw_params["prepare"]["source"] = "bad.csv"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw_params))
    monkeypatch.chdir(tmp_path)
    assert prepare.main(["--params", "params.yaml"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("prepare: error: 2 problems, each with its fix: (1) prepare.columns")
    assert not Layout(tmp_path).prepared.exists()
