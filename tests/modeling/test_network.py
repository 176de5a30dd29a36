"""The network: k models as one module compute what k plain torch MLPs compute (forward, gradients and
eval mode), each from its own weights; a checkpoint is the plain MLP's state dict and rebuilds one model."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from torch import nn

from pipeline.modeling.network import MLP, MLPConfig, checkpoint, from_checkpoint, initial_state, logits, slots

EMBEDDINGS = ((5, 3), (9, 4))  # two categorical columns: 5 and 9 indices, widths 3 and 4


def config(
    norm: str = "batchnorm",
    placement: str = "before",
    dropout: float = 0.0,
    embeddings: tuple[tuple[int, int], ...] = (),
    activation: str = "relu",
) -> MLPConfig:
    return MLPConfig(
        n_features=6,
        hidden=(16, 8),
        dropout=dropout,
        activation=activation,
        norm=norm,
        norm_placement=placement,
        embeddings=embeddings,
    )  # type: ignore[arg-type]


class Plain(nn.Module):
    """The MLP written the plain way (nn.Linear, nn.BatchNorm1d, nn.Embedding): the reference the stacked
    network is checked against. Its state dict has the checkpoint's names."""

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = nn.ModuleList(nn.Embedding(rows, width) for rows, width in config.embeddings)
        sizes = (config.n_inputs, *config.hidden)
        norms = {"batchnorm": nn.BatchNorm1d, "layernorm": nn.LayerNorm}
        self.blocks = nn.ModuleList()
        for n_in, n_out in itertools.pairwise(sizes):
            block = nn.Module()
            block.linear = nn.Linear(n_in, n_out)
            block.norm = norms[config.norm](n_out) if config.norm in norms else nn.Identity()
            self.blocks.append(block)
        self.head = nn.Linear(sizes[-1], 1)
        self.act = {"relu": torch.relu, "gelu": nn.functional.gelu, "tanh": torch.tanh}[config.activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.config.n_features
        if self.embeddings:
            index = x[:, n:].long()
            x = torch.cat([x[:, :n], *(e(index[:, j]) for j, e in enumerate(self.embeddings))], dim=1)
        for block in self.blocks:
            h = block.linear(x)
            x = self.act(block.norm(h)) if self.config.norm_placement == "before" else block.norm(self.act(h))
        return self.head(x).squeeze(-1)


@contextmanager
def float64() -> Iterator[None]:
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def rows(n: int, seed: int, embeddings: tuple = ()) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g) * 3 + 1
    index = [torch.randint(0, levels, (n, 1), generator=g).to(x.dtype) for levels, _ in embeddings]
    return torch.cat([x, *index], dim=1)


CASES = [
    ("batchnorm", "before", ()),
    ("batchnorm", "after", ()),
    ("layernorm", "before", ()),
    ("none", "before", ()),
    ("batchnorm", "before", EMBEDDINGS),
    ("none", "before", EMBEDDINGS),
]


