"""One batch pass with hooks: the exact fast path per supported layer, the rest routed to the
fallback (private to :mod:`sgdlab.measure.noise.per_sample`).

The batch loss is differentiated once, with respect to the parameters and to the model's
output leaves. Forward hooks on the supported modules capture each call's input and a tensor
hook its output gradient; the kernels of :mod:`~sgdlab.measure.noise._layers` and
:mod:`~sgdlab.measure.noise._norm_layers` turn them into Σ g_i², |g_i|², g_i·R. Every other
parameter — and any whose kernel check fails (a parameter used outside its module's forward)
— gets its per-sample gradients from the output cotangents n δ_i
(:mod:`~sgdlab.measure.noise._fallback`), by ``vmap`` or, for recurrent layers and with
``method="loop"``, by a per-sample loop.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sgdlab.measure.noise import _layers as L
from sgdlab.measure.noise import _norm_layers as N
from sgdlab.measure.noise._common import (
    LossFn,
    accumulate_grads,
    apply_loss,
    output_leaves,
    trainable,
)
from sgdlab.measure.noise._fallback import cotangents, direct_grads, fallback_stats, recurrent
from sgdlab.measure.noise._result import PerSampleStats
from sgdlab.measure.noise._tied import tied_table

Reference = str | dict[str, Tensor] | None
NORMS = ("layernorm", "rmsnorm", "groupnorm", "batchnorm")
LINEAR = ("linear", "conv", "hf_conv1d")


def fast_kind(module: nn.Module) -> str | None:
    """The exact kernel for ``module`` (``None``: none; its parameters go to the fallback)."""
    return L.fast_kind(module) or N.norm_kind(module)


def resolve_reference(ref: Reference, means: dict[str, Tensor]) -> dict[str, Tensor] | None:
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


def batch_stats(
    model: nn.Module,
    loss_fn: LossFn,
    x: tuple[Tensor, ...],
    targets: Tensor | None,
    *,
    reference: Reference,
    backward: bool,
    chunk_size: int | None,
    skip: frozenset[str],
    method: str,
    shared: frozenset[str] = frozenset(),
    found: set[str] | None = None,
) -> PerSampleStats:
    """Per-sample statistics of every trainable parameter from one batch pass (see the module
    docstring); modules named in ``skip`` and, unless ``method`` is ``auto`` or ``fast``, all
    modules go to the fallback.

    **Shared positional embeddings.** An ``nn.Embedding`` called on a 1-D index tensor without
    the batch dim (``wpe(arange(T))``, broadcast over the batch by the caller) has output
    gradients summed over samples. Its output is expanded to ``[n, T, D]`` inside the forward
    (the same values; broadcasting downstream is unchanged), so its output gradient is per
    sample. Modules named in ``shared`` are expanded; with ``found`` (the first-use check),
    every such call of length ≠ n is expanded and its module's name added to ``found``."""
    n = x[0].shape[0]
    params = trainable(model)
    names = list(params)
    fast: dict[nn.Module, str] = {}
    fast_params: set[str] = set()  # held by one module only
    tied: dict[str, tuple[nn.Module, nn.Module]] = {}  # an embedding's table used by a head
    if method in ("auto", "fast"):
        owners = _owners(model)
        avoid = {id(m) for name, m in model.named_modules() if name in skip}
        for k, p in params.items():
            own = owners[id(p)]
            if any(id(m) in avoid for m in own):
                continue
            kind = fast_kind(own[0]) if len(own) == 1 else None
            if kind is not None:
                fast[own[0]] = kind
                fast_params.add(k)
            pair = _tied_pair(own, p)
            if pair is not None:
                tied[k] = pair
                fast.update({pair[0]: "embedding", pair[1]: "linear"})
    calls: dict[nn.Module, list[list]] = {m: [] for m in fast}
    names_of = {m: name for name, m in model.named_modules() if m in calls}

    def fwd_hook(m: nn.Module, args: tuple, out: Tensor) -> Tensor | None:
        if not torch.is_grad_enabled() or not isinstance(out, Tensor) or not out.requires_grad:
            return None
        if not args or not isinstance(args[0], Tensor):  # input passed by keyword: fallback
            return None
        a = args[0].detach()
        expand = fast[m] == "embedding" and a.dim() == 1
        name = names_of[m]
        expand = expand and (name in shared or (found is not None and a.shape[0] != n))
        if expand:  # a shared positional embedding: per-sample rows of its output
            if found is not None:
                found.add(name)
            a, out = a.expand(n, *a.shape), out.expand(n, *out.shape)
        slot = [a, None]
        calls[m].append(slot)
        out.register_hook(lambda g, s=slot: s.__setitem__(1, g.detach()))
        return out if expand else None

    handles = [m.register_forward_hook(fwd_hook) for m in fast]
    try:
        with torch.enable_grad():
            out = model(*x)
            loss = apply_loss(loss_fn, out, targets)
            leaves = output_leaves(out)
            live = [j for j, t in enumerate(leaves) if isinstance(t, Tensor) and t.requires_grad]
            gs = torch.autograd.grad(
                loss, [params[k] for k in names] + [leaves[j] for j in live], allow_unused=True
            )
    finally:
        for h in handles:
            h.remove()
    pgs = gs[: len(names)]
    leaf_grads: list[Tensor | None] = [None] * len(leaves)
    for j, g in zip(live, gs[len(names) :], strict=True):
        leaf_grads[j] = g
    means = {
        k: (torch.zeros_like(p) if g is None else g)
        for (k, p), g in zip(params.items(), pgs, strict=True)
    }
    if backward:  # as loss.backward(): parameters outside the graph keep ``.grad`` None
        accumulate_grads(
            params, {k: m for (k, m), g in zip(means.items(), pgs, strict=True) if g is not None}
        )
    ref = resolve_reference(reference, means)
    with torch.no_grad():
        results = _kernels(fast, calls, params, fast_params, means, ref, n)
        results.update(_tied_kernels(tied, calls, params, means, ref, n))
    for k, g in zip(names, pgs, strict=True):
        if g is None and k not in results:  # not in the graph: every g_i is zero
            p = params[k]
            z = torch.zeros(n, dtype=p.dtype, device=p.device)
            results[k] = (torch.zeros_like(p).detach(), z, None if ref is None else z, "unused")
    rest = [k for k in names if k not in results]
    if rest:
        if method == "fast":
            holders = sorted({k.rpartition(".")[0] or "(root)" for k in rest})
            raise ValueError(
                "method='fast': no exact per-sample kernel for the parameters of "
                f"{', '.join(repr(h) for h in holders[:4])}"
                f"{' and more' if len(holders) > 4 else ''} (a module type without a kernel, "
                "or a weight used outside its module's forward); use method='auto'"
            )
        rnn = recurrent(model) if method == "auto" else set()
        routes = {k: "loop" if method == "loop" or id(params[k]) in rnn else "vmap" for k in rest}
        cots = cotangents(out, leaf_grads, n)
        direct = direct_grads(loss_fn, out, targets, {k: params[k] for k in rest})
        sq, nm, dt, how = fallback_stats(
            model, x, cots, direct, routes, ref, chunk_size, strict=method == "vmap"
        )
        for k in rest:
            results[k] = (sq[k], nm[k], None if dt is None else dt[k], how[k])
    order = [results[k] for k in names]
    return PerSampleStats(
        n=n,
        loss=float(loss.detach()),
        grad_mean=means,
        sq_sum={k: r[0] for k, r in zip(names, order, strict=True)},
        norm_sq={k: r[1] for k, r in zip(names, order, strict=True)},
        dot=None if ref is None else {k: r[2] for k, r in zip(names, order, strict=True)},
        method={k: r[3] for k, r in zip(names, order, strict=True)},
    )


