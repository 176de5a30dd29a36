"""Pitfall studies on top of `dvc exp`: sweep one param, then aggregate the experiments from MLflow.

``python -m pipeline.study batch_size`` (8, 32, 256, 2048: BatchNorm's weakness with small batches)
``python -m pipeline.study lr``         (1e-4 .. 1e-1: BatchNorm's tolerance of high learning rates)

Each value is queued as a DVC experiment with ``train.tune.space.X`` held at that one value (both
variants tune the rest of the space around it) and the queue is
run (``dvc exp run --run-all -j JOBS``). Every experiment's MLflow runs carry the tag
``dvc.exp_name``; the study collects them, FAILED runs included (a diverged model is a result, not
a crash), and writes ``reports/studies/<study>/study.md`` and ``study.html`` with one figure: test
average precision, final training loss and seconds per epoch against the swept value, both variants,
mean and spread over seeds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.analysis.statistics import mean_sd
from pipeline.project.params import load_params
from pipeline.project.variants import Catalogue
from pipeline.reporting import figures
from pipeline.reporting.document import Document
from pipeline.runtime import experiments
from pipeline.runtime.cli import run_stage
from pipeline.runtime.errors import StageError
from pipeline.runtime.outputs import staged
from pipeline.tracking import runs as tracked
from pipeline.tracking.keys import DVC_EXP_NAME, ROLE, SEED, VARIANT

log = logging.getLogger("pipeline.study")


@dataclass(frozen=True)
class Study:
    """One swept dimension of the tuning space, its default values, and the `-S` overrides that fix
    it to one value (both variants then tune the other dimensions with that value held)."""

    dimension: str  # a name in train.tune.space; runs log it as the MLflow param train.<dimension>
    values: tuple[float, ...]
    question: str  # {candidate} and {reference}: the run's variants' titles

    @property
    def param(self) -> str:
        """The MLflow param every model's run logs the value under."""
        return f"train.{self.dimension}"

    def overrides(self, value: str) -> list[str]:
        """`dvc exp run -S` items that make the dimension one choice: the node is replaced, not merged
        (a range's low and high would otherwise stay beside the choice)."""
        key = f"train.tune.space.{self.dimension}"
        return [f"~{key}", f"+{key}={{choices:[{value}]}}"]


STUDIES = {
    "batch_size": Study(
        "batch_size",
        (8, 32, 256, 2048),
        "Do small batches hurt {candidate} more than {reference}? (BatchNorm estimates its statistics from each "
        "batch. Each value is held for every variant; the rest of the space is tuned as usual.)",
    ),
    "lr": Study(
        "lr",
        (1e-4, 1e-3, 1e-2, 1e-1),
        "Does {candidate} tolerate high learning rates better than {reference}: which degrades or diverges "
        "first? (Each value is held for every variant; the rest of the space is tuned as usual.)",
    ),
}
OUT_DIR = Path("reports/studies")


def launch_study(study_id: str, study: Study, values: list[str], overrides: list[str], jobs: int) -> list[str]:
    """Queue one DVC experiment per value and run the queue; return the experiment names."""
    names = []
    for index, value in enumerate(values):
        name = f"{study_id}-v{index}"
        problem = experiments.queue(name, [*study.overrides(value), *overrides])
        if problem is not None:
            raise StageError(f"could not queue {name}: {problem}")
        names.append(name)
    log.info("study %s: running %d experiments with %d worker(s)", study_id, len(names), jobs)
    if not experiments.run_queue(jobs):  # a failed experiment (a diverged model) is a result; the study goes on
        log.warning("study %s: some experiments failed (see `dvc queue logs`); they are shown as FAILED", study_id)
    return names


