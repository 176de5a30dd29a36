"""A model trained in a stack is the model trained alone: the same initial weights, the same steps, the
same best epoch, and a checkpoint that the single-model MLP loads and scores identically."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytest
import torch

from pipeline.evaluation.ranking import epoch_metrics
from pipeline.modeling.fit import FitConfig, FitData, FitEnv, FitHooks, FitResult, fit
from pipeline.modeling.model import MLP, MLPConfig, build, predict_logits
from pipeline.modeling.stack import StackedMLP
from pipeline.modeling.stack_fit import Member, Outcome, StackHooks, fit_stack
from pipeline.modeling.stack_optimizer import StackOptimizer

CPU = FitEnv(torch.device("cpu"))
BASE = FitConfig(epochs=4, batch_size=256, min_batch=32, lr=3e-3, seed=0, optimizer="adam", weight_decay=0.0,
                 momentum=0.9, pos_weight=None, grad_clip=0.0, patience=0, bf16=False)
# Each member its own seed, learning rate, weight decay and class weight, as tuning trials are (rates
# up to 3e-3: at 1e-2 with BatchNorm, float32 rounding differences between any two implementations
# grow chaotically, to about 1e-3 after 50 steps, as between two machines).
OWN = [dict(seed=0, lr=3e-3), dict(seed=1, lr=1e-3, weight_decay=1e-4, pos_weight=5.0),
       dict(seed=2, lr=2e-3), dict(seed=3, lr=3e-4, weight_decay=1e-3, pos_weight=2.0)]


EMBEDDINGS = ((14, 7), (7, 5), (12, 6))  # (rows, width) per categorical column, as the synthetic source's


def rows(n: int, seed: int, features: int = 30, categorical: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows whose last ``categorical`` columns are category indices (data.encoder), the label depending
    on the first numeric columns and on the first category."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    signal = x[:, 0] + 0.5 * x[:, 1]
    for j, (levels, _) in enumerate(EMBEDDINGS[:categorical]):
        x[:, features - categorical + j] = torch.randint(0, levels, (n,), generator=g).float()
    if categorical:
        signal = signal + 1.5 * (x[:, features - categorical] >= 10)  # a few "risky" categories
    y = ((signal + 0.8 * torch.randn(n, generator=g)) > 2.5).to(torch.int8)
    return x, y


DATA = FitData(rows(20000, 0), rows(5000, 1))
CATEGORICAL = FitData(rows(20000, 0, categorical=3), rows(5000, 1, categorical=3))


def mlp(norm: str, dropout: float = 0.0, placement: str = "before", categorical: bool = False) -> MLPConfig:
    if categorical:  # 27 numeric inputs, then 3 category indices
        return MLPConfig(27, (64, 32), dropout, "relu", norm, placement, EMBEDDINGS)  # type: ignore[arg-type]
    return MLPConfig(30, (64, 32), dropout, "relu", norm, placement)  # type: ignore[arg-type]


def data_for(config: MLPConfig) -> FitData:
    return CATEGORICAL if config.embeddings else DATA


def alone(config: MLPConfig, cfg: FitConfig, data: FitData | None = None) -> tuple[FitResult, list[float], MLP]:
    losses: list[float] = []
    model = build(config, cfg.seed)
    result = fit(model, data or data_for(config), cfg, CPU,
                 FitHooks(epoch_metrics, on_step=lambda loss: losses.append(float(loss))))
    return result, losses, model


def stacked(config: MLPConfig, cfgs: list[FitConfig],
            data: FitData | None = None) -> tuple[list[Outcome], list[list[float]]]:
    steps: list[list[float]] = []
    outcomes = fit_stack([Member(config, c) for c in cfgs], data or data_for(config), CPU,
                         StackHooks(epoch_metrics, on_step=lambda losses: steps.append(losses.tolist())))
    return outcomes, steps


@contextmanager
def float64() -> Iterator[None]:
    """Models built, and trained, in float64 while it is open."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def in_float64(data: FitData) -> FitData:
    """The same rows as float64 (labels unchanged)."""
    return FitData(*((x.double(), y) for x, y in (data.train, data.val)))


