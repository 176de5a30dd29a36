"""The network: k MLPs of one architecture as one module (k = 1 is one model), its self-describing
checkpoints and its predictions. Torch only: it knows nothing of files, params, MLflow or processes.

Each MLP is a binary classifier returning one logit per row: linear layers, each followed by an optional
normalisation (BatchNorm or LayerNorm, before or after the activation), the activation and dropout,
then one output unit. Its input is one float32 matrix: ``n_features`` numeric inputs, then one category
index per categorical column (data.encoder); each categorical column has an embedding (its rows and
width), looked up and concatenated with the numeric inputs before the first linear layer.

The k models run as batched matrix products, and every parameter of every model lives in one flat
tensor ``flat`` of shape ``(k, P)``: one leaf, one gradient, so that an optimizer step, a gradient clip
or an all-reduce over processes is a few operations on the whole stack whatever k is. Activations are
laid out ``(k, features, rows)``: a BatchNorm layer is torch's own batch_norm on the same memory viewed as
``(1, k x width, rows)``: one channel per model and unit, its statistics over that model's rows alone,
so the k models train exactly as k separate ones would. Each model's embeddings are its own tables.

A model's weights leave the stack under the names and shapes of the plain MLP (``member_state``:
``blocks.0.linear.weight``, ``blocks.0.norm.running_mean``, ..., ``head.weight``, ``embeddings.0.weight``):
the checkpoint format, read back by ``from_checkpoint`` into a stack of one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,
    "silu": F.silu,
    "tanh": torch.tanh,
}
NORMS = ("batchnorm", "layernorm")  # the normalisations a variant may add (project.variants names them)
EPS, MOMENTUM = 1e-5, 0.1  # nn.BatchNorm1d's and nn.LayerNorm's defaults
# A BatchNorm layer's statistics over the global batch (several processes): (k, width, rows) -> the mean
# and biased variance, each (k, width), and the global batch's rows. None: the rows this process holds.
BatchStatistics = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class MLPConfig:
    """Everything needed to rebuild one model (stored in every checkpoint)."""

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
        return cls(
            **{**raw, "hidden": tuple(raw["hidden"]), "embeddings": tuple(tuple(e) for e in raw.get("embeddings", ()))}
        )


def inert_bias(config: MLPConfig) -> bool:
    """Whether each linear layer's bias feeds a BatchNorm in training mode directly: BatchNorm subtracts
    the batch mean, so the bias has no effect on training and its exact gradient is zero. Float rounding
    leaves about 1e-9 there, which Adam's normalised steps would turn into full-size random steps (that
    BatchNorm's running mean then lags behind in eval mode); the gradient is kept at its exact value, zero."""
    return config.norm == "batchnorm" and config.norm_placement == "before"


@dataclass(frozen=True)
class Slot:
    """Where one parameter of a model sits in a row of ``flat``, and its shape there (the plain MLP's own
    shape, vectors as columns: a bias of n is ``(n, 1)``)."""

    name: str  # the plain MLP's state-dict key
    start: int
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        """How many numbers it holds."""
        return math.prod(self.shape)

    @property
    def matrix(self) -> bool:
        """A weight matrix or an embedding table (kept 2-D in a checkpoint; vectors are 1-D there)."""
        return self.name.endswith((".linear.weight", "head.weight")) or self.name.startswith("embeddings.")


def slots(config: MLPConfig) -> list[Slot]:
    """Every parameter of one model, in a fixed order, with its place in a row of ``flat``."""
    sizes = (config.n_inputs, *config.hidden)
    shapes: list[tuple[str, tuple[int, ...]]] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        shapes += [(f"blocks.{i}.linear.weight", (n_out, n_in)), (f"blocks.{i}.linear.bias", (n_out, 1))]
        if config.norm != "none":
            shapes += [(f"blocks.{i}.norm.weight", (n_out, 1)), (f"blocks.{i}.norm.bias", (n_out, 1))]
    shapes += [("head.weight", (1, sizes[-1])), ("head.bias", (1, 1))]
    shapes += [(f"embeddings.{j}.weight", (rows, width)) for j, (rows, width) in enumerate(config.embeddings)]
    out, start = [], 0
    for name, shape in shapes:
        out.append(Slot(name, start, shape))
        start += math.prod(shape)
    return out


