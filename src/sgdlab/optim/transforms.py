"""Update transforms over stacked chains ``W [K, d]``: small pure pieces that compose (optax).

A :class:`Transform` is a pair of pure functions::

    init(params [K, d]) -> state
    update(updates [K, d], state, params [K, d], step: StepInputs) -> (updates [K, d], state)

``updates`` enter as the minibatch gradients and leave as the change to *add* to the
parameters (``W ← W + u``, as ``optax.apply_updates``). ``step`` carries what the step brings
besides the gradient: this step's learning rate of every chain ``η_t = lr0·s(t)`` (``[K]``:
the schedule is applied by the caller, once per step) and, for :func:`add_noise`, standard
normal draws ``[K, d]`` from the ``inject`` stream. Hyperparameters are 0-d tensors (shared)
or ``Tensor[K]`` (one per chain). States are small ``NamedTuple`` s of ``[K, ...]`` tensors,
so chains never share state; :func:`chain` composes transforms left to right and its state
(:class:`ChainState`) is the tuple of theirs.

The update rules of :mod:`sgdlab.optim.rules` are chains of these (see each rule's
``transforms``), in PyTorch's arithmetic so that a chain matches ``torch.optim`` run on that
chain alone (tested in float64).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from sgdlab.optim.clipping import clip_by_global_norm as _clip_norm
from sgdlab.optim.clipping import clip_by_value as _clip_value
from sgdlab.optim.quantization import quantize as _quantize

__all__ = [
    "AdamState",
    "ChainState",
    "EmptyState",
    "MomentumState",
    "RMSpropState",
    "StepInputs",
    "Transform",
    "add_decayed_weights",
    "add_noise",
    "as_hyper",
    "chain",
    "clip_by_global_norm",
    "clip_by_value",
    "col",
    "quantize_gradient",
    "scale_by_adam",
    "scale_by_learning_rate",
    "scale_by_rms",
    "trace",
]


class StepInputs(NamedTuple):
    """What one step brings besides the gradient.

    Attributes:
        lr: η_t of every chain, ``[K]`` (base rate × schedule) or 0-d.
        noise: ``[K, d]`` draws ~ N(0, 1) from the ``inject`` stream, or ``None`` (the
            stream is off, or no transform needs it).
        quantize: ``[K, d]`` draws ~ U[0, 1) from the ``quantize`` stream for stochastic
            rounding (:func:`quantize_gradient`), or ``None``.
    """

    lr: Tensor
    noise: Tensor | None = None
    quantize: Tensor | None = None


Update = Callable[[Tensor, Any, Tensor, StepInputs], tuple[Tensor, Any]]


@dataclass(frozen=True)
class Transform:
    """A pure update transform (see the module docstring).

    Attributes:
        init: ``params [K, d] -> state``.
        update: ``(updates, state, params, step) -> (updates, state)``.
        needs_noise: whether ``update`` reads ``step.noise`` (the engine then draws it).
    """

    init: Callable[[Tensor], Any]
    update: Update
    needs_noise: bool = False


class EmptyState(NamedTuple):
    """State of a stateless transform."""


class MomentumState(NamedTuple):
    """Velocity buffer ``v`` of :func:`trace` (heavy ball or Nesterov), ``[K, d]``."""

    velocity: Tensor


class AdamState(NamedTuple):
    """:func:`scale_by_adam`'s state: step count ``[K]`` (int64), the two moments ``[K, d]``."""

    step: Tensor
    exp_avg: Tensor
    exp_avg_sq: Tensor


class RMSpropState(NamedTuple):
    """:func:`scale_by_rms`'s state: step count ``[K]``, ``E[g²]``, ``E[g]`` (centered) and the
    momentum buffer, each ``[K, d]``."""

    step: Tensor
    square_avg: Tensor
    grad_avg: Tensor
    momentum_buffer: Tensor


class ChainState(tuple):
    """The states of a :func:`chain`'s transforms, in order. A field of one of them is also
    reached by name (``state.velocity``, ``state.exp_avg``) when exactly one has it."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        owners = [s for s in self if name in getattr(s, "_fields", ())]
        if len(owners) != 1:
            raise AttributeError(name)
        return getattr(owners[0], name)

    @classmethod
    def _make(cls, parts: Iterable[Any]) -> ChainState:
        return cls(parts)


# ----------------------------------------------------------------- helpers
def as_hyper(value: float | Tensor) -> Tensor:
    """A hyperparameter as a tensor: floats become 0-d float64 tensors, tensors pass through."""
    if isinstance(value, Tensor):
        return value
    return torch.tensor(float(value), dtype=torch.float64)


def col(h: Tensor, like: Tensor) -> Tensor:
    """``h`` (0-d or ``[K]``) cast to ``like``'s dtype/device, shaped to broadcast on ``[K, d]``."""
    h = h.to(dtype=like.dtype, device=like.device)
    return h[:, None] if h.ndim == 1 else h


