import pytest
import torch

from pipeline.project.variants import variant as variant_entry
from pipeline.modeling.model import MLPConfig, build, checkpoint, from_checkpoint


def config(batchnorm: bool, placement: str = "before", dropout: float = 0.1, norm: str | None = None) -> MLPConfig:
    return MLPConfig(n_features=6, hidden=(16, 8), dropout=dropout, activation="relu",
                     norm=norm or ("batchnorm" if batchnorm else "none"), norm_placement=placement)


@pytest.mark.parametrize("variant", ["batchnorm", "baseline", "layernorm"])
def test_normalisation_layers_exist_exactly_when_asked(variant: str) -> None:
    model = build(config(False, norm=variant_entry(variant).norm), seed=0)
    batch = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    layer = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert (len(batch), len(layer)) == {"batchnorm": (2, 0), "layernorm": (0, 2), "baseline": (0, 0)}[variant]


def test_placement_before_or_after_activation() -> None:
    """Before: ReLU comes last, so a block's outputs are >= 0 and about half are 0 (the normalised
    pre-activations are centred). After: BatchNorm comes last, so in training mode each unit's
    outputs over the batch have mean 0 and variance 1, negatives included."""
    x = torch.randn(512, 6, generator=torch.Generator().manual_seed(0)) * 5 + 3
    before = build(config(True, "before", dropout=0.0), seed=0).train().blocks[0](x).detach()
    after = build(config(True, "after", dropout=0.0), seed=0).train().blocks[0](x).detach()
    assert before.min() >= 0 and 0.35 < (before == 0).float().mean() < 0.65
    assert (after < 0).any()
    torch.testing.assert_close(after.mean(0), torch.zeros(16), atol=1e-5, rtol=0)
    torch.testing.assert_close(after.var(0, unbiased=False), torch.ones(16), atol=1e-3, rtol=0)


def test_shared_layers_start_identical() -> None:
    bn, base = build(config(True), seed=7).state_dict(), build(config(False), seed=7).state_dict()
    shared = set(bn) & set(base)
    assert shared == set(base) and {k for k in bn if k not in base} == {k for k in bn if ".norm." in k}
    for key in shared:
        assert torch.equal(bn[key], base[key]), key
    other = build(config(False), seed=8).state_dict()
    assert not torch.equal(other["blocks.0.linear.weight"], base["blocks.0.linear.weight"])


@pytest.mark.parametrize("variant", ["batchnorm", "baseline"])
def test_eval_output_of_a_row_does_not_depend_on_its_batch(variant: str) -> None:
    model = build(config(variant == "batchnorm"), seed=0)
    model.train()
    for _ in range(3):  # give BatchNorm non-trivial running statistics
        model(torch.randn(32, 6) * 3 + 1)
    model.eval()
    row = torch.randn(1, 6)
    alone = model(row)
    in_batch = model(torch.cat([row, torch.randn(63, 6) * 10]))[:1]
    torch.testing.assert_close(alone, in_batch)


def test_checkpoint_rebuilds_model_alone() -> None:
    model = build(config(True), seed=3).eval()
    payload = checkpoint(model, variant="batchnorm", seed=3)
    rebuilt = from_checkpoint(payload)
    x = torch.randn(5, 6)
    torch.testing.assert_close(rebuilt(x), model(x))
    assert payload["config"]["hidden"] == [16, 8]