def _kernels(
    fast: dict[nn.Module, str],
    calls: dict[nn.Module, list[list]],
    params: dict[str, Tensor],
    fast_params: set[str],
    means: dict[str, Tensor],
    ref: dict[str, Tensor] | None,
    n: int,
) -> dict[str, tuple]:
    """``{name: (sq_sum, norm_sq, dot, kind)}`` of the fast-path parameters whose checks pass."""
    pname_of = {id(p): k for k, p in params.items()}
    done: list[tuple[str, dict[str, tuple]]] = []
    pending: list[tuple[str, dict[str, tuple], L.Check]] = []  # checked together
    get = lambda dct, k: None if dct is None or k is None else dct[k]  # noqa: E731
    for m, kind in fast.items():
        slots = [s for s in calls[m] if s[1] is not None]
        if not slots:
            continue  # not called in the graph: its parameters go to the fallback
        wanted = {}
        for attr in ("weight", "bias"):
            p = getattr(m, attr, None)
            k = None if p is None else pname_of.get(id(p))
            if k is not None and k in fast_params:
                wanted[attr] = k
        if not wanted:  # only a tied table: see _tied_kernels
            continue
        kw, kb = wanted.get("weight"), wanted.get("bias")
        results: dict[str, tuple] = {}
        if kind in NORMS:
            a0, g0 = slots[0]
            G, S = N.per_sample(kind, m, a0, g0 * n)
            for a, g in slots[1:]:  # a module called several times: positions add up
                G2, S2 = N.per_sample(kind, m, a, g * n)
                G, S = G + G2, S + S2
            if G.shape[1] != n:  # dim 0 of this layer is not the sample: fallback
                continue
            w_out, b_out, check = N.affine_module(
                G[0] if kw else None, G[1] if kb else None, S[0], S[1],
                get(means, kw), get(means, kb), get(ref, kw), get(ref, kb),
            )  # fmt: skip
            if w_out is not None:
                results[kw] = w_out
            if b_out is not None:
                results[kb] = b_out
            if check is not None:
                pending.append((kind, results, check))
            continue
        pairs = [L.as_positions(kind, m, a, g * n) for a, g in slots]
        a, d = pairs[0]
        if len(pairs) > 1:  # a module called several times: its positions add up
            if kind in ("linear", "hf_conv1d"):  # flat [B, I] calls: one position each
                as3d = [(t.unsqueeze(1) if t.dim() == 2 else t) for p in pairs for t in p]
                pairs = list(zip(as3d[::2], as3d[1::2], strict=True))
            a = torch.cat([p[0] for p in pairs], 1)
            d = torch.cat([p[1] for p in pairs], 1)
        if a.shape[0] != n:  # dim 0 of this layer is not the sample: fallback
            continue
        if kind == "embedding":
            r = get(ref, kw)
            *res, ok = L.embedding_weight(a, d, means[kw], n, r, m.padding_idx)
            if ok:  # otherwise the table is also used outside this module: fallback
                done.append((kind, {kw: tuple(res)}))
            continue
        tr = kind == "hf_conv1d"  # weight [I, O]: the linear kernel's [O, I] transposed
        w_mean = get(means, kw)
        w_ref = get(ref, kw)
        if w_mean is not None:
            w_mean = w_mean.T if tr else w_mean.flatten(1)
        if w_ref is not None:
            w_ref = w_ref.T if tr else w_ref.flatten(1)
        w_out, b_out, check = L.linear_module(a, d, w_mean, get(means, kb), w_ref, get(ref, kb))
        if w_out is not None:
            sq = w_out[0].T if tr else w_out[0].reshape(m.weight.shape)
            results[kw] = (sq, *w_out[1:])
        if b_out is not None:
            results[kb] = b_out
        pending.append((kind, results, check))
    passed = L.checks_pass([c for *_, c in pending], n)
    # a module that fails uses a parameter outside its own forward: fallback
    done += [(kind, res) for (kind, res, _), ok in zip(pending, passed, strict=True) if ok]
    return {k: (*v, kind) for kind, res in done for k, v in res.items()}


