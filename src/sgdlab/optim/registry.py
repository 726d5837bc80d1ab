"""Registries of update rules and schedules, and the builders from config sections.

* ``build_optimizer(section, chains, dtype, device)`` → ``(rule, lr0 [K])``;
* ``build_schedule(section, total_steps)`` → a :class:`~sgdlab.optim.Schedule`;
* ``make_optimizer(...)`` → the :class:`Optimizer` a run executes (rule with its clipping,
  base rates and schedule).

Errors are :class:`~sgdlab.errors.ConfigError` naming ``optimizer.<key>`` / ``schedule.<key>``,
with a "did you mean" suggestion for unknown names and keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from sgdlab.errors import ConfigError
from sgdlab.optim.adaptive import Adam, RMSprop
from sgdlab.optim.base import UpdateRule
from sgdlab.optim.perchain import per_chain
from sgdlab.optim.rules import SGD, SGLD, Momentum, Nesterov
from sgdlab.optim.schedule_base import Schedule, Warmup
from sgdlab.optim.schedules import (
    BetaGamma,
    Constant,
    Cosine,
    Exponential,
    InverseSqrt,
    InverseTime,
    Polynomial,
    Step,
)
from sgdlab.validation import shorten, unknown_name, validate_section

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "Optimizer",
    "build_optimizer",
    "build_schedule",
    "make_optimizer",
    "optimizer_class",
    "schedule_class",
]

#: name → rule class; each class has ``Params`` (its pydantic model) and the dataclass fields
#: named like the ``Params`` fields (except ``lr``, which the engine applies).
OPTIMIZERS: dict[str, type] = {
    cls.name: cls for cls in (SGD, Momentum, Nesterov, Adam, RMSprop, SGLD)
}

#: name → schedule class; each has ``Params`` (fields = constructor arguments + ``warmup``).
SCHEDULES: dict[str, type[Schedule]] = {
    cls.name: cls
    for cls in (
        Constant,
        InverseTime,
        InverseSqrt,
        Step,
        Exponential,
        Cosine,
        Polynomial,
        BetaGamma,
    )
}

# Range checks of the per-chain numeric fields (keyword arguments of ``per_chain``).
_BOUNDS: dict[str, dict[str, Any]] = {
    "lr": {"positive": True},
    "weight_decay": {"nonneg": True},
    "momentum": {"nonneg": True, "below": 1.0},
    "beta1": {"nonneg": True, "below": 1.0},
    "beta2": {"nonneg": True, "below": 1.0},
    "alpha": {"nonneg": True, "below": 1.0},
    "eps": {"positive": True},
    "temperature": {"nonneg": True},
}


def optimizer_class(name: str) -> type:
    """The rule class registered as ``name``; a :class:`ConfigError` with a suggestion otherwise."""
    if name not in OPTIMIZERS:
        raise unknown_name("optimizer", "optimizer", name, OPTIMIZERS)
    return OPTIMIZERS[name]


def build_optimizer(
    params: dict[str, Any],
    chains: int,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> tuple[UpdateRule, Tensor]:
    """Validate an ``optimizer`` config section and build the rule for ``chains`` chains.

    Args:
        params: ``{"name": ..., "lr": ..., <hyperparameters>}``; every numeric value may be a
            list whose length divides ``chains`` (see :func:`~sgdlab.optim.per_chain`).
        chains: number of chains K.
        dtype: dtype of the per-chain tensors (that of the parameters).
        device: their device.

    Returns:
        ``(rule, lr0)``: the update rule, with ``Tensor[K]`` hyperparameters, and the base
        learning rate of every chain ``lr0 [K]`` (the engine uses η_t = lr0 · s(t)).

    Raises:
        ConfigError: with field ``optimizer.<key>``.

    Example:
        >>> rule, lr0 = build_optimizer({"name": "momentum", "lr": [0.1, 0.2]}, 4)
        >>> rule.name, lr0.tolist(), rule.momentum.tolist()
        ('momentum', [0.1, 0.1, 0.2, 0.2], [0.9, 0.9, 0.9, 0.9])
    """
    if not isinstance(params, dict):
        raise ConfigError(
            "optimizer", f"must be a mapping with a 'name' key, got {shorten(params)}"
        )
    data = dict(params)
    if "name" not in data:
        raise ConfigError("optimizer.name", f"missing: choose one of {', '.join(OPTIMIZERS)}")
    cls = optimizer_class(data.pop("name"))
    validated = validate_section(cls.Params, data, "optimizer")
    kwargs: dict[str, Any] = {}
    lr0 = torch.empty(0)
    for key in type(validated).model_fields:
        value = getattr(validated, key)
        if isinstance(value, bool):
            kwargs[key] = value
            continue
        vec = per_chain(
            value, chains, f"optimizer.{key}", dtype=dtype, device=device, **_BOUNDS.get(key, {})
        )
        if key == "lr":
            lr0 = vec
        else:
            kwargs[key] = vec
    return cls(**kwargs), lr0


def schedule_class(name: str) -> type[Schedule]:
    """The schedule registered as ``name``; a :class:`ConfigError` with a suggestion otherwise."""
    if name not in SCHEDULES:
        raise unknown_name("schedule", "schedule", name, SCHEDULES)
    return SCHEDULES[name]


def build_schedule(params: dict[str, Any] | None, total_steps: int) -> Schedule:
    """Validate a ``schedule`` config section and build the schedule.

    Args:
        params: ``{"name": ..., <parameters>, "warmup": W}``; ``None`` or ``{}`` is constant.
        total_steps: the run's number of steps (default cosine horizon: ``total_steps − W``).

    Returns:
        The schedule ``s(t)``, wrapped in :class:`~sgdlab.optim.Warmup` when ``W > 0``.

    Raises:
        ConfigError: with field ``schedule.<key>``.

    Example:
        >>> s = build_schedule({"name": "inverse_time", "k": 0.5}, 100)
        >>> s(2)
        0.5
    """
    if params is None:
        params = {"name": "constant"}
    if not isinstance(params, dict):
        raise ConfigError(
            "schedule", f"must be a mapping with a 'name' key, got {shorten(params)}"
        )
    data = dict(params)
    cls = schedule_class(data.pop("name", "constant"))
    validated = validate_section(cls.Params, data, "schedule")
    kwargs = validated.model_dump(exclude={"warmup"})
    warmup = validated.warmup
    if cls is Cosine and kwargs["horizon"] is None:
        if total_steps - warmup < 1:
            raise ConfigError(
                "schedule.warmup",
                f"warmup of {warmup} steps leaves no steps of a {total_steps}-step run for the "
                "cosine: shorten the warmup or set schedule.horizon",
            )
        kwargs["horizon"] = total_steps - warmup
    schedule = cls(**kwargs)
    return Warmup(schedule, warmup) if warmup > 0 else schedule


@dataclass(frozen=True)
class Optimizer:
    """What a run executes: the update rule (clipping included), every chain's base rate and
    the schedule. The engine asks it for η_t and calls ``rule.update``; it never looks a rule
    up by name (what it needs to know, the rule declares: ``needs_noise``, ``plain_step``,
    ``effective_momentum``).

    Attributes:
        rule: the update rule over ``W [K, d]``.
        lr0: base learning rates ``[K]``.
        schedule: ``s(t)``; the learning rate of step t is ``lr0 · s(t)``.
    """

    rule: UpdateRule
    lr0: Tensor
    schedule: Schedule

    def learning_rate(self, t: int) -> Tensor:
        """η_t = lr0 · s(t), ``[K]``."""
        return self.lr0 * self.schedule(t)


def make_optimizer(
    optimizer: dict[str, Any],
    schedule: dict[str, Any] | None,
    clip: dict[str, Any] | None,
    chains: int,
    total_steps: int,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> Optimizer:
    """The :class:`Optimizer` of a run's ``optimizer``, ``schedule`` and ``clip`` sections
    (``clip``: ``{"norm": c or None, "value": c or None}``; clipping by norm, then by value,
    is prepended to the rule's chain)."""
    rule, lr0 = build_optimizer(optimizer, chains, dtype, device)
    clip = clip or {}
    rule = rule.with_clipping(clip.get("norm"), clip.get("value"))
    return Optimizer(rule, lr0, build_schedule(schedule, total_steps))