def _empty(params: Tensor) -> EmptyState:
    return EmptyState()


def _stateless(
    fn: Callable[[Tensor, Tensor, StepInputs], Tensor], noise: bool = False
) -> Transform:
    def update(u: Tensor, state: Any, params: Tensor, step: StepInputs) -> tuple[Tensor, Any]:
        return fn(u, params, step), state

    return Transform(_empty, update, noise)


# ----------------------------------------------------------------- composition
def chain(*transforms: Transform) -> Transform:
    """Apply ``transforms`` left to right; the state is the :class:`ChainState` of theirs.

    Example:
        >>> sgd = chain(add_decayed_weights(0.0), scale_by_learning_rate())
        >>> W = torch.ones(2, 3, dtype=torch.float64)
        >>> lr = torch.tensor([0.1, 0.5], dtype=torch.float64)
        >>> u, _ = sgd.update(W, sgd.init(W), W, StepInputs(lr))
        >>> (W + u)[:, 0].tolist()
        [0.9, 0.5]
    """

    def init(params: Tensor) -> ChainState:
        return ChainState(t.init(params) for t in transforms)

    def update(u: Tensor, state: Any, params: Tensor, step: StepInputs) -> tuple[Tensor, Any]:
        new = []
        for t, s in zip(transforms, state, strict=True):
            u, s = t.update(u, s, params, step)
            new.append(s)
        return u, ChainState(new)

    return Transform(init, update, any(t.needs_noise for t in transforms))


# ----------------------------------------------------------------- gradient transforms
def clip_by_global_norm(max_norm: float | Tensor) -> Transform:
    """Rescale each chain's update to L2 norm at most c_k (``torch.nn.utils.clip_grad_norm_``
    per chain, see :func:`sgdlab.optim.clipping.clip_by_global_norm`)."""
    return _stateless(lambda u, params, step: _clip_norm(u, max_norm))


def clip_by_value(clip: float | Tensor) -> Transform:
    """Clamp every coordinate to ``[−c_k, c_k]`` (``torch.nn.utils.clip_grad_value_``)."""
    return _stateless(lambda u, params, step: _clip_value(u, clip))


def quantize_gradient(mode: str, bits: int = 8) -> Transform:
    """Replace each chain's update (the gradient, when first in the chain) by its quantized
    value Q(u) (:func:`sgdlab.optim.quantization.quantize`: stochastic rounding to a k-bit
    grid with ``step.quantize`` uniforms — unbiased, variance Δ²p(1−p) —, nearest rounding,
    or a bfloat16/float16 round trip)."""
    return _stateless(lambda u, params, step: _quantize(u, mode, bits, step.quantize))


def add_decayed_weights(weight_decay: float | Tensor) -> Transform:
    """Coupled L2 weight decay as in ``torch.optim``: ``u ← u + λ w`` (skipped when λ ≡ 0)."""
    wd = as_hyper(weight_decay)
    if wd.ndim == 0 and float(wd) == 0.0:
        return _stateless(lambda u, params, step: u)
    return _stateless(lambda u, params, step: u + col(wd, params) * params)


def trace(momentum: float | Tensor, nesterov: bool = False) -> Transform:
    """Heavy-ball (or Nesterov) momentum in PyTorch's convention.

    ``v ← m v + u`` (``v₀ = 0``, so ``v₁ = u`` as torch's clone); the output is ``v``, or
    ``u + m v`` for Nesterov. For a slowly varying ``u``, ``v → u/(1−m)``: the effective step
    is η/(1−m).

    Reference: Polyak (1964); Sutskever et al. (2013), §3 (Nesterov rewritten at the
    current iterate); ``torch.optim.SGD(momentum=m, dampening=0, nesterov=…)``.
    """
    m_ = as_hyper(momentum)

    def init(params: Tensor) -> MomentumState:
        return MomentumState(torch.zeros_like(params))

    def update(
        u: Tensor, state: MomentumState, params: Tensor, step: StepInputs
    ) -> tuple[Tensor, MomentumState]:
        m = col(m_, params)
        v = m * state.velocity + u
        return (u + m * v if nesterov else v), MomentumState(v)

    return Transform(init, update)


