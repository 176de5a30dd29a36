"""One question, many tables: run the single-table protocol on every table of a suite and pool the verdicts.

``python -m pipeline.suite [SUITE.yaml] [-j JOBS]`` (default ``suites/default.yaml``: synthetic regimes
that differ where the answer might). Each table is its own DVC experiment (queued, run with JOBS
workers), named ``<suite>-<table>-<key>``; the key covers the table's settings, the code and params.yaml,
so re-running the suite runs only the tables that are new, changed or failed, and reuses the others. A table
that fails (bad settings, a missing file, too few positives) is reported with its one-line reason;
the others go on. Writes ``reports/suite/`` (suite.md, self-contained suite.html, headline.json,
figures), tags each table's MLflow runs ``pipeline.table``, records one MLflow run per table with its
effects and one suite run with the report, and saves a view of every table's models grouped by variant.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipeline.analysis import pooling
from pipeline.analysis.pooling import FAILED, FINISHED, PooledClaim, TableResult
from pipeline.data.sources import file_sha256
from pipeline.project.artefacts import Answer, Headline
from pipeline.project.layout import ANSWER, SUMMARY
from pipeline.project.params import PARAMS_FILE, Params, read_yaml
from pipeline.project.suites import Suite, TableSpec, load_suite, override_items, overrides, params_for
from pipeline.reporting import suite_pages
from pipeline.runtime import experiments
from pipeline.runtime.cli import run_stage
from pipeline.runtime.errors import StageError, UserError
from pipeline.runtime.outputs import staged
from pipeline.tracking import store, ui
from pipeline.tracking import suites as suite_runs

log = logging.getLogger("pipeline.suite")
DEFAULT_SUITE = Path("suites/default.yaml")
OUT_DIR = Path("reports/suite")


@dataclass(frozen=True)
class Plan:
    """One table to run (or reuse): its settings and its experiment's name."""

    table: TableSpec
    sets: dict[str, Any]
    key: str

    def experiment(self, suite: str) -> str:
        """The table's DVC experiment name."""
        return f"{suite}-{self.table.name}-{self.key}"


def fingerprint(root: Path) -> str:
    """What a table's result depends on besides its settings: dvc.yaml, params.yaml and every code file a
    stage lists as a dependency, as they are in the working tree (what the queue runs). Commands outside
    the protocol (this one, score, study) are not in it: editing them re-runs no table."""
    stages = read_yaml((root / "dvc.yaml").read_text())["stages"]
    code = sorted({d for s in stages.values() for d in s.get("deps", []) if str(d).startswith("pipeline/")})
    digest = hashlib.sha256()
    for name in ["dvc.yaml", "params.yaml", *code]:
        path = root / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"(missing)") + b"\0")
    return digest.hexdigest()


def plan(suite: Suite, base: dict[str, Any], root: Path, code: str) -> tuple[list[Plan], list[TableResult]]:
    """Each table's settings, checked; the tables whose settings are already wrong fail here."""
    plans, failed = [], []
    for table in suite.tables:
        sets = overrides(suite, table, root)
        try:
            params_for(base, sets, table.name)
            source = Path(sets["prepare.source"])
            if table.source != "synthetic" and not source.is_file():
                raise UserError(
                    f"table {table.name}: prepare.source {table.source} not found (give a path "
                    "relative to the repository root)"
                )
        except UserError as exc:
            failed.append(TableResult(table.name, "–", FAILED, table.question, str(exc)))
            continue
        digest = file_sha256(source) if table.source != "synthetic" else ""
        key = hashlib.sha256(json.dumps([sets, code, digest], sort_keys=True, default=str).encode()).hexdigest()[:8]
        plans.append(Plan(table, sets, key))
    return plans, failed


def launch_tables(suite: Suite, plans: list[Plan], jobs: int) -> dict[str, str]:
    """Queue every table without a finished experiment and run the queue; return the tables that could
    not even be queued, with dvc's reason."""
    problems, queued = {}, 0
    for p in plans:
        name = p.experiment(suite.name)
        if experiments.find_ref(name) is not None:
            log.info("suite %s: table %s is done (%s), reused", suite.name, p.table.name, name)
            continue
        problem = experiments.queue(name, override_items(p.sets))
        if problem is None:
            queued += 1
        else:
            problems[p.table.name] = f"could not queue {name}: {problem}"
    if queued:
        log.info("suite %s: running %d table(s) with %d worker(s)", suite.name, queued, jobs)
        if not experiments.run_queue(jobs):
            log.warning("suite %s: some tables failed; they are reported with their reasons", suite.name)
    return problems


def collect_tables(suite: Suite, plans: list[Plan], problems: dict[str, str], reused: set[str]) -> list[TableResult]:
    """Each planned table's headline from its experiment, or why it has none."""
    out = []
    for p in plans:
        name = p.experiment(suite.name)
        ref = experiments.find_ref(name)
        text = experiments.read_file(ref, SUMMARY) if ref else None
        if text is None:
            reason = problems.get(p.table.name) or experiments.failure_reason(name)
            out.append(TableResult(p.table.name, name, FAILED, p.table.question, reason))
            continue
        try:
            headline = Headline.model_validate_json(text)
        except ValidationError:
            out.append(
                TableResult(
                    p.table.name,
                    name,
                    FAILED,
                    p.table.question,
                    f"its {SUMMARY} is not the headline this code writes (another version): run the suite again",
                )
            )
            continue
        said = experiments.read_file(ref, ANSWER)
        answer = Answer.model_validate_json(said) if said else None
        out.append(
            TableResult(
                p.table.name,
                name,
                FINISHED,
                p.table.question,
                headline=headline,
                answer=answer,
                reused=p.table.name in reused,
            )
        )
    return out


