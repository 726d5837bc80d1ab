"""Plain, momentum and Langevin update rules over stacked chains ``W [K, d]``.

All rules follow ``torch.optim.SGD``'s arithmetic (dampening 0), so a chain updated here
matches ``torch.optim.SGD`` run on that chain alone (tested in float64). Weight decay is
coupled L2: the gradient becomes ``g + λ w`` before anything else. Each rule is a chain of
:mod:`sgdlab.optim.transforms` (see its ``transforms``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field
from torch import Tensor

from sgdlab.optim.base import OptimizerParams, Rule
from sgdlab.optim.perchain import FloatOrList
from sgdlab.optim.transforms import (
    EmptyState,
    MomentumState,
    Transform,
    add_decayed_weights,
    add_noise,
    scale_by_learning_rate,
    trace,
)

__all__ = [
    "SGD",
    "SGLD",
    "EmptyState",
    "Momentum",
    "MomentumParams",
    "MomentumState",
    "Nesterov",
    "SGDParams",
    "SGLDParams",
]

_WD = "coupled L2 weight decay λ (>= 0): the gradient becomes g + λ w"


class SGDParams(OptimizerParams):
    weight_decay: FloatOrList = Field(0.0, description=_WD)


class MomentumParams(OptimizerParams):
    momentum: FloatOrList = Field(
        0.9, description="momentum m in [0, 1); the effective step is η/(1−m)"
    )
    weight_decay: FloatOrList = Field(0.0, description=_WD)


class SGLDParams(OptimizerParams):
    temperature: FloatOrList = Field(
        description="temperature T (>= 0) of dw = −∇F dt + √(2T) dW; stationary density "
        "∝ exp(−F/T); T = 0 is plain SGD"
    )
    weight_decay: FloatOrList = Field(0.0, description=_WD)


@dataclass(frozen=True, eq=False)
class SGD(Rule):
    """Stochastic gradient descent: ``w ← w − η_t (g + λ w)``.

    Args:
        weight_decay: λ, 0-d or ``Tensor[K]``.

    Reference: Robbins & Monro (1951), *A stochastic approximation method*;
    ``torch.optim.SGD`` with ``momentum=0``.

    Example:
        >>> rule = SGD()
        >>> W = torch.ones(2, 3, dtype=torch.float64)
        >>> W1, _ = rule.update(W, rule.init(W), W, torch.tensor([0.1, 0.5], dtype=W.dtype))
        >>> W1[:, 0].tolist()
        [0.9, 0.5]
    """

    name: ClassVar[str] = "sgd"
    Params: ClassVar[type[OptimizerParams]] = SGDParams

    weight_decay: Tensor | float = 0.0

    def transforms(self) -> tuple[Transform, ...]:
        return add_decayed_weights(self.weight_decay), scale_by_learning_rate()


@dataclass(frozen=True, eq=False)
class Momentum(Rule):
    """Heavy-ball momentum in PyTorch's convention.

    ``g ← g + λ w``;  ``v ← m v + g``  (``v₀ = 0``);  ``w ← w − η_t v``.

    This is Polyak's heavy ball with the learning rate outside the velocity (Sutskever
    et al. 2013 write ``v ← m v − η g; w ← w + v``; the two agree for constant η). For a
    slowly varying gradient v → g/(1−m), so the **effective step is η/(1−m)**; the
    stationary noise of SGD with momentum matches plain SGD at step η/(1−m).

    Args:
        momentum: m in [0, 1), 0-d or ``Tensor[K]``.
        weight_decay: λ, 0-d or ``Tensor[K]``.

    Reference: Polyak (1964), *Some methods of speeding up the convergence of iteration
    methods*; ``torch.optim.SGD(momentum=m, dampening=0, nesterov=False)``.
    """

    name: ClassVar[str] = "momentum"
    nesterov: ClassVar[bool] = False
    Params: ClassVar[type[OptimizerParams]] = MomentumParams

    momentum: Tensor | float = 0.9
    weight_decay: Tensor | float = 0.0

    def transforms(self) -> tuple[Transform, ...]:
        return (
            add_decayed_weights(self.weight_decay),
            trace(self.momentum, self.nesterov),
            scale_by_learning_rate(),
        )

    @property
    def effective_momentum(self) -> Tensor | float:
        return self.momentum


@dataclass(frozen=True, eq=False)
class Nesterov(Momentum):
    """Nesterov momentum in PyTorch's convention.

    ``g ← g + λ w``;  ``v ← m v + g``  (``v₀ = 0``);  ``w ← w − η_t (g + m v)``.

    The look-ahead gradient of Nesterov (1983) rewritten in terms of the current iterate
    (Sutskever et al. 2013, section 3); the effective step is again η/(1−m).

    Args:
        momentum: m in [0, 1), 0-d or ``Tensor[K]``.
        weight_decay: λ, 0-d or ``Tensor[K]``.

    Reference: ``torch.optim.SGD(momentum=m, dampening=0, nesterov=True)``.
    """

    name: ClassVar[str] = "nesterov"
    nesterov: ClassVar[bool] = True


@dataclass(frozen=True, eq=False)
class SGLD(Rule):
    """Stochastic gradient Langevin dynamics at temperature T (per chain).

    ``w ← w − η_t (g + λ w) + √(2 η_t T) ξ``,  ξ ~ N(0, I) from the engine (``noise``).

    This is the Euler–Maruyama step of the overdamped Langevin SDE
    ``dw = −∇F dt + √(2T) dW`` with time step η_t, whose stationary density is
    ∝ exp(−F/T) (Gibbs). The minibatch noise of ``g`` comes on top of the injected noise
    (for small η it adds ≈ ησ²/(2b) to T, see :func:`sgdlab.theory.sgd_temperature`).
    With ``noise=None`` or T = 0 the step is exactly :class:`SGD`'s.

    Args:
        temperature: T >= 0, 0-d or ``Tensor[K]``.
        weight_decay: λ, 0-d or ``Tensor[K]``.

    Reference: Welling & Teh (2011), *Bayesian learning via stochastic gradient Langevin
    dynamics*, eq. 4 (with their ε/2 = our η and prior folded into F).
    """

    name: ClassVar[str] = "sgld"
    needs_noise: ClassVar[bool] = True
    Params: ClassVar[type[OptimizerParams]] = SGLDParams

    temperature: Tensor | float = 0.0
    weight_decay: Tensor | float = 0.0

    def transforms(self) -> tuple[Transform, ...]:
        return (
            add_decayed_weights(self.weight_decay),
            scale_by_learning_rate(),
            add_noise(self.temperature),
        )
