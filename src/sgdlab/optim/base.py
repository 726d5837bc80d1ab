"""The update-rule interface shared by every optimizer, and its small helpers.

An update rule is a pair of pure functions over stacked chains (optax style):

* ``init(params) -> state`` with ``params`` of shape ``[K, d]``;
* ``update(grads, state, params, lr, noise=None) -> (new_params, new_state)`` with
  ``grads [K, d]``, ``lr [K]`` (this step's learning rate of each chain, schedule
  included) and ``noise [K, d]`` standard-normal draws (only for rules with
  ``needs_noise``; the engine draws them from a named stream).

Rules are frozen dataclasses whose hyperparameters are tensors: a 0-d tensor (shared by all
chains) or ``Tensor[K]`` (one value per chain). Floats given to a constructor are turned into
0-d float64 tensors. The state is a small ``NamedTuple`` of tensors, so a checkpoint captures
it and chains never share state.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, ClassVar, NamedTuple, Protocol, runtime_checkable

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from sgdlab.optim.perchain import FloatOrList

__all__ = ["OptimizerParams", "UpdateRule", "as_hyper", "col"]


@runtime_checkable
class UpdateRule(Protocol):
    """What the engine calls: ``init`` once, then ``update`` every step."""

    name: ClassVar[str]
    #: True only for SGLD: the engine then passes ``noise`` of shape ``[K, d]``, ~ N(0, 1).
    needs_noise: ClassVar[bool]

    def init(self, params: Tensor) -> NamedTuple:
        """Initial state for stacked parameters ``[K, d]``."""
        ...

    def update(
        self,
        grads: Tensor,
        state: Any,
        params: Tensor,
        lr: Tensor,
        noise: Tensor | None = None,
    ) -> tuple[Tensor, Any]:
        """One step: ``(grads [K,d], state, params [K,d], lr [K], noise [K,d] | None)``
        → ``(new_params [K,d], new_state)``."""
        ...


class OptimizerParams(BaseModel):
    """Base of every optimizer's validated parameters (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    lr: FloatOrList = Field(
        0.01,
        description="base learning rate η₀ (> 0), multiplied by the schedule s(t); "
        "a list sweeps it across equal groups of chains",
    )


def as_hyper(value: float | Tensor) -> Tensor:
    """A hyperparameter as a tensor: floats become 0-d float64 tensors, tensors pass through."""
    if isinstance(value, Tensor):
        return value
    return torch.tensor(float(value), dtype=torch.float64)


def col(h: Tensor, like: Tensor) -> Tensor:
    """``h`` (0-d or ``[K]``) cast to ``like``'s dtype/device, shaped to broadcast on ``[K, d]``."""
    h = h.to(dtype=like.dtype, device=like.device)
    return h[:, None] if h.ndim == 1 else h


def tensorize(rule: Any) -> None:
    """``__post_init__`` helper: turn float fields of a frozen dataclass into tensors."""
    for f in fields(rule):
        value = getattr(rule, f.name)
        if isinstance(value, float | int) and not isinstance(value, bool):
            object.__setattr__(rule, f.name, as_hyper(value))


def decay(grads: Tensor, params: Tensor, weight_decay: Tensor) -> Tensor:
    """Coupled L2 weight decay as in ``torch.optim``: ``g + λ w`` (skipped when λ ≡ 0)."""
    if weight_decay.ndim == 0 and float(weight_decay) == 0.0:
        return grads
    return grads + col(weight_decay, params) * params
