"""Tables' headlines (metrics/summary.json) made by hand, for the suite's analysis and pages."""

from __future__ import annotations

from typing import Any

from pipeline.analysis import statistics
from pipeline.analysis.claims import FAMILY
from pipeline.analysis.pooling import FAILED, FINISHED, TableResult
from pipeline.project.artefacts import Answer, Effect, Headline, SharedFigures
from pipeline.project.params import Setting
from pipeline.project.variants import PALETTE

# Four tables: the minority claim's effects (test AP, variant minus baseline) and standard errors.
EFFECTS = [0.02, 0.05, -0.01, 0.03]
SES = [0.01, 0.02, 0.015, 0.01]
Z = statistics.z_value(0.95)
SETTING = Setting(lr=0.01, weight_decay=0.0, batch_size=128, pos_weight="none", dropout=0.0)


def headline(
    effect: float, se: float, ap: float, caveat_kinds: list[str] | None = None, steps_speedup: float | None = None
) -> Headline:
    """A table's headline: the minority claim as given (a normal interval of ``se``), the others flat zero."""
    effects = {c: Effect(mean=0.0, low=-0.01, high=0.01, band=0.05, p_holm=1.0) for c in FAMILY}
    effects["minority"] = Effect(mean=effect, low=effect - Z * se, high=effect + Z * se, band=0.02, p_holm=0.5)
    shared = {"batchnorm": SharedFigures(pairs=4, steps_speedup=steps_speedup, loss_fall=0.0)} if steps_speedup else {}
    values: dict[str, Any] = {"batchnorm": 0.0, "baseline": 0.0}
    return Headline(
        test_ap={"batchnorm": ap + effect, "baseline": ap},
        verdict=dict.fromkeys(FAMILY, "inconclusive"),
        effect=effects,
        test_recall=values,
        test_precision=values,
        test_f1=values,
        reference_test_ap={"logistic_regression": 0.5, "hist_gradient_boosting": 0.6},
        shared_setting=shared,
        caveats=[],
        caveat_kinds=caveat_kinds or [],
        setting={"batchnorm": SETTING, "baseline": SETTING},
        threshold="max_f1",
        replicates=10,
        reference="baseline",
        candidate="batchnorm",
    )


def said(sentence: str = "") -> Answer:
    """A table's metrics/answer.json for the default question (BatchNorm against the baseline)."""
    return Answer(
        sentences={"batchnorm": sentence} if sentence else {},
        titles={"batchnorm": "BatchNorm", "baseline": "the baseline"},
        labels={"batchnorm": "with BatchNorm", "baseline": "without normalisation"},
        colors={"batchnorm": PALETTE[0], "baseline": PALETTE[1]},
        reference="baseline",
    )


def four_tables_and_a_broken_one() -> list[TableResult]:
    """The four tables of EFFECTS and SES (test AP 0.55 for the baseline), and one that failed."""
    found = [
        TableResult(
            f"t{i}", f"default-t{i}-0000000{i}", FINISHED, f"table {i}", headline=headline(e, s, 0.55), answer=said()
        )
        for i, (e, s) in enumerate(zip(EFFECTS, SES))
    ]
    return [
        *found,
        TableResult(
            "broken",
            "default-broken-00000009",
            FAILED,
            "a broken one",
            "prepare: error: the test part holds 2 positives, fewer than 8",
        ),
    ]
