"""The one training loop: batches, histories, early stopping, divergence, snapshots; a model trained in a
stack trains exactly as it does alone (a stack of one); the stack's optimizer is torch's, row by row."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytest
import torch

from pipeline.evaluation.ranking import epoch_metrics
from pipeline.modeling.network import MLP, MLPConfig, checkpoint, from_checkpoint, logits
from pipeline.training.loop import (
    BatchError,
    FitConfig,
    FitData,
    FitEnv,
    FitHooks,
    Member,
    Outcome,
    Scorer,
    Snapshot,
    batch_slices,
    fit,
    probe_steps,
)
from pipeline.training.optimizer import StackOptimizer

CPU = FitEnv(torch.device("cpu"))
BASE = FitConfig(
    epochs=3,
    batch_size=64,
    min_batch=2,
    lr=1e-2,
    seed=0,
    optimizer="adam",
    weight_decay=0.0,
    momentum=0.9,
    pos_weight=None,
    grad_clip=0.0,
    patience=0,
    bf16=False,
)
# Each member its own seed, learning rate, weight decay and class weight, as tuning trials are (rates up to
# 3e-3: at 1e-2 with BatchNorm, float32 rounding differences between two orders of summation grow
# chaotically, to about 1e-3 after 50 steps, as between two machines).
OWN = [
    {"seed": 0, "lr": 3e-3},
    {"seed": 1, "lr": 1e-3, "weight_decay": 1e-4, "pos_weight": 5.0},
    {"seed": 2, "lr": 2e-3},
    {"seed": 3, "lr": 3e-4, "weight_decay": 1e-3, "pos_weight": 2.0},
]
EMBEDDINGS = ((14, 7), (7, 5), (12, 6))  # (rows, width) per categorical column, as the synthetic source's


def toy(n: int, seed: int, features: int = 5, categorical: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows whose last ``categorical`` columns are category indices, the label depending on the first
    numeric columns (and on the first category)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    signal = x[:, 0] + 0.5 * x[:, 1]
    for j, (levels, _) in enumerate(EMBEDDINGS[:categorical]):
        x[:, features - categorical + j] = torch.randint(0, levels, (n,), generator=g).float()
    if categorical:
        signal = signal + 1.5 * (x[:, features - categorical] >= 10)
    y = ((signal + 0.8 * torch.randn(n, generator=g)) > 2.0).to(torch.int8)
    return x, y


def mlp(
    norm: str = "batchnorm",
    dropout: float = 0.0,
    features: int = 5,
    hidden: tuple[int, ...] = (16,),
    embeddings: tuple = (),
) -> MLPConfig:
    return MLPConfig(features - len(embeddings), hidden, dropout, "relu", norm, "before", embeddings)  # type: ignore[arg-type]


def train(
    config: MLPConfig,
    data: FitData,
    cfgs: list[FitConfig],
    score: Scorer = epoch_metrics,
    resume: Snapshot | None = None,
    **hooks: object,
) -> list[Outcome]:
    """fit() of one member per config, in one process."""
    return fit([Member(config, c) for c in cfgs], data, CPU, FitHooks(score, **hooks), resume)  # type: ignore[arg-type]


SMALL = FitData(toy(600, 0), toy(300, 1))


@contextmanager
def float64() -> Iterator[None]:
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


# ---------------------------------------------------------------- batches and probes


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
    with pytest.raises(BatchError, match="fewer than the smallest batch allowed .*train.min_batch"):
        batch_slices(20, 1024, 32)


def test_probe_steps_grow_geometrically_and_stop_at_the_total() -> None:
    assert sorted(probe_steps(2.0, 20)) == [1, 2, 4, 8, 16]
    assert sorted(probe_steps(1.25, 10)) == [1, 2, 3, 4, 5, 7, 8, 10]  # 6.25 -> 7, then 7.8 -> 8, 10
    assert probe_steps(0, 100) == set()


def test_batchnorm_trains_when_a_single_row_would_be_left_over() -> None:
    """641 rows at batch 64 leave one row: BatchNorm cannot train on it, so it joins the batch before."""
    (outcome,) = train(mlp(), FitData(toy(641, 0), toy(300, 1)), [BASE])
    assert len(outcome.result.history) == 3 and all(math.isfinite(h["train_loss"]) for h in outcome.result.history)
    assert outcome.result.batch_sizes == [64] * 9 + [65]


# ---------------------------------------------------------------- what an epoch records


@pytest.mark.parametrize("norm", ["batchnorm", "none"])
def test_history_has_every_metric_each_epoch(norm: str) -> None:
    (outcome,) = train(mlp(norm, dropout=0.1), SMALL, [BASE])
    history = outcome.result.history
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert set(history[0]) == {
        "epoch",
        "train_loss",
        "train_loss_eval",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "val_precision",
        "val_recall",
        "val_ap",
        "epoch_seconds",
        "samples_per_second",
        "lr",
        "stack_size",
    }
    assert all(math.isfinite(v) for h in history for v in h.values())
    assert outcome.result.probes[-1]["step"] == 3 * len(outcome.result.batch_sizes)


def test_the_loss_claims_training_loss_is_eval_mode_and_unweighted() -> None:
    """``train_loss_eval``: the epoch-end weights in eval mode (no dropout, running statistics) on the fixed
    sample of training rows (all 600 here, fewer than the sample's size), without the class weight: the
    same objective for every variant, recomputed from the kept weights. ``train_loss`` is the mean
    training-mode minibatch loss (dropout on, the class weight in): another number."""
    x, y = SMALL.train
    config = mlp(dropout=0.5)
    (outcome,) = train(config, SMALL, [replace(BASE, epochs=1, pos_weight=5.0)])
    model = from_checkpoint({"model": outcome.state, "config": config.to_dict()})
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits(model, x), y.float()).item()
    record = outcome.result.history[0]
    assert record["train_loss_eval"] == pytest.approx(expected, rel=1e-5)
    assert abs(record["train_loss"] - record["train_loss_eval"]) > 0.01


def test_the_scorer_sees_validation_labels_and_the_kept_weights_eval_mode_logits() -> None:
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def scorer(y: torch.Tensor, scores: torch.Tensor) -> dict[str, float]:
        seen.append((y, scores))
        return {"val_ap": 0.5}

    x_val, y_val = SMALL.val
    (outcome,) = train(mlp(), SMALL, [replace(BASE, epochs=1)], scorer)
    ((y, scores),) = seen
    assert torch.equal(y, y_val.float())
    kept = from_checkpoint({"model": outcome.state, "config": mlp().to_dict()})
    torch.testing.assert_close(scores, logits(kept, x_val))  # running statistics, no dropout


def test_same_seed_same_history_and_weights() -> None:
    def once() -> Outcome:
        (outcome,) = train(mlp(dropout=0.2), SMALL, [replace(BASE, batch_size=32, seed=5)])
        return outcome

    timing = {"epoch_seconds", "samples_per_second"}
    a, b = once(), once()
    assert [{k: v for k, v in h.items() if k not in timing} for h in a.result.history] == [
        {k: v for k, v in h.items() if k not in timing} for h in b.result.history
    ]
    assert all(torch.equal(a.state[k], b.state[k]) for k in a.state)  # type: ignore[index]


def test_early_stopping_keeps_the_best_epochs_weights_and_leaves_the_stack() -> None:
    cfgs = [
        replace(BASE, epochs=30, patience=2, lr=lr, seed=seed, batch_size=32) for seed, lr in ((0, 0.05), (1, 3e-4))
    ]
    done: list[tuple[int, int]] = []
    sizes: dict[int, int] = {}
    outcomes = train(
        mlp(),
        SMALL,
        cfgs,
        on_epoch=lambda e, records: sizes.__setitem__(e, len(records)),
        on_done=lambda m, o: done.append((m, len(o.result.history))),
    )
    first, epochs = done[0]
    fast, other = outcomes[first].result, outcomes[1 - first].result
    assert fast.stopped_early and fast.best_epoch == len(fast.history) - 2
    assert epochs == len(fast.history) < len(other.history)  # handed over as soon as it stopped
    assert sizes[len(fast.history) + 1] == 1  # and trained no more
    assert fast.history[-1]["stack_size"] == 2 and other.history[-1]["stack_size"] == 1
    kept = from_checkpoint({"model": outcomes[first].state, "config": mlp().to_dict()})
    best = epoch_metrics(SMALL.val[1], logits(kept, SMALL.val[0]))["val_ap"]
    assert best == pytest.approx(fast.best_val_ap, abs=1e-6)  # the best epoch's weights, not the last epoch's
    assert fast.history[-1]["val_ap"] < fast.best_val_ap


def test_a_diverged_model_leaves_with_advice_and_the_others_train_on() -> None:
    cfgs = [replace(BASE, epochs=4, optimizer="sgd", lr=1e30), replace(BASE, epochs=4, optimizer="sgd", seed=1)]
    outcomes = train(mlp("none", features=30, hidden=(256, 256)), FitData(toy(2000, 0, 30), toy(500, 1, 30)), cfgs)
    assert outcomes[0].diverged is not None and outcomes[0].state is None
    assert outcomes[0].diverged.epoch == 1 and "lower train.tune.space.lr (now 1e+30)" in str(outcomes[0].diverged)
    assert outcomes[1].diverged is None and len(outcomes[1].result.history) == 4
    assert all(math.isfinite(h["train_loss"]) for h in outcomes[1].result.history)


def test_models_of_different_loop_settings_are_never_stacked() -> None:
    with pytest.raises(ValueError, match="must share every loop setting"):
        train(mlp("none"), SMALL, [BASE, replace(BASE, batch_size=128)])
    train(mlp(dropout=0.2), SMALL, [replace(BASE, epochs=1), replace(BASE, epochs=1, seed=1)])  # dropout may differ


# ---------------------------------------------------------------- a stack trains each model as it would train alone


DATA = FitData(toy(20000, 0, 30), toy(5000, 1, 30))
CATEGORICAL = FitData(toy(20000, 0, 30, 3), toy(5000, 1, 30, 3))
STACKED = replace(BASE, epochs=3, batch_size=256, min_batch=32, lr=3e-3)


def in_float64(data: FitData) -> FitData:
    return FitData(*((x.double(), y) for x, y in (data.train, data.val)))


@pytest.mark.parametrize(
    ("norm", "categorical"),
    [("batchnorm", False), ("none", False), ("layernorm", False), ("batchnorm", True), ("none", True)],
)
def test_a_model_trained_in_a_stack_trains_as_it_would_alone(norm: str, categorical: bool) -> None:
    """The same maths: in float64, every step's training loss of a short run (3 epochs, 237 steps) within 1e-6
    of the same model trained alone (a stack of one), and the same best epoch; with embeddings too (each
    member looks up its own tables). float64, because in float32 the rounding differences of a batched
    product against a smaller one grow with BatchNorm under Adam, at a rate that depends on the machine's
    kernels; the float32 run must agree over its first 10 steps, before any of that growth."""
    cfgs = [replace(STACKED, **own) for own in OWN]
    config = mlp(norm, features=30, hidden=(64, 32), embeddings=EMBEDDINGS if categorical else ())
    data = CATEGORICAL if categorical else DATA

    def losses(members: list[FitConfig], rows: FitData) -> tuple[list[Outcome], list[list[float]]]:
        steps: list[list[float]] = []
        return train(config, rows, members, on_step=lambda step: steps.append(step.tolist())), steps

    with float64():
        rows64 = in_float64(data)
        outcomes, steps = losses(cfgs, rows64)
        assert len(steps) == 237
        for member, cfg in enumerate(cfgs):
            (alone,), alone_steps = losses([cfg], rows64)
            assert max(abs(a[0] - s[member]) for a, s in zip(alone_steps, steps, strict=True)) < 1e-6, (norm, member)
            assert outcomes[member].result.best_epoch == alone.result.best_epoch
    short = [replace(cfg, epochs=1) for cfg in cfgs]
    _, steps = losses(short, data)
    for member, cfg in enumerate(short):
        _, alone_steps = losses([cfg], data)
        assert max(abs(a[0] - s[member]) for a, s in zip(alone_steps[:10], steps[:10])) < 1e-5, (norm, member)


@pytest.mark.parametrize("kind", ["adam", "adamw", "sgd"])
def test_the_stack_optimizer_is_torchs_row_by_row(kind: str) -> None:
    torch.manual_seed(0)
    start, grads = torch.randn(3, 20), [torch.randn(3, 20) for _ in range(5)]
    lrs, decays = [1e-3, 1e-2, 3e-2], [0.0, 1e-2, 1e-1]
    flat = torch.nn.Parameter(start.clone())
    ours = StackOptimizer(flat, kind, lrs, decays, momentum=0.9)  # type: ignore[arg-type]
    rows_ = [torch.nn.Parameter(start[i].clone()) for i in range(3)]
    builders = {
        "adam": lambda p, lr, wd: torch.optim.Adam([p], lr=lr, weight_decay=wd),
        "adamw": lambda p, lr, wd: torch.optim.AdamW([p], lr=lr, weight_decay=wd),
        "sgd": lambda p, lr, wd: torch.optim.SGD([p], lr=lr, momentum=0.9, weight_decay=wd),
    }
    theirs = [builders[kind](p, lr, wd) for p, lr, wd in zip(rows_, lrs, decays)]
    for grad in grads:
        flat.grad = grad.clone()
        ours.step()
        for i, (p, opt) in enumerate(zip(rows_, theirs)):
            p.grad = grad[i].clone()
            opt.step()
    torch.testing.assert_close(flat.detach(), torch.stack([p.detach() for p in rows_]), rtol=1e-6, atol=1e-7)


def test_gradient_clipping_is_per_model() -> None:
    flat = torch.nn.Parameter(torch.zeros(2, 4))
    flat.grad = torch.tensor([[3.0, 4.0, 0.0, 0.0], [0.3, 0.4, 0.0, 0.0]])
    StackOptimizer(flat, "sgd", [0.1, 0.1], [0.0, 0.0]).clip(1.0)
    torch.testing.assert_close(flat.grad, torch.tensor([[0.6, 0.8, 0.0, 0.0], [0.3, 0.4, 0.0, 0.0]]), atol=1e-5, rtol=0)


# ---------------------------------------------------------------- snapshots (torchrun restarts)


def _without_timings(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if k not in {"epoch_seconds", "samples_per_second"}} for h in history]


@pytest.mark.parametrize("k", [1, 2])
def test_resuming_from_an_epoch_snapshot_trains_what_an_uninterrupted_fit_trains(k: int) -> None:
    """Weights, optimizer, row orders and dropout's generator go on from the snapshot: the same histories
    and the same weights, bit for bit (one model, as under torchrun, or a stack)."""
    cfgs = [replace(BASE, epochs=6, batch_size=32, seed=seed) for seed in range(k)]
    config = mlp(dropout=0.3)
    snapshots: dict[int, Snapshot] = {}
    expected = train(config, SMALL, cfgs, on_snapshot=lambda s: snapshots.__setitem__(s.epoch, copy.deepcopy(s)))
    assert [s.done for s in snapshots.values()] == [False] * 5 + [True]
    torch.manual_seed(123)  # a restarted process: nothing is where it was
    resumed = train(config, SMALL, cfgs, resume=snapshots[3])
    for again, first in zip(resumed, expected, strict=True):
        assert _without_timings(again.result.history) == _without_timings(first.result.history)
        assert again.result.best_epoch == first.result.best_epoch
        assert all(torch.equal(again.state[key], first.state[key]) for key in first.state)  # type: ignore[index]


def test_a_finished_snapshot_trains_no_epoch() -> None:
    """After early stopping, a restart must not train on: the snapshot says it is done."""
    cfg = replace(BASE, epochs=40, batch_size=32, lr=0.05, patience=2)
    states: list[Snapshot] = []
    (first,) = train(mlp(), SMALL, [cfg], on_snapshot=states.append)
    assert first.result.stopped_early and states[-1].done and not states[-2].done
    epochs: list[int] = []
    (again,) = train(mlp(), SMALL, [cfg], on_epoch=lambda epoch, _: epochs.append(epoch), resume=states[-1])
    assert epochs == [] and again.result.stopped_early and again.result.best_epoch == first.result.best_epoch
    assert all(torch.equal(again.state[k], first.state[k]) for k in first.state)  # type: ignore[index]


# ---------------------------------------------------------------- on a CUDA device (benchmarks/device_check.py)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
CUDA = FitEnv(torch.device("cuda"))


@pytest.mark.gpu
@needs_cuda
def test_fit_on_cuda_with_bf16() -> None:
    (outcome,) = fit([Member(mlp(), replace(BASE, epochs=2, bf16=True))], SMALL, CUDA, FitHooks(epoch_metrics))
    assert len(outcome.result.history) == 2 and math.isfinite(outcome.result.history[-1]["val_loss"])


@pytest.mark.gpu
@needs_cuda
def test_a_stack_on_cuda_trains_each_model_as_it_would_alone() -> None:
    """The stack test's float64 tolerance, on the device's kernels (BatchNorm, 4 members of their own seed,
    rate, weight decay and class weight; 237 steps)."""
    config = mlp("batchnorm", features=30, hidden=(64, 32))
    cfgs = [replace(STACKED, **own) for own in OWN]

    def losses(members: list[FitConfig], rows: FitData) -> list[list[float]]:
        steps: list[list[float]] = []
        hooks = FitHooks(epoch_metrics, on_step=lambda step: steps.append(step.tolist()))
        fit([Member(config, c) for c in members], rows, CUDA, hooks)
        return steps

    with float64():
        rows64 = in_float64(DATA)
        steps = losses(cfgs, rows64)
        assert len(steps) == 237
        for member, cfg in enumerate(cfgs):
            alone = losses([cfg], rows64)
            assert max(abs(a[0] - s[member]) for a, s in zip(alone, steps, strict=True)) < 1e-6, member


@pytest.mark.gpu
@needs_cuda
def test_weights_trained_on_cuda_come_back_on_the_cpu_and_score_there_as_on_the_device() -> None:
    config = mlp("batchnorm", features=30, hidden=(64, 32))
    (outcome,) = fit([Member(config, replace(STACKED, epochs=1))], DATA, CUDA, FitHooks(epoch_metrics))
    assert outcome.state is not None and {t.device.type for t in outcome.state.values()} == {"cpu"}
    on_cpu = from_checkpoint(checkpoint(config, outcome.state))
    on_device = from_checkpoint(checkpoint(config, outcome.state)).to("cuda")
    x = DATA.val[0][:2000]
    assert torch.allclose(logits(on_cpu, x), logits(on_device, x.cuda()).cpu(), atol=1e-4, rtol=1e-4)


def test_a_stack_is_one_module_with_one_flat_parameter() -> None:
    stack = MLP.initialised(mlp(), seeds=[0, 1])
    assert [name for name, _ in stack.named_parameters()] == ["flat"]
