"""What the repository commits is consistent: the headline metrics with dvc.lock, the screenshots the README
and docs show with the files under docs/; every link between the docs resolves."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers.params import REPO


def _committed(path: str) -> bytes:
    try:
        return subprocess.run(["git", "show", f"HEAD:{path}"], cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"{path} is not committed in a git checkout here")


def test_committed_headline_is_the_one_dvc_lock_records() -> None:
    """`dvc exp show` and `dvc metrics diff` read metrics/summary.json from git: it must be the file
    that the committed dvc.lock describes (commit both after a `dvc repro`)."""
    lock = yaml.safe_load(_committed("dvc.lock"))
    (entry,) = [m for m in lock["stages"]["report"]["outs"] if m["path"] == "metrics/summary.json"]
    summary = _committed("metrics/summary.json")
    assert hashlib.md5(summary).hexdigest() == entry["md5"] and len(summary) == entry["size"]


def test_the_screenshots_the_docs_show_exist_and_are_real_pngs() -> None:
    """README shows the verdict; docs/mlflow.md walks through the four (its links relative to docs/)."""
    readme = re.findall(r"!\[[^\]]+\]\((docs/[^)]+\.png)\)", (REPO / "README.md").read_text())
    walk = re.findall(r"!\[[^\]]+\]\(([^)/]+\.png)\)", (REPO / "docs" / "mlflow.md").read_text())
    assert readme == ["docs/3-verdict.png"]
    assert walk == ["1-runs-table.png", "2-comparison.png", "3-verdict.png", "4-suite.png"]
    for shot in walk:
        data = (REPO / "docs" / shot).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000, shot


def test_screenshots_refuse_a_store_whose_newest_run_is_a_suite_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a suite, the newest pipeline run is one of its tables: the README's pictures would show
    that table, not the default run, so the script stops and says where to take them."""
    from types import SimpleNamespace

    from docs import screenshots
    from pipeline.tracking import keys as tags

    def newest(table: str | None) -> list[SimpleNamespace]:
        run_tags = {tags.GROUP: "abc"} | ({tags.TABLE: table} if table else {})
        return [SimpleNamespace(data=SimpleNamespace(tags=run_tags))]

    monkeypatch.setattr(screenshots.runs, "search", lambda *a, **k: newest("linear"))
    with pytest.raises(SystemExit, match="suite table 'linear'.*`dvc repro` ran last"):
        screenshots.newest_pipeline_run("batchnorm-vs-baseline")
    monkeypatch.setattr(screenshots.runs, "search", lambda *a, **k: newest(None))
    assert screenshots.newest_pipeline_run("batchnorm-vs-baseline").data.tags == {tags.GROUP: "abc"}


def test_every_link_between_the_docs_resolves() -> None:
    """README.md and docs/*.md: each relative link names a file that exists, each #anchor a heading of it."""

    def anchors(page: Path) -> set[str]:
        headings = re.findall(r"^#+ (.+)$", page.read_text(), flags=re.M)
        return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}

    broken = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
                broken.append(f"{page.name}: {target}")
    assert broken == []