def _tied_pair(own: list[nn.Module], p: Tensor) -> tuple[nn.Module, nn.Module] | None:
    """``(embedding, head)`` when ``p`` is exactly an ``nn.Embedding``'s table and an
    ``nn.Linear``'s weight (GPT's tied head), else ``None``."""
    if len(own) != 2:
        return None
    kinds = {L.fast_kind(m): m for m in own}
    emb, head = kinds.get("embedding"), kinds.get("linear")
    if emb is None or head is None or emb.weight is not p or head.weight is not p:
        return None
    return emb, head


def _tied_kernels(
    tied: dict[str, tuple[nn.Module, nn.Module]],
    calls: dict[nn.Module, list[list]],
    params: dict[str, Tensor],
    means: dict[str, Tensor],
    ref: dict[str, Tensor] | None,
    n: int,
) -> dict[str, tuple]:
    """``{name: (sq_sum, norm_sq, dot, "tied")}`` of the tied tables whose check passes."""
    out: dict[str, tuple] = {}
    for k, (emb, head) in tied.items():
        es = [L.as_positions("embedding", emb, a, g * n) for a, g in calls[emb] if g is not None]
        hs = [L.as_positions("linear", head, a, g * n) for a, g in calls[head] if g is not None]
        if not es or not hs:
            continue  # one side not in the graph: the fallback handles the table
        hs = [(a.unsqueeze(1), d.unsqueeze(1)) if a.dim() == 2 else (a, d) for a, d in hs]
        idx, de = torch.cat([i for i, _ in es], 1), torch.cat([d for _, d in es], 1)
        a, dh = torch.cat([a for a, _ in hs], 1), torch.cat([d for _, d in hs], 1)
        if idx.shape[0] != n or a.shape[0] != n:
            continue
        r = None if ref is None else ref[k]
        got = tied_table(idx, de, emb.padding_idx, a, dh, means[k], r, n)
        if got is not None:
            out[k] = (*got, "tied")
    return out
