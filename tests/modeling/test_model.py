import pytest
import torch

from pipeline.project.variants import variant as variant_entry
from pipeline.modeling.model import MLPConfig, build, checkpoint, from_checkpoint


def config(batchnorm: bool, placement: str = "before", dropout: float = 0.1, norm: str | None = None,
           embeddings: tuple[tuple[int, int], ...] = ()) -> MLPConfig:
    return MLPConfig(n_features=6, hidden=(16, 8), dropout=dropout, activation="relu",
                     norm=norm or ("batchnorm" if batchnorm else "none"), norm_placement=placement,
                     embeddings=embeddings)


EMBEDDINGS = ((5, 3), (9, 4))  # two categorical columns: 5 and 9 indices, widths 3 and 4


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


@pytest.mark.parametrize("embeddings", [(), EMBEDDINGS])
def test_shared_layers_start_identical(embeddings: tuple) -> None:
    bn = build(config(True, embeddings=embeddings), seed=7).state_dict()
    base = build(config(False, embeddings=embeddings), seed=7).state_dict()
    shared = set(bn) & set(base)
    assert shared == set(base) and {k for k in bn if k not in base} == {k for k in bn if ".norm." in k}
    assert {k for k in base if k.startswith("embeddings.")} == {f"embeddings.{j}.weight" for j in range(len(embeddings))}
    for key in shared:
        assert torch.equal(bn[key], base[key]), key
    other = build(config(False, embeddings=embeddings), seed=8).state_dict()
    assert not torch.equal(other["blocks.0.linear.weight"], base["blocks.0.linear.weight"])
    if embeddings:
        assert not torch.equal(other["embeddings.0.weight"], base["embeddings.0.weight"])


def test_embeddings_are_looked_up_by_the_index_columns_and_feed_the_first_layer() -> None:
    model = build(config(False, dropout=0.0, embeddings=EMBEDDINGS), seed=0).eval()
    assert model.blocks[0].linear.in_features == 6 + 3 + 4
    numeric = torch.randn(4, 6)
    index = torch.tensor([[0.0, 8.0], [4.0, 1.0], [0.0, 8.0], [2.0, 1.0]])
    out = model(torch.cat([numeric, index], dim=1))
    by_hand = torch.cat([numeric, model.embeddings[0].weight[index[:, 0].long()],
                         model.embeddings[1].weight[index[:, 1].long()]], dim=1)
    for block in model.blocks:
        by_hand = block(by_hand)
    torch.testing.assert_close(out, model.head(by_hand).squeeze(-1))
    changed = index.clone()
    changed[0, 1] = 7.0  # another category of the second column: another row of its embedding
    assert model(torch.cat([numeric, changed], dim=1))[0] != out[0]


def test_a_config_without_embeddings_is_the_checkpoint_format_before_them() -> None:
    assert "embeddings" not in config(False).to_dict()
    with_them = config(False, embeddings=EMBEDDINGS)
    assert with_them.to_dict()["embeddings"] == [[5, 3], [9, 4]]
    assert MLPConfig.from_dict(with_them.to_dict()) == with_them
    assert MLPConfig.from_dict(config(False).to_dict()) == config(False)


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


@pytest.mark.parametrize("embeddings", [(), EMBEDDINGS])
def test_checkpoint_rebuilds_model_alone(embeddings: tuple) -> None:
    model = build(config(True, embeddings=embeddings), seed=3).eval()
    payload = checkpoint(model, variant="batchnorm", seed=3)
    rebuilt = from_checkpoint(payload)
    x = torch.cat([torch.randn(5, 6), torch.tensor([[j % 5, j % 9] for j in range(5)], dtype=torch.float32)
                   [:, :len(embeddings)]], dim=1)
    torch.testing.assert_close(rebuilt(x), model(x))
    assert payload["config"]["hidden"] == [16, 8]
