"""Per-sample gradient statistics from one ordinary backward pass (plus references).

Reduction convention: ``loss_fn(model(x), y)`` is the **mean** of the per-sample losses over a
batch of B samples, L = (1/B) Σ_i ℓ_i. The per-sample gradient is g_i = ∇ℓ_i, so the batch
gradient ∇L = (1/B) Σ_i g_i is their mean, and sample i's contribution to ∇L is g_i / B. All
quantities here are in the per-sample scale: the captured output gradients of a layer
(∂L/∂z_i = (1/B) ∂ℓ_i/∂z_i) are multiplied by B before use. A loss that is also a mean over
positions (a sequence) is fine: ℓ_i is then the mean over sample i's positions.

Fast path (BackPACK-style, Dangel et al. 2020, "BackPACK: Packing more into backprop"): for
``nn.Linear`` the per-sample weight gradient is an outer product g_i = δ_i a_iᵀ, so

    Σ_i g_i² = (δ²)ᵀ (a²),    |g_i|² = |δ_i|² |a_i|²,    g_i·R = δ_iᵀ R a_i,

computed from the layer inputs a (forward hook) and output gradients δ (tensor hook) captured
during the one backward pass of the mean loss; no per-sample gradient is formed. Inputs with
positions (``[B, *, in]``, or unfolded ``nn.Conv1d/2d`` inputs) sum outer products over
positions; their per-sample weight gradients are formed in bounded chunks. ``nn.Embedding``
scatters the per-sample rows. Every other parameter (LayerNorm, custom modules, a weight used
outside its module's forward, grouped convolutions…) goes automatically to a chunked
``torch.func`` fallback, ``vmap(grad(ℓ_i))`` over samples, so one call handles mixed models.

Assumptions: dim 0 of every input is the batch, the loss is the *plain* mean of per-sample
losses (no class weights, no ``ignore_index``, not ``reduction="sum"``), samples do not
interact (no BatchNorm in train mode: that raises), and in train mode stochastic layers
(dropout) draw from torch's global RNG as in the user's own step; the vmap fallback draws its
own masks (``randomness="different"``). The first time a model is measured with a loss and an
input signature, a sub-batch check (:mod:`sgdlab.measure.noise._validate`) refuses a loss
that is not the plain mean and sends to the fallback any supported layer whose dim 0 is not
the sample (a sequence-first ``[T, B, I]`` input, samples merged with positions).

Precision: Σ_i g_i² and ḡ are kept in the model's dtype, so the variance (Σ g_i² − n ḡ²)/(n−1)
loses about log10(GSNR) digits to cancellation; in float32 that is ~1e-7·GSNR relative error
(a parameter with gradient signal-to-noise ratio 1e5 keeps about two digits). Measure in
float64 when the signal-to-noise ratio is that high.

References: ``per_sample_grads(..., method="loop")`` is a Python loop of single-sample backward
passes (obviously correct, slow); ``method="vmap"`` materializes every per-sample gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from sgdlab.measure.noise import _layers as L
from sgdlab.measure.noise._args import check_samples
from sgdlab.measure.noise._validate import modules_to_fall_back
from sgdlab.measure.noise._vmap import (
    Inputs,
    LossFn,
    accumulate_grads,
    as_tuple,
    call_loss,
    check_no_train_batchnorm,
    fallback_stats,
    params_outside_graph,
    per_sample_grads,
    trainable,
)

Reference = Literal["mean"] | dict[str, Tensor] | None


@dataclass(frozen=True)
class PerSampleStats:
    """Sums over the n samples of per-sample gradient quantities, per parameter name.

    Attributes:
        n: number of samples.
        loss: mean loss over the samples.
        grad_mean: ḡ = (1/n) Σ_i g_i, the batch gradient (``grad_sum`` is n ḡ).
        sq_sum: Σ_i g_i² (elementwise).
        norm_sq: |g_i|² restricted to the parameter, shape ``[n]``.
        dot: g_i·R restricted to the parameter, ``[n]``, for the requested reference R
            (``None`` when no reference was asked for).
        method: how each parameter was computed (``linear``, ``conv``, ``embedding``,
            ``vmap``, ``loop``; ``unused`` when it is not in the loss's graph).
    """

    n: int
    loss: float
    grad_mean: dict[str, Tensor]
    sq_sum: dict[str, Tensor]
    norm_sq: dict[str, Tensor]
    dot: dict[str, Tensor] | None
    method: dict[str, str]

    def mean(self) -> dict[str, Tensor]:
        """The batch gradient ḡ = (1/n) Σ_i g_i per parameter."""
        return dict(self.grad_mean)

    @property
    def grad_sum(self) -> dict[str, Tensor]:
        """Σ_i g_i per parameter."""
        return {k: v * self.n for k, v in self.grad_mean.items()}

    def variance(self) -> dict[str, Tensor]:
        """Unbiased per-coordinate variance (Σ_i g_i² − n ḡ²) / (n − 1) of the g_i."""
        n = self.n
        return {
            k: torch.addcmul(self.sq_sum[k], m, m, value=-n).div_(n - 1).clamp_min_(0)
            for k, m in self.grad_mean.items()
        }

    def total_norm_sq(self) -> Tensor:
        """|g_i|² over all parameters, ``[n]``."""
        return torch.stack(list(self.norm_sq.values())).sum(0)

    def total_dot(self) -> Tensor | None:
        """g_i·R over all parameters, ``[n]`` (``None`` without a reference)."""
        return None if self.dot is None else torch.stack(list(self.dot.values())).sum(0)

    def merge(self, other: PerSampleStats) -> PerSampleStats:
        """Statistics of the union of two disjoint sets of samples (same reference)."""
        n = self.n + other.n
        cat = lambda a, b: {k: torch.cat([a[k], b[k]]) for k in a}  # noqa: E731
        add = lambda a, b: {k: a[k] + b[k] for k in a}  # noqa: E731
        dot = None if self.dot is None or other.dot is None else cat(self.dot, other.dot)
        return PerSampleStats(
            n=n,
            loss=(self.loss * self.n + other.loss * other.n) / n,
            grad_mean={k: v / n for k, v in add(self.grad_sum, other.grad_sum).items()},
            sq_sum=add(self.sq_sum, other.sq_sum),
            norm_sq=cat(self.norm_sq, other.norm_sq),
            dot=dot,
            method={**self.method, **other.method},
        )


# --------------------------------------------------------------------------- helpers
def _resolve_reference(ref: Reference, means: dict[str, Tensor]) -> dict[str, Tensor] | None:
    if ref is None:
        return None
    if isinstance(ref, str):
        if ref != "mean":
            raise ValueError(f"reference must be 'mean', a dict or None, not {ref!r}")
        return means
    return {k: ref[k].to(means[k]) for k in means}


def _owners(model: nn.Module) -> dict[int, list[nn.Module]]:
    """Parameter id → the distinct modules holding it directly (tied weights: several)."""
    owners: dict[int, list[nn.Module]] = {}
    for m in model.modules():
        for p in m.parameters(recurse=False):
            held = owners.setdefault(id(p), [])
            if all(h is not m for h in held):
                held.append(m)
    return owners


# --------------------------------------------------------------------------- fast path
def per_sample_stats(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Inputs,
    targets: Tensor | None,
    *,
    reference: Reference = None,
    method: Literal["auto", "vmap", "loop"] = "auto",
    backward: bool = False,
    chunk_size: int | None = None,
) -> PerSampleStats:
    """Σ g_i, Σ g_i², |g_i|² (and g_i·R) per parameter from one backward pass of the mean loss.

    Args:
        model: any ``nn.Module``; its mode (train/eval) is used as is.
        loss_fn: ``loss_fn(model(*inputs), targets)`` → scalar mean over the batch
            (``loss_fn(model(*inputs))`` when ``targets`` is ``None``).
        inputs: a tensor or tuple of tensors with the batch in dim 0.
        targets: tensor with the batch in dim 0, or ``None``.
        reference: ``"mean"`` (R = the batch gradient), a dict of tensors, or ``None``
            (no dot products).
        method: ``"auto"`` (fast path per supported layer, vmap fallback for the rest),
            ``"vmap"`` or ``"loop"`` (materialize every per-sample gradient).
        backward: also accumulate the batch gradient into ``.grad`` as ``loss.backward()``
            would (for use inside a training step); otherwise ``.grad`` is untouched.
        chunk_size: samples per vmap chunk of the fallback (default: a memory budget).

    Returns:
        :class:`PerSampleStats` over the parameters with ``requires_grad``.

    Raises:
        ValueError: no trainable parameters, or inputs/targets without the same number of
            samples in dim 0.

    Example:
        >>> net = nn.Sequential(nn.Linear(3, 2))
        >>> x, y = torch.randn(5, 3), torch.randn(5, 2)
        >>> s = per_sample_stats(net, nn.MSELoss(), x, y)
        >>> s.norm_sq["0.weight"].shape
        torch.Size([5])
    """
    check_samples(model, inputs, targets)
    check_no_train_batchnorm(model)
    x = as_tuple(inputs)
    if method != "auto":
        params = trainable(model)
        grads = per_sample_grads(
            model, loss_fn, inputs, targets, method=method, chunk_size=chunk_size
        )
        with torch.no_grad():
            loss = float(call_loss(model, loss_fn, x, targets))
        if backward:  # parameters outside the loss's graph keep their ``.grad`` (None)
            outside = params_outside_graph(model, loss_fn, x, targets, params)
            accumulate_grads(params, {k: g.mean(0) for k, g in grads.items() if k not in outside})
        return stats_from_grads(grads, reference=reference, loss=loss, method=method)

    def measure(xs: tuple[Tensor, ...], ys: Tensor | None) -> PerSampleStats:
        return _auto_stats(model, loss_fn, xs, ys, None, False, chunk_size, frozenset())

    skip = modules_to_fall_back(model, loss_fn, x, targets, measure)
    return _auto_stats(model, loss_fn, x, targets, reference, backward, chunk_size, skip)


def _auto_stats(
    model: nn.Module,
    loss_fn: LossFn,
    x: tuple[Tensor, ...],
    targets: Tensor | None,
    reference: Reference,
    backward: bool,
    chunk_size: int | None,
    skip: frozenset[str],
) -> PerSampleStats:
    """The fast path of :func:`per_sample_stats`; modules named in ``skip`` go to the
    fallback."""
    n = x[0].shape[0]
    params = trainable(model)
    names = list(params)
    owners = _owners(model)
    avoid = {id(m) for name, m in model.named_modules() if name in skip} if skip else set()
    fast: dict[nn.Module, str] = {}
    fast_params: set[str] = set()
    for k, p in params.items():
        own = owners[id(p)]
        kind = L.fast_kind(own[0]) if len(own) == 1 and id(own[0]) not in avoid else None
        if kind is not None:
            fast[own[0]] = kind
            fast_params.add(k)
    calls: dict[nn.Module, list[list]] = {m: [] for m in fast}

    def fwd_hook(m: nn.Module, args: tuple, out: Tensor) -> None:
        if not torch.is_grad_enabled() or not isinstance(out, Tensor) or not out.requires_grad:
            return
        if not args or not isinstance(args[0], Tensor):  # input passed by keyword: fallback
            return
        slot = [args[0].detach(), None]
        calls[m].append(slot)
        out.register_hook(lambda g, s=slot: s.__setitem__(1, g.detach()))

    handles = [m.register_forward_hook(fwd_hook) for m in fast]
    try:
        loss = call_loss(model, loss_fn, x, targets)
        gs = torch.autograd.grad(loss, [params[k] for k in names], allow_unused=True)
    finally:
        for h in handles:
            h.remove()
    means = {
        k: (torch.zeros_like(p) if g is None else g)
        for (k, p), g in zip(params.items(), gs, strict=True)
    }
    if backward:  # as loss.backward(): parameters outside the graph keep ``.grad`` None
        accumulate_grads(
            params, {k: m for (k, m), g in zip(means.items(), gs, strict=True) if g is not None}
        )
    ref = _resolve_reference(reference, means)
    out_sq: dict[str, Tensor] = {}
    out_norm: dict[str, Tensor] = {}
    out_dot: dict[str, Tensor] = {}
    out_method: dict[str, str] = {}
    pname_of = {id(p): k for k, p in params.items()}
    done: list[tuple[str, dict[str, tuple]]] = []  # (kind, results) of modules that passed
    pending: list[tuple[str, dict[str, tuple], L.Check]] = []  # linear: checked together
    with torch.no_grad():
        for m, kind in fast.items():
            slots = [s for s in calls[m] if s[1] is not None]
            if not slots:
                continue  # not called in the graph: its parameters go to the fallback
            pairs = [L.as_positions(kind, m, a, g * n) for a, g in slots]
            a, d = pairs[0]
            if len(pairs) > 1:  # a module called several times: its positions add up
                if kind == "linear":  # flat [B, I] calls become one position each
                    as3d = [(x.unsqueeze(1) if x.dim() == 2 else x) for p in pairs for x in p]
                    pairs = list(zip(as3d[::2], as3d[1::2], strict=True))
                a = torch.cat([p[0] for p in pairs], 1)
                d = torch.cat([p[1] for p in pairs], 1)
            if a.shape[0] != n:  # dim 0 of this layer is not the sample: fallback
                continue
            wanted = {}
            for attr in ("weight", "bias"):
                p = getattr(m, attr, None)
                k = None if p is None else pname_of.get(id(p))
                if k is not None and k in fast_params:
                    wanted[attr] = k
            results: dict[str, tuple] = {}
            if kind == "embedding":
                k = wanted["weight"]
                r = None if ref is None else ref[k]
                *res, ok = L.embedding_weight(a, d, means[k], n, r, m.padding_idx)
                if ok:  # otherwise the table is also used outside this module: fallback
                    done.append((kind, {k: tuple(res)}))
                continue
            kw, kb = wanted.get("weight"), wanted.get("bias")
            get = lambda dct, k: None if dct is None or k is None else dct[k]  # noqa: E731
            w_mean = None if kw is None else means[kw].flatten(1)
            w_ref = get(ref, kw)
            w_out, b_out, check = L.linear_module(
                a,
                d,
                w_mean,
                get(means, kb),
                None if w_ref is None else w_ref.flatten(1),
                get(ref, kb),
            )
            if w_out is not None:
                results[kw] = (w_out[0].reshape(m.weight.shape), *w_out[1:])
            if b_out is not None:
                results[kb] = b_out
            pending.append((kind, results, check))
        passed = L.checks_pass([c for *_, c in pending], n)
        # a module that fails uses a parameter outside its own forward: fallback
        done += [(kind, res) for (kind, res, _), ok in zip(pending, passed, strict=True) if ok]
    for kind, results in done:
        for k, (sq, nm, dt) in results.items():
            out_sq[k], out_norm[k], out_method[k] = sq, nm, kind
            if dt is not None:
                out_dot[k] = dt
    for k, g in zip(names, gs, strict=True):
        if g is None and k not in out_sq:  # not in the graph: every g_i is zero
            p = params[k]
            out_sq[k], out_method[k] = torch.zeros_like(p).detach(), "unused"
            out_norm[k] = torch.zeros(n, dtype=p.dtype, device=p.device)
            if ref is not None:
                out_dot[k] = torch.zeros(n, dtype=p.dtype, device=p.device)
    rest = [k for k in names if k not in out_sq]
    if rest:
        sq, nm, dt = fallback_stats(model, loss_fn, x, targets, rest, ref, chunk_size)
        out_sq.update(sq)
        out_norm.update(nm)
        out_dot.update(dt or {})
        out_method.update({k: "vmap" for k in rest})
    order = lambda d: {k: d[k] for k in names}  # noqa: E731
    return PerSampleStats(
        n=n,
        loss=float(loss.detach()),
        grad_mean=means,
        sq_sum=order(out_sq),
        norm_sq=order(out_norm),
        dot=None if ref is None else order(out_dot),
        method=order(out_method),
    )


# --------------------------------------------------------------------------- references
def stats_from_grads(
    grads: dict[str, Tensor],
    *,
    reference: Reference = None,
    loss: float = float("nan"),
    method: str = "loop",
) -> PerSampleStats:
    """:class:`PerSampleStats` from materialized per-sample gradients ``{name: [n, *shape]}``."""
    n = next(iter(grads.values())).shape[0]
    means = {k: g.mean(0) for k, g in grads.items()}
    ref = _resolve_reference(reference, means)
    return PerSampleStats(
        n=n,
        loss=loss,
        grad_mean=means,
        sq_sum={k: (g * g).sum(0) for k, g in grads.items()},
        norm_sq={k: (g * g).flatten(1).sum(1) for k, g in grads.items()},
        dot=None
        if ref is None
        else {k: g.flatten(1) @ ref[k].reshape(-1).to(g) for k, g in grads.items()},
        method={k: method for k in grads},
    )