def initial_state(config: MLPConfig, seed: int, output_bias: float | None = None) -> dict[str, torch.Tensor]:
    """One model's initial weights, as the plain MLP names them: every linear layer drawn from one seeded
    generator in a fixed order (torch's default bounds, +-1/sqrt(fan_in)), then the embeddings (standard
    normal), so that variants of one shape start from the same weights; normalisation at its identity
    (weight 1, bias 0; running mean 0, variance 1). ``output_bias`` sets the output's initial bias (the
    training prior's log-odds: the first predictions are the base rate, so early loss measures learning)."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    sizes = (config.n_inputs, *config.hidden)
    linears = [f"blocks.{i}.linear" for i in range(len(config.hidden))] + ["head"]
    for name, n_in, n_out in zip(linears, sizes, [*config.hidden, 1]):
        bound = 1 / n_in**0.5
        state[f"{name}.weight"] = torch.empty(n_out, n_in).uniform_(-bound, bound, generator=generator)
        state[f"{name}.bias"] = torch.empty(n_out).uniform_(-bound, bound, generator=generator)
    for j, (rows, width) in enumerate(config.embeddings):
        state[f"embeddings.{j}.weight"] = torch.empty(rows, width).normal_(generator=generator)
    for i, width in enumerate(config.hidden):
        if config.norm != "none":
            state[f"blocks.{i}.norm.weight"], state[f"blocks.{i}.norm.bias"] = torch.ones(width), torch.zeros(width)
        if config.norm == "batchnorm":
            state[f"blocks.{i}.norm.running_mean"] = torch.zeros(width)
            state[f"blocks.{i}.norm.running_var"] = torch.ones(width)
            state[f"blocks.{i}.norm.num_batches_tracked"] = torch.tensor(0)
    if output_bias is not None:
        state["head.bias"].fill_(output_bias)
    return state


class MLP(nn.Module):
    """k models of one architecture (their dropout may differ), trained and evaluated together; k = 1 is
    one model. Built from each model's state as the plain MLP names it (``initial_state``, a checkpoint)."""

    def __init__(
        self, config: MLPConfig, states: list[dict[str, torch.Tensor]], dropouts: list[float] | None = None
    ) -> None:
        super().__init__()
        if config.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {config.activation!r}")
        if config.norm not in (*NORMS, "none"):
            raise ValueError(f"unknown normalisation {config.norm!r}")
        dropouts = [config.dropout] * len(states) if dropouts is None else dropouts
        self.config = replace(config, dropout=0.0)  # the shared architecture; each model's dropout below
        self.slots = slots(self.config)
        self.head = len(self.slots) - 2 - len(self.config.embeddings)  # head.weight's slot (head.bias next)
        self.flat = nn.Parameter(
            torch.stack([torch.cat([s[slot.name].reshape(-1) for slot in self.slots]) for s in states])
        )
        self.register_buffer("dropout", torch.tensor(dropouts, dtype=self.flat.dtype))
        self.dropping = any(d > 0 for d in dropouts)  # known here: no host sync in forward()
        self.batchnorm = self.config.norm == "batchnorm"
        self.per_block = 4 if self.config.norm != "none" else 2
        self.inert = inert_bias(self.config)
        self.batches_tracked = int(states[0].get("blocks.0.norm.num_batches_tracked", 0)) if self.batchnorm else 0
        for i in range(len(self.config.hidden) if self.batchnorm else 0):
            for stat in ("running_mean", "running_var"):
                self.register_buffer(f"{stat}_{i}", torch.stack([s[f"blocks.{i}.norm.{stat}"] for s in states]))
        self.batch_statistics: BatchStatistics | None = None  # set for BatchNorm over several processes
        self.dropout_generator: torch.Generator | None = None  # dropout's masks (default: torch's global one)

    @classmethod
    def initialised(
        cls,
        config: MLPConfig,
        seeds: list[int],
        dropouts: list[float] | None = None,
        output_biases: list[float | None] | None = None,
    ) -> MLP:
        """k freshly initialised models (``initial_state`` each: seed, output bias)."""
        biases = output_biases or [None] * len(seeds)
        return cls(config, [initial_state(config, s, b) for s, b in zip(seeds, biases)], dropouts)

    @property
    def k(self) -> int:
        """How many models the stack holds now."""
        return self.flat.shape[0]

    def _param(self, index: int) -> torch.Tensor:
        slot = self.slots[index]
        return self.flat[:, slot.start : slot.start + slot.size].view(self.k, *slot.shape)

    def _bias(self, block: int) -> torch.Tensor:
        """A linear layer's bias; detached where it feeds BatchNorm directly (inert_bias): its gradient
        stays exactly zero."""
        bias = self._param(self.per_block * block + 1)
        return bias.detach() if self.inert else bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(k, rows)`` of each model's own rows ``x`` of shape ``(k, rows, features)``."""
        weight, bias = self._param(0), self._bias(0)
        return self._run(torch.baddbmm(bias, weight, self._embedded(x).transpose(1, 2)))

    def _embedded(self, x: torch.Tensor) -> torch.Tensor:
        """Each model's rows ``(k, rows, features)`` with its category indices replaced by its own
        embeddings' rows: ``(k, rows, n_inputs)``."""
        if not self.config.embeddings:
            return x
        n, first = self.config.n_features, self.head + 2
        index = x[..., n:].long()
        members = torch.arange(self.k, device=x.device).view(-1, 1)
        looked_up = [self._param(first + j)[members, index[..., j]] for j in range(len(self.config.embeddings))]
        return torch.cat([x[..., :n], *looked_up], dim=-1)

    @torch.inference_mode()
    def predict(self, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        """Logits ``(k, rows)`` in eval mode (running BatchNorm statistics, no dropout), ``chunk`` rows
        at a time: of every model on the same rows ``x`` (rows, features), or of each model on its own
        rows ``x`` (k, rows, features)."""
        was_training = self.training
        self.eval()
        weight, bias = self._param(0), self._param(1)
        flat_weight = weight.reshape(-1, weight.shape[-1])  # (k x width, features): one product for all models
        parts = []
        for i in range(0, x.shape[-2], chunk):
            if x.dim() == 2 and not self.config.embeddings:
                first = (flat_weight @ x[i : i + chunk].T).view(self.k, weight.shape[1], -1) + bias
            else:  # each model its own rows, or its own embeddings of the same rows
                rows = x[i : i + chunk].expand(self.k, -1, -1) if x.dim() == 2 else x[:, i : i + chunk]
                first = torch.baddbmm(bias, weight, self._embedded(rows).transpose(1, 2))
            parts.append(self._run(first).float())
        self.train(was_training)
        return torch.cat(parts, dim=1)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        """The rest of the network from the first layer's products ``(k, width, rows)``."""
        act = ACTIVATIONS[self.config.activation]
        norm_first = self.config.norm_placement == "before"
        for i in range(len(self.config.hidden)):
            if i > 0:
                x = torch.baddbmm(self._bias(i), self._param(self.per_block * i), x)
            if self.config.norm != "none" and norm_first:
                x = act(self._norm(x, i))
            elif self.config.norm != "none":
                x = self._norm(act(x), i)
            else:
                x = act(x)
            if self.training and self.dropping:
                keep = 1 - self.dropout.view(-1, 1, 1)
                noise = torch.rand(x.shape, dtype=x.dtype, device=x.device, generator=self.dropout_generator)
                x = x * (noise < keep) / keep
        head_weight, head_bias = self._param(self.head), self._param(self.head + 1)
        return torch.baddbmm(head_bias, head_weight, x).squeeze(1)

    def _norm(self, h: torch.Tensor, i: int) -> torch.Tensor:
        """BatchNorm (each model's units over its own rows) or LayerNorm (each row over its units)."""
        gamma, beta = self._param(self.per_block * i + 2), self._param(self.per_block * i + 3)
        k, width, rows = h.shape
        if not self.batchnorm:
            normed = F.layer_norm(h.transpose(1, 2), (width,), eps=EPS).transpose(1, 2)  # torch's kernel, per row
            return torch.addcmul(beta, normed, gamma)
        running_mean, running_var = getattr(self, f"running_mean_{i}"), getattr(self, f"running_var_{i}")
        if not self.training or self.batch_statistics is None:
            out = F.batch_norm(
                h.view(1, k * width, rows),
                running_mean.view(-1),
                running_var.view(-1),
                gamma.reshape(-1),
                beta.reshape(-1),
                training=self.training,
                momentum=MOMENTUM,
                eps=EPS,
            )
            return out.view(k, width, rows)
        mean, var, count = self.batch_statistics(h)  # over the global batch: every process's rows
        with torch.no_grad():  # what F.batch_norm keeps: the unbiased variance, momentum 0.1
            running_mean.mul_(1 - MOMENTUM).add_(mean.detach(), alpha=MOMENTUM)
            running_var.mul_(1 - MOMENTUM).add_(var.detach() * count / (count - 1), alpha=MOMENTUM)
        return (h - mean.unsqueeze(-1)) * torch.rsqrt(var.unsqueeze(-1) + EPS) * gamma + beta

    def count_batch(self) -> None:
        """One more training batch went through the BatchNorm layers (their num_batches_tracked)."""
        self.batches_tracked += 1

    def keep(self, rows: torch.Tensor) -> None:
        """Only the models at these rows stay in the stack (the others finished)."""
        self.flat = nn.Parameter(self.flat.detach()[rows].clone())
        for name, buffer in list(self._buffers.items()):
            self._buffers[name] = buffer[rows].clone()
        self.dropping = bool((self.dropout > 0).any())

    def member_state(
        self,
        row: int,
        flat: torch.Tensor | None = None,
        buffers: dict[str, torch.Tensor] | None = None,
        batches: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """The weights of the model at ``row`` as the plain MLP names and shapes them (from the given
        copies of ``flat``, the buffers and the count of batches, default the stack's own)."""
        flat = (self.flat if flat is None else flat).detach()[row].cpu()
        buffers = dict(self._buffers) if buffers is None else buffers
        state = {
            slot.name: flat[slot.start : slot.start + slot.size].view(slot.shape if slot.matrix else (-1,)).clone()
            for slot in self.slots
        }
        if self.batchnorm:
            for i in range(len(self.config.hidden)):
                state[f"blocks.{i}.norm.running_mean"] = buffers[f"running_mean_{i}"][row].cpu().clone()
                state[f"blocks.{i}.norm.running_var"] = buffers[f"running_var_{i}"][row].cpu().clone()
                state[f"blocks.{i}.norm.num_batches_tracked"] = torch.tensor(
                    self.batches_tracked if batches is None else batches
                )
        return state


def checkpoint(config: MLPConfig, state: dict[str, torch.Tensor], **extra: Any) -> dict[str, Any]:
    """A self-describing checkpoint of one model: its weights (the plain MLP's names), its config and
    whatever else describes the run."""
    return {"model": state, "config": config.to_dict(), **extra}


def from_checkpoint(payload: dict[str, Any]) -> MLP:
    """The one model a checkpoint holds, as a stack of one, in eval mode (a checkpoint that does not match
    its config raises: a missing or surplus weight, a wrong shape)."""
    config = MLPConfig.from_dict(payload["config"])
    state = payload["model"]
    expected = {slot.name: slot.shape if slot.matrix else (slot.size,) for slot in slots(config)}
    for i in range(len(config.hidden)) if config.norm == "batchnorm" else ():
        expected |= {
            f"blocks.{i}.norm.running_mean": (config.hidden[i],),
            f"blocks.{i}.norm.running_var": (config.hidden[i],),
            f"blocks.{i}.norm.num_batches_tracked": (),
        }
    found = {name: tuple(value.shape) for name, value in state.items()}
    if found != expected:
        wrong = sorted(set(found) ^ set(expected)) or [n for n in expected if found[n] != expected[n]]
        raise ValueError(f"the weights do not fit the config: {', '.join(wrong[:5])}")
    return MLP(config, [state]).eval()


def logits(model: MLP, x: torch.Tensor) -> torch.Tensor:
    """One model's logits for every row of ``x`` (rows, features), in eval mode."""
    if model.k != 1:
        raise ValueError(f"logits() scores with one model; this stack holds {model.k}")
    return model.predict(x)[0]