@pytest.mark.parametrize(("norm", "categorical"), [("batchnorm", False), ("none", False), ("layernorm", False),
                                                   ("batchnorm", True), ("none", True)])
def test_a_stacked_model_trains_as_it_would_alone(norm: str, categorical: bool) -> None:
    """The same maths: in float64, every step's training loss of a short run (3 epochs, 237 steps)
    within 1e-6 (the loss itself is taken in float32, so its last digits differ with the order of the
    sum) and the same best epoch; with embeddings too (each member looks up its own tables).

    float64, because in float32 the rounding differences of any two implementations (a batched
    product against a plain one) grow with BatchNorm under Adam, at a rate that depends on the
    machine's kernels: here past 1e-6 after ~110 steps, on another CPU past 1e-3 within 100. The
    float32 run must agree over its first 10 steps, before any of that growth."""
    cfgs = [replace(BASE, epochs=3, **own) for own in OWN]
    config = mlp(norm, categorical=categorical)
    with float64():
        data = in_float64(data_for(config))
        outcomes, steps = stacked(config, cfgs, data)
        assert len(steps) == 237
        for member, cfg in enumerate(cfgs):
            result, losses, _ = alone(config, cfg, data)
            assert max(abs(a - step[member]) for a, step in zip(losses, steps, strict=True)) < 1e-6, (norm, member)
            assert outcomes[member].result.best_epoch == result.best_epoch, (norm, member)
            assert [h["epoch"] for h in outcomes[member].result.history] == [h["epoch"] for h in result.history]
    short = [replace(cfg, epochs=1) for cfg in cfgs]
    _, steps = stacked(config, short)
    for member, cfg in enumerate(short):
        _, losses, _ = alone(config, cfg)
        assert max(abs(a - step[member]) for a, step in zip(losses[:10], steps[:10])) < 1e-5, (norm, member)


@pytest.mark.parametrize("categorical", [False, True])
def test_every_member_starts_from_the_weights_it_has_alone(categorical: bool) -> None:
    for norm in ("batchnorm", "none", "layernorm"):
        models = [build(mlp(norm, categorical=categorical), seed) for seed in (5, 6, 7)]
        stack = StackedMLP(models)
        for row, model in enumerate(models):
            state, expected = stack.member_state(row), model.state_dict()
            assert state.keys() == expected.keys()
            assert all(torch.equal(state[k], expected[k]) for k in expected), (norm, row)


@pytest.mark.parametrize(("norm", "categorical"), [("batchnorm", False), ("layernorm", False), ("none", False),
                                                   ("batchnorm", True)])
def test_a_members_checkpoint_loads_into_the_mlp_and_scores_the_same(norm: str, categorical: bool) -> None:
    config = mlp(norm, categorical=categorical)
    outcomes, _ = stacked(config, [replace(BASE, epochs=2, **own) for own in OWN[:3]])
    x_val = data_for(config).val[0]
    for outcome in outcomes:
        model = MLP(config)
        model.load_state_dict(outcome.state)  # strict: every key, every shape
        alone_scores = torch.sigmoid(predict_logits(model, x_val))
        rebuilt = StackedMLP([model])
        torch.testing.assert_close(torch.sigmoid(rebuilt.predict(x_val)[0]), alone_scores, rtol=0, atol=1e-6)
    assert outcomes[0].state["blocks.0.norm.num_batches_tracked"].item() > 0 if norm == "batchnorm" else True


@pytest.mark.parametrize("categorical", [False, True])
def test_in_eval_mode_a_rows_score_does_not_depend_on_its_batch(categorical: bool) -> None:
    config = mlp("batchnorm", categorical=categorical)
    stack = StackedMLP([build(config, seed) for seed in range(3)])
    stack.train()
    stack(data_for(config).train[0][:192].view(3, 64, 30))  # running statistics move away from their start
    x = data_for(config).val[0][:100]
    whole = stack.predict(x)
    pieces = torch.cat([stack.predict(x[:7]), stack.predict(x[7:])], dim=1)
    torch.testing.assert_close(whole, pieces, rtol=0, atol=1e-6)
    torch.testing.assert_close(stack.predict(x, chunk=16), whole, rtol=0, atol=1e-6)


