"""The update-rule interface shared by every optimizer: a named chain of transforms.

An update rule is a pair of pure functions over stacked chains (optax style):

* ``init(params) -> state`` with ``params`` of shape ``[K, d]``;
* ``update(grads, state, params, lr, noise=None, quantize=None) -> (new_params, new_state)``
  with ``grads [K, d]``, ``lr [K]`` (this step's learning rate of each chain, schedule
  included), ``noise [K, d]`` standard-normal draws (only for rules with ``needs_noise``;
  the engine draws them from the ``inject`` stream) and ``quantize [K, d]`` uniforms (only
  for stochastic rounding of the gradient, from the ``quantize`` stream).

Every built-in rule is a :class:`Rule`: a frozen dataclass of tensor hyperparameters (0-d,
shared by all chains, or ``Tensor[K]``, one value per chain; floats given to a constructor
become 0-d float64 tensors) whose :meth:`Rule.transforms` list the pieces of
:mod:`sgdlab.optim.transforms` it is made of (weight decay, momentum, preconditioning,
learning rate, injected noise). Gradient clipping is prepended by the config
(:meth:`Rule.with_clipping`), and before it the gradient's quantization, if any
(:meth:`Rule.with_quantization`). A rule also *declares* what the engine needs to know of it:
whether its step is a plain (momentum) gradient step, for which the SGD–Langevin temperature
is meaningful (``plain_step``), and its effective momentum m (step η/(1−m)).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from sgdlab.optim.perchain import FloatOrList
from sgdlab.optim.transforms import (
    StepInputs,
    Transform,
    as_hyper,
    chain,
    clip_by_global_norm,
    clip_by_value,
    quantize_gradient,
)

__all__ = ["OptimizerParams", "Rule", "UpdateRule"]


@runtime_checkable
class UpdateRule(Protocol):
    """What the engine calls: ``init`` once, then ``update`` every step."""

    name: ClassVar[str]
    #: True only for SGLD: the engine then passes ``noise`` of shape ``[K, d]``, ~ N(0, 1).
    needs_noise: ClassVar[bool]
    #: the SGD–Langevin temperature η/(1−m)·tr Var(g)/(2d) is meaningful for this step
    plain_step: ClassVar[bool]

    @property
    def effective_momentum(self) -> Tensor | float:
        """Momentum m with effective step η/(1−m) (0 for a rule without momentum)."""
        ...

    def init(self, params: Tensor) -> Any:
        """Initial state for stacked parameters ``[K, d]``."""
        ...

    def update(
        self,
        grads: Tensor,
        state: Any,
        params: Tensor,
        lr: Tensor,
        noise: Tensor | None = None,
        quantize: Tensor | None = None,
    ) -> tuple[Tensor, Any]:
        """One step: ``(grads [K,d], state, params [K,d], lr [K], noise [K,d] | None,
        quantize [K,d] | None)`` → ``(new_params [K,d], new_state)``."""
        ...


class OptimizerParams(BaseModel):
    """Base of every optimizer's validated parameters (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    lr: FloatOrList = Field(
        0.01,
        description="base learning rate η₀ (> 0), multiplied by the schedule s(t); "
        "a list sweeps it across equal groups of chains",
    )


@dataclass(frozen=True, eq=False)
class Rule:
    """Base of the built-in rules: a chain of :mod:`~sgdlab.optim.transforms`.

    Subclasses are frozen dataclasses of hyperparameters (floats become 0-d tensors) that
    set ``name``, ``Params`` and :meth:`transforms`; ``init``/``update`` run the chain
    ``clip + transforms()`` and add its output to the parameters.

    Attributes:
        clip: transforms applied to the gradient first (from the config's ``clip`` section;
            see :meth:`with_clipping`).
        quantize: the gradient's quantization, applied before the clipping (from the
            config's ``quantize`` section; see :meth:`with_quantization`).
        quantize_mode: its mode (``none`` without one); ``stochastic`` reads
            ``StepInputs.quantize`` uniforms from the ``quantize`` stream.
    """

    name: ClassVar[str]
    Params: ClassVar[type[OptimizerParams]]
    needs_noise: ClassVar[bool] = False
    plain_step: ClassVar[bool] = True

    clip: tuple[Transform, ...] = field(default=(), kw_only=True)
    quantize: tuple[Transform, ...] = field(default=(), kw_only=True)
    quantize_mode: str = field(default="none", kw_only=True)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "quantize_mode":
                continue
            if isinstance(value, float | int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, as_hyper(value))

    def transforms(self) -> tuple[Transform, ...]:
        """The rule's own pieces, applied after clipping, left to right."""
        raise NotImplementedError

    @functools.cached_property
    def transform(self) -> Transform:
        """``chain(*quantize, *clip, *transforms())``: the whole update."""
        t = chain(*self.quantize, *self.clip, *self.transforms())
        if t.needs_noise != self.needs_noise:
            raise TypeError(f"rule {self.name!r}: needs_noise disagrees with its transforms")
        return t

    @property
    def effective_momentum(self) -> Tensor | float:
        """Momentum m with effective step η/(1−m); 0 for rules without momentum."""
        return 0.0

    def with_clipping(self, norm: float | None = None, value: float | None = None) -> Rule:
        """This rule with the gradient clipped first by global norm, then by value (each
        chain on its own, as ``torch.nn.utils.clip_grad_norm_`` / ``clip_grad_value_``)."""
        clip = ()
        if norm is not None:
            clip += (clip_by_global_norm(norm),)
        if value is not None:
            clip += (clip_by_value(value),)
        return replace(self, clip=clip) if clip else self

    def with_quantization(self, mode: str = "none", bits: int = 8) -> Rule:
        """This rule with the gradient quantized first (:mod:`sgdlab.optim.quantization`:
        ``stochastic`` or ``nearest`` rounding to a ``bits``-bit grid, ``bfloat16``,
        ``float16``); ``none`` leaves it as it is."""
        if mode == "none":
            return self
        return replace(self, quantize=(quantize_gradient(mode, bits),), quantize_mode=mode)

    @property
    def quantize_draws(self) -> bool:
        """Whether the update reads uniforms from the ``quantize`` stream (stochastic rounding)."""
        return self.quantize_mode == "stochastic"

    def init(self, params: Tensor) -> Any:
        return self.transform.init(params)

    def update(
        self,
        grads: Tensor,
        state: Any,
        params: Tensor,
        lr: Tensor,
        noise: Tensor | None = None,
        quantize: Tensor | None = None,
    ) -> tuple[Tensor, Any]:
        """``W ← W + u`` with ``u`` the chain's output (see :class:`UpdateRule`);
        ``quantize [K, d]``: the stochastic rounding's uniforms."""
        u, state = self.transform.update(grads, state, params, StepInputs(lr, noise, quantize))
        return params + u, state
