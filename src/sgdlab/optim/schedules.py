"""Learning-rate schedules as pure closed-form functions of the step.

A schedule is a callable ``s(t)`` of the step ``t = 0, 1, 2, ...``; the engine multiplies it by
each chain's base rate: ``η_t = lr0 · s(t)``. Every built-in has ``s(0) = 1`` (warmup aside),
works on a Python ``int`` (returns ``float``), a NumPy array (returns float64 array) and a
torch tensor of steps (returns a float tensor: float64 for integer steps), and exposes its
asymptotic tail (:class:`Tail`) for the Robbins–Monro test
(:func:`~sgdlab.optim.robbins_monro`).

=============== ============================================ ===============================
name            s(t)                                         tail (t → ∞)
=============== ============================================ ===============================
constant        1                                            constant 1
inverse_time    1 / (1 + k t)                                t^-1 (k > 0)
inverse_sqrt    1 / √(t + 1)                                 t^-1/2
step            γ^⌊t / S⌋                                    (γ^(1/S))^t
exponential     γ^t                                          γ^t
cosine          s_min + (1 − s_min)(1 + cos(π min(t,T)/T))/2 constant s_min for t ≥ T
polynomial      (1 + t)^-p                                   t^-p
beta_gamma      γ / (γ + t)   (η_t = β/(γ+t) with lr0 = β/γ) t^-1
=============== ============================================ ===============================

**Warmup convention** (:class:`Warmup`, any schedule's ``warmup: W`` key): a linear ramp of W
steps followed by the *shifted* base schedule,

    s(t) = (t + 1) / W        for 0 ≤ t < W,
    s(t) = base(t − W)        for t ≥ W,

so the ramp goes 1/W, 2/W, …, 1 and the base schedule then runs unchanged from its own
step 0 (a cosine's default horizon is the run length minus W, so it still ends at the end of
the run). This is ``torch.optim.lr_scheduler.SequentialLR([LinearLR(start_factor=1/W,
total_iters=W−1), base], milestones=[W])``. Warmup never changes the tail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from pydantic import Field

from sgdlab.optim.schedule_base import Schedule, ScheduleParams, Tail, Warmup

__all__ = [
    "BetaGamma",
    "Constant",
    "Cosine",
    "Exponential",
    "InverseSqrt",
    "InverseTime",
    "Polynomial",
    "Schedule",
    "ScheduleParams",
    "Step",
    "Tail",
    "Warmup",
]


def _ones(xp: Any, t: Any) -> Any:
    return xp.ones_like(t) if hasattr(t, "shape") else 1.0


@dataclass(frozen=True)
class Constant(Schedule):
    """``s(t) = 1``: a constant learning rate (converges only to a noise floor)."""

    name: ClassVar[str] = "constant"

    def _factor(self, xp: Any, t: Any) -> Any:
        return _ones(xp, t)

    def tail(self) -> Tail:
        return Tail(eventually_constant=1.0)

    def formula(self) -> str:
        return "1"


class InverseTimeParams(ScheduleParams):
    k: float = Field(ge=0, description="decay rate k >= 0 of s(t) = 1/(1 + k t)")


@dataclass(frozen=True)
class InverseTime(Schedule):
    """``s(t) = 1 / (1 + k t)``: the classical Robbins–Monro rate O(1/t).

    Reference: Robbins & Monro (1951); ``LambdaLR(lambda t: 1/(1+k*t))``.
    """

    name: ClassVar[str] = "inverse_time"
    Params: ClassVar[type[ScheduleParams]] = InverseTimeParams
    k: float

    def _factor(self, xp: Any, t: Any) -> Any:
        return 1.0 / (1.0 + self.k * t)

    def tail(self) -> Tail:
        return Tail(power=1.0) if self.k > 0 else Tail(eventually_constant=1.0)

    def formula(self) -> str:
        return f"1/(1 + {self.k:g} t)"


@dataclass(frozen=True)
class InverseSqrt(Schedule):
    """``s(t) = 1 / √(t + 1)``: Σ s diverges, but Σ s² is harmonic and diverges too."""

    name: ClassVar[str] = "inverse_sqrt"

    def _factor(self, xp: Any, t: Any) -> Any:
        return 1.0 / xp.sqrt(t + 1.0)

    def tail(self) -> Tail:
        return Tail(power=0.5)

    def formula(self) -> str:
        return "1/√(t + 1)"


class StepParams(ScheduleParams):
    step_size: int = Field(gt=0, description="S: multiply by γ every S steps")
    gamma: float = Field(0.1, gt=0, le=1, description="γ in (0, 1]: the factor per decay")


@dataclass(frozen=True)
class Step(Schedule):
    """``s(t) = γ^⌊t / S⌋``: piecewise-constant decay; equals ``torch``'s ``StepLR``."""

    name: ClassVar[str] = "step"
    Params: ClassVar[type[ScheduleParams]] = StepParams
    step_size: int
    gamma: float = 0.1

    def _factor(self, xp: Any, t: Any) -> Any:
        return self.gamma ** xp.floor(t / self.step_size)

    def tail(self) -> Tail:
        if self.gamma == 1.0:
            return Tail(eventually_constant=1.0)
        return Tail(ratio=self.gamma ** (1.0 / self.step_size))

    def formula(self) -> str:
        return f"{self.gamma:g}^⌊t/{self.step_size}⌋"


