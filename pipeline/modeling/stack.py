"""k MLPs of one shape as one module: every parameter has a leading model axis.

Each model is the same network as ``model.MLP`` (built from its own ``MLP``, so the same initial
weights), but the k of them run as batched matrix products, and every parameter of every model
lives in one flat tensor ``flat`` of shape ``(k, P)``: one leaf, one gradient, so that an optimizer
step or a gradient clip is a few operations on the whole stack whatever k is. A BatchNorm over the
k x width channels of a stacked layer is exactly k independent BatchNorms: the statistics of a
model's channels come from that model's batch alone. Each model's embeddings are its own tables in
``flat`` (``(k, rows, width)`` viewed), each model's rows looking up its own. Torch only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.nn import functional as F

from pipeline.modeling.model import MLP, MLPConfig, inert_bias

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu, "silu": F.silu, "tanh": torch.tanh}
EPS, MOMENTUM = 1e-5, 0.1  # nn.BatchNorm1d's and nn.LayerNorm's defaults


@dataclass(frozen=True)
class Slot:
    """Where one MLP parameter sits in a row of ``flat``, and its shape there (``model.MLP``'s own
    shape, vectors as columns: a bias of n is ``(n, 1)``)."""

    name: str  # the MLP's state-dict key
    start: int
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        """How many numbers it holds."""
        return math.prod(self.shape)


def slots(config: MLPConfig) -> list[Slot]:
    """Every parameter of one MLP, in a fixed order, with its place in a row of ``flat``."""
    sizes = (config.n_inputs, *config.hidden)
    shapes: list[tuple[str, tuple[int, ...]]] = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
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


class StackedMLP(nn.Module):
    """k MLPs of one architecture (their dropout may differ), trained and evaluated together.

    Activations are laid out ``(k, features, rows)``: each layer is one batched product of a model's
    weights (out, in) with its inputs (in, rows), and a BatchNorm layer is torch's own batch_norm on
    the same memory viewed as ``(1, k x width, rows)``: one channel per model and unit, its
    statistics over that model's rows (no copy, torch's fused kernels forward and backward).
    """

    def __init__(self, models: list[MLP]) -> None:
        super().__init__()
        configs = [m.config for m in models]
        self.config = replace(configs[0], dropout=0.0)
        if any(replace(c, dropout=0.0) != self.config for c in configs):
            raise ValueError("a stack holds models of one architecture (only their dropout may differ)")
        self.slots = slots(self.config)
        self.head = len(self.slots) - 2 - len(self.config.embeddings)  # head.weight's slot (head.bias next)
        rows = [torch.cat([m.state_dict()[s.name].reshape(-1) for s in self.slots]) for m in models]
        self.flat = nn.Parameter(torch.stack(rows))
        self.register_buffer("dropout", torch.tensor([c.dropout for c in configs]))
        self.dropping = any(c.dropout > 0 for c in configs)  # known here: no host sync in forward()
        self.batchnorm = self.config.norm == "batchnorm"
        self.per_block = 4 if self.config.norm != "none" else 2
        self.inert = inert_bias(self.config)
        self.batches_tracked = 0
        for i in range(len(self.config.hidden) if self.batchnorm else 0):
            for stat in ("running_mean", "running_var"):
                self.register_buffer(f"{stat}_{i}", torch.stack([m.state_dict()[f"blocks.{i}.norm.{stat}"]
                                                                 for m in models]))

    @property
    def k(self) -> int:
        """How many models the stack holds now."""
        return self.flat.shape[0]

    def _param(self, index: int) -> torch.Tensor:
        slot = self.slots[index]
        return self.flat[:, slot.start:slot.start + slot.size].view(self.k, *slot.shape)

    def _bias(self, block: int) -> torch.Tensor:
        """A linear layer's bias; detached where it feeds BatchNorm directly (model.inert_bias): its
        gradient stays exactly zero, as in model.MLP."""
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
                first = (flat_weight @ x[i:i + chunk].T).view(self.k, weight.shape[1], -1) + bias
            else:  # each model its own rows, or its own embeddings of the same rows
                rows = x[i:i + chunk].expand(self.k, -1, -1) if x.dim() == 2 else x[:, i:i + chunk]
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
            if self.config.norm == "none":
                x = act(x)
            else:
                x = act(self._norm(x, i)) if norm_first else self._norm(act(x), i)
            if self.training and self.dropping:
                keep = 1 - self.dropout.view(-1, 1, 1)
                x = x * (torch.rand_like(x) < keep) / keep
        head_weight, head_bias = self._param(self.head), self._param(self.head + 1)
        return torch.baddbmm(head_bias, head_weight, x).squeeze(1)

    def _norm(self, h: torch.Tensor, i: int) -> torch.Tensor:
        """BatchNorm (each model's units over its own rows) or LayerNorm (each row over its units)."""
        gamma, beta = self._param(self.per_block * i + 2), self._param(self.per_block * i + 3)
        k, width, rows = h.shape
        if self.batchnorm:
            out = F.batch_norm(h.view(1, k * width, rows), getattr(self, f"running_mean_{i}").view(-1),
                               getattr(self, f"running_var_{i}").view(-1), gamma.reshape(-1), beta.reshape(-1),
                               training=self.training, momentum=MOMENTUM, eps=EPS)
            return out.view(k, width, rows)
        normed = F.layer_norm(h.transpose(1, 2), (width,), eps=EPS).transpose(1, 2)  # torch's kernel, per row
        return torch.addcmul(beta, normed, gamma)

    def count_batch(self) -> None:
        """One more training batch went through the BatchNorm layers (their num_batches_tracked)."""
        self.batches_tracked += 1

    def keep(self, rows: torch.Tensor) -> None:
        """Only the models at these rows stay in the stack (the others finished)."""
        self.flat = nn.Parameter(self.flat.detach()[rows].clone())
        for name, buffer in list(self._buffers.items()):
            self._buffers[name] = buffer[rows].clone()
        self.dropping = bool((self.dropout > 0).any())

    def member_state(self, row: int, flat: torch.Tensor | None = None, buffers: dict[str, torch.Tensor] | None = None,
                     batches: int | None = None) -> dict[str, torch.Tensor]:
        """The state dict of the model at ``row``, as ``model.MLP`` names and shapes it (from the
        given copies of ``flat``, the buffers and the count of batches, default the stack's own)."""
        flat = (self.flat if flat is None else flat).detach()[row].cpu()
        buffers = dict(self._buffers) if buffers is None else buffers
        state = {}
        for slot in self.slots:
            matrix = slot.name.endswith((".linear.weight", "head.weight")) or slot.name.startswith("embeddings.")
            state[slot.name] = flat[slot.start:slot.start + slot.size].view(slot.shape if matrix else (-1,)).clone()
        if self.batchnorm:
            for i in range(len(self.config.hidden)):
                state[f"blocks.{i}.norm.running_mean"] = buffers[f"running_mean_{i}"][row].cpu().clone()
                state[f"blocks.{i}.norm.running_var"] = buffers[f"running_var_{i}"][row].cpu().clone()
                state[f"blocks.{i}.norm.num_batches_tracked"] = torch.tensor(
                    self.batches_tracked if batches is None else batches)
        return state
