"""The report's sections, each rendered on its own from the session's evaluated models: the numbers as words,
the setup, tuning, speed, verdict, diagnostics and provenance sections, the first screen and the MLflow run's
description."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.analysis import checks, claims
from pipeline.analysis.claims import Measure
from pipeline.analysis.evidence import Evidence, gather
from pipeline.project.artefacts import Coverage
from pipeline.project.layout import Layout
from pipeline.project.params import Params
from pipeline.reporting import sections, summary
from pipeline.reporting.document import Document


@pytest.fixture
def evidence(params: Params, evaluated_shared: Layout) -> Evidence:
    return gather(params, evaluated_shared)


def _markdown(build: object, folder: Path, *args: object) -> str:
    doc = Document("t")
    build(doc, *args)  # type: ignore[operator]
    return doc.markdown(folder)


def test_numbers_are_written_in_each_claims_unit() -> None:
    assert sections.signed(0.12345) == "+0.123" and sections.signed(-12345.6) == "-12,346"
    assert sections.signed(0.00011) == "+0.00011" and sections.signed(-0.0000612) == "-0.0000612"  # no e-notation
    assert sections.signed(0.2) == "+0.2" and sections.signed(0.0) == "+0"
    one = Measure("d", "ap", [0.01], np.array([0.01]), 0.01, 0.01, "seeds")
    assert sections.effect_text(one, 0.02) == "+0.01 (one unit: no interval)"
    assert sections.in_reading(one) == "+0.010"
    two = Measure("d", "log ratio", [0.01, 0.03], np.array([0.01, 0.03]), math.log(0.5), math.log(3), "seeds")
    assert sections.in_reading(two) == "1.02x [0.50x, 3.00x]"
    two = Measure("d", "ap", [0.01, 0.03], np.array([0.01, 0.03]), -0.005, 0.04, "seeds and test rows")
    assert sections.effect_text(two, 0.02) == "+0.02 [-0.005, +0.04] over seeds and test rows; practical size 0.02"
    assert sections.effect_text(two, math.nan).endswith("over seeds and test rows")  # secondary: no practical size


def test_setup_lists_the_data_the_model_and_the_column_roles(evidence: Evidence, tmp_path: Path) -> None:
    md = _markdown(sections.setup_section, tmp_path, evidence)
    assert md.count("## 2. Setup") == 1 and "hidden layers [16, 8], relu" in md
    assert "| categorical | 3 | `merchant_category` (" in md and "`card_id` (the entity)" in md
    assert "| datetime | 1 | `timestamp` |" in md and "`Amount` (log1p)" in md


def test_setup_says_what_was_imputed_kept_inferred_and_dropped(evidence: Evidence, tmp_path: Path) -> None:
    """The data section's lines on a table with gaps, many merchants, an inferred amount and a birth date:
    cells imputed per column and part (train/val/test, whatever order summary.json keeps them in), each
    category's values kept and share at "other", the inferred columns, ages and rare columns."""
    s = evidence.summary
    summary = s.model_copy(
        update={
            "imputed": {"Amount": {"test": 3, "train": 12, "val": 4}},
            "coverage": {**s.coverage, "merchant_category": Coverage(values=700, kept=24, other=0.47)},
            "inferred": {"amount": "inferred (no column 'amount')"},
            "roles": {**s.roles, "dob": "age", "street": "rare"},
            "features": [*s.features, "dob"],
        }
    )
    md = _markdown(sections.setup_section, tmp_path, replace(evidence, summary=summary))
    assert "empty or infinite cells imputed with the training part's median and a was-missing input" in md
    assert "(train/val/test of the tuning split): `Amount` 12/4/3." in md
    assert '24 of 700 values kept, 47% of rows "other")' in md
    assert "`Amount` (log1p) (the amount, inferred)" in md
    assert "| age | 1 | `dob` | a date of birth: the age in years at the row's time" in md
    assert (
        "| rare | 1 | `street` | dropped: the categories seen often enough to keep hold under 10% of its rows |" in md
    )
    plain = _markdown(sections.setup_section, tmp_path, evidence)
    assert "cells imputed" not in plain and "values kept" not in plain and "(the amount, inferred)" not in plain


