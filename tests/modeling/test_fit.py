import copy
import math
from dataclasses import replace

import pytest
import torch

from pipeline.evaluation.ranking import epoch_metrics
from pipeline.modeling.model import MLPConfig, build
from pipeline.modeling.batches import BatchError, batch_slices
from pipeline.modeling.devices import resolve_device
from pipeline.modeling.fit import DivergedError, FitConfig, FitData, FitEnv, FitHooks, FitResult, Scorer, fit
from pipeline.modeling.snapshots import Snapshot


def toy(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    y = ((x[:, 0] + 0.5 * x[:, 1] + 0.8 * torch.randn(n, generator=g)) > 2.0).to(torch.int8)
    return x, y


def mlp(batchnorm: bool, dropout: float = 0.0) -> MLPConfig:
    return MLPConfig(n_features=5, hidden=(16,), dropout=dropout, activation="relu",
                     norm="batchnorm" if batchnorm else "none", norm_placement="before")


BASE = FitConfig(epochs=3, batch_size=64, min_batch=2, lr=1e-2, seed=0, optimizer="adam", weight_decay=0.0,
                 momentum=0.9, pos_weight=None, grad_clip=0.0, patience=0, bf16=False)
CPU = torch.device("cpu")


def train(model: torch.nn.Module, rows: tuple, val: tuple, cfg: FitConfig, score: Scorer = epoch_metrics,
          device: torch.device = CPU, resume: Snapshot | None = None, **hooks: object) -> FitResult:
    """fit() on one process with these rows, scorer and hooks."""
    return fit(model, FitData(rows, val), cfg, FitEnv(device), FitHooks(score, **hooks), resume)  # type: ignore[arg-type]


def run_fit(model: torch.nn.Module, n_train: int = 600, **changes: object) -> list[dict]:
    return train(model, toy(n_train, 0), toy(300, 1), replace(BASE, **changes)).history


@pytest.mark.parametrize("n", [2, 9, 10, 64, 65, 129, 1000, 1032])
@pytest.mark.parametrize(("batch_size", "min_batch"), [(2, 2), (4, 2), (64, 32), (1024, 32), (8, 32)])
def test_batches_cover_every_row_once_and_none_is_below_the_minimum(n: int, batch_size: int, min_batch: int) -> None:
    if n < min(min_batch, batch_size):
        with pytest.raises(BatchError):
            batch_slices(n, batch_size, min_batch)
        return
    slices = batch_slices(n, batch_size, min_batch)
    rows = [i for s in slices for i in range(s.start, s.stop)]
    assert rows == list(range(n))  # every row once, in order
    smallest = min(min_batch, batch_size)
    assert all(s.stop - s.start >= smallest for s in slices)
    assert all(s.stop - s.start <= batch_size + smallest - 1 for s in slices)  # a merged tail stays short


def test_the_issue_case_1032_rows_at_1024_is_one_batch_not_a_batch_of_8() -> None:
    assert [(s.start, s.stop) for s in batch_slices(1032, 1024, 32)] == [(0, 1032)]
    assert [(s.start, s.stop) for s in batch_slices(1100, 1024, 32)] == [(0, 1024), (1024, 1100)]


def test_a_split_smaller_than_the_minimum_batch_is_an_error() -> None:
    with pytest.raises(BatchError, match="fewer than the smallest batch allowed .*train.min_batch"):
        batch_slices(20, 1024, 32)


def test_batchnorm_trains_when_a_single_row_would_be_left_over() -> None:
    """641 rows at batch 64 leave one row: BatchNorm raises on a batch of one, so it joins the batch before."""
    result = train(build(mlp(True), seed=0), toy(641, 0), toy(300, 1), BASE)
    assert len(result.history) == 3 and all(math.isfinite(h["train_loss"]) for h in result.history)
    assert result.batch_sizes == [64] * 9 + [65]


@pytest.mark.parametrize("variant", ["batchnorm", "baseline"])
def test_history_has_every_metric_each_epoch(variant: str) -> None:
    history = run_fit(build(mlp(variant == "batchnorm", dropout=0.1), seed=0))
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert set(history[0]) == {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                               "val_precision", "val_recall", "val_ap", "epoch_seconds", "samples_per_second", "lr",
                               "stack_size"}
    assert all(math.isfinite(v) for h in history for v in h.values())


def test_scorer_receives_validation_labels_and_eval_mode_logits() -> None:
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    model = build(mlp(True), seed=0)

    def scorer(y: torch.Tensor, logits: torch.Tensor) -> dict[str, float]:
        seen.append((y, logits))
        return {"val_ap": 0.5}

    x_val, y_val = toy(300, 1)
    train(model, toy(600, 0), (x_val, y_val), replace(BASE, epochs=1), scorer)
    (y, logits), = seen
    assert torch.equal(y, y_val.float())
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(logits, model(x_val))  # the kept weights, running statistics


def test_same_seed_same_history_and_weights() -> None:
    def once() -> tuple[list[dict], dict]:
        model = build(mlp(True), seed=1)
        history = train(model, toy(500, 0), toy(200, 1), replace(BASE, batch_size=32, seed=5)).history
        timing = {"epoch_seconds", "samples_per_second"}
        return [{k: v for k, v in h.items() if k not in timing} for h in history], model.state_dict()

    (h1, w1), (h2, w2) = once(), once()
    assert h1 == h2
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


def test_divergence_raises_with_advice() -> None:
    model = build(mlp(False), seed=0)
    with torch.no_grad():
        model.head.weight.fill_(float("nan"))
    with pytest.raises(DivergedError, match=r"diverged at epoch 1 .*lower train\.tune\.space\.lr \(now 0\.1\)"):
        run_fit(model, n_train=200, lr=0.1, batch_size=32)


def test_early_stopping_restores_best_epoch() -> None:
    seen: list[dict] = []
    snapshots: dict[int, dict] = {}
    model = build(mlp(True), seed=0)

    def record(epoch: int, metrics: dict) -> None:
        seen.append(metrics)
        snapshots[epoch] = {k: v.clone() for k, v in model.state_dict().items()}

    cfg = replace(BASE, epochs=40, batch_size=32, lr=0.05, patience=2)
    result = train(model, toy(400, 0), toy(200, 1), cfg, on_epoch_end=record)
    best = max(range(len(seen)), key=lambda i: seen[i]["val_ap"]) + 1
    assert result.best_epoch == best
    assert len(seen) == best + 2 or len(seen) == 40
    assert result.stopped_early == (len(seen) < 40)
    final = model.state_dict()
    assert all(torch.equal(final[k], snapshots[best][k]) for k in final)


def test_device_selection() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device is available"):
            resolve_device("cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fit_on_cuda_with_bf16() -> None:
    model = build(mlp(True), seed=0)
    result = train(model, toy(600, 0), toy(300, 1), replace(BASE, epochs=2, bf16=True), device=torch.device("cuda"))
    assert len(result.history) == 2 and math.isfinite(result.history[-1]["val_loss"])


def _without_timings(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if k not in {"epoch_seconds", "samples_per_second"}} for h in history]


def test_resuming_from_an_epoch_snapshot_trains_what_an_uninterrupted_fit_trains() -> None:
    """Weights, optimizer, shuffling generator and dropout's random state go on from the snapshot:
    the same history and the same weights, bit for bit."""
    cfg = replace(BASE, epochs=6, batch_size=32)
    snapshots: dict[int, Snapshot] = {}

    def keep(state: Snapshot) -> None:
        snapshots[state.epoch] = copy.deepcopy(state)

    whole = build(mlp(True, dropout=0.3), seed=2)
    expected = train(whole, toy(400, 0), toy(200, 1), cfg, on_snapshot=keep)
    assert [s.done for s in snapshots.values()] == [False] * 5 + [True]
    resumed_model = build(mlp(True, dropout=0.3), seed=2)
    torch.manual_seed(123)  # a restarted process: the random state is not where it was
    resumed = train(resumed_model, toy(400, 0), toy(200, 1), cfg, resume=snapshots[3])
    assert _without_timings(resumed.history) == _without_timings(expected.history)
    assert resumed.best_epoch == expected.best_epoch
    final, reference = resumed_model.state_dict(), whole.state_dict()
    assert all(torch.equal(final[k], reference[k]) for k in final)


def test_a_finished_snapshot_trains_no_epoch() -> None:
    """After early stopping, a restart must not train on: the snapshot says it is done."""
    cfg = replace(BASE, epochs=40, batch_size=32, lr=0.05, patience=2)
    states: list[Snapshot] = []
    model = build(mlp(True), seed=0)
    first = train(model, toy(400, 0), toy(200, 1), cfg, on_snapshot=states.append)
    assert first.stopped_early and states[-1].done and not states[-2].done
    epochs: list[int] = []
    again = build(mlp(True), seed=0)
    result = train(again, toy(400, 0), toy(200, 1), cfg, on_epoch_end=lambda epoch, _: epochs.append(epoch),
                   resume=states[-1])
    assert epochs == [] and result.stopped_early and result.best_epoch == first.best_epoch
    assert all(torch.equal(again.state_dict()[k], model.state_dict()[k]) for k in model.state_dict())