def scale_by_rms(
    alpha: float | Tensor,
    eps: float | Tensor,
    momentum: float | Tensor = 0.0,
    centered: bool = False,
) -> Transform:
    """RMSprop's preconditioning in PyTorch's convention (ε outside the root)::

        a ← α a + (1−α) u²                      (a₀ = 0)
        ḡ ← ḡ + (1−α)(u − ḡ)                    (centered only)
        r = √a + ε   or   √max(a − ḡ², 0) + ε   (centered)
        b ← μ b + u / r                          (b₀ = 0); the output is b

    Reference: Tieleman & Hinton (2012), lecture 6.5; Graves (2013) for centering;
    ``torch.optim.RMSprop``.
    """
    alpha_, eps_, mom_ = as_hyper(alpha), as_hyper(eps), as_hyper(momentum)

    def init(params: Tensor) -> RMSpropState:
        step = torch.zeros(params.shape[0], dtype=torch.int64, device=params.device)
        zeros = torch.zeros_like(params)
        return RMSpropState(step, zeros, zeros.clone(), zeros.clone())

    def update(
        g: Tensor, state: RMSpropState, params: Tensor, step: StepInputs
    ) -> tuple[Tensor, RMSpropState]:
        a = col(alpha_, params)
        square_avg = state.square_avg * a + (1 - a) * g * g
        grad_avg = state.grad_avg
        if centered:
            grad_avg = torch.lerp(grad_avg, g, (1 - a).expand_as(g))
            # clamp: rounding can make a − ḡ² slightly negative (torch then gives NaN)
            avg = (square_avg - grad_avg * grad_avg).clamp(min=0.0).sqrt()
        else:
            avg = square_avg.sqrt()
        avg = avg + col(eps_, params)
        buf = col(mom_, params) * state.momentum_buffer + g / avg
        return buf, RMSpropState(state.step + 1, square_avg, grad_avg, buf)

    return Transform(init, update)


def scale_by_adam(beta1: float | Tensor, beta2: float | Tensor, eps: float | Tensor) -> Transform:
    """Adam's step in PyTorch's exact arithmetic, **learning rate included**.

    With step count t (1 for the first update)::

        m ← m + (1−β₁)(u − m)            (torch.lerp)
        v ← β₂ v + (1−β₂) u²
        out = −(η_t / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε)

    torch folds the first moment's bias correction into the step size η_t/(1−β₁ᵗ), so this
    transform applies η_t itself (from ``step.lr``); do not follow it with
    :func:`scale_by_learning_rate`.

    Reference: Kingma & Ba (2015), Algorithm 1 (ε placement as ``torch.optim.Adam``).
    """
    b1_, b2_, eps_ = as_hyper(beta1), as_hyper(beta2), as_hyper(eps)

    def init(params: Tensor) -> AdamState:
        step = torch.zeros(params.shape[0], dtype=torch.int64, device=params.device)
        return AdamState(step, torch.zeros_like(params), torch.zeros_like(params))

    def update(
        g: Tensor, state: AdamState, params: Tensor, step: StepInputs
    ) -> tuple[Tensor, AdamState]:
        count = state.step + 1
        b1, b2 = col(b1_, params), col(b2_, params)
        exp_avg = torch.lerp(state.exp_avg, g, (1 - b1).expand_as(g))
        exp_avg_sq = state.exp_avg_sq * b2 + (1 - b2) * g * g
        t = count.to(params.dtype)[:, None]
        bias1 = 1 - b1**t
        bias2_sqrt = (1 - b2**t) ** 0.5
        denom = exp_avg_sq.sqrt() / bias2_sqrt + col(eps_, params)
        step_size = col(step.lr, params) / bias1
        return -(step_size * (exp_avg / denom)), AdamState(count, exp_avg, exp_avg_sq)

    return Transform(init, update)


def scale_by_learning_rate() -> Transform:
    """``u ← −η_t u`` with this step's per-chain learning rate ``step.lr`` (a descent step)."""
    return _stateless(lambda u, params, step: -(col(step.lr, params) * u))


def add_noise(temperature: float | Tensor) -> Transform:
    """Langevin injection: ``u ← u + √(2 η_t T) ξ`` with ξ = ``step.noise`` ~ N(0, I) from
    the ``inject`` stream (no noise, e.g. the stream turned off: ``u`` unchanged).

    After :func:`scale_by_learning_rate` this is the Euler–Maruyama step of
    dw = −∇F dt + √(2T) dW with time step η_t (stationary density ∝ exp(−F/T)).

    Reference: Welling & Teh (2011), eq. 4.
    """
    temp = as_hyper(temperature)

    def fn(u: Tensor, params: Tensor, step: StepInputs) -> Tensor:
        if step.noise is None:
            return u
        return u + torch.sqrt(2.0 * col(step.lr, params) * col(temp, params)) * step.noise

    return _stateless(fn, noise=True)
