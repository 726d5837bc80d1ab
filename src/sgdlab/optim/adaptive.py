"""Adaptive update rules (Adam, RMSprop) over stacked chains ``W [K, d]``.

Both follow ``torch.optim``'s single-tensor arithmetic operation by operation (coupled L2
weight decay, ``eps`` added outside the square root), so one chain updated here matches
``torch.optim.Adam`` / ``torch.optim.RMSprop`` run on that chain alone (tested in float64).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from pydantic import Field
from torch import Tensor

from sgdlab.optim.base import OptimizerParams, col, decay, tensorize
from sgdlab.optim.perchain import FloatOrList

__all__ = ["Adam", "AdamParams", "AdamState", "RMSprop", "RMSpropParams", "RMSpropState"]

_WD = "coupled L2 weight decay λ (>= 0): the gradient becomes g + λ w"
_EPS = "ε (> 0) added to the root-mean-square denominator"


class AdamState(NamedTuple):
    """Adam's state: step count ``[K]`` (int64) and the two moment estimates ``[K, d]``."""

    step: Tensor
    exp_avg: Tensor
    exp_avg_sq: Tensor


class RMSpropState(NamedTuple):
    """RMSprop's state: step count ``[K]``, ``E[g²]``, ``E[g]`` (centered) and momentum buffer."""

    step: Tensor
    square_avg: Tensor
    grad_avg: Tensor
    momentum_buffer: Tensor


class AdamParams(OptimizerParams):
    lr: FloatOrList = Field(0.001, description="base learning rate η₀ (> 0)")
    beta1: FloatOrList = Field(0.9, description="β₁ in [0, 1): decay of the first moment")
    beta2: FloatOrList = Field(0.999, description="β₂ in [0, 1): decay of the second moment")
    eps: FloatOrList = Field(1e-8, description=_EPS)
    weight_decay: FloatOrList = Field(0.0, description=_WD)


class RMSpropParams(OptimizerParams):
    alpha: FloatOrList = Field(0.99, description="α in [0, 1): decay of the mean square E[g²]")
    eps: FloatOrList = Field(1e-8, description=_EPS)
    weight_decay: FloatOrList = Field(0.0, description=_WD)
    momentum: FloatOrList = Field(0.0, description="momentum μ in [0, 1) on the scaled step")
    centered: bool = Field(False, description="divide by √(E[g²] − E[g]²) instead of √E[g²]")


@dataclass(frozen=True, eq=False)
class Adam:
    """Adam with bias correction, in PyTorch's exact arithmetic.

    With step count t (starting at 1 for the first update)::

        g ← g + λ w
        m ← m + (1−β₁)(g − m)            (torch.lerp)
        v ← β₂ v + (1−β₂) g²
        w ← w − (η_t / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε)

    Args:
        beta1: β₁ in [0, 1), 0-d or ``Tensor[K]``.
        beta2: β₂ in [0, 1), 0-d or ``Tensor[K]``.
        eps: ε > 0, 0-d or ``Tensor[K]``.
        weight_decay: λ (coupled L2, not AdamW), 0-d or ``Tensor[K]``.

    Reference: Kingma & Ba (2015), *Adam: a method for stochastic optimization*,
    Algorithm 1 (ε placement as in ``torch.optim.Adam``, amsgrad off).
    """

    name: ClassVar[str] = "adam"
    needs_noise: ClassVar[bool] = False
    Params: ClassVar[type[OptimizerParams]] = AdamParams

    beta1: Tensor | float = 0.9
    beta2: Tensor | float = 0.999
    eps: Tensor | float = 1e-8
    weight_decay: Tensor | float = 0.0

    def __post_init__(self) -> None:
        tensorize(self)

    def init(self, params: Tensor) -> AdamState:
        step = torch.zeros(params.shape[0], dtype=torch.int64, device=params.device)
        return AdamState(step, torch.zeros_like(params), torch.zeros_like(params))

    def update(
        self,
        grads: Tensor,
        state: AdamState,
        params: Tensor,
        lr: Tensor,
        noise: Tensor | None = None,
    ) -> tuple[Tensor, AdamState]:
        step = state.step + 1
        g = decay(grads, params, self.weight_decay)
        b1, b2 = col(self.beta1, params), col(self.beta2, params)
        exp_avg = torch.lerp(state.exp_avg, g, (1 - b1).expand_as(g))
        exp_avg_sq = state.exp_avg_sq * b2 + (1 - b2) * g * g
        t = step.to(params.dtype)[:, None]
        bias1 = 1 - b1**t
        bias2_sqrt = (1 - b2**t) ** 0.5
        denom = exp_avg_sq.sqrt() / bias2_sqrt + col(self.eps, params)
        step_size = col(lr, params) / bias1
        return params - step_size * (exp_avg / denom), AdamState(step, exp_avg, exp_avg_sq)


@dataclass(frozen=True, eq=False)
class RMSprop:
    """RMSprop in PyTorch's convention (ε outside the root, optional centering/momentum).

    ::

        g ← g + λ w
        a ← α a + (1−α) g²                                 (mean square, a₀ = 0)
        ḡ ← ḡ + (1−α)(g − ḡ)                               (centered only)
        r = √a + ε        or  √max(a − ḡ², 0) + ε  (centered)
        b ← μ b + g / r;   w ← w − η_t b                   (b₀ = 0; μ = 0: w ← w − η_t g / r)

    Args:
        alpha: α in [0, 1), 0-d or ``Tensor[K]``.
        eps: ε > 0, 0-d or ``Tensor[K]``.
        weight_decay: λ, 0-d or ``Tensor[K]``.
        momentum: μ in [0, 1), 0-d or ``Tensor[K]``.
        centered: one flag for all chains.

    Reference: Tieleman & Hinton (2012), COURSERA *Neural Networks for Machine Learning*,
    lecture 6.5; Graves (2013) for the centered variant; ``torch.optim.RMSprop``.
    """

    name: ClassVar[str] = "rmsprop"
    needs_noise: ClassVar[bool] = False
    Params: ClassVar[type[OptimizerParams]] = RMSpropParams

    alpha: Tensor | float = 0.99
    eps: Tensor | float = 1e-8
    weight_decay: Tensor | float = 0.0
    momentum: Tensor | float = 0.0
    centered: bool = False

    def __post_init__(self) -> None:
        tensorize(self)

    def init(self, params: Tensor) -> RMSpropState:
        step = torch.zeros(params.shape[0], dtype=torch.int64, device=params.device)
        zeros = torch.zeros_like(params)
        return RMSpropState(step, zeros, zeros.clone(), zeros.clone())

    def update(
        self,
        grads: Tensor,
        state: RMSpropState,
        params: Tensor,
        lr: Tensor,
        noise: Tensor | None = None,
    ) -> tuple[Tensor, RMSpropState]:
        g = decay(grads, params, self.weight_decay)
        a = col(self.alpha, params)
        square_avg = state.square_avg * a + (1 - a) * g * g
        grad_avg = state.grad_avg
        if self.centered:
            grad_avg = torch.lerp(grad_avg, g, (1 - a).expand_as(g))
            # clamp: rounding can make a − ḡ² slightly negative (torch then gives NaN)
            avg = (square_avg - grad_avg * grad_avg).clamp(min=0.0).sqrt()
        else:
            avg = square_avg.sqrt()
        avg = avg + col(self.eps, params)
        buf = col(self.momentum, params) * state.momentum_buffer + g / avg
        new_state = RMSpropState(state.step + 1, square_avg, grad_avg, buf)
        return params - col(lr, params) * buf, new_state
