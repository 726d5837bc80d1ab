"""Per-sample gradients of the parameters without an exact fast path (private).

**Definition** (the same for every path of :mod:`sgdlab.measure.noise.per_sample`). The batch
loss L(w) = loss_fn(f_w(x_1), …, f_w(x_n); y) depends on w through the per-sample outputs
o_i = f_w(x_i) and possibly directly (a penalty that reads the parameters). Its gradient is

    ∇L = Σ_i J_iᵀ δ_i + r,      δ_i = ∂L/∂o_i,   r = ∂L/∂w at fixed outputs,

and the per-sample gradient of sample i *under the loss's own normalization* is

    g_i = n J_iᵀ δ_i + r,       so that ḡ = (1/n) Σ_i g_i = ∇L exactly.

For a plain mean L = (1/n) Σ_i ℓ_i (+ penalty), n δ_i = ∂ℓ_i/∂o_i and g_i = ∇ℓ_i (+ the
penalty's gradient): the gradient of a batch of one. For a weighted or token-normalized mean
(class weights; ``ignore_index`` padding, L = Σ_{i,t} m_it ℓ_it / Σ_{i,t} m_it) it is n times
the gradient of sample i's share of L with the batch's normalizer held fixed (for padding:
g_i = n·(T_i/T_batch)·∇ℓ̄_i, ℓ̄_i the mean over sample i's T_i real tokens); for
``reduction="sum"`` it is n ∇ℓ_i, on the scale of the loss the optimizer differentiates.

Two ways to form the g_i of given parameters, both from the cotangents n δ_i of the one batch
pass (so no loss is re-evaluated per sample):

* ``vmap``: ``torch.func.vmap`` over samples of ∇_w ⟨n δ_i, f_w(x_i)⟩, in chunks, with the
  math attention backend (the only one with batching rules);
* ``loop``: one vector-Jacobian product per sample through the module itself — the route for
  recurrent layers, whose kernels ``torch.func`` cannot batch (GRU in any dtype, LSTM in
  float64, packed sequences: "output with shape … doesn't match the broadcast shape"), and
  the fallback whenever ``vmap`` fails under ``method="auto"``.

Random layers in train mode (dropout) draw their own masks here, from a forked global RNG,
so the user's random stream is not consumed.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from sgdlab.measure._modes import math_attention
from sgdlab.measure.noise import _layers as L
from sgdlab.measure.noise._common import (
    LossFn,
    apply_loss,
    batched,
    output_leaves,
    replace_leaves,
    rows,
)
from sgdlab.rng import forked_global_rng

#: torch's warnings inside the vmap path, each once per call and harmless to the result: no
#: batching rule for a fused kernel (an LSTM, flash attention: slow, not wrong), and cuDNN's
#: non-contiguous RNN weights under ``functional_call`` (a copy per call). Recurrent layers
#: are routed to the loop under ``method="auto"``; with ``method="vmap"`` they are silenced.
_HARMLESS = (
    "There is a performance drop because we have not yet implemented",
    "RNN module weights are not part of single contiguous chunk of memory",
)


class VmapFailed(RuntimeError):
    """``torch.func`` could not differentiate the model per sample."""


def cotangents(out: object, leaf_grads: list[Tensor | None], n: int) -> dict[int, Tensor]:
    """``{leaf index: n δ}`` for the output leaves that carry a gradient.

    Raises:
        ValueError: a leaf with a gradient does not hold the n samples in dim 0.
    """
    leaves = output_leaves(out)
    cots: dict[int, Tensor] = {}
    for j, g in enumerate(leaf_grads):
        if g is None:
            continue
        if not batched(leaves[j], n):
            shape = tuple(leaves[j].shape)
            raise ValueError(
                f"model output {j} has shape {shape} but the batch has {n} samples: "
                "per-sample statistics need every output the loss uses to hold the samples "
                "in dim 0"
            )
        cots[j] = g.detach() * n
    return cots


def direct_grads(
    loss_fn: LossFn, out: object, y: Tensor | None, params: dict[str, Tensor]
) -> dict[str, Tensor]:
    """r = ∂L/∂w at fixed outputs (a loss that reads the parameters), non-zero entries only."""
    fixed = replace_leaves(
        out, [t.detach() if isinstance(t, Tensor) else t for t in output_leaves(out)]
    )
    with torch.enable_grad():
        loss = apply_loss(loss_fn, fixed, y)
        if not loss.requires_grad:
            return {}
        names = list(params)
        gs = torch.autograd.grad(loss, [params[k] for k in names], allow_unused=True)
    return {k: g.detach() for k, g in zip(names, gs, strict=True) if g is not None}


def _vmap_grads(
    model: nn.Module,
    x: tuple[Tensor, ...],
    cots: dict[int, Tensor],
    names: list[str],
    per_sample: tuple[bool, ...],
) -> dict[str, Tensor]:
    """n J_iᵀ δ_i of the parameters ``names`` for the samples of ``x`` (``[c, *shape]``);
    ``per_sample[j]``: input j holds the samples in dim 0 (else it is shared)."""
    params = dict(model.named_parameters())
    state = {k: v.detach() for k, v in params.items() if k not in names}
    state.update(dict(model.named_buffers()))
    free = {k: params[k].detach() for k in names}
    in_x = tuple(0 if b else None for b in per_sample)
    idx = list(cots)

    def vjp_one(p: dict[str, Tensor], xi: tuple, ci: list[Tensor]) -> Tensor:
        xs = tuple(t.unsqueeze(0) if d == 0 else t for t, d in zip(xi, in_x, strict=True))
        leaves = output_leaves(functional_call(model, {**state, **p}, xs))
        return sum((leaves[j] * c.unsqueeze(0)).sum() for j, c in zip(idx, ci, strict=True))

    fn = vmap(grad(vjp_one), in_dims=(None, in_x, [0] * len(idx)), randomness="different")
    with warnings.catch_warnings(), math_attention():
        for message in _HARMLESS:
            warnings.filterwarnings("ignore", message=message)
        try:
            return fn(free, x, [cots[j] for j in idx])
        except Exception as exc:  # torch.func's own errors: raw and deep
            raise VmapFailed(f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from exc


def _loop_grads(
    model: nn.Module,
    x: tuple[Tensor, ...],
    cots: dict[int, Tensor],
    names: list[str],
    per_sample: tuple[bool, ...],
) -> dict[str, Tensor]:
    """The same by one vector-Jacobian product per sample."""
    params = dict(model.named_parameters())
    tensors = [params[k] for k in names]
    c = cots[next(iter(cots))].shape[0]
    out: dict[str, list[Tensor]] = {k: [] for k in names}
    for i in range(c):
        with torch.enable_grad():
            xi = (t[i : i + 1] if b else t for t, b in zip(x, per_sample, strict=True))
            leaves = output_leaves(model(*xi))
        pairs = [
            (leaves[j], g[i : i + 1])
            for j, g in cots.items()
            if isinstance(leaves[j], Tensor) and leaves[j].requires_grad
        ]
        gs: list[Tensor | None] = [None] * len(tensors)
        if pairs:
            outs, gos = [p for p, _ in pairs], [g for _, g in pairs]
            gs = list(torch.autograd.grad(outs, tensors, grad_outputs=gos, allow_unused=True))
        for k, p, g in zip(names, tensors, gs, strict=True):
            out[k].append(torch.zeros_like(p) if g is None else g.detach())
    return {k: torch.stack(v) for k, v in out.items()}


def recurrent(model: nn.Module) -> set[int]:
    """Ids of the parameters held by recurrent modules (``nn.RNN``, ``nn.LSTM``, ``nn.GRU``)."""
    return {
        id(p)
        for m in model.modules()
        if isinstance(m, nn.RNNBase)
        for p in m.parameters(recurse=False)
    }


def chunks(
    model: nn.Module,
    x: tuple[Tensor, ...],
    cots: dict[int, Tensor],
    names: list[str],
    how: str,
    chunk: int,
) -> Iterator[dict[str, Tensor]]:
    """Per-sample n J_iᵀ δ_i of ``names`` in chunks of ``chunk`` samples (``how``: vmap, loop)."""
    n = x[0].shape[0]
    per_sample = tuple(batched(t, n) for t in x)
    grads = _vmap_grads if how == "vmap" else _loop_grads
    for s in range(0, n, chunk):
        xs = tuple(rows(t, n, s, s + chunk) for t in x)
        cs = {j: c[s : s + chunk] for j, c in cots.items()}
        yield grads(model, xs, cs, names, per_sample)


def fallback_stats(
    model: nn.Module,
    x: tuple[Tensor, ...],
    cots: dict[int, Tensor],
    direct: dict[str, Tensor],
    routes: dict[str, str],
    ref: dict[str, Tensor] | None,
    chunk_size: int | None,
    strict: bool,
) -> tuple[dict, dict, dict | None, dict[str, str]]:
    """Σ g_i², |g_i|², g_i·R of the parameters in ``routes`` (name → ``vmap`` or ``loop``).

    Returns ``(sq, norm, dot, method)``. With ``strict=False`` a group that ``vmap`` cannot
    differentiate is computed by the loop instead (one warning); with ``strict=True`` that is
    a ``ValueError`` naming ``method='loop'``.
    """
    params = dict(model.named_parameters())
    sq: dict[str, Tensor] = {}
    norm: dict[str, list[Tensor]] = {}
    dot: dict[str, list[Tensor]] | None = None if ref is None else {}
    method: dict[str, str] = {}
    groups: dict[str, list[str]] = {}
    for k, how in routes.items():
        groups.setdefault(how, []).append(k)
    with forked_global_rng((*x, *params.values())):
        for how, names in groups.items():
            if not cots:  # the outputs carry no gradient: only the direct term remains
                n = x[0].shape[0]
                zero = {k: params[k].new_zeros(n, *params[k].shape) for k in names}
                parts: Iterator[dict[str, Tensor]] = iter([zero])
            else:
                numel = sum(params[k].numel() for k in names)
                chunk = chunk_size or max(1, L.DEFAULT_BUDGET // max(1, numel))
                parts = chunks(model, x, cots, names, how, chunk)
            try:
                got = _accumulate(parts, names, direct, ref)
            except VmapFailed as exc:
                if strict:
                    raise ValueError(
                        f"method='vmap': torch.func cannot differentiate this model per sample "
                        f"({exc}); recurrent layers (GRU, LSTM in float64, packed sequences) "
                        "need method='loop' or method='auto'"
                    ) from None
                warnings.warn(
                    f"per-sample statistics: torch.func cannot differentiate {names[0]!r} "
                    f"and {len(names) - 1} more parameters per sample ({exc}); they are "
                    "computed by a per-sample loop instead (exact, slower)",
                    RuntimeWarning,
                    stacklevel=4,
                )
                how = "loop"
                got = _accumulate(
                    chunks(model, x, cots, names, "loop", chunk_size or x[0].shape[0]),
                    names, direct, ref,
                )  # fmt: skip
            s, nm, dt = got
            sq.update(s)
            norm.update(nm)
            if dot is not None and dt is not None:
                dot.update(dt)
            method.update({k: how for k in names})
    return sq, norm, dot, method


def _accumulate(
    parts: Iterator[dict[str, Tensor]],
    names: list[str],
    direct: dict[str, Tensor],
    ref: dict[str, Tensor] | None,
) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor] | None]:
    sq: dict[str, Tensor] = {}
    norm: dict[str, list[Tensor]] = {k: [] for k in names}
    dot: dict[str, list[Tensor]] | None = None if ref is None else {k: [] for k in names}
    for G in parts:
        for k in names:
            g = G[k] + direct[k] if k in direct else G[k]
            g2 = g * g
            sq[k] = sq[k] + g2.sum(0) if k in sq else g2.sum(0)
            norm[k].append(g2.flatten(1).sum(1))
            if dot is not None:
                assert ref is not None
                dot[k].append(g.flatten(1) @ ref[k].reshape(-1).to(g))
    cat = lambda d: {k: torch.cat(v) for k, v in d.items()}  # noqa: E731
    return sq, cat(norm), None if dot is None else cat(dot)
