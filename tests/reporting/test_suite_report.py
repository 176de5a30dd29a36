"""The suite's analysis and report from fixed per-table headlines (no DVC, no training)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.evaluation import pooling
from pipeline.project.suite_config import Suite, TableSpec
from pipeline.reporting import pooled, suite_report
from pipeline.reporting.claims import FAMILY
from pipeline.reporting.document import strip_volatile
from pipeline.reporting.pooled import FAILED, FINISHED, TableResult
from pipeline.tracking import ui

# The four tables of tests/evaluation/test_pooling.py: minority effects and standard errors.
EFFECTS = [0.02, 0.05, -0.01, 0.03]
SES = [0.01, 0.02, 0.015, 0.01]
Z = pooling.z_value(0.95)


def headline(effect: float, se: float, ap: float) -> dict[str, Any]:
    """A table's metrics/summary.json: the minority claim as given, the others flat zero."""
    effects = {c: {"mean": 0.0, "low": -0.01, "high": 0.01, "band": 0.05, "p_holm": 1.0} for c in FAMILY}
    effects["minority"] = {"mean": effect, "low": effect - Z * se, "high": effect + Z * se, "band": 0.02,
                           "p_holm": 0.5}
    return {"test_ap": {"batchnorm": ap + effect, "baseline": ap}, "verdict": {c: "inconclusive" for c in FAMILY},
            "effect": effects, "reference_test_ap": {"logistic_regression": 0.5, "hist_gradient_boosting": 0.6}}


@pytest.fixture(scope="module")
def tables() -> list[TableResult]:
    found = [TableResult(f"t{i}", f"default-t{i}-0000000{i}", FINISHED, f"table {i}", headline=headline(e, s, 0.55))
             for i, (e, s) in enumerate(zip(EFFECTS, SES))]
    return [*found, TableResult("broken", "default-broken-00000009", FAILED, "a broken one",
                                "prepare: error: the test part holds 2 positives, fewer than 8")]


@pytest.fixture(scope="module")
def claims(tables: list[TableResult]) -> list[pooled.PooledClaim]:
    return pooled.pooled_claims(tables, 0.95, seed=0, samples=2000)


def test_pooled_claims_use_every_finished_table_and_match_the_hand_values(claims: list[pooled.PooledClaim]) -> None:
    assert [c.claim for c in claims] == list(FAMILY)
    minority = claims[0]
    assert [e.table for e in minority.tables] == ["t0", "t1", "t2", "t3"]  # the failed table is left out
    assert minority.pooled.mean == pytest.approx(0.0212136, abs=1e-6)  # the hand value of test_pooling
    assert minority.pooled.i2 == pytest.approx(0.582496, abs=1e-5)
    assert minority.wilcoxon_p == pytest.approx(0.25)
    assert minority.counts == pooling.Counts(2, 2, 0) and minority.rope == 0.02
    assert pooled.answer(minority) == "better"  # interval above 0, mean past the ROPE (0.0212 >= 0.02)
    assert pooled.answer(claims[1]) == "equivalent"


def test_ranks_place_each_model_per_table(tables: list[TableResult]) -> None:
    ranks = pooled.ranks(tables)
    assert set(ranks) == {"t0", "t1", "t2", "t3"}
    assert ranks["t1"]["batchnorm"] == (1, pytest.approx(0.6))  # 0.55 + 0.05 against HGB 0.6: first
    assert ranks["t2"]["hist_gradient_boosting"][0] == 1 and ranks["t2"]["batchnorm"][0] == 3


def test_report_opens_with_the_pooled_verdict_and_forest_plots(tables: list[TableResult],
                                                               claims: list[pooled.PooledClaim], tmp_path: Path) -> None:
    suite = Suite(name="default", tables=[TableSpec(name=t.name, source="synthetic") for t in tables])
    (tmp_path / "figures").mkdir()
    doc = suite_report.build(suite, tables, claims, pooled.ranks(tables), tmp_path / "figures", 0.95, "now")
    md = strip_volatile(doc.markdown(tmp_path))
    first = md.index("## Pooled verdict per claim")
    assert first < md.index("![") < md.index("## What each reading answers")  # verdict, then forest plots
    assert "| BatchNorm catches more fraud (test AP) | **better** | +0.0212 [+0.00158, +0.0409] | 58% | 0.25 |" in md
    assert all((tmp_path / "figures" / f"forest_{c}.png").is_file() for c in FAMILY)
    assert (tmp_path / "figures" / "ranks.png").is_file()
    assert "**failed**: prepare: error: the test part holds 2 positives" in md
    assert "data:image/png;base64," in doc.html()
    head = pooled.headline("default", tables, claims, pooled.ranks(tables))
    assert list(head)[:2] == ["suite", "pooled"] and head["failed"] == 1 and head["finished"] == 4
    assert head["tables"]["broken"] == {"status": "failed", "experiment": "default-broken-00000009",
                                        "reason": "prepare: error: the test part holds 2 positives, fewer than 8"}
    assert head["pooled"]["minority"]["wins"] == 2
    json.dumps(head, allow_nan=False)  # no NaN in the headline


