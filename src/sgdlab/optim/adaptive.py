"""Adaptive update rules (Adam, RMSprop) over stacked chains ``W [K, d]``.

Both follow ``torch.optim``'s single-tensor arithmetic operation by operation (coupled L2
weight decay, ``eps`` added outside the square root), so one chain updated here matches
``torch.optim.Adam`` / ``torch.optim.RMSprop`` run on that chain alone (tested in float64).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field
from torch import Tensor

from sgdlab.optim.base import OptimizerParams, Rule
from sgdlab.optim.perchain import FloatOrList
from sgdlab.optim.transforms import (
    AdamState,
    RMSpropState,
    Transform,
    add_decayed_weights,
    scale_by_adam,
    scale_by_learning_rate,
    scale_by_rms,
)

__all__ = ["Adam", "AdamParams", "AdamState", "RMSprop", "RMSpropParams", "RMSpropState"]

_WD = "coupled L2 weight decay λ (>= 0): the gradient becomes g + λ w"
_EPS = "ε (> 0) added to the root-mean-square denominator"


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
class Adam(Rule):
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
    plain_step: ClassVar[bool] = False
    Params: ClassVar[type[OptimizerParams]] = AdamParams

    beta1: Tensor | float = 0.9
    beta2: Tensor | float = 0.999
    eps: Tensor | float = 1e-8
    weight_decay: Tensor | float = 0.0

    def transforms(self) -> tuple[Transform, ...]:
        decay = add_decayed_weights(self.weight_decay)
        return decay, scale_by_adam(self.beta1, self.beta2, self.eps)


@dataclass(frozen=True, eq=False)
class RMSprop(Rule):
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
    plain_step: ClassVar[bool] = False
    Params: ClassVar[type[OptimizerParams]] = RMSpropParams

    alpha: Tensor | float = 0.99
    eps: Tensor | float = 1e-8
    weight_decay: Tensor | float = 0.0
    momentum: Tensor | float = 0.0
    centered: bool = False

    def transforms(self) -> tuple[Transform, ...]:
        return (
            add_decayed_weights(self.weight_decay),
            scale_by_rms(self.alpha, self.eps, self.momentum, self.centered),
            scale_by_learning_rate(),
        )
