"""`dvc repro` for real, in a copy of the repository with shrunk params: outputs, DVC metrics and
plots, the MLflow runs as the UI shows them, `compare`, and the real ULB sample."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch
import yaml
from sklearn.metrics import average_precision_score

from pipeline.project.artefacts import Chosen, Trials
from pipeline.project.layout import Layout
from pipeline.tracking import keys
from tests.helpers.params import sample_csv_path, small_raw_params, space
from tests.helpers.repository import copy_repository, dvc, env_for, run

REPLICATES = 3
VARIANTS = ("batchnorm", "baseline")
MODELS = [f"{v}-s{r}" for v in VARIANTS for r in range(REPLICATES)]
REFERENCES = ["logistic_regression", "hist_gradient_boosting"]
# A three-point grid of which the first two trials run: 0.01 and 0.003 (the grid's seeded order puts 1e-5
# last); raising train.tune.trials to 3 then adds 1e-5, which cannot win in 3 epochs.
GRID = [0.01, 0.00001, 0.003]
TUNING = [f"{v}-t{t}-s100" for v in VARIANTS for t in range(2)]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repro(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One shared `dvc repro` of the whole pipeline in a fresh copy: three replicates, two trials."""
    raw = small_raw_params()
    raw["prepare"]["replicates"] = REPLICATES
    space(raw, lr=GRID, batch_size=[128])
    raw["train"]["tune"]["trials"] = 2
    repo = copy_repository(tmp_path_factory.mktemp("repo"), raw)
    dvc(repo, "repro")
    return repo


