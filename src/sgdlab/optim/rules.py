"""Plain, momentum and Langevin update rules over stacked chains ``W [K, d]``.

All rules follow ``torch.optim.SGD``'s arithmetic (dampening 0), so a chain updated here
matches ``torch.optim.SGD`` run on that chain alone (tested in float64). Weight decay is
coupled L2: the gradient becomes ``g + λ w`` before anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from pydantic import Field
from torch import Tensor

from sgdlab.optim.base import OptimizerParams, col, decay, tensorize
from sgdlab.optim.perchain import FloatOrList

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


class EmptyState(NamedTuple):
    """State of a stateless rule."""


class MomentumState(NamedTuple):
    """Velocity buffer ``v`` of a heavy-ball or Nesterov rule, ``[K, d]``."""

    velocity: Tensor


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
class SGD:
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
    needs_noise: ClassVar[bool] = False
    Params: ClassVar[type[OptimizerParams]] = SGDParams

    weight_decay: Tensor | float = 0.0

    def __post_init__(self) -> None:
        tensorize(self)

    def init(self, params: Tensor) -> EmptyState:
        return EmptyState()

    def update(
        self,
        grads: Tensor,
        state: EmptyState,
        params: Tensor,
        lr: Tensor,
        noise: Tensor | None = None,
    ) -> tuple[Tensor, EmptyState]:
        g = decay(grads, params, self.weight_decay)
        return params - col(lr, params) * g, state


def _heavy_ball(
    grads: Tensor,
    state: MomentumState,
    params: Tensor,
    lr: Tensor,
    momentum: Tensor,
    weight_decay: Tensor,
    nesterov: bool,
) -> tuple[Tensor, MomentumState]:
    g = decay(grads, params, weight_decay)
    m = col(momentum, params)
    v = m * state.velocity + g  # v_0 = 0, so v_1 = g exactly as torch's clone(g)
    step = g + m * v if nesterov else v
    return params - col(lr, params) * step, MomentumState(v)


@dataclass(frozen=True, eq=False)
class Momentum:
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
    needs_noise: ClassVar[bool] = False
    nesterov: ClassVar[bool] = False
    Params: ClassVar[type[OptimizerParams]] = MomentumParams

    momentum: Tensor | float = 0.9
    weight_decay: Tensor | float = 0.0

    def __post_init__(self) -> None:
        tensorize(self)

    def init(self, params: Tensor) -> MomentumState:
        return MomentumState(torch.zeros_like(params))

    def update(
        self,
        grads: Tensor,
        state: MomentumState,
        params: Tensor,
        lr: Tensor,
        noise: Tensor | None = None,
    ) -> tuple[Tensor, MomentumState]:
        return _heavy_ball(
            grads, state, params, lr, self.momentum, self.weight_decay, self.nesterov
        )


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
class SGLD:
    """Stochastic gradient Langevin dynamics at temperature T (per chain).

    ``w ← w − η_t (g + λ w) + √(2 η_t T) ξ``,  ξ ~ N(0, I) from the engine (``noise``).

    This is the Euler–Maruyama step of the overdamped Langevin SDE
    ``dw = −∇F dt + √(2T) dW`` with time step η_t, whose stationary density is
    ∝ exp(−F/T) (Gibbs). The minibatch noise of ``g`` comes on top of the injected noise
    (for small η it adds ≈ ησ²/(2b) to T, see ``DESIGN.md``). With ``noise=None`` or
    T = 0 the step is exactly :class:`SGD`'s.

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

    def __post_init__(self) -> None:
        tensorize(self)

    def init(self, params: Tensor) -> EmptyState:
        return EmptyState()

    def update(
        self,
        grads: Tensor,
        state: EmptyState,
        params: Tensor,
        lr: Tensor,
        noise: Tensor | None = None,
    ) -> tuple[Tensor, EmptyState]:
        g = decay(grads, params, self.weight_decay)
        eta = col(lr, params)
        new = params - eta * g
        if noise is not None:
            new = new + torch.sqrt(2.0 * eta * col(self.temperature, params)) * noise
        return new, state
