"""Every model's fraud probabilities on the rows of its own split: the compared models of each
replicate, the reference models fitted on each replicate (tuned once, on the tuning split), and the
tuning models on the tuning split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pipeline.data.prepared import Split
from pipeline.evaluation.references import estimator_params, fit_at, fit_reference, reference_inputs
from pipeline.modeling.network import MLP, from_checkpoint, logits
from pipeline.project.artefacts import PrepareSummary, RunFile, load_checkpoint
from pipeline.project.layout import TUNING, Layout, model_name
from pipeline.project.params import Params
from pipeline.runtime.errors import StageError

Parts = dict[str, Split]  # train, val, test of one split


@dataclass(frozen=True)
class Scored:
    """One model's predicted fraud probabilities on every part of its split."""

    name: str
    kind: str  # "mlp" or "reference"
    split: str  # the split it trained on and is evaluated on
    replicate: int  # its replicate (its seed)
    probabilities: dict[str, np.ndarray]
    run: RunFile | None = None  # trained models: where their MLflow run is
    model: Any = None  # the network (mlp) or the fitted estimator (reference)
    details: dict[str, Any] | None = None  # reference models: settings, grid


def probabilities(model: MLP, parts: Parts) -> dict[str, np.ndarray]:
    """A network's fraud probabilities on each part, in eval mode."""
    return {
        name: torch.sigmoid(logits(model, torch.from_numpy(part.x))).numpy().astype(np.float64)
        for name, part in parts.items()
    }


def network(payload: dict[str, Any]) -> MLP:
    """The network a checkpoint describes (eval mode)."""
    try:
        return from_checkpoint(payload)
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise StageError(f"checkpoint does not match its model config ({exc})") from None


def compared(params: Params, layout: Layout, summary: PrepareSummary, parts: dict[str, Parts]) -> list[Scored]:
    """Every variant's compared model of every replicate, on its replicate's split."""
    out = []
    for replicate, split in enumerate(summary.replicates):
        for variant in params.train.variants:
            name = model_name(variant, replicate)
            model = network(load_checkpoint(layout.checkpoint(name), summary))
            out.append(
                Scored(
                    name,
                    "mlp",
                    split,
                    replicate,
                    probabilities(model, parts[split]),
                    run=RunFile.read(layout.run_file(name), "train"),
                    model=model,
                )
            )
    return out


def references(params: Params, summary: PrepareSummary, parts: dict[str, Parts]) -> list[Scored]:
    """Each reference model tuned once on the tuning split (its grid on validation AP), then fitted
    at that grid point on every replicate's split, as the compared models are."""
    out, seed = [], params.evaluate.bootstrap.seed
    first = len(summary.numeric_inputs)  # the category indices follow the numeric inputs
    categories = {first + j: size for j, size in enumerate(summary.embedding_rows.values())}
    for name in params.evaluate.references.names():
        tuning = {p: (reference_inputs(name, part), part.y) for p, part in parts[TUNING].items()}
        tuned = fit_reference(name, params.evaluate.references, tuning["train"], tuning["val"], seed, categories)
        for replicate, split in enumerate(summary.replicates):
            rows = {p: (reference_inputs(name, part), part.y) for p, part in parts[split].items()}
            model = fit_at(name, tuned.chosen, rows["train"], rows["val"], seed, categories)
            scores = {p: model.predict_proba(x)[:, 1].astype(np.float64) for p, (x, _) in rows.items()}
            details = {
                "chosen": tuned.chosen,
                "grid": tuned.grid,
                "params": estimator_params(type(tuned)(name, model, tuned.chosen, tuned.grid)),
            }
            out.append(
                Scored(model_name(name, replicate), "reference", split, replicate, scores, model=model, details=details)
            )
    return out
