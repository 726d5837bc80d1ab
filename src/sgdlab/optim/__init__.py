"""Functional optimizers over stacked chains, schedules, Robbins–Monro, clipping, scaling.

* Update transforms over ``W [K, d]`` (:mod:`sgdlab.optim.transforms`: clipping, weight
  decay, momentum, Adam/RMS preconditioning, learning rate, Langevin noise, :func:`chain`).
* Update rules (hyperparameters ``Tensor[K]``), each a chain of transforms: :class:`SGD`,
  :class:`Momentum`, :class:`Nesterov`, :class:`Adam`, :class:`RMSprop`, :class:`SGLD`;
  registry :data:`OPTIMIZERS`, :func:`build_optimizer` and :func:`make_optimizer` (the
  :class:`Optimizer` a run executes).
* Schedules ``s(t)`` with closed forms and tails; registry :data:`SCHEDULES` and
  :func:`build_schedule`; :func:`robbins_monro` decides Σ s = ∞, Σ s² < ∞ analytically.
* :func:`clip_by_global_norm`, :func:`clip_by_value` (per chain) and :func:`scale_lr`.
* :func:`per_chain`: a scalar or a list of values → one value per chain.

Example:
    >>> import torch
    >>> from sgdlab import optim
    >>> rule, lr0 = optim.build_optimizer({"name": "adam", "lr": [1e-3, 1e-2]}, chains=4)
    >>> sched = optim.build_schedule({"name": "inverse_time", "k": 0.01}, total_steps=1000)
    >>> optim.robbins_monro(sched).satisfied
    True
    >>> W = torch.zeros(4, 3, dtype=torch.float64)
    >>> state = rule.init(W)
    >>> W, state = rule.update(torch.ones_like(W), state, W, lr0 * sched(0))
"""

from sgdlab.optim import transforms
from sgdlab.optim.adaptive import Adam, AdamParams, AdamState, RMSprop, RMSpropParams, RMSpropState
from sgdlab.optim.base import OptimizerParams, Rule, UpdateRule
from sgdlab.optim.clipping import clip_by_global_norm, clip_by_value, global_norm
from sgdlab.optim.perchain import FloatOrList, per_chain
from sgdlab.optim.registry import (
    OPTIMIZERS,
    SCHEDULES,
    Optimizer,
    build_optimizer,
    build_schedule,
    make_optimizer,
    optimizer_class,
    schedule_class,
)
from sgdlab.optim.robbins_monro import RobbinsMonroResult, robbins_monro
from sgdlab.optim.rules import (
    SGD,
    SGLD,
    Momentum,
    MomentumParams,
    Nesterov,
    SGDParams,
    SGLDParams,
)
from sgdlab.optim.scaling import SCALING_RULES, scale_lr
from sgdlab.optim.schedule_base import Schedule, ScheduleParams, Tail, Warmup
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
from sgdlab.optim.transforms import EmptyState, MomentumState, StepInputs, Transform, chain

__all__ = [
    "OPTIMIZERS",
    "SCALING_RULES",
    "SCHEDULES",
    "SGD",
    "SGLD",
    "Adam",
    "AdamParams",
    "AdamState",
    "BetaGamma",
    "Constant",
    "Cosine",
    "EmptyState",
    "Exponential",
    "FloatOrList",
    "InverseSqrt",
    "InverseTime",
    "Momentum",
    "MomentumParams",
    "MomentumState",
    "Nesterov",
    "Optimizer",
    "OptimizerParams",
    "Polynomial",
    "RMSprop",
    "RMSpropParams",
    "RMSpropState",
    "RobbinsMonroResult",
    "Rule",
    "SGDParams",
    "SGLDParams",
    "Schedule",
    "ScheduleParams",
    "Step",
    "StepInputs",
    "Tail",
    "Transform",
    "UpdateRule",
    "Warmup",
    "build_optimizer",
    "build_schedule",
    "chain",
    "clip_by_global_norm",
    "clip_by_value",
    "global_norm",
    "make_optimizer",
    "optimizer_class",
    "per_chain",
    "robbins_monro",
    "scale_lr",
    "schedule_class",
    "transforms",
]