class ExponentialParams(ScheduleParams):
    gamma: float = Field(gt=0, le=1, description="γ in (0, 1]: the factor per step")


@dataclass(frozen=True)
class Exponential(Schedule):
    """``s(t) = γ^t``: geometric decay; equals ``torch``'s ``ExponentialLR``."""

    name: ClassVar[str] = "exponential"
    Params: ClassVar[type[ScheduleParams]] = ExponentialParams
    gamma: float

    def _factor(self, xp: Any, t: Any) -> Any:
        return self.gamma**t

    def tail(self) -> Tail:
        if self.gamma == 1.0:
            return Tail(eventually_constant=1.0)
        return Tail(ratio=self.gamma)

    def formula(self) -> str:
        return f"{self.gamma:g}^t"


class CosineParams(ScheduleParams):
    horizon: int | None = Field(
        None, gt=0, description="T: steps to reach s_min (default: the run's steps − warmup)"
    )
    s_min: float = Field(0.0, ge=0, le=1, description="final factor s_min in [0, 1]")


@dataclass(frozen=True)
class Cosine(Schedule):
    """``s(t) = s_min + (1 − s_min)(1 + cos(π min(t, T)/T))/2``: cosine annealing, then flat.

    Equals ``CosineAnnealingLR(T_max=T, eta_min=s_min)`` (base lr 1) for t ≤ T; afterwards it
    stays at ``s_min`` (torch's would rise again). Reference: Loshchilov & Hutter (2017),
    *SGDR*, eq. 5 without restarts.
    """

    name: ClassVar[str] = "cosine"
    Params: ClassVar[type[ScheduleParams]] = CosineParams
    horizon: int
    s_min: float = 0.0

    def _factor(self, xp: Any, t: Any) -> Any:
        T = float(self.horizon)
        tc = torch.clamp(t, max=T) if xp is torch else xp.minimum(t, T)
        return self.s_min + (1.0 - self.s_min) * (1.0 + xp.cos(math.pi * tc / T)) / 2.0

    def tail(self) -> Tail:
        return Tail(eventually_constant=float(self.s_min))

    def formula(self) -> str:
        T, lo = self.horizon, self.s_min
        return f"{lo:g} + {1 - lo:g}(1 + cos(π min(t,{T})/{T}))/2"


class PolynomialParams(ScheduleParams):
    power: float = Field(ge=0, description="p >= 0 of s(t) = (1 + t)^(−p)")


@dataclass(frozen=True)
class Polynomial(Schedule):
    """``s(t) = (1 + t)^(−p)``: Robbins–Monro holds exactly for p ∈ (1/2, 1].

    Reference: Polyak & Juditsky (1992) use p ∈ (1/2, 1) with iterate averaging.
    """

    name: ClassVar[str] = "polynomial"
    Params: ClassVar[type[ScheduleParams]] = PolynomialParams
    power: float

    def _factor(self, xp: Any, t: Any) -> Any:
        return (1.0 + t) ** (-self.power)

    def tail(self) -> Tail:
        return Tail(power=self.power) if self.power > 0 else Tail(eventually_constant=1.0)

    def formula(self) -> str:
        return f"(1 + t)^(−{self.power:g})"


class BetaGammaParams(ScheduleParams):
    gamma: float = Field(gt=0, description="γ > 0 of η_t = β/(γ + t); set lr = β/γ")


@dataclass(frozen=True)
class BetaGamma(Schedule):
    """``s(t) = γ / (γ + t)``: the rates study's ``η_t = β / (γ + t)`` with ``lr0 = β / γ``.

    With μ-strong convexity and β > 1/μ this gives E‖w_t − w*‖² = O(1/t) (Bottou, Curtis &
    Nocedal 2018, Theorem 4.7).
    """

    name: ClassVar[str] = "beta_gamma"
    Params: ClassVar[type[ScheduleParams]] = BetaGammaParams
    gamma: float

    def _factor(self, xp: Any, t: Any) -> Any:
        return self.gamma / (self.gamma + t)

    def tail(self) -> Tail:
        return Tail(power=1.0)

    def formula(self) -> str:
        return f"{self.gamma:g}/({self.gamma:g} + t)"
