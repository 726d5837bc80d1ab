"""Shared helpers of the per-sample instruments (private): inputs, the loss call, trainable
parameters, model outputs as lists of tensors, and the checks every path makes.

The **model output** may be a tensor or any nesting of tuples, lists, dicts and registered
pytree nodes (HF ``ModelOutput``); :func:`output_leaves` flattens it with
:mod:`torch.utils._pytree`. A leaf that holds the samples in dim 0 is *batched*: the
per-sample statistics attribute its rows to the samples.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils import _pytree as pytree

Inputs = Tensor | tuple[Tensor, ...]
LossFn = Callable[..., Tensor]

#: the ``method=`` values of the per-sample instruments
METHODS = ("auto", "fast", "vmap", "loop")


def as_tuple(inputs: Inputs) -> tuple[Tensor, ...]:
    return tuple(inputs) if isinstance(inputs, tuple | list) else (inputs,)


def call_loss(model: nn.Module, loss_fn: LossFn, x: tuple[Tensor, ...], y: Tensor | None):
    out = model(*x)
    return loss_fn(out) if y is None else loss_fn(out, y)


def apply_loss(loss_fn: LossFn, out: Any, y: Tensor | None) -> Tensor:
    return loss_fn(out) if y is None else loss_fn(out, y)


def trainable(model: nn.Module) -> dict[str, Tensor]:
    return {k: p for k, p in model.named_parameters() if p.requires_grad}


def check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(
            f"method must be one of {', '.join(repr(m) for m in METHODS)}, not {method!r}"
        )


def train_batchnorms(model: nn.Module) -> list[str]:
    """Names of the BatchNorm modules that normalize with batch statistics (train mode, or
    no running statistics kept)."""
    return [
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        and (m.training or not m.track_running_stats)
    ]


def check_no_train_batchnorm(model: nn.Module) -> None:
    names = train_batchnorms(model)
    if names:
        raise ValueError(
            f"module {names[0]!r} is a BatchNorm normalizing with batch statistics: samples "
            "interact, per-sample gradients are undefined; measure in eval mode, or use "
            "gradient_noise (micro-batch estimator for train-mode BatchNorm)"
        )


def batched(t: object, n: int) -> bool:
    return isinstance(t, Tensor) and t.dim() >= 1 and t.shape[0] == n


def rows(t: Tensor | None, n: int, a: int, b: int) -> Tensor | None:
    """Rows a:b of a tensor batched over ``n`` samples; shared tensors (no sample dim) whole."""
    return t[a:b] if t is not None and batched(t, n) else t


def output_leaves(out: Any) -> list[Any]:
    """The leaves of a model output (tensors and anything else, in a fixed order)."""
    return pytree.tree_flatten(out)[0]


def replace_leaves(out: Any, leaves: list[Any]) -> Any:
    """``out`` with its leaves replaced (same structure)."""
    return pytree.tree_unflatten(leaves, pytree.tree_flatten(out)[1])


def accumulate_grads(params: dict[str, Tensor], means: dict[str, Tensor]) -> None:
    """Add ``means`` into ``.grad`` as ``loss.backward()`` would (only the given names)."""
    with torch.no_grad():
        for k, g in means.items():
            p = params[k]
            g = g.detach()
            if p.grad is None:
                p.grad = g.clone()  # not aliased with the returned statistics
            else:
                p.grad.add_(g)
