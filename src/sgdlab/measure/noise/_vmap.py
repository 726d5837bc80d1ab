"""vmap fallback and shared helpers of :mod:`sgdlab.measure.noise.per_sample` (private).

The fallback computes per-sample gradients g_i = ∇ℓ_i with ``torch.func``:
``vmap(grad(ℓ))`` over samples, where ℓ(params, x_i, y_i) = loss_fn(functional_call(model,
params, x_i[None]), y_i[None]) is the mean loss of a batch of one, so no rescaling is needed.
Samples are processed in chunks to bound the memory of the materialized gradients.

Also here: the references :func:`per_sample_grads` (``method="loop"``: one backward pass per
sample; ``"vmap"``), re-exported by :mod:`sgdlab.measure.noise.per_sample`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from sgdlab.measure.noise import _layers as L
from sgdlab.rng import forked_global_rng

Inputs = Tensor | tuple[Tensor, ...]
LossFn = Callable[..., Tensor]


def as_tuple(inputs: Inputs) -> tuple[Tensor, ...]:
    return tuple(inputs) if isinstance(inputs, tuple | list) else (inputs,)


def call_loss(model: nn.Module, loss_fn: LossFn, x: tuple[Tensor, ...], y: Tensor | None):
    out = model(*x)
    return loss_fn(out) if y is None else loss_fn(out, y)


def trainable(model: nn.Module) -> dict[str, Tensor]:
    return {k: p for k, p in model.named_parameters() if p.requires_grad}


def check_no_train_batchnorm(model: nn.Module) -> None:
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training:
            raise ValueError(
                f"module {name!r} is a BatchNorm in train mode: samples interact, per-sample "
                "gradients are undefined; measure in eval mode (mode='eval')"
            )


class _LossOfModel(nn.Module):
    """``forward(x, y) = loss_fn(model(*x), y)`` as one module, so that ``functional_call``
    keeps the swapped parameters in place while the *loss* runs too: a loss that reads the
    model's parameters itself (an L2 penalty) then differentiates through them per sample."""

    def __init__(self, model: nn.Module, loss_fn: LossFn) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = [loss_fn]  # not registered: a loss module's own parameters are not ours

    def forward(self, xs: tuple[Tensor, ...], y: Tensor | None) -> Tensor:
        out = self.model(*xs)
        return self.loss_fn[0](out) if y is None else self.loss_fn[0](out, y)


def vmap_grads(
    model: nn.Module,
    loss_fn: LossFn,
    x: tuple[Tensor, ...],
    y: Tensor | None,
    names: list[str],
) -> dict[str, Tensor]:
    """Per-sample gradients ``[c, *shape]`` of the parameters ``names`` by vmap(grad)."""
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    const = {k: v.detach() for k, v in params.items() if k not in names}
    free = {k: params[k].detach() for k in names}

    wrapper = _LossOfModel(model, loss_fn)

    def loss_one(p: dict[str, Tensor], xi: tuple[Tensor, ...], yi: Tensor | None) -> Tensor:
        xs = tuple(t.unsqueeze(0) for t in xi)
        pb = {f"model.{k}": v for k, v in {**const, **p}.items()}
        pb.update({f"model.{k}": v for k, v in buffers.items()})
        return functional_call(wrapper, pb, (xs, None if yi is None else yi.unsqueeze(0)))

    y_dim = None if y is None else 0
    fn = vmap(grad(loss_one), in_dims=(None, 0, y_dim), randomness="different")
    return fn(free, x, y)


def fallback_stats(model, loss_fn, x, y, names, ref, chunk_size) -> tuple[dict, dict, dict | None]:
    n = x[0].shape[0]
    numel = sum(dict(model.named_parameters())[k].numel() for k in names)
    chunk = chunk_size or max(1, L.DEFAULT_BUDGET // max(1, numel))
    sq: dict[str, Tensor] = {}
    norm: dict[str, list[Tensor]] = {k: [] for k in names}
    dot: dict[str, list[Tensor]] | None = None if ref is None else {k: [] for k in names}
    for s in range(0, n, chunk):
        xs = tuple(t[s : s + chunk] for t in x)
        ys = None if y is None else y[s : s + chunk]
        G = vmap_grads(model, loss_fn, xs, ys, names)
        for k, g in G.items():
            g2 = g * g
            sq[k] = sq[k] + g2.sum(0) if k in sq else g2.sum(0)
            norm[k].append(g2.flatten(1).sum(1))
            if dot is not None:
                dot[k].append(g.flatten(1) @ ref[k].reshape(-1).to(g))
    cat = lambda d: {k: torch.cat(v) for k, v in d.items()}  # noqa: E731
    return sq, cat(norm), None if dot is None else cat(dot)


def per_sample_grads(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Inputs,
    targets: Tensor | None,
    *,
    method: Literal["loop", "vmap"] = "loop",
    chunk_size: int | None = None,
) -> dict[str, Tensor]:
    """Every per-sample gradient g_i = ∇ℓ_i, ``{name: [n, *shape]}`` (trainable parameters).

    ``method="loop"`` runs one backward pass per sample (``torch.autograd.grad`` of the loss of
    a batch of one, which is ℓ_i); ``"vmap"`` uses ``torch.func.vmap(grad(...))`` in chunks.
    ``.grad`` is never touched.
    """
    x = as_tuple(inputs)
    n = x[0].shape[0]
    params = trainable(model)
    names = list(params)
    if method == "vmap":
        check_no_train_batchnorm(model)
        chunk = chunk_size or n
        parts = [
            vmap_grads(
                model,
                loss_fn,
                tuple(t[s : s + chunk] for t in x),
                None if targets is None else targets[s : s + chunk],
                names,
            )
            for s in range(0, n, chunk)
        ]
        return {k: torch.cat([p[k] for p in parts]) for k in names}
    if method != "loop":
        raise ValueError(f"method must be 'loop' or 'vmap', not {method!r}")
    out: dict[str, list[Tensor]] = {k: [] for k in names}
    for i in range(n):
        xi = tuple(t[i : i + 1] for t in x)
        yi = None if targets is None else targets[i : i + 1]
        li = call_loss(model, loss_fn, xi, yi)
        gs = torch.autograd.grad(li, [params[k] for k in names], allow_unused=True)
        for k, g in zip(names, gs, strict=True):
            out[k].append(torch.zeros_like(params[k]) if g is None else g.detach())
    return {k: torch.stack(v) for k, v in out.items()}


def params_outside_graph(
    model: nn.Module,
    loss_fn: LossFn,
    x: tuple[Tensor, ...],
    targets: Tensor | None,
    params: dict[str, Tensor],
) -> set[str]:
    """Names of the parameters that the loss's graph does not reach (one extra pass, under
    a forked RNG so that the user's random stream is not consumed)."""
    with forked_global_rng((*x, *params.values())):
        loss = call_loss(model, loss_fn, x, targets)
    gs = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    return {k for k, g in zip(params, gs, strict=True) if g is None}


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