@pytest.mark.parametrize(("norm", "placement", "embeddings"), CASES)
def test_k_models_compute_what_k_plain_mlps_compute(norm: str, placement: str, embeddings: tuple) -> None:
    """Training-mode logits (each model on its own rows), their gradients, the running statistics after a
    step, and eval-mode logits: each member equals a plain MLP loaded with its weights (float64)."""
    with float64():
        cfg = config(norm, placement, embeddings=embeddings)
        stack = MLP.initialised(cfg, seeds=[1, 2, 3])
        plains = []
        for row in range(3):
            plain = Plain(cfg)
            plain.load_state_dict(stack.member_state(row))  # strict: every name and shape
            plains.append(plain.train())
        x = torch.stack([rows(64, seed, embeddings) for seed in (10, 11, 12)])
        out = stack.train()(x)
        out.sum().backward()
        for row, plain in enumerate(plains):
            expected = plain(x[row])
            torch.testing.assert_close(out[row], expected, rtol=0, atol=1e-10)
            expected.sum().backward()
            for slot in slots(cfg):
                grad = stack.flat.grad[row, slot.start : slot.start + slot.size]
                theirs = dict(plain.named_parameters())[slot.name].grad.reshape(-1)
                if slot.name.endswith("linear.bias") and norm == "batchnorm" and placement == "before":
                    theirs = torch.zeros_like(theirs)  # inert: kept at its exact value, zero
                torch.testing.assert_close(grad, theirs, rtol=0, atol=1e-9, msg=slot.name)
            state = stack.member_state(row)
            for key, value in plain.state_dict().items():
                if "running" in key:
                    torch.testing.assert_close(state[key], value, rtol=0, atol=1e-12)
            plain.eval()
            torch.testing.assert_close(stack.predict(x[row])[row], plain(x[row]).float(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("norm", ["batchnorm", "none", "layernorm"])
def test_normalisation_layers_exist_exactly_when_asked(norm: str) -> None:
    state = MLP.initialised(config(norm), seeds=[0]).member_state(0)
    norms = {k.split(".norm.")[1] for k in state if ".norm." in k}
    assert (
        norms
        == {
            "batchnorm": {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"},
            "layernorm": {"weight", "bias"},
            "none": set(),
        }[norm]
    )


def test_placement_before_or_after_activation() -> None:
    """Before: ReLU comes last, so the first block's outputs are >= 0 and about half are 0 (the normalised
    pre-activations are centred). After: BatchNorm comes last: each unit has mean 0 and variance 1."""
    x = rows(512, 0).unsqueeze(0)
    outputs = {}
    for placement in ("before", "after"):
        stack = MLP.initialised(config("batchnorm", placement), seeds=[0]).train()
        first = torch.baddbmm(stack._bias(0), stack._param(0), x.transpose(1, 2))
        act = torch.relu
        outputs[placement] = (act(stack._norm(first, 0)) if placement == "before" else stack._norm(act(first), 0))[0]
    before, after = (outputs[p].detach() for p in ("before", "after"))
    assert before.min() >= 0 and 0.35 < (before == 0).float().mean() < 0.65
    assert (after < 0).any()
    torch.testing.assert_close(after.mean(1), torch.zeros(16), atol=1e-5, rtol=0)
    torch.testing.assert_close(after.var(1, unbiased=False), torch.ones(16), atol=1e-3, rtol=0)


@pytest.mark.parametrize("embeddings", [(), EMBEDDINGS])
def test_variants_of_one_shape_start_from_the_same_weights(embeddings: tuple) -> None:
    bn = initial_state(config("batchnorm", embeddings=embeddings), seed=7)
    base = initial_state(config("none", embeddings=embeddings), seed=7)
    assert set(base) <= set(bn) and {k for k in bn if k not in base} == {k for k in bn if ".norm." in k}
    for key in base:
        assert torch.equal(bn[key], base[key]), key
    other = initial_state(config("none", embeddings=embeddings), seed=8)
    assert not torch.equal(other["blocks.0.linear.weight"], base["blocks.0.linear.weight"])
    assert initial_state(config(), seed=7, output_bias=-3.5)["head.bias"].item() == -3.5


def test_each_model_looks_up_its_own_embeddings() -> None:
    cfg = config("none", embeddings=EMBEDDINGS)
    stack = MLP.initialised(cfg, seeds=[0, 1])
    x = rows(4, 0, EMBEDDINGS)
    scores = stack.predict(x)
    changed = x.clone()
    changed[0, 7] = (changed[0, 7] + 1) % 9  # another category of the second column
    assert (stack.predict(changed)[:, 0] != scores[:, 0]).all() and torch.equal(
        stack.predict(changed)[:, 1:], scores[:, 1:]
    )
    assert not torch.equal(scores[0], scores[1])  # each model its own tables and weights


def test_a_config_without_embeddings_is_the_checkpoint_format_before_them() -> None:
    assert "embeddings" not in config().to_dict()
    with_them = config(embeddings=EMBEDDINGS)
    assert with_them.to_dict()["embeddings"] == [[5, 3], [9, 4]]
    assert MLPConfig.from_dict(with_them.to_dict()) == with_them
    assert MLPConfig.from_dict(config().to_dict()) == config()


@pytest.mark.parametrize("norm", ["batchnorm", "none"])
def test_in_eval_mode_a_rows_score_does_not_depend_on_its_batch(norm: str) -> None:
    stack = MLP.initialised(config(norm, embeddings=EMBEDDINGS), seeds=[0, 1, 2])
    stack.train()
    stack(torch.stack([rows(64, s, EMBEDDINGS) for s in range(3)]))  # running statistics move from their start
    x = rows(100, 5, EMBEDDINGS)
    whole = stack.predict(x)
    pieces = torch.cat([stack.predict(x[:7]), stack.predict(x[7:])], dim=1)
    torch.testing.assert_close(whole, pieces, rtol=0, atol=1e-6)
    torch.testing.assert_close(stack.predict(x, chunk=16), whole, rtol=0, atol=1e-6)


@pytest.mark.parametrize("embeddings", [(), EMBEDDINGS])
def test_a_checkpoint_rebuilds_one_model_that_scores_as_it_did_in_its_stack(embeddings: tuple) -> None:
    cfg = config("batchnorm", embeddings=embeddings)
    stack = MLP.initialised(cfg, seeds=[3, 4])
    stack.train()(torch.stack([rows(64, s, embeddings) for s in (1, 2)]))
    stack.count_batch()  # the loop counts each batch (BatchNorm's num_batches_tracked)
    payload = checkpoint(cfg, stack.member_state(1), variant="batchnorm", seed=4)
    rebuilt = from_checkpoint(payload)
    x = rows(50, 9, embeddings)
    assert rebuilt.k == 1 and not rebuilt.training and payload["config"]["hidden"] == [16, 8]
    torch.testing.assert_close(logits(rebuilt, x), stack.predict(x)[1], rtol=0, atol=1e-6)
    assert payload["model"]["blocks.0.norm.num_batches_tracked"].item() == 1


def test_a_checkpoint_that_does_not_fit_its_config_is_refused() -> None:
    payload = checkpoint(config(), MLP.initialised(config(), seeds=[0]).member_state(0))
    payload["model"]["blocks.0.linear.weight"] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match="blocks.0.linear.weight"):
        from_checkpoint(payload)
    del payload["model"]["head.bias"]
    with pytest.raises(ValueError, match="head.bias"):
        from_checkpoint(payload)


def test_models_of_one_stack_share_an_architecture_and_leave_it_one_by_one() -> None:
    with pytest.raises(ValueError, match="unknown activation"):
        MLP.initialised(config(activation="swish"), seeds=[0])
    stack = MLP.initialised(config(), seeds=[0, 1, 2], dropouts=[0.0, 0.2, 0.1])
    first = stack.member_state(2)
    stack.keep(torch.tensor([2]))
    assert stack.k == 1 and stack.dropping and all(torch.equal(stack.member_state(0)[k], first[k]) for k in first)