def collect_runs(experiment: str, study_id: str, param: str) -> pd.DataFrame:
    """One row per MLflow run of a trained model (compared or tuning) of the study's experiments,
    FAILED runs included (a learning rate that diverges fails while tuning)."""
    query = f"tags.`{DVC_EXP_NAME}` LIKE '{study_id}-%'"
    rows = []
    for run in tracked.search(experiment, query):
        m, tags = run.data.metrics, run.data.tags
        if tags.get(ROLE) not in ("model", "tuning"):
            continue
        history = [v for _, v in tracked.metric_steps(run.info.run_id, "epoch_seconds")]
        rows.append(
            {
                "exp_name": tags[DVC_EXP_NAME],
                "role": tags[ROLE],
                "variant": tags.get(VARIANT),
                "seed": int(tags.get(SEED, -1)),
                "value": float(run.data.params[param]),
                "status": run.info.status,
                "test_ap": m.get("test_ap", np.nan),
                "final_train_loss": m.get("train_loss", np.nan),
                "seconds_per_epoch": float(np.median(history)) if history else np.nan,
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "exp_name",
            "role",
            "variant",
            "seed",
            "value",
            "status",
            "test_ap",
            "final_train_loss",
            "seconds_per_epoch",
        ],
    )


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation, min and max over seeds for each (variant, value): numbers from the
    compared models, FAILED counts from every run (tuning included)."""
    out = []
    for (value, variant), group in runs.groupby(["value", "variant"], sort=True):
        ok = group[(group["status"] == "FINISHED") & (group["role"] == "model")]
        row = {
            "variant": variant,
            "value": value,
            "runs": len(group),
            "failed": int((group["status"] == "FAILED").sum()),
        }
        for key in ("test_ap", "final_train_loss", "seconds_per_epoch"):
            values = ok[key].dropna()
            row.update(
                {
                    f"{key}_mean": values.mean(),
                    f"{key}_std": values.std(ddof=1) if len(values) > 1 else 0.0,
                    f"{key}_min": values.min(),
                    f"{key}_max": values.max(),
                }
            )
        out.append(row)
    return pd.DataFrame(out)


def write_report(
    study_id: str, study: Study, runs: pd.DataFrame, out_dir: Path, launched: list[str], cat: Catalogue
) -> Path:
    """study.md, study.html and the figure under out_dir/study_id."""
    target = out_dir / study_id
    with staged(target) as (tmp,):
        tmp.mkdir()
        doc = Document(f"Study {study_id}: {study.param}")
        asked = cat.title(cat.primary) if cat.primary else "the candidate"
        doc.paragraph(study.question.format(candidate=asked, reference=cat.title(cat.reference)))
        if runs.empty:
            doc.paragraph(
                "**No MLflow runs were found for this study's experiments**: every experiment failed before "
                "training (see `dvc queue logs`)."
            )
        else:
            summary = summarise(runs)
            rows = []
            for (value, variant), group in runs.groupby(["value", "variant"], sort=True):
                ok = group[(group["status"] == "FINISHED") & (group["role"] == "model")]
                failed = int((group["status"] == "FAILED").sum())
                rows.append(
                    [
                        f"{value:g}",
                        variant,
                        mean_sd(ok["test_ap"].tolist(), 3, "g"),
                        mean_sd(ok["final_train_loss"].tolist(), 4, "g"),
                        mean_sd(ok["seconds_per_epoch"].tolist(), 3, "g"),
                        f"{len(ok)} compared, {failed} FAILED" if failed else f"{len(ok)} compared",
                    ]
                )
            doc.table(
                [study.param, "Variant", "Test AP (mean ± sd)", "Final train loss", "Seconds per epoch", "Runs"], rows
            )
            doc.figure(
                figures.sweep(summary, study.param, cat, tmp / "study.png"),
                f"{' versus '.join(cat.short(v) for v in cat.compared)} across {study.param}",
            )
            failed = runs[runs["status"] == "FAILED"]
            if not failed.empty:
                doc.paragraph(
                    "FAILED runs (training diverged or stopped with an error): "
                    + ", ".join(
                        f"{r.variant} seed {r.seed} at {study.param}={r.value:g}"
                        + (" (tuning)" if r.role == "tuning" else "")
                        for r in failed.itertuples()
                    )
                    + "."
                )
            unevaluated = runs[(runs["status"] == "FINISHED") & (runs["role"] == "model") & runs["test_ap"].isna()]
            if not unevaluated.empty:
                doc.paragraph(
                    f"{len(unevaluated)} finished run(s) have no test metrics: another model of the same "
                    "experiment failed, so its evaluate stage did not run."
                )
        silent = sorted(set(launched) - set(runs["exp_name"]))
        if silent:
            doc.paragraph(
                "**FAILED before training** (no MLflow run; e.g. a param out of range): "
                + ", ".join(f"`{n}`" for n in silent)
                + ". See `dvc queue logs <name>`."
            )
        doc.paragraph(
            "Experiments: "
            + ", ".join(f"`{n}`" for n in launched)
            + ". Compare them with `dvc exp show` or in the MLflow UI (filter on `tags.dvc.exp_name`)."
        )
        (tmp / "study.md").write_text(doc.markdown(tmp))
        (tmp / "study.html").write_text(doc.html())
    return target


def run(
    name: str,
    values: list[str] | None = None,
    overrides: list[str] | None = None,
    jobs: int = 1,
    out_dir: Path = OUT_DIR,
    params_file: Path = Path("params.yaml"),
) -> Path:
    """Launch the study's experiments, collect their runs, and write the study report."""
    if name not in STUDIES:
        raise StageError(f"unknown study {name!r}; choose one of {', '.join(STUDIES)}")
    study = STUDIES[name]
    params = load_params(params_file)
    experiment = params.mlflow.experiment
    study_id = f"study-{name.replace('_', '')}-{dt.datetime.now(dt.UTC).strftime('%Y%m%d-%H%M%S')}"
    launched = launch_study(study_id, study, values or [f"{v:g}" for v in study.values], overrides or [], jobs)
    runs = collect_runs(experiment, study_id, study.param)
    target = write_report(study_id, study, runs, out_dir, launched, Catalogue(params))
    log.info(
        "study %s: %d runs (%d FAILED); wrote %s",
        study_id,
        len(runs),
        int((runs["status"] == "FAILED").sum()) if not runs.empty else 0,
        target / "study.md",
    )
    return target


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", choices=sorted(STUDIES))
    parser.add_argument("--values", help="comma-separated values (default: the study's)")
    parser.add_argument(
        "-S",
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="extra param for every experiment, e.g. -S train.epochs=10 (repeatable)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="parallel queue workers")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    values = args.values.split(",") if args.values else None
    return run_stage("study", lambda: run(args.study, values, args.overrides, args.jobs, args.out))


if __name__ == "__main__":
    raise SystemExit(main())
