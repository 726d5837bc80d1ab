"""Every per-sample gradient, materialized: the references of the per-sample instruments
(private; re-exported as :func:`sgdlab.measure.noise.per_sample.per_sample_grads`).

The definition is that of :mod:`sgdlab.measure.noise._fallback`: g_i = n J_iᵀ δ_i + r, the
gradient of sample i's share of the batch loss under the loss's own normalization (the
gradient of a batch of one for a plain mean).

* ``method="loop"`` — the obviously correct form, independent of the cotangents: with the
  batch outputs O held fixed, sample i's row is recomputed with the parameters live,
  L_i(w) = loss_fn(O with row i ← f_w(x_i); y), and g_i = n (∇L_i − r) + r, where
  r = ∇_w loss_fn(O; y) is the direct term (zero unless the loss reads the parameters).
  Since samples do not interact in the model, ∇L_i = J_iᵀ δ_i + r. One forward and one loss
  per sample; the model must be deterministic (eval mode or no random layers), since O and
  the recomputed row must be the same function.
* ``method="vmap"`` — the cotangent form by ``torch.func.vmap``, in chunks.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from sgdlab.measure.noise._common import (
    Inputs,
    LossFn,
    apply_loss,
    as_tuple,
    batched,
    check_no_train_batchnorm,
    output_leaves,
    replace_leaves,
    rows,
    trainable,
)
from sgdlab.measure.noise._fallback import VmapFailed, chunks, cotangents, direct_grads


def per_sample_grads(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Inputs,
    targets: Tensor | None,
    *,
    method: Literal["loop", "vmap"] = "loop",
    chunk_size: int | None = None,
) -> dict[str, Tensor]:
    """Every per-sample gradient g_i, ``{name: [n, *shape]}`` (trainable parameters).

    ``method="loop"``: one forward and loss per sample with the other rows of the batch
    output held fixed (see the module docstring); ``"vmap"``: ``torch.func.vmap`` of the
    vector-Jacobian products, in chunks of ``chunk_size``. ``.grad`` is never touched.
    """
    if method not in ("loop", "vmap"):
        raise ValueError(f"method must be 'loop' or 'vmap', not {method!r}")
    check_no_train_batchnorm(model)
    x = as_tuple(inputs)
    n = x[0].shape[0]
    params = trainable(model)
    names = list(params)
    with torch.enable_grad():
        out = model(*x)
    if method == "vmap":
        leaves = output_leaves(out)
        live = [j for j, t in enumerate(leaves) if isinstance(t, Tensor) and t.requires_grad]
        loss = apply_loss(loss_fn, out, targets)
        gs = torch.autograd.grad(loss, [leaves[j] for j in live], allow_unused=True)
        lg: list[Tensor | None] = [None] * len(leaves)
        for j, g in zip(live, gs, strict=True):
            lg[j] = g
        cots = cotangents(out, lg, n)
        direct = direct_grads(loss_fn, out, targets, params)
        try:
            parts = list(chunks(model, x, cots, names, "vmap", chunk_size or n))
        except VmapFailed as exc:
            raise ValueError(
                f"method='vmap': torch.func cannot differentiate this model per sample ({exc}); "
                "use method='loop'"
            ) from None
        grads = {k: torch.cat([p[k] for p in parts]) for k in names}
        return {k: g + direct[k] if k in direct else g for k, g in grads.items()}
    fixed = [t.detach() if isinstance(t, Tensor) else t for t in output_leaves(out)]
    direct = direct_grads(loss_fn, out, targets, params)
    result: dict[str, list[Tensor]] = {k: [] for k in names}
    for i in range(n):
        with torch.enable_grad():
            own = output_leaves(model(*(rows(t, n, i, i + 1) for t in x)))
            mixed = [
                torch.cat([f[:i], o, f[i + 1 :]]) if batched(f, n) else f
                for f, o in zip(fixed, own, strict=True)
            ]
            loss = apply_loss(loss_fn, replace_leaves(out, mixed), targets)
            gs = torch.autograd.grad(loss, [params[k] for k in names], allow_unused=True)
        for k, g in zip(names, gs, strict=True):
            g = torch.zeros_like(params[k]) if g is None else g.detach()
            r = direct.get(k)
            result[k].append(g * n if r is None else (g - r) * n + r)
    return {k: torch.stack(v) for k, v in result.items()}