def test_weak_tables_are_named_and_the_verdict_is_rechecked_on_the_sound_ones(tmp_path: Path) -> None:
    """t0 was cut off while improving, t1 only sits at an edge (still sound), t3 predates caveat kinds (not
    sound): the minority claim re-pooled over t1 and t2 alone, against hand values (DerSimonian-Laird of
    0.05 and -0.01 with standard errors 0.02 and 0.015)."""
    kinds = [["cut_off", "few_replicates"], ["at_edge"], [], None]
    found = [TableResult(f"t{i}", f"default-t{i}-0000000{i}", FINISHED, f"table {i}",
                         headline={**headline(e, s, 0.55), **({} if k is None else {"caveat_kinds": k})})
             for i, (e, s, k) in enumerate(zip(EFFECTS, SES, kinds))]
    assert [t.sound for t in found] == [False, True, True, False]
    claims = pooled.pooled_claims(found, 0.95, seed=0, samples=2000)
    minority = claims[0]
    assert minority.sound_tables == ["t1", "t2"]
    assert pooled.answer(minority) == "better"
    # weights 2500 and 4444.4: fixed mean 0.0116, Q = 5.76, c = 6944.4 - (2500^2 + 4444.4^2) / 6944.4 = 3200,
    # tau2 = (Q - 1) / c = 0.0014875, weights 1 / (se^2 + tau2): mean 0.0185417, se 0.0299645
    assert minority.sound.tau2 == pytest.approx(0.0014875, rel=1e-6)
    assert minority.sound.mean == pytest.approx(0.0185417, abs=1e-6)
    assert minority.sound.low == pytest.approx(0.0185417 - Z * 0.0299645, abs=1e-6)
    assert pooled.sound_answer(minority) == "inconclusive"
    assert pooled.weak_tables(found) == {"cut_off": ["t0"], "at_edge": ["t1"], "few_replicates": ["t0"]}
    suite = Suite(name="default", tables=[TableSpec(name=t.name, source="synthetic") for t in found])
    (tmp_path / "figures").mkdir()
    md = strip_volatile(suite_report.build(suite, found, claims, pooled.ranks(found), tmp_path / "figures", 0.95,
                                           "now").markdown(tmp_path))
    screen = md[:md.index("![")]  # the first screen: before the first forest plot
    assert "| **inconclusive** +0.0185 [-0.0402, +0.0773] (2) |" in screen
    assert "**1 of 4** (`t0`): a run had its best validation AP at the epoch cap" in screen
    assert ("**Sound tables** (none below the logistic regression, cut off while improving, with its tuning "
            "still climbing): 2 of 4 (`t1`, `t2`)") in screen
    assert "BatchNorm catches more fraud (test AP) (better → inconclusive): the weak tables carry" in screen
    assert "1 table(s) finished before their caveats were recorded (`t3`)" in screen
    assert "| **cut_off**, few_replicates |" in md and "| not recorded |" in md
    head = pooled.headline("default", found, claims, pooled.ranks(found))
    assert head["pooled"]["minority"]["sound"]["answer"] == "inconclusive"
    assert head["pooled"]["minority"]["sound"]["tables"] == ["t1", "t2"]
    assert head["tables"]["t0"]["sound"] is False and head["tables"]["t3"]["caveat_kinds"] is None
    json.dumps(head, allow_nan=False)


def test_tables_timed_side_by_side_are_named_with_their_steps(tmp_path: Path) -> None:
    """With 2 workers, the tables this invocation trained (not the reused one) had their seconds measured
    under each other's load: named, with the steps at a shared setting beside them; with 1 worker, not."""
    steps = [1.7, 0.9, 1.3]
    found = [TableResult(f"t{i}", f"default-t{i}-0000000{i}", FINISHED, f"table {i}", reused=i == 2,
                         headline={**headline(e, s, 0.55), "caveat_kinds": [],
                                   "shared_setting": {"batchnorm": {"pairs": 4, "steps_speedup": up}}})
             for i, (e, s, up) in enumerate(zip(EFFECTS, SES, steps))]
    assert [t.name for t in pooled.side_by_side(found, 2)] == ["t0", "t1"]
    assert pooled.side_by_side(found, 1) == [] and pooled.side_by_side(found[1:], 2) == []  # one table ran
    claims = pooled.pooled_claims(found, 0.95, seed=0, samples=2000)
    suite = Suite(name="default", tables=[TableSpec(name=t.name, source="synthetic") for t in found])
    (tmp_path / "figures").mkdir()

    def screen(jobs: int) -> str:
        md = suite_report.build(suite, found, claims, pooled.ranks(found), tmp_path / "figures", 0.95, "now",
                                jobs).markdown(tmp_path)
        return md[:md.index("![")]

    two = screen(2)
    assert "**2 of 3** (`t0`, `t1`): trained 2 tables at a time on shared cores (`-j 2`)" in two
    assert "BatchNorm needed fewer on 1 of 2 (the baseline's steps over BatchNorm's: 0.90x to 1.70x)" in two
    assert "on shared cores" not in screen(1)  # one worker: no table was timed beside another
    assert ("**1 of 3** (`t2`): reused from an earlier run of the suite; their speed in seconds compares only if "
            "that run trained one table at a time (`-j 1`). In steps, at one shared setting, BatchNorm needed fewer "
            "on 1 of 1 (the baseline's steps over BatchNorm's: 1.30x).") in screen(1)
    assert pooled.headline("default", found, claims, pooled.ranks(found), 2)["timed_side_by_side"] == ["t0", "t1"]


def test_saved_views_group_runs_by_variant() -> None:
    for state in (ui.view_state("abc123"), ui.suite_view_state("default")):
        assert state["groupBy"] == {"aggregateFunction": "average",
                                    "groupByKeys": [{"mode": "tag", "groupByData": "pipeline.variant"}]}
        assert state["useGroupedValuesInCharts"] is True and state["lifecycleFilter"] == "Active"
    assert "tags.`pipeline.suite` = 'default'" in ui.suite_view_state("default")["searchFilter"]
