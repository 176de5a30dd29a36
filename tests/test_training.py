import math

import pytest
import torch

from pipeline.model import MLPConfig, build
from pipeline.training import DivergedError, FitConfig, batch_slices, fit, resolve_device


def toy(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    y = ((x[:, 0] + 0.5 * x[:, 1] + 0.8 * torch.randn(n, generator=g)) > 2.0).to(torch.int8)
    return x, y


CFG = MLPConfig(n_features=5, hidden=(16,), dropout=0.0, activation="relu", batchnorm=True)


def test_batch_slices_drop_a_last_batch_of_one() -> None:
    assert [(s.start, s.stop) for s in batch_slices(9, 4)] == [(0, 4), (4, 8)]
    assert [(s.start, s.stop) for s in batch_slices(10, 4)] == [(0, 4), (4, 8), (8, 10)]


@pytest.mark.parametrize("variant", ["batchnorm", "baseline"])
def test_history_has_every_metric_each_epoch(variant: str) -> None:
    model = build(MLPConfig(5, (16,), 0.1, "relu", variant == "batchnorm"), seed=0)
    result = fit(model, toy(600, 0), toy(300, 1), FitConfig(epochs=3, batch_size=64, lr=1e-2, seed=0),
                 torch.device("cpu"))
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert set(result.history[0]) == {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                                      "val_precision", "val_recall", "val_ap", "epoch_seconds",
                                      "samples_per_second", "lr"}
    assert all(math.isfinite(v) for h in result.history for v in h.values())


def test_same_seed_same_history_and_weights() -> None:
    def once() -> tuple[list[dict], dict]:
        model = build(CFG, seed=1)
        result = fit(model, toy(500, 0), toy(200, 1), FitConfig(epochs=3, batch_size=32, lr=1e-2, seed=5),
                     torch.device("cpu"))
        timing = {"epoch_seconds", "samples_per_second"}
        return [{k: v for k, v in h.items() if k not in timing} for h in result.history], model.state_dict()

    (h1, w1), (h2, w2) = once(), once()
    assert h1 == h2
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


def test_divergence_raises_with_advice() -> None:
    model = build(MLPConfig(5, (16,), 0.0, "relu", False), seed=0)
    with torch.no_grad():
        model.head.weight.fill_(float("nan"))
    with pytest.raises(DivergedError, match=r"diverged at epoch 1 .*lower train\.lr \(now 0\.1\)"):
        fit(model, toy(200, 0), toy(100, 1), FitConfig(epochs=2, batch_size=32, lr=0.1, seed=0),
            torch.device("cpu"))


def test_early_stopping_restores_best_epoch() -> None:
    seen: list[dict] = []
    snapshots: dict[int, dict] = {}
    model = build(CFG, seed=0)

    def record(epoch: int, metrics: dict) -> None:
        seen.append(metrics)
        snapshots[epoch] = {k: v.clone() for k, v in model.state_dict().items()}

    cfg = FitConfig(epochs=40, batch_size=32, lr=0.05, seed=0, patience=2)
    result = fit(model, toy(400, 0), toy(200, 1), cfg, torch.device("cpu"), on_epoch_end=record)
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
    model = build(CFG, seed=0)
    result = fit(model, toy(600, 0), toy(300, 1), FitConfig(epochs=2, batch_size=64, lr=1e-2, seed=0, bf16=True),
                 torch.device("cuda"))
    assert len(result.history) == 2 and math.isfinite(result.history[-1]["val_loss"])