def table_metrics(result: TableResult, claims: list[PooledClaim]) -> dict[str, float]:
    """What a table's MLflow run holds: each claim's effect and interval, and every model's test AP."""
    out = {}
    for c in claims:
        for e in c.tables:
            if e.table == result.name:
                out.update({f"{c.key}_effect": e.mean, f"{c.key}_low": e.low, f"{c.key}_high": e.high})
    aps = {**result.headline.test_ap, **result.headline.reference_test_ap}
    out.update({f"test_ap_{m}": float(v) for m, v in aps.items()})
    return out


def publish(
    suite: Suite,
    params: Params,
    results: list[TableResult],
    plans: list[Plan],
    claims: list[PooledClaim],
    report_dir: Path,
) -> str:
    """Tag each table's runs, record one run per table and the suite's run; return the suite view's link."""
    experiment = params.mlflow.experiment
    keys = {p.table.name: p for p in plans}
    for r in results:
        if r.status == FINISHED:
            suite_runs.tag_table_runs(experiment, r.experiment, r.name, suite.name)
            suite_runs.table_run(
                experiment,
                suite.name,
                r.name,
                keys[r.name].key,
                r.experiment,
                keys[r.name].sets,
                table_metrics(r, claims),
            )
    url = ui.save_suite_view(store.experiment_id(experiment), suite.name)
    finished = [r for r in results if r.status == FINISHED]
    lines = [
        f"**Suite `{suite.name}`**: {len(finished)} of {len(results)} tables finished, "
        f"{sum(r.sound for r in finished)} with a sound comparison (see the report's caveats).",
        "",
        "| Claim | Pooled | Random effects [interval] | I² | Sound tables only |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {c.key} | **{pooling.answer(c)}** | {c.pooled.mean:+.3g} [{c.pooled.low:+.3g}, "
        f"{c.pooled.high:+.3g}] | {c.pooled.i2:.0%} | {pooling.sound_answer(c)} |"
        for c in claims
    ]
    lines += [
        "",
        f"**Every table's models, grouped by variant:** [{url}]({url}). The report is in this run's "
        "artifacts (`suite/suite.html`).",
    ]
    suite_runs.suite_run(experiment, suite.name, report_dir, "\n".join(lines))
    return url


def write(
    suite: Suite, results: list[TableResult], claims: list[PooledClaim], params: Params, out_dir: Path, jobs: int = 1
) -> Path:
    """reports/suite/: suite.md, suite.html, headline.json and the figures (``jobs``: the workers that trained
    this invocation's tables)."""
    table_ranks = pooling.ranks(results)
    with staged(out_dir) as (tmp,):
        (tmp / "figures").mkdir(parents=True)
        generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        doc = suite_pages.suite_document(
            suite, results, claims, table_ranks, tmp / "figures", params.report.confidence, generated, jobs
        )
        (tmp / "suite.md").write_text(doc.markdown(tmp))
        (tmp / "suite.html").write_text(doc.html())
        (tmp / "headline.json").write_text(
            json.dumps(pooling.suite_headline(suite.name, results, claims, table_ranks, jobs), indent=2) + "\n"
        )
    return out_dir


def run(
    suite_file: Path = DEFAULT_SUITE,
    jobs: int = 1,
    out_dir: Path = OUT_DIR,
    params_file: Path = PARAMS_FILE,
    track: bool = True,
) -> list[TableResult]:
    """Run (or reuse) every table's experiment, pool the verdicts, write the report; return the tables."""
    suite = load_suite(suite_file)
    base = read_yaml(params_file.read_text())
    params = params_for(
        copy.deepcopy(base), overrides(suite, TableSpec(name="suite", source="synthetic"), Path.cwd()), "suite"
    )
    plans, failed = plan(suite, base, Path.cwd(), fingerprint(Path.cwd()))
    if track:  # create the store before the workers do: two fresh workers would race to set up its tables
        store.experiment_id(params.mlflow.experiment)
    done = {p.table.name for p in plans if experiments.find_ref(p.experiment(suite.name)) is not None}
    problems = launch_tables(suite, plans, jobs)
    order = [t.name for t in suite.tables]
    results = sorted(collect_tables(suite, plans, problems, done) + failed, key=lambda r: order.index(r.name))
    claims = pooling.pooled_claims(results, params.report.confidence, params.report.bootstrap.seed)
    write(suite, results, claims, params, out_dir, jobs)
    if track:
        url = publish(suite, params, results, plans, claims, out_dir)
        log.info("suite %s: compare every table's runs, grouped by variant: %s", suite.name, url)
    for r in results:
        if r.status == FAILED:
            log.warning("suite %s: table %s failed: %s", suite.name, r.name, r.reason)
    finished = sum(r.status == FINISHED for r in results)
    log.info("suite %s: %d of %d table(s) finished; wrote %s", suite.name, finished, len(results), out_dir / "suite.md")
    if not finished:
        raise StageError(
            f"no table of suite {suite.name} finished (reasons in {out_dir / 'suite.md'}); fix the "
            "tables and run the suite again"
        )
    return results


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.suite", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("suite", nargs="?", type=Path, default=DEFAULT_SUITE, help="suite file")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="parallel queue workers")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--params", type=Path, default=PARAMS_FILE)
    args = parser.parse_args(argv)
    return run_stage("suite", lambda: run(args.suite, args.jobs, args.out, args.params))


if __name__ == "__main__":
    raise SystemExit(main())
