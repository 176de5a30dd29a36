"""The evidence the report reads, gathered once from the stages' outputs, and its readings: each model by
replicate, the champion chosen on validation, the saved scores, the shared tuning trials, the epochs the
tables show."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.analysis.evidence import Evidence, at_epoch, describe_runs, gather, table_epochs
from pipeline.project.artefacts import Chosen, Selection, Trial, VariantSelection
from pipeline.project.layout import Layout
from pipeline.project.params import Params, Setting


@pytest.fixture
def evidence(params: Params, evaluated_shared: Layout) -> Evidence:
    return gather(params, evaluated_shared)


def test_gather_reads_every_stage_once(evidence: Evidence) -> None:
    assert evidence.replicates == [0] and evidence.names("batchnorm") == ["batchnorm-s0"]
    assert set(evidence.metrics) == {
        "batchnorm-s0",
        "baseline-s0",
        "logistic_regression-s0",
        "hist_gradient_boosting-s0",
    }
    assert set(evidence.histories) == {"batchnorm", "baseline"} and list(evidence.histories["baseline"]) == [0]
    assert evidence.compared() == ["batchnorm"]  # each candidate against the baseline
    assert evidence.setting("baseline") == evidence.selection.variants["baseline"].chosen.setting
    assert max(evidence.scaled_means.values()) < 1  # the tuning split's inputs, scaled on its training part
    assert evidence.scaled_means["train"] < 1e-5  # centred on the training part alone


def test_the_champion_is_the_best_compared_model_on_validation(evidence: Evidence) -> None:
    best = evidence.best_on_validation()
    assert best in ("batchnorm-s0", "baseline-s0")
    assert evidence.metrics[best]["val_ap"] == max(
        evidence.metrics[n]["val_ap"] for n in ("batchnorm-s0", "baseline-s0")
    )


def test_saved_scores_and_the_test_part_as_money(evidence: Evidence) -> None:
    y, p = evidence.split_scores("batchnorm-s0", "test")
    assert y.size == p.size == evidence.summary.rows["test"] and set(np.unique(y)) == {0, 1}
    ledger = evidence.ledger("batchnorm-s0")
    assert ledger is not None and ledger.amount.size == y.size and (ledger.y == y.astype(bool)).all()
    assert ledger.budget == evidence.metrics["batchnorm-s0"].alert_budget_by_day
    assert evidence.values("batchnorm", "test_ap") == [evidence.metrics["batchnorm-s0"]["test_ap"]]


def test_shared_trials_are_the_settings_both_variants_tuned() -> None:
    def setting(lr: float) -> Setting:
        return Setting(lr=lr, weight_decay=0.0, batch_size=128, pos_weight="none", dropout=0.0)

    def entry(lrs: list[float]) -> VariantSelection:
        trials = [
            Trial(
                trial=i,
                state="COMPLETE",
                setting=setting(lr),
                val_ap_by_seed={},
                diverged_at_epoch_by_seed={},
                val_ap=0.5,
            )
            for i, lr in enumerate(lrs)
        ]
        return VariantSelection(
            trials=trials,
            chosen=Chosen(setting=trials[0].setting, trial=0),
            val_ap=0.5,
            best_so_far=[0.5] * len(lrs),
            at_edge={},
        )

    selection = Selection(
        variants={"batchnorm": entry([0.01, 0.003, 0.1]), "baseline": entry([0.003, 0.02, 0.01])},
        tune_seeds=[100],
        sampler="tpe",
        trials=3,
        criterion="mean",
    )
    assert selection.shared_trials("batchnorm", "baseline") == [(setting(0.01), 0, 2), (setting(0.003), 1, 0)]
    assert selection.shared_trials("layernorm", "baseline") == []
    assert selection.shared_trials("baseline", "baseline") == []


def test_the_epochs_a_curve_table_shows() -> None:
    assert table_epochs(3) == [1] and table_epochs(12) == [1, 5, 10] and table_epochs(20) == [1, 5, 10, 15, 20]
    histories = {
        0: pd.DataFrame({"epoch": [1, 2, 3], "loss": [0.3, 0.2, 0.1]}),
        1: pd.DataFrame({"epoch": [1, 2], "loss": [0.4, 0.25]}),
    }
    assert at_epoch(histories, "loss", 2) == [0.2, 0.25] and at_epoch(histories, "loss", 3) == [0.1]  # run 1 stopped


def test_where_the_runs_went(evidence: Evidence) -> None:
    described = describe_runs(evidence.runs)
    assert described["devices"] == ["cpu"]
    assert described["groups"] == [] and described["pipelines"] == []  # trained without tracking
