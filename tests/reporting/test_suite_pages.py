"""The suite's report from fixed per-table headlines: the pooled verdict and its forest plots first, what
weakens it (the weak tables, the verdict on the sound ones, tables timed side by side), the failed tables."""

from __future__ import annotations

from pathlib import Path

from pipeline.analysis import pooling
from pipeline.analysis.claims import FAMILY
from pipeline.analysis.pooling import FINISHED, TableResult
from pipeline.project.suites import Suite, TableSpec
from pipeline.reporting import suite_pages
from pipeline.reporting.document import Document, strip_volatile
from tests.helpers.headlines import EFFECTS, SES, four_tables_and_a_broken_one, headline, said


def _page(tables: list[TableResult], folder: Path, jobs: int = 1) -> Document:
    suite = Suite(name="default", tables=[TableSpec(name=t.name, source="synthetic") for t in tables])
    (folder / "figures").mkdir(exist_ok=True)
    claims = pooling.pooled_claims(tables, 0.95, seed=0, samples=2000)
    return suite_pages.suite_document(
        suite, tables, claims, pooling.ranks(tables), folder / "figures", 0.95, "now", jobs
    )


def test_the_report_opens_with_the_pooled_verdict_and_forest_plots(tmp_path: Path) -> None:
    doc = _page(four_tables_and_a_broken_one(), tmp_path)
    md = strip_volatile(doc.markdown(tmp_path))
    first = md.index("## Pooled verdict per claim")
    assert first < md.index("![") < md.index("## What each reading answers")  # verdict, then forest plots
    assert "| BatchNorm catches more fraud (test AP) | **better** | +0.0212 [+0.00158, +0.0409] | 58% | 0.25 |" in md
    assert all((tmp_path / "figures" / f"forest_{c}.png").is_file() for c in FAMILY)
    assert (tmp_path / "figures" / "ranks.png").is_file()
    assert "**failed**: prepare: error: the test part holds 2 positives" in md
    assert "data:image/png;base64," in doc.html()


def test_weak_tables_and_the_sound_reading_are_on_the_first_screen(tmp_path: Path) -> None:
    kinds = [["cut_off", "few_replicates"], ["at_edge"], [], ["below_yardstick"]]
    found = [
        TableResult(
            f"t{i}",
            f"default-t{i}-0000000{i}",
            FINISHED,
            f"table {i}",
            headline=headline(e, s, 0.55, k),
            answer=said(f"BatchNorm answers table {i}."),
        )
        for i, (e, s, k) in enumerate(zip(EFFECTS, SES, kinds))
    ]
    md = strip_volatile(_page(found, tmp_path).markdown(tmp_path))
    assert "| `t1` | table 1 | finished | BatchNorm answers table 1. |" in md  # each table's own answer
    screen = md[: md.index("![")]  # the first screen: before the first forest plot
    assert "| **inconclusive** +0.0185 [-0.0402, +0.0773] (2) |" in screen
    assert "**1 of 4** (`t0`): a run had its best validation AP at the epoch cap" in screen
    assert "**1 of 4** (`t3`): an MLP ranked below the logistic regression" in screen
    assert (
        "**Sound tables** (none below the logistic regression, cut off while improving, with its tuning "
        "still climbing): 2 of 4 (`t1`, `t2`)"
    ) in screen
    assert "BatchNorm catches more fraud (test AP) (better → inconclusive): the weak tables carry" in screen
    assert "| **cut_off**, few_replicates |" in md and "| **below_yardstick** |" in md


def test_tables_timed_side_by_side_are_named_with_their_steps(tmp_path: Path) -> None:
    """With 2 workers, the tables this invocation trained had their seconds measured under each other's load:
    named, with the steps at a shared setting beside them; with 1 worker, not; a reused table is named too."""
    found = [
        TableResult(
            f"t{i}",
            f"default-t{i}-0000000{i}",
            FINISHED,
            f"table {i}",
            reused=i == 2,
            headline=headline(e, s, 0.55, steps_speedup=up),
            answer=said(),
        )
        for i, (e, s, up) in enumerate(zip(EFFECTS, SES, [1.7, 0.9, 1.3]))
    ]

    def screen(jobs: int) -> str:
        md = _page(found, tmp_path, jobs).markdown(tmp_path)
        return md[: md.index("![")]

    two = screen(2)
    assert "**2 of 3** (`t0`, `t1`): trained 2 tables at a time on shared cores (`-j 2`)" in two
    assert "BatchNorm needed fewer on 1 of 2 (the baseline's steps over BatchNorm's: 0.90x to 1.70x)" in two
    assert "on shared cores" not in screen(1)  # one worker: no table was timed beside another
    assert (
        "**1 of 3** (`t2`): reused from an earlier run of the suite; their speed in seconds compares only if "
        "that run trained one table at a time (`-j 1`). In steps, at one shared setting, BatchNorm needed fewer "
        "on 1 of 1 (the baseline's steps over BatchNorm's: 1.30x)."
    ) in screen(1)


def test_every_caveat_kind_has_its_words_on_the_suite_page() -> None:
    """A table's summary.json names any of checks.KINDS; the suite's page says each in words."""
    from pipeline.analysis.checks import KINDS
    from pipeline.reporting.suite_pages import WEAKNESSES

    assert set(WEAKNESSES) == set(KINDS)