def test_tuning_shows_each_variants_budget_and_best_trials(evidence: Evidence, tmp_path: Path) -> None:
    (tmp_path / "figures").mkdir()
    md = _markdown(sections.tuning_section, tmp_path, evidence, tmp_path / "figures")
    assert "Every variant had 2 trials (`grid`, seeded)" in md and (tmp_path / "figures" / "tuning.png").is_file()
    rows = [line for line in md.splitlines() if line.startswith(("| with BatchNorm |", "| without normalisation |"))]
    # one tuning seed in the small params: the noise cannot be weighed, so saturation is not established
    assert len(rows) == 2 and all("not established (last 1: " in row and "noise unknown" in row for row in rows)
    assert md.count("Best trials") == 2 and "| Trial | Validation AP (mean over tuning seeds) | Per seed |" in md


def test_speed_compares_steps_and_seconds_at_tuned_and_shared_settings(evidence: Evidence, tmp_path: Path) -> None:
    paired = {v: claims.pairs(evidence, v) for v in evidence.compared()}
    md = _markdown(sections.speed_section, tmp_path, evidence, paired)
    assert "## 7. Speed" in md and "| Replicate | 50% target | 75% target | 90% target |" in md
    assert "in 2 rounds that time every variant once" in md and "| each at its tuned setting |" in md
    assert md.count("| shared: ") == 2  # the cost of a step at each shared setting
    assert "0.0s" not in md and "**At shared settings**" in md and len(paired["batchnorm"]) == 2


def test_verdicts_in_detail_with_one_replicate_cannot_judge_noise(evidence: Evidence, tmp_path: Path) -> None:
    found = {v: claims.claims(evidence, v) for v in evidence.compared()}
    md = _markdown(sections.verdicts_section, tmp_path, evidence, found)
    assert "**Only one replicate was trained" in md and "How the verdicts are decided" in md
    # at tuned settings one replicate cannot judge noise; at shared settings two pairs cannot pass Holm
    assert all(c.status == "inconclusive" for c in found["batchnorm"])
    for c in found["batchnorm"]:  # each claim's tested sentence once, its other reading and power beside it
        assert md.count(f"**{c.text}**") == 1 and md.count(f"{c.text}. Power: with ") == 1


def test_diagnostics_and_provenance(evidence: Evidence, evaluated_shared: Layout, tmp_path: Path) -> None:
    md = _markdown(sections.diagnostics_section, tmp_path, evidence)
    assert "computed in eval mode" in md and "Leakage guard" in md
    assert md.count("\n- ") == len(checks.findings(evidence))
    md = _markdown(sections.provenance_section, tmp_path, evidence, evaluated_shared)
    assert "| `data/prepared` |" not in md  # no dvc.lock in a test folder: the data's md5 is DVC's to give
    assert md.count(".pt` |") == 2  # each compared model's checkpoint, hashed


def test_the_first_screen_and_the_runs_description(evidence: Evidence, tmp_path: Path) -> None:
    found = {v: claims.claims(evidence, v) for v in evidence.compared()}
    kinds = checks.by_kind(evidence, found)
    (tmp_path / "figures").mkdir()
    paired = {v: claims.pairs(evidence, v) for v in evidence.compared()}
    md = _markdown(summary.summary_section, tmp_path, evidence, found, kinds, paired, tmp_path / "figures")
    answer = claims.answer_sentence(evidence, "batchnorm", found["batchnorm"])
    assert answer.startswith("BatchNorm may catch more or less fraud than the baseline, the replicates cannot tell")
    assert md.index(answer) < md.index("Each claim is read twice") < md.index("| Claim | Verdict |")
    assert md.index("| Claim | Verdict |") < md.index("claims_batchnorm.png") < md.index("**Caveats**")
    assert "| BatchNorm catches more fraud (test average precision) | **inconclusive** |" in md and "**Data**" in md
    assert (tmp_path / "figures" / "claims_batchnorm.png").is_file()
    description = summary.run_description(evidence, found, checks.sentences(kinds), paired, "http://view")
    assert description.startswith(f"**{answer}**")
    assert "| BatchNorm lowers the training loss sooner (after the same examples" in description
    assert "[http://view](http://view)" in description