def test_an_early_stopped_model_leaves_the_stack_with_its_best_weights() -> None:
    cfgs = [replace(BASE, epochs=30, patience=2, lr=lr, seed=seed) for seed, lr in ((0, 3e-3), (1, 3e-4))]
    done: list[tuple[int, int]] = []
    sizes: dict[int, int] = {}

    def on_epoch(epoch: int, records: dict[int, dict]) -> None:
        sizes[epoch] = len(records)

    outcomes = fit_stack([Member(mlp("batchnorm"), c) for c in cfgs], DATA, CPU,
                         StackHooks(epoch_metrics, on_epoch, lambda m, o: done.append((m, len(o.result.history)))))
    fast = outcomes[0].result
    assert fast.stopped_early and fast.best_epoch == len(fast.history) - 2
    assert done[0] == (0, len(fast.history))  # handed over as soon as it stopped
    assert sizes[len(fast.history) + 1] == 1  # and trained no more
    assert fast.history[-1]["stack_size"] == 2 and outcomes[1].result.history[-1]["stack_size"] == 1
    kept = MLP(mlp("batchnorm"))
    kept.load_state_dict(outcomes[0].state)  # the best epoch's weights, not the last epoch's
    best = epoch_metrics(DATA.val[1], predict_logits(kept, DATA.val[0]))["val_ap"]
    assert best == pytest.approx(fast.best_val_ap, abs=1e-6)
    assert fast.history[-1]["val_ap"] < fast.best_val_ap


def test_a_diverged_member_leaves_and_the_others_train_on() -> None:
    cfgs = [replace(BASE, epochs=4, optimizer="sgd", lr=1e30), replace(BASE, epochs=4, optimizer="sgd", seed=1)]
    config = MLPConfig(30, (256, 256), 0.0, "relu", "none", "before")
    outcomes, _ = stacked(config, cfgs)
    assert outcomes[0].diverged is not None and outcomes[0].state is None
    assert outcomes[1].diverged is None and len(outcomes[1].result.history) == 4
    assert all(math.isfinite(h["train_loss"]) for h in outcomes[1].result.history)


@pytest.mark.parametrize("kind", ["adam", "adamw", "sgd"])
def test_the_stack_optimizer_is_torchs_row_by_row(kind: str) -> None:
    torch.manual_seed(0)
    start, grads = torch.randn(3, 20), [torch.randn(3, 20) for _ in range(5)]
    lrs, decays = [1e-3, 1e-2, 3e-2], [0.0, 1e-2, 1e-1]
    flat = torch.nn.Parameter(start.clone())
    ours = StackOptimizer(flat, kind, lrs, decays, momentum=0.9)  # type: ignore[arg-type]
    rows_ = [torch.nn.Parameter(start[i].clone()) for i in range(3)]
    builders = {"adam": lambda p, lr, wd: torch.optim.Adam([p], lr=lr, weight_decay=wd),
                "adamw": lambda p, lr, wd: torch.optim.AdamW([p], lr=lr, weight_decay=wd),
                "sgd": lambda p, lr, wd: torch.optim.SGD([p], lr=lr, momentum=0.9, weight_decay=wd)}
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
    torch.testing.assert_close(flat.grad, torch.tensor([[0.6, 0.8, 0.0, 0.0], [0.3, 0.4, 0.0, 0.0]]), atol=1e-5,
                               rtol=0)


def test_models_of_different_architectures_are_never_stacked() -> None:
    with pytest.raises(ValueError, match="one architecture"):
        StackedMLP([build(mlp("batchnorm"), 0), build(mlp("none"), 0)])
    with pytest.raises(ValueError, match="must share every loop setting"):
        fit_stack([Member(mlp("none"), BASE), Member(mlp("none"), replace(BASE, batch_size=128))], DATA, CPU,
                  StackHooks(epoch_metrics))
    StackedMLP([build(mlp("batchnorm", 0.0), 0), build(mlp("batchnorm", 0.2), 1)])  # dropout may differ
