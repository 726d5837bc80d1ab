"""Base of the schedules: the :class:`Schedule` interface, its :class:`Tail`, and warmup.

See :mod:`sgdlab.optim.schedules` for the built-in closed forms and the warmup convention.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

__all__ = ["Schedule", "ScheduleParams", "Tail", "Warmup"]


@dataclass(frozen=True)
class Tail:
    """Asymptotic form of a schedule: ``s(t) ≍ t^(−power) · ratio^t`` for large t.

    ``≍`` means bounded above and below by positive multiples. If ``eventually_constant`` is
    not ``None`` the schedule *equals* that constant for all large t (``power``/``ratio`` are
    then 0/1); ``eventually_zero`` is ``eventually_constant == 0``.
    """

    power: float = 0.0
    ratio: float = 1.0
    eventually_constant: float | None = None
    eventually_zero: bool = False

    def __post_init__(self) -> None:
        if self.eventually_zero and self.eventually_constant is None:
            object.__setattr__(self, "eventually_constant", 0.0)
        if self.eventually_constant is not None:
            object.__setattr__(self, "eventually_zero", self.eventually_constant == 0.0)


class ScheduleParams(BaseModel):
    """Base of every schedule's validated parameters (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    warmup: int = Field(
        0, ge=0, description="linear warmup steps W: s(t) = (t+1)/W for t < W, then base(t−W)"
    )


def _prepare(t: Any) -> tuple[Any, Any, Any]:
    """(array module, float steps, converter back to the caller's kind)."""
    if isinstance(t, Tensor):
        return torch, (t if t.is_floating_point() else t.to(torch.float64)), lambda x: x
    if isinstance(t, np.ndarray):
        return np, np.asarray(t, dtype=np.float64), np.asarray
    if isinstance(t, np.generic):
        return np, np.float64(t), np.float64
    return np, np.float64(t), float


class Schedule(ABC):
    """A closed-form schedule ``s(t)``; subclasses implement ``_factor`` and :meth:`tail`."""

    name: ClassVar[str]
    Params: ClassVar[type[ScheduleParams]] = ScheduleParams

    def __call__(self, t: Any) -> Any:
        xp, tt, back = _prepare(t)
        return back(self._factor(xp, tt))

    @abstractmethod
    def _factor(self, xp: Any, t: Any) -> Any: ...

    @abstractmethod
    def tail(self) -> Tail:
        """The asymptotic form of ``s(t)`` (see :class:`Tail`)."""

    @abstractmethod
    def formula(self) -> str:
        """The closed form as text, e.g. ``"1/(1 + 0.01 t)"``."""


@dataclass(frozen=True)
class Warmup(Schedule):
    """Linear warmup of ``steps`` = W steps before ``base``: ``(t+1)/W`` for t < W, then
    ``base(t − W)`` (see the module docstring for the convention)."""

    name: ClassVar[str] = "warmup"
    base: Schedule
    steps: int

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"warmup steps must be >= 1, got {self.steps}")

    def _factor(self, xp: Any, t: Any) -> Any:
        W = float(self.steps)
        if xp is torch:
            return torch.where(t < W, (t + 1.0) / W, self.base._factor(xp, (t - W).clamp(min=0.0)))
        return np.where(t < W, (t + 1.0) / W, self.base._factor(xp, np.maximum(t - W, 0.0)))

    def tail(self) -> Tail:
        return self.base.tail()

    def formula(self) -> str:
        W = self.steps
        return f"(t+1)/{W} for t < {W}, then [{self.base.formula()}] at t−{W}"
