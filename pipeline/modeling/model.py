"""The MLP compared with and without BatchNorm (or LayerNorm): one class, one field; its checkpoints
and its predictions. Torch only.

Its input is one float32 matrix: ``n_features`` numeric inputs, then one category index per categorical
column (data.encoder). Each categorical column has an embedding (``embeddings``: its rows and width, the
width by data.encoder.embedding_dim), looked up and concatenated with the numeric inputs before the first linear
layer; without categorical columns the network is the plain MLP."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}
# The torch layer of each normalisation a variant may add (project.variants names them).
NORMS: dict[str, type[nn.Module]] = {"batchnorm": nn.BatchNorm1d, "layernorm": nn.LayerNorm}


@dataclass(frozen=True)
class MLPConfig:
    """Everything needed to rebuild the network (stored in every checkpoint)."""

    n_features: int
    hidden: tuple[int, ...]
    dropout: float
    activation: str
    norm: Literal["batchnorm", "layernorm", "none"]
    norm_placement: Literal["before", "after"]
    embeddings: tuple[tuple[int, int], ...] = ()  # per categorical column: (rows, width) of its embedding

    @property
    def n_inputs(self) -> int:
        """The first linear layer's inputs: the numeric inputs and every embedding's width."""
        return self.n_features + sum(width for _, width in self.embeddings)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form for checkpoints and tracking (no ``embeddings`` key without categorical
        columns: such a checkpoint is what it was before embeddings existed)."""
        out = asdict(self)
        out["hidden"] = list(self.hidden)
        out["embeddings"] = [list(e) for e in self.embeddings]
        if not self.embeddings:
            del out["embeddings"]
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> MLPConfig:
        """Inverse of to_dict()."""
        return cls(**{**raw, "hidden": tuple(raw["hidden"]),
                      "embeddings": tuple(tuple(e) for e in raw.get("embeddings", ()))})


def inert_bias(config: MLPConfig) -> bool:
    """Whether each linear layer's bias feeds a BatchNorm in training mode directly: BatchNorm subtracts
    the batch mean, so the bias has no effect on training and its exact gradient is zero. Float
    rounding leaves about 1e-9 there, which Adam's normalised steps would turn into full-size random
    steps (that BatchNorm's running mean then lags behind in eval mode); the gradient is kept at its
    exact value, zero."""
    return config.norm == "batchnorm" and config.norm_placement == "before"


class Block(nn.Module):
    """Linear, optional normalisation (before or after the activation), activation, dropout."""

    def __init__(self, n_in: int, n_out: int, config: MLPConfig) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        self.norm: nn.Module = NORMS[config.norm](n_out) if config.norm in NORMS else nn.Identity()
        self.act = ACTIVATIONS[config.activation]()
        self.dropout = nn.Dropout(config.dropout)
        self.norm_first = config.norm_placement == "before"
        if inert_bias(config):
            self.linear.bias.register_hook(torch.zeros_like)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x)
        x = self.act(self.norm(x)) if self.norm_first else self.norm(self.act(x))
        return self.dropout(x)


class MLP(nn.Module):
    """A binary classifier returning one logit per row.

    Every variant names its shared layers alike (``embeddings.0.weight``, ``blocks.0.linear.weight``,
    ..., ``head.weight``), and ``init_weights(seed)`` draws those layers identically, so the only
    difference between ``batchnorm``, ``layernorm`` and ``baseline`` is the ``blocks.N.norm`` layers.
    """

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        if config.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {config.activation!r}")
        if config.norm not in (*NORMS, "none"):
            raise ValueError(f"unknown normalisation {config.norm!r}")
        self.config = config
        self.embeddings = nn.ModuleList(nn.Embedding(rows, width) for rows, width in config.embeddings)
        sizes = (config.n_inputs, *config.hidden)
        self.blocks = nn.ModuleList(Block(a, b, config) for a, b in zip(sizes, sizes[1:]))
        self.head = nn.Linear(sizes[-1], 1)

    def init_weights(self, seed: int) -> None:
        """Draw every linear layer from one seeded generator, in a fixed order, then the embeddings
        (standard normal, as nn.Embedding's default) from the same generator."""
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for linear in [block.linear for block in self.blocks] + [self.head]:
                bound = 1 / linear.in_features ** 0.5
                weight = torch.empty(linear.weight.shape).uniform_(-bound, bound, generator=generator)
                bias = torch.empty(linear.bias.shape).uniform_(-bound, bound, generator=generator)
                linear.weight.copy_(weight)
                linear.bias.copy_(bias)
            for embedding in self.embeddings:
                embedding.weight.copy_(torch.empty(embedding.weight.shape).normal_(generator=generator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.embeddings:
            n = self.config.n_features
            index = x[:, n:].long()
            x = torch.cat([x[:, :n], *(e(index[:, j]) for j, e in enumerate(self.embeddings))], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.head(x).squeeze(-1)


def build(config: MLPConfig, seed: int, output_bias: float | None = None) -> MLP:
    """A freshly initialised model; ``output_bias`` sets the output's initial bias (the training prior's
    log-odds: the first predictions are the base rate, so early loss does not measure learning it)."""
    model = MLP(config)
    model.init_weights(seed)
    if output_bias is not None:
        with torch.no_grad():
            model.head.bias.fill_(output_bias)
    return model


def checkpoint(model: MLP, **extra: Any) -> dict[str, Any]:
    """A self-describing checkpoint: weights, model config and whatever else describes the run."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return {"model": state, "config": model.config.to_dict(), **extra}


def from_checkpoint(payload: dict[str, Any]) -> MLP:
    """Rebuild a model from a checkpoint alone (in eval mode)."""
    model = MLP(MLPConfig.from_dict(payload["config"]))
    model.load_state_dict(payload["model"])
    return model.eval()


@torch.inference_mode()
def predict_logits(model: nn.Module, x: torch.Tensor, chunk: int = 65_536) -> torch.Tensor:
    """Logits for every row, in eval mode (running BatchNorm statistics, no dropout)."""
    was_training = model.training
    model.eval()
    out = torch.cat([model(x[i:i + chunk]).float() for i in range(0, x.shape[0], chunk)])
    model.train(was_training)
    return out
