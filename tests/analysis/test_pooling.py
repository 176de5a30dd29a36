"""The suite's analysis from fixed per-table headlines (no DVC, no training): every claim pooled across the
finished tables against hand values, each model's rank per table, the weak tables and the sound ones, the
tables timed side by side, and the suite's headline JSON."""

from __future__ import annotations

import json

import pytest

from pipeline.analysis import pooling, statistics
from pipeline.analysis.claims import FAMILY
from pipeline.analysis.pooling import FINISHED, TableResult
from tests.helpers.headlines import EFFECTS, SES, Z, four_tables_and_a_broken_one, headline, said


@pytest.fixture(scope="module")
def tables() -> list[TableResult]:
    return four_tables_and_a_broken_one()


@pytest.fixture(scope="module")
def claims(tables: list[TableResult]) -> list[pooling.PooledClaim]:
    return pooling.pooled_claims(tables, 0.95, seed=0, samples=2000)


def test_pooled_claims_use_every_finished_table_and_match_the_hand_values(claims: list[pooling.PooledClaim]) -> None:
    assert [c.claim for c in claims] == list(FAMILY)
    minority = claims[0]
    assert [e.table for e in minority.tables] == ["t0", "t1", "t2", "t3"]  # the failed table is left out
    assert minority.pooled.mean == pytest.approx(0.0212136, abs=1e-6)  # test_statistics.py's hand value
    assert minority.pooled.i2 == pytest.approx(0.582496, abs=1e-5)
    assert minority.wilcoxon_p == pytest.approx(0.25)
    assert minority.counts == statistics.Counts(2, 2, 0) and minority.rope == 0.02
    assert pooling.answer(minority) == "better"  # interval above 0, mean past the ROPE (0.0212 >= 0.02)
    assert pooling.answer(claims[1]) == "equivalent"


def test_ranks_place_each_model_per_table(tables: list[TableResult]) -> None:
    ranks = pooling.ranks(tables)
    assert set(ranks) == {"t0", "t1", "t2", "t3"}
    assert ranks["t1"]["batchnorm"] == (1, pytest.approx(0.6))  # 0.55 + 0.05 against HGB 0.6: first
    assert ranks["t2"]["hist_gradient_boosting"][0] == 1 and ranks["t2"]["batchnorm"][0] == 3


def test_the_suite_headline_gives_the_pooled_reading_first(
    tables: list[TableResult], claims: list[pooling.PooledClaim]
) -> None:
    head = pooling.suite_headline("default", tables, claims, pooling.ranks(tables))
    assert list(head)[:2] == ["suite", "pooled"] and head["failed"] == 1 and head["finished"] == 4
    assert head["tables"]["broken"] == {
        "status": "failed",
        "experiment": "default-broken-00000009",
        "reason": "prepare: error: the test part holds 2 positives, fewer than 8",
    }
    assert head["pooled"]["minority"]["wins"] == 2
    json.dumps(head, allow_nan=False)  # no NaN in the headline


def test_weak_tables_are_named_and_the_verdict_is_rechecked_on_the_sound_ones() -> None:
    """t0 was cut off while improving, t1 only sits at an edge (still sound), t3 ranks below the logistic
    regression (not sound): the minority claim re-pooled over t1 and t2 alone, against hand values
    (DerSimonian-Laird of 0.05 and -0.01 with standard errors 0.02 and 0.015)."""
    kinds = [["cut_off", "few_replicates"], ["at_edge"], [], ["below_yardstick"]]
    found = [
        TableResult(
            f"t{i}", f"default-t{i}-0000000{i}", FINISHED, f"table {i}", headline=headline(e, s, 0.55, k), answer=said()
        )
        for i, (e, s, k) in enumerate(zip(EFFECTS, SES, kinds))
    ]
    assert [t.sound for t in found] == [False, True, True, False]
    minority = pooling.pooled_claims(found, 0.95, seed=0, samples=2000)[0]
    assert minority.sound_tables == ["t1", "t2"]
    assert pooling.answer(minority) == "better"
    # weights 2500 and 4444.4: fixed mean 0.0116, Q = 5.76, c = 6944.4 - (2500^2 + 4444.4^2) / 6944.4 = 3200,
    # tau2 = (Q - 1) / c = 0.0014875, weights 1 / (se^2 + tau2): mean 0.0185417, se 0.0299645
    assert minority.sound.tau2 == pytest.approx(0.0014875, rel=1e-6)
    assert minority.sound.mean == pytest.approx(0.0185417, abs=1e-6)
    assert minority.sound.low == pytest.approx(0.0185417 - Z * 0.0299645, abs=1e-6)
    assert pooling.sound_answer(minority) == "inconclusive"
    assert pooling.weak_tables(found) == {
        "below_yardstick": ["t3"],
        "cut_off": ["t0"],
        "at_edge": ["t1"],
        "few_replicates": ["t0"],
    }
    head = pooling.suite_headline("default", found, [minority], pooling.ranks(found))
    assert head["pooled"]["minority"]["sound"] == {
        "answer": "inconclusive",
        "mean": pytest.approx(0.018542, abs=1e-6),
        "low": pytest.approx(0.0185417 - Z * 0.0299645, abs=1e-6),
        "high": pytest.approx(0.0185417 + Z * 0.0299645, abs=1e-6),
        "tables": ["t1", "t2"],
    }
    assert head["tables"]["t0"]["sound"] is False and head["tables"]["t3"]["caveat_kinds"] == ["below_yardstick"]


def test_the_tables_this_invocation_trained_side_by_side_are_named() -> None:
    """With 2 workers, the tables trained now (not the reused one) had their seconds measured under each
    other's load; with 1 worker, or one table trained, none."""
    found = [
        TableResult(
            f"t{i}",
            f"default-t{i}-0000000{i}",
            FINISHED,
            f"table {i}",
            reused=i == 2,
            headline=headline(e, s, 0.55),
            answer=said(),
        )
        for i, (e, s) in enumerate(zip(EFFECTS[:3], SES[:3]))
    ]
    assert [t.name for t in pooling.side_by_side(found, 2)] == ["t0", "t1"]
    assert pooling.side_by_side(found, 1) == [] and pooling.side_by_side(found[1:], 2) == []  # one table ran
    claims = pooling.pooled_claims(found, 0.95, seed=0, samples=2000)
    assert pooling.suite_headline("default", found, claims, pooling.ranks(found), 2)["timed_side_by_side"] == [
        "t0",
        "t1",
    ]
