"""Per-sample statistics of a table tied between an ``nn.Embedding`` and an ``nn.Linear``
head (private to :mod:`sgdlab.measure.noise.per_sample`): GPT's ``head.weight = wte.weight``.

The table W ``[V, D]`` gets two contributions per sample, the embedding's scattered rows
E_i[v] = Σ_{p: idx_ip = v} d^E_ip and the head's outer products H_i = Σ_q d^H_iq a_iqᵀ, and
g_i = E_i + H_i. The kernel forms g_i in chunks of samples (H_i by one batched product, the
E_i rows added in place), so Σ_i g_i², |g_i|² and g_i·R are exact; Σ_i g_i is compared with
the autograd gradient within rounding (the table used anywhere else fails the check and the
table goes to the fallback).
"""

from __future__ import annotations

import torch
from torch import Tensor

from sgdlab.measure.noise._layers import DEFAULT_BUDGET, _close


def tied_table(
    idx: Tensor,
    d_emb: Tensor,
    padding_idx: int | None,
    a: Tensor,
    d_head: Tensor,
    mean: Tensor,
    ref: Tensor | None,
    n: int,
    budget: int = DEFAULT_BUDGET,
) -> tuple[Tensor, Tensor, Tensor | None] | None:
    """``(sq_sum, norm_sq [n], dot [n] | None)`` of the tied table, or ``None`` when the
    check fails. ``idx [n, P]``, ``d_emb [n, P, D]``; ``a [n, Q, D]``, ``d_head [n, Q, V]``
    (per-sample output gradients, already scaled by n)."""
    V, D = mean.shape
    B, P = idx.shape
    sample = torch.arange(B, device=idx.device).unsqueeze(1).expand(B, P).reshape(-1)
    rows = idx.reshape(-1)
    de = d_emb.reshape(-1, D)
    if padding_idx is not None:  # the padding row gets no gradient from the embedding
        keep = rows != (padding_idx % V)
        rows, de, sample = rows[keep], de[keep], sample[keep]
    sq = torch.zeros(V, D, dtype=mean.dtype, device=mean.device)
    total, scale = torch.zeros_like(sq), torch.zeros_like(sq)
    norm = torch.empty(B, dtype=mean.dtype, device=mean.device)
    dot = None if ref is None else torch.empty(B, dtype=mean.dtype, device=mean.device)
    chunk = max(1, budget // max(1, V * D))
    for s in range(0, B, chunk):
        e = min(B, s + chunk)
        G = torch.bmm(d_head[s:e].transpose(1, 2), a[s:e])  # H_i, [c, V, D]
        scale += torch.bmm(d_head[s:e].abs().transpose(1, 2), a[s:e].abs()).sum(0)
        here = (sample >= s) & (sample < e)
        G.index_put_((sample[here] - s, rows[here]), de[here], accumulate=True)  # + E_i
        scale.index_put_((rows[here],), de[here].abs(), accumulate=True)
        total += G.sum(0)
        flat = G.view(e - s, -1)
        if dot is not None:
            assert ref is not None
            dot[s:e] = flat @ ref.reshape(-1).to(G)
        flat.square_()
        sq += G.sum(0)
        norm[s:e] = flat.sum(1)
    if not _close(total, mean * n, scale):
        return None
    return sq, norm, dot
