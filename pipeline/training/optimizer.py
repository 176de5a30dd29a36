"""The optimizer of a stack: Adam, AdamW and SGD with momentum over the network's flat parameters, each
model at its own learning rate and weight decay: the update of ``torch.optim`` applied row by row, as a
few whole-stack operations. Torch only."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch

BETAS, EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults


class StackOptimizer:
    """The optimizer of one flat ``(k, P)`` parameter; ``lr`` and ``weight_decay`` hold one value per row."""

    def __init__(
        self,
        flat: torch.Tensor,
        kind: Literal["adam", "adamw", "sgd"],
        lr: list[float],
        weight_decay: list[float],
        momentum: float = 0.9,
    ) -> None:
        self.flat, self.kind, self.momentum = flat, kind, momentum
        column = {"dtype": flat.dtype, "device": flat.device}
        self.lr = torch.tensor(lr, **column).unsqueeze(1)
        self.weight_decay = torch.tensor(weight_decay, **column).unsqueeze(1)
        self.decays = any(w > 0 for w in weight_decay)
        self.steps = 0
        self.first = torch.zeros_like(flat)  # Adam's exp_avg, or SGD's momentum buffer
        self.second = torch.zeros_like(flat) if kind != "sgd" else None  # Adam's exp_avg_sq

    def zero_grad(self) -> None:
        """Forget the last gradient (set it to None, as ``zero_grad(set_to_none=True)`` does)."""
        self.flat.grad = None

    def clip(self, max_norm: float) -> None:
        """Scale each model's gradient to at most ``max_norm`` (torch's clip_grad_norm_, per row)."""
        grad = self.flat.grad
        norms = torch.linalg.vector_norm(grad, dim=1, keepdim=True)
        grad.mul_((max_norm / (norms + 1e-6)).clamp_(max=1.0))

    @torch.no_grad()
    def step(self) -> None:
        """One update of every model."""
        param, grad = self.flat, self.flat.grad
        self.steps += 1
        if self.kind == "sgd":
            if self.decays:
                grad = grad.add(self.weight_decay * param)
            self.first.mul_(self.momentum).add_(grad)  # from zeros: the first step's buffer is the gradient
            param.sub_(self.lr * self.first)
            return
        if self.kind == "adamw" and self.decays:
            param.mul_(1 - self.lr * self.weight_decay)
        elif self.decays:  # Adam: L2 added to the gradient
            grad = grad.add(self.weight_decay * param)
        beta1, beta2 = BETAS
        self.first.lerp_(grad, 1 - beta1)
        self.second.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        correction1, correction2 = 1 - beta1**self.steps, 1 - beta2**self.steps
        denominator = (self.second.sqrt() / math.sqrt(correction2)).add_(EPS)
        param.sub_((self.lr / correction1) * self.first / denominator)

    def keep(self, rows: torch.Tensor, flat: torch.Tensor) -> None:
        """Only the models at these rows stay; ``flat`` is the stack's new parameter."""
        self.flat = flat
        self.lr, self.weight_decay = self.lr[rows], self.weight_decay[rows]
        self.first = self.first[rows].clone()
        self.second = self.second[rows].clone() if self.second is not None else None

    def state(self) -> dict[str, Any]:
        """Everything a restarted process needs to go on (training/snapshots.py)."""
        return {
            "steps": self.steps,
            "first": self.first.clone(),
            "lr": self.lr.clone(),
            "weight_decay": self.weight_decay.clone(),
            "second": self.second.clone() if self.second is not None else None,
        }

    def load(self, state: dict[str, Any]) -> None:
        """Go on from ``state()``."""
        device = self.flat.device
        self.steps = int(state["steps"])
        self.first, self.lr, self.weight_decay = (state[k].to(device) for k in ("first", "lr", "weight_decay"))
        self.second = state["second"].to(device) if state["second"] is not None else None