def _client(repo: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")


def _runs(repo: Path, role: str) -> list:
    client = _client(repo)
    experiment = client.get_experiment_by_name("batchnorm-vs-baseline")
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.`pipeline.role` = '{role}'")


def _ran(repro_output: str) -> list[str]:
    """The stages a `dvc repro` ran, from what it printed."""
    return [line.split("'")[1] for line in repro_output.splitlines() if line.startswith("Running stage")]


def test_prepare_outputs_and_lock(repro: Path) -> None:
    summary = json.loads((repro / "data" / "prepared" / "summary.json").read_text())
    assert summary["rows"] == {"train": 2400, "val": 800, "test": 800}
    assert summary["replicates"] == ["r0", "r1", "r2"] and summary["redrawn"] is True
    layout = Layout(repro)
    assert layout.table.is_file()
    for split in ("tuning", "r0", "r1", "r2"):
        assert layout.split_file(split).is_file() and layout.encoder(split).is_file(), split
    lock = (repro / "dvc.lock").read_text()
    for stage in (
        "prepare",
        "tune@batchnorm",
        "tune@baseline",
        "select",
        "timing",
        "train@batchnorm",
        "train@baseline",
        "evaluate",
        "report",
    ):
        assert f"\n  {stage}:\n" in lock, stage
    assert "data/prepared" in lock and "md5" in lock
    status = dvc(repro, "status")
    assert "up to date" in status.stdout.lower() or status.stdout.strip() == ""


def test_the_only_dvc_metrics_are_the_headline(repro: Path) -> None:
    shown = json.loads(dvc(repro, "metrics", "show", "--json").stdout)
    (workspace,) = shown.values()
    assert list(workspace["data"]) == ["metrics/summary.json"]
    headline = workspace["data"]["metrics/summary.json"]["data"]
    written = json.loads((repro / "metrics" / "summary.json").read_text())
    assert [k for k in written if k != "shared_setting"] == [
        "test_ap",
        "verdict",
        "effect",
        "test_recall",
        "test_precision",
        "test_f1",
        "test_value_recall",
        "test_alert_precision",
        "test_savings_vs_none",
        "reference_test_ap",
        "caveats",
        "caveat_kinds",
        "setting",
        "threshold",
        "replicates",
        "reference",
        "candidate",
    ]  # the answer first: what `dvc exp show` shows first (the sentence lives beside it, metrics/answer.json)
    assert list(headline) == [k for k in written if k not in ("caveats", "caveat_kinds")]  # DVC drops lists
    assert list(headline["test_ap"]) == ["batchnorm", "baseline"]
    assert list(headline["verdict"]) == ["minority", "accuracy", "loss", "speed"]
    assert set(headline["verdict"].values()) <= {"supported", "equivalent", "reversed", "inconclusive"}
    assert set(headline["reference_test_ap"]) == set(REFERENCES) and headline["replicates"] == REPLICATES
    for variant in VARIANTS:  # each variant's tuned setting, as select chose it
        chosen = Chosen.read(Layout(repro).chosen_setting(variant), "select").setting
        assert headline["setting"][variant] == chosen.model_dump(), variant


def test_one_complete_mlflow_run_per_model_with_clean_per_epoch_keys(repro: Path) -> None:
    """Per-epoch keys hold steps 1..N and nothing else, after evaluate has logged into the same runs."""
    client, layout = _client(repro), Layout(repro)
    runs, tuning = _runs(repro, "model"), _runs(repro, "tuning")
    assert sorted(r.info.run_name for r in runs) == sorted(MODELS)
    assert sorted(r.info.run_name for r in tuning) == sorted(TUNING)
    assert len({r.data.tags["pipeline.group"] for r in runs + tuning}) == 1
    for model_run in runs + tuning:
        is_tuning = model_run.data.tags["pipeline.role"] == "tuning"
        assert model_run.info.status == "FINISHED" and "mlflow.parentRunId" not in model_run.data.tags
        epochs = int(model_run.data.metrics["epochs_run"])
        for key in keys.EPOCH_KEYS:
            assert [m.step for m in client.get_metric_history(model_run.info.run_id, key)] == list(range(1, epochs + 1))
        # tuning models are scored in evaluate/tuning.json; the default data has amounts: the money keys too
        evaluation = () if is_tuning else (*keys.EVALUATION_KEYS, *keys.MONEY_KEYS)
        assert set(model_run.data.metrics) == {*keys.EPOCH_KEYS, *evaluation, *keys.SUMMARY_KEYS}
        info = json.loads(layout.run_file(model_run.info.run_name, tuning=is_tuning).read_text())
        assert info["run_id"] == model_run.info.run_id
    assert (repro / "mlartifacts").is_dir()  # artifacts live beside the store, in the repository


def test_history_plots_render(repro: Path) -> None:
    shown = json.loads(dvc(repro, "plots", "show", "--json").stdout)
    assert not shown.get("errors")
    for name in MODELS:
        variant = name.split("-")[0]
        (plot,) = [v for k, v in shown["data"].items() if k.endswith(f"models/history/{variant}/{name}.csv")]
        fields = {row["field"] for row in plot[0]["content"]["data"]["values"]}
        assert fields == {"train_loss", "val_loss"}


def test_overlay_plots_have_every_model_of_replicate_0(repro: Path) -> None:
    """The PR and ROC overlays draw replicate 0's models, compared and reference, on one chart each."""
    shown = json.loads(dvc(repro, "plots", "show", "--json").stdout)
    for title in ("Precision-recall", "ROC"):
        (plot,) = [v for k, v in shown["data"].items() if title in k]
        models = {row["model"] for row in plot[0]["content"]["data"]["values"]}
        assert models == {f"{m}-s0" for m in (*VARIANTS, *REFERENCES)}, title
        assert plot[0]["content"]["encoding"]["color"]["field"] == "model"
    figures = repro / "evaluation" / "figures"  # so are evaluate's per-model figures
    assert sorted(p.name for p in figures.iterdir()) == sorted(f"{m}-s0" for m in (*VARIANTS, *REFERENCES))


def test_report_verdict_and_comparison_view_in_mlflow(repro: Path) -> None:
    md = (repro / "reports" / "report.md").read_text()
    assert md.index("## 1. Summary") < md.index("## 3. Tuning") < md.index("## 8. Verdicts in detail")
    assert "## 10. Provenance" in md
    assert all(f"`models/{name.split('-')[0]}/{name}.pt`" in md for name in MODELS)  # every checkpoint's hash
    for claim in (
        "BatchNorm catches more fraud (test average precision)",
        "BatchNorm raises test accuracy",
        "BatchNorm lowers the training loss sooner (after the same examples, eval mode, one objective)",
        "BatchNorm trains faster to validation-AP targets (steps x timed seconds per step)",
    ):
        assert claim in md, claim
    screen = md[: md.index("## 2. Setup")]
    answer = json.loads((repro / "metrics" / "answer.json").read_text())["sentences"]["batchnorm"]
    assert screen.index(answer) < screen.index("Each claim is read twice") < screen.index("| Claim | Verdict |")
    html = (repro / "reports" / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "data:image/png;base64," in html
    client = _client(repro)
    (pipeline_run,) = _runs(repro, "pipeline")
    group = pipeline_run.data.tags["pipeline.group"]
    assert pipeline_run.info.run_name == f"pipeline-{group}"
    assert "report/report.html" in {a.path for a in client.list_artifacts(pipeline_run.info.run_id, "report")}
    note = pipeline_run.data.tags["mlflow.note.content"]
    assert note.startswith(f"**{answer}**") and "| BatchNorm lowers the training loss sooner" in note
    assert f"viewStateShareKey=batchnorm-vs-baseline-{group}" in note
    experiment = client.get_experiment(pipeline_run.info.experiment_id)
    assert experiment.tags["mlflow.note.content"].startswith(f"**Latest execution** `{group}`")
    view = json.loads(experiment.tags[f"mlflow.sharedViewState.batchnorm-vs-baseline-{group}"])
    assert view["name"] == f"BatchNorm vs baseline {group}" and view["state"].startswith("deflate;")


def test_training_and_evaluation_agree_on_the_kept_model(repro: Path) -> None:
    """The best epoch's val_ap in the history equals the AP evaluate recomputes from the checkpoint, on the
    validation part of the model's own replicate."""
    layout = Layout(repro)
    for name in MODELS:
        history = pd.read_csv(layout.history(name))
        best = history.loc[history["val_ap"].idxmax()]
        checkpoint = torch.load(layout.checkpoint(name), weights_only=True)
        assert checkpoint["best_epoch"] == int(best["epoch"]), name
        assert json.loads(layout.run_file(name).read_text())["best_val_ap"] == pytest.approx(best["val_ap"]), name
        scores = pd.read_parquet(repro / "evaluation" / "scores" / f"{name}.parquet")
        val = scores[scores["split"] == "val"]
        recomputed = average_precision_score(val["y_true"], val["score"])
        assert recomputed == pytest.approx(best["val_ap"], abs=1e-6), name
        saved = json.loads((repro / "evaluation" / "metrics" / f"{name}.json").read_text())
        assert saved["values"]["val_ap"] == pytest.approx(recomputed), name
        assert saved["split"] == f"r{name.rsplit('-s', 1)[1]}", name


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(port: int, server: subprocess.Popen, what: str, seconds: int = 90) -> None:
    deadline = time.time() + seconds
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        assert time.time() < deadline and server.poll() is None, f"{what} did not start"
        time.sleep(0.5)


def test_readme_ui_steps_show_what_they_say(repro: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The three UI steps of docs/mlflow.md, in headless Chromium against `mlflow ui` on this run's store."""
    chromium = _chromium()
    port = _free_port()
    mlflow_cli = str(Path(sys.executable).with_name("mlflow"))
    server = subprocess.Popen(
        [
            mlflow_cli,
            "ui",
            "--backend-store-uri",
            f"sqlite:///{repro / 'mlflow.db'}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=repro,
        env=env_for(repro),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(port, server, "mlflow ui")
        from docs.screenshots import take

        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{repro / 'mlflow.db'}")
        paths = take(f"http://127.0.0.1:{port}", "batchnorm-vs-baseline", str(chromium), tmp_path)
        assert [p.name for p in paths] == ["1-runs-table.png", "2-comparison.png", "3-verdict.png"]
        assert all(p.stat().st_size > 20_000 for p in paths)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _chromium() -> Path:
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing and CI is set (.ci/run installs it)")
        pytest.skip("chromium not installed")
    return chromium


def test_report_fits_a_1024px_page(repro: Path) -> None:
    """No table, figure or paragraph of the HTML report is wider than a 1024-pixel window."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(_chromium()), args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        page = browser.new_page(viewport={"width": 1024, "height": 800})
        page.goto((repro / "reports" / "report.html").resolve().as_uri())
        assert page.evaluate("document.documentElement.scrollWidth") <= 1024
        too_wide = page.evaluate(
            "[...document.querySelectorAll('table, img, p, li')]"
            ".filter(e => e.getBoundingClientRect().right > 1024 || e.scrollWidth > e.clientWidth + 1)"
            ".map(e => e.tagName + ': ' + e.textContent.slice(0, 60))"
        )
        first_heading = page.evaluate("document.querySelector('h2').textContent")
        browser.close()
    assert too_wide == [] and first_heading == "1. Summary"


def _compare(repro: Path) -> str:
    return run(repro, sys.executable, "-m", "pipeline.compare").stdout


def test_compare_pools_reference_models_over_replicates(repro: Path) -> None:
    """Reference models, like the variants, are one column each, pooled over the replicates."""
    header = _compare(repro).splitlines()[1]
    for column in ("batchnorm", "baseline", *REFERENCES):
        assert f"{column} (n={REPLICATES})" in header, header


def test_compare_counts_each_model_once(repro: Path) -> None:
    """A re-trained model's run replaces its earlier one in compare; it never adds a replicate. (A model
    done with the same data, params and code is kept: the lost checkpoint is what makes it train again.)"""
    Layout(repro).checkpoint("batchnorm-s0").unlink()
    ran = _ran(dvc(repro, "repro", "train@batchnorm").stdout)
    assert ran == ["train@batchnorm"]
    assert len([r for r in _runs(repro, "model") if r.info.run_name == "batchnorm-s0"]) == 2
    out = _compare(repro)
    header = out.splitlines()[1]
    assert "batchnorm (n=3)" in header and "baseline (n=3)" in header, out
    assert "1 older run(s) of the same models ignored" in out
    test_ap = next(line for line in out.splitlines() if line.startswith("test_ap"))
    assert "(n=2)" in test_ap  # the re-trained model has no test metrics until evaluate re-runs
    dvc(repro, "repro")
    out = _compare(repro)
    assert "batchnorm (n=3)" in out.splitlines()[1] and "(n=2)" not in out


def test_raising_the_trials_trains_only_the_new_trial(repro: Path) -> None:
    """train.tune.trials 2 -> 3 asks the study for one more trial and trains only its models; select
    re-runs; the compared models do not retrain while the choice stays (1e-5 for 3 epochs cannot win)."""
    layout = Layout(repro)
    assert [t.setting.lr for t in Trials.read(layout.trials("batchnorm"), "tune").trials] == [0.01, 0.003]
    chosen = {variant: Chosen.read(layout.chosen_setting(variant), "select") for variant in VARIANTS}
    params_file = repro / "params.yaml"
    raw = yaml.safe_load(params_file.read_text())
    raw["train"]["tune"]["trials"] = 3
    params_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    ran = _ran(dvc(repro, "repro").stdout)
    assert sorted(s for s in ran if s.startswith(("tune", "train"))) == ["tune@baseline", "tune@batchnorm"]
    assert "select" in ran and "report" in ran
    for variant in VARIANTS:
        assert [t.setting.lr for t in Trials.read(layout.trials(variant), "tune").trials] == [0.01, 0.003, 0.00001]
        assert Chosen.read(layout.chosen_setting(variant), "select") == chosen[variant]
    names = [r.info.run_name for r in _runs(repro, "tuning")]
    assert sorted(names) == sorted([*TUNING, "batchnorm-t2-s100", "baseline-t2-s100"])  # one run each: none retrained
    assert json.loads((repro / "metrics" / "summary.json").read_text())["replicates"] == REPLICATES


def test_champion_is_the_best_on_validation_and_tagged(repro: Path) -> None:
    client = _client(repro)
    champion = client.get_model_version_by_alias("bn-fraud", "champion")
    val_ap = {
        n: json.loads((repro / "evaluation" / "metrics" / f"{n}.json").read_text())["values"]["val_ap"] for n in MODELS
    }
    best = max(MODELS, key=lambda n: (val_ap[n], n))
    logged = json.loads((repro / "evaluation" / "runs.json").read_text())["models"]
    assert champion.source == logged[best]["model_uri"] and champion.run_id == logged[best]["run_id"]
    tags = champion.tags
    assert f"{tags['pipeline.variant']}-s{tags['pipeline.seed']}" == best
    assert tags["pipeline.group"] == client.get_run(champion.run_id).data.tags["pipeline.group"]
    headline = json.loads((repro / "metrics" / "summary.json").read_text())["verdict"]
    assert tags["verdict"] == "; ".join(f"{claim} {status}" for claim, status in headline.items())
    assert len(tags["data.sha256"]) == 64


def _raw_rows(repro: Path, tmp_path: Path, n: int = 40) -> Path:
    """The default source's rows as they come: category and timestamp text, missing countries, the card id
    and the label (columns the model ignores)."""
    rows = tmp_path / "raw_rows.csv"
    table = pd.read_parquet(repro / "data" / "prepared" / "table.parquet")
    pd.concat([table[table["country"].isna()].head(3), table.head(n - 3)]).to_csv(rows, index=False)
    return rows


def test_three_ways_to_score_give_the_same_numbers(repro: Path, tmp_path: Path) -> None:
    """docs/scoring.md's `mlflow models predict`, `pipeline.score` and `mlflow models serve` on raw rows."""
    rows = _raw_rows(repro, tmp_path)
    mlflow_cli = str(Path(sys.executable).with_name("mlflow"))
    run(
        repro,
        mlflow_cli,
        "models",
        "predict",
        "-m",
        "models:/bn-fraud@champion",
        "-i",
        str(rows),
        "-t",
        "csv",
        "--env-manager",
        "local",
        "-o",
        str(tmp_path / "predicted.json"),
    )
    predicted = pd.DataFrame(json.loads((tmp_path / "predicted.json").read_text())["predictions"])
    run(
        repro,
        sys.executable,
        "-m",
        "pipeline.score",
        "--model",
        "models:/bn-fraud@champion",
        "--input",
        str(rows),
        "--output",
        str(tmp_path / "scored.parquet"),
    )
    scored = pd.read_parquet(tmp_path / "scored.parquet")
    assert len(predicted) == len(scored) == 40 and set(predicted["fraud"]) <= {0, 1}
    assert predicted["fraud_probability"].between(0, 1).all()
    pd.testing.assert_series_equal(predicted["fraud_probability"], scored["fraud_probability"], rtol=0, atol=1e-7)
    assert predicted["fraud"].tolist() == scored["fraud"].tolist()

    port = _free_port()
    server = subprocess.Popen(
        [
            mlflow_cli,
            "models",
            "serve",
            "-m",
            "models:/bn-fraud@champion",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=repro,
        env=env_for(repro),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(port, server, "mlflow models serve")
        frame = pd.read_csv(rows)
        body = json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"}
        )
        served = pd.DataFrame(json.loads(urllib.request.urlopen(request, timeout=60).read())["predictions"])
        pd.testing.assert_frame_equal(
            served[["fraud_probability", "fraud"]],
            predicted[["fraud_probability", "fraud"]],
            check_dtype=False,
            rtol=0,
            atol=1e-7,
        )
        frame["V3"] = frame["V3"].astype(object)
        frame.loc[1, "V3"] = "abc"
        for split, expected in (
            (json.loads(frame.to_json(orient="split", index=False)), "non-numeric values in feature columns V3"),
            ({"columns": ["V1"], "data": [[0.5]]}, "missing inputs ['Time'"),
        ):
            bad = urllib.request.Request(
                f"http://127.0.0.1:{port}/invocations",
                data=json.dumps({"dataframe_split": split}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(bad, timeout=60)
            message = json.loads(refused.value.read())["message"]
            assert refused.value.code == 400 and expected in message, message
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_adding_a_replicate_trains_only_its_models(repro: Path) -> None:
    """prepare.replicates 3 -> 4: prepare re-runs, but no tuning model and no model of replicates 0-2
    trains again (their splits and scalers are unchanged); the report and compare count four."""
    layout = Layout(repro)
    kept = {name: layout.checkpoint(name).read_bytes() for name in MODELS}
    runs_before = {r.info.run_id for r in _runs(repro, "model") + _runs(repro, "tuning")}
    params_file = repro / "params.yaml"
    raw = yaml.safe_load(params_file.read_text())
    raw["prepare"]["replicates"] = REPLICATES + 1
    params_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    dvc(repro, "repro")
    assert {name: layout.checkpoint(name).read_bytes() for name in MODELS} == kept
    new = [r for r in _runs(repro, "model") + _runs(repro, "tuning") if r.info.run_id not in runs_before]
    assert sorted(r.info.run_name for r in new) == ["baseline-s3", "batchnorm-s3"]
    headline = json.loads((repro / "metrics" / "summary.json").read_text())
    assert headline["replicates"] == REPLICATES + 1
    assert "up to date" in dvc(repro, "status").stdout.lower()
    header = _compare(repro).splitlines()[1]  # the latest execution holds every replicate's model
    assert "batchnorm (n=4)" in header and "baseline (n=4)" in header, header


def test_real_ulb_sample_end_to_end(tmp_path: Path) -> None:
    """The whole pipeline on the 5,099-row ULB sample (unnamed index column, 96 frauds)."""
    sample = sample_csv_path()
    raw = small_raw_params()
    raw["prepare"]["source"] = str(sample)
    raw["prepare"]["split"]["min_positives"] = 10
    repo = copy_repository(tmp_path, raw)
    dvc(repo, "repro")
    summary = json.loads((repo / "data" / "prepared" / "summary.json").read_text())
    assert sum(summary["positives"].values()) == 96 and summary["n_features"] == 30
    overview = json.loads((repo / "evaluation" / "overview.json").read_text())
    assert set(overview["models"]) == {f"{m}-s0" for m in (*VARIANTS, *REFERENCES)}
    assert set(summary["roles"].values()) == {"numeric"} and summary["entity"] is None  # ULB: numbers only
    md = (repo / "reports" / "report.md").read_text()
    assert str(sample) in md and "cannot judge replicate-to-replicate noise" in md
    headline = json.loads((repo / "metrics" / "summary.json").read_text())
    assert headline["replicates"] == 1 and set(headline["verdict"].values()) == {"inconclusive"}
