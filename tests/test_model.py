import pytest
import torch

from pipeline.model import MLPConfig, build, checkpoint, from_checkpoint


def config(batchnorm: bool, placement: str = "before") -> MLPConfig:
    return MLPConfig(n_features=6, hidden=(16, 8), dropout=0.1, activation="relu", batchnorm=batchnorm,
                     batchnorm_placement=placement)


@pytest.mark.parametrize("variant", ["batchnorm", "baseline"])
def test_batchnorm_layers_exist_exactly_when_asked(variant: str) -> None:
    model = build(config(variant == "batchnorm"), seed=0)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(norms) == (2 if variant == "batchnorm" else 0)


@pytest.mark.parametrize("placement", ["before", "after"])
def test_placement_before_or_after_activation(placement: str) -> None:
    model = build(config(True, placement), seed=0).eval()
    block = model.blocks[0]
    x = torch.randn(4, 6)
    z = block.linear(x)
    expected = block.act(block.norm(z)) if placement == "before" else block.norm(block.act(z))
    torch.testing.assert_close(block(x), expected)


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
