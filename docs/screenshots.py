"""Take the MLflow UI screenshots of docs/mlflow.md (and the README) from a real run, in headless Chromium.

Run from the repository root after `dvc repro`, with `mlflow ui` serving the store:

    mlflow ui --backend-store-uri sqlite:///mlflow.db --port 5000 &
    python docs/screenshots.py [--ui http://127.0.0.1:5000] [--chromium /usr/bin/chromium]

It reads the comparison link from the newest pipeline run, so the pictures show exactly the pages
the steps of docs/mlflow.md describe; each step's page is also checked (texts that must be on screen).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.tracking import keys as tags
from pipeline.tracking import runs

OUT = Path(__file__).resolve().parent
PARAMS = OUT.parent / "params.yaml"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def newest_pipeline_run(experiment: str) -> Any:
    """The pipeline run of the latest execution (its description holds the comparison link); it must be a
    single-table `dvc repro`, since the docs' pictures show that run, not a suite's table."""
    found = runs.search(
        experiment, f"tags.`{tags.ROLE}` = 'pipeline'", order_by=["attributes.start_time DESC"], max_results=1
    )
    if not found:
        raise SystemExit(f"no pipeline run in experiment '{experiment}': run `dvc repro` first")
    run = found[0]
    if tags.TABLE in run.data.tags:
        raise SystemExit(
            f"the newest pipeline run is suite table '{run.data.tags[tags.TABLE]}', not the "
            "default run the docs show: take the pictures in a store where `dvc repro` ran last "
            "(a fresh clone after `make repro`)"
        )
    return run


def newest_suite_run(experiment: str) -> Any | None:
    """The run of the latest suite, if any suite ran."""
    found = runs.search(
        experiment, f"tags.`{tags.ROLE}` = 'suite'", order_by=["attributes.start_time DESC"], max_results=1
    )
    return found[0] if found else None


def open_page(page: Page, url: str, must_show: list[str], expand: str | None = None) -> None:
    """Load a UI page, close the assistant side panel, click ``expand`` if given, then wait until
    every text in must_show is visible."""
    page.goto(url)
    page.get_by_text(must_show[0], exact=False).first.wait_for(state="visible", timeout=30_000)
    close = page.get_by_role("button", name="Close")
    if close.count():
        close.first.click()
    if expand is not None:
        page.get_by_text(expand, exact=True).first.click()
    for text in must_show:
        page.get_by_text(text, exact=False).first.wait_for(state="visible", timeout=30_000)
    page.wait_for_timeout(8000)  # charts finish drawing (slow on a busy machine)


def take(ui: str, experiment: str, chromium: str, out: Path = OUT, params_file: Path = PARAMS) -> list[Path]:
    """The three screenshots of the steps of docs/mlflow.md (and the latest suite's view, when a suite ran), of
    the question ``params_file`` declares (its compared variants' runs and saved view); returns their paths."""
    run = newest_pipeline_run(experiment)
    group, exp_id = run.data.tags[tags.GROUP], run.info.experiment_id
    from pipeline.project.params import load_params
    from pipeline.project.variants import Catalogue
    from pipeline.tracking import ui as links

    cat = Catalogue(load_params(params_file))
    comparison = links.comparison_url(exp_id, group, cat.slug).replace(links.store.ui_base(), ui.rstrip("/"))
    shots = [
        (
            "1-runs-table.png",
            f"{ui.rstrip('/')}/#/experiments/{exp_id}/runs",
            ["Training runs", *[f"{v}-s0" for v in cat.compared], f"pipeline-{group}", "Compare its runs"],
            None,
        ),
        ("2-comparison.png", comparison, ["Learning curves per epoch", "train_loss", "val_loss"], None),
        (
            "3-verdict.png",
            f"{ui.rstrip('/')}/#/experiments/{exp_id}/runs/{run.info.run_id}",
            [f"pipeline-{group}", "Each claim is read twice", "Compare the runs:"],
            "Show more",
        ),
    ]
    suite = newest_suite_run(experiment)
    if suite is not None:  # a suite's view: every table's compared models, grouped by variant
        name = suite.data.tags[tags.SUITE]
        shots.append(
            (
                "4-suite.png",
                links.suite_url(exp_id, name).replace(links.store.ui_base(), ui.rstrip("/")),
                ["Learning curves per epoch", "train_loss", cat.primary or cat.reference],
                None,
            )
        )
    paths = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        for name, url, must_show, expand in shots:
            open_page(page, url, must_show, expand)
            page.screenshot(path=out / name)
            paths.append(out / name)
        browser.close()
    return paths


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ui", default="http://127.0.0.1:5000", help="where `mlflow ui` serves")
    parser.add_argument("--experiment", default="batchnorm-vs-baseline")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    for path in take(args.ui, args.experiment, args.chromium, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
