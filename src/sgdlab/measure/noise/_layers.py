"""Per-layer kernels of the per-sample fast path (private to
:mod:`sgdlab.measure.noise.per_sample`).

Every supported layer is reduced to one of two forms, with the per-sample output gradients
``d`` already scaled to per-sample gradients (``d = B · ∂L/∂z`` for a mean-reduced loss L):

* **positions-linear** — ``nn.Linear`` (input ``[B, *, I]``), HF ``Conv1D`` (the same map
  with the weight stored transposed, ``[I, O]``) and ``nn.Conv1d/2d`` (unfolded input):
  activations ``a [B, P, I]``, output gradients ``d [B, P, O]``; the per-sample weight
  gradient is ``G_i = Σ_p d_ip a_ipᵀ`` ``[O, I]`` and the bias gradient ``Σ_p d_ip``.
  With ``P = 1`` nothing per-sample is materialized: Σ_i G_i² = (d²)ᵀ(a²),
  |G_i|² = |d_i|²|a_i|², G_i·R = d_iᵀ R a_i. With ``P > 1`` the ``G_i`` are materialized
  in chunks of samples (bounded memory).
* **embedding** — indices ``[B, P]`` and ``d [B, P, D]``: rows hit by one sample are
  combined first (an index can repeat within a sample), then scattered.

Each kernel returns, per parameter, ``(sq_sum, norm_sq [B], dot [B] | None)`` and a check:
cheap linear functionals of Σ_i g_i computed from the captured tensors, compared with the
autograd gradient to detect parameters used outside the module's own forward. The linear
kernel returns its check as a :data:`Check`, so that :func:`checks_pass` compares every module
in one reduction; the embedding compares its table itself.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: elements of materialized per-sample gradients per chunk (float64: 128 MiB)
DEFAULT_BUDGET = 1 << 24


def fast_kind(module: nn.Module) -> str | None:
    """The fast-path form of ``module`` or ``None`` (exact types only: subclasses may override
    ``forward``)."""
    t = type(module)
    if t is nn.Linear:
        return "linear"
    if t in (nn.Conv1d, nn.Conv2d):
        if module.groups != 1 or module.padding_mode != "zeros" or module.padding == "same":
            return None
        return "conv"
    if t is nn.Embedding:
        if module.max_norm is not None or module.scale_grad_by_freq or module.sparse:
            return None
        return "embedding"
    if t.__name__ == "Conv1D" and t.__module__.startswith("transformers."):
        return "hf_conv1d"  # HF GPT-2's y = x W + b with W [in, out]: a transposed Linear
    return None


def unfold_conv(module: nn.Module, x: Tensor) -> Tensor:
    """im2col of a Conv1d/Conv2d input: ``[B, P, C_in·k]`` matching ``weight.flatten(1)``."""
    pad = module.padding
    if pad == "valid":
        pad = (0,) * len(module.kernel_size)
    if isinstance(module, nn.Conv1d):
        if x.dim() != 3:
            raise ValueError("per-sample statistics need a batched Conv1d input [B, C, L]")
        cols = F.unfold(
            x.unsqueeze(-1),
            kernel_size=(module.kernel_size[0], 1),
            dilation=(module.dilation[0], 1),
            padding=(pad[0], 0),
            stride=(module.stride[0], 1),
        )
    else:
        if x.dim() != 4:
            raise ValueError("per-sample statistics need a batched Conv2d input [B, C, H, W]")
        cols = F.unfold(
            x, module.kernel_size, dilation=module.dilation, padding=pad, stride=module.stride
        )
    return cols.transpose(1, 2)


def as_positions(kind: str, module: nn.Module, x: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
    """Captured (input, output-gradient) of one call → ``(a [B,P,I], d [B,P,O])``, or
    ``(a [B,I], d [B,O])`` for an ``nn.Linear`` on a ``[B, in]`` input (for an embedding,
    ``(idx [B,P], d [B,P,D])``)."""
    B = g.shape[0]
    if kind in ("linear", "hf_conv1d"):
        if x.dim() < 2:
            raise ValueError("per-sample statistics need a batched nn.Linear input [B, ..., in]")
        if x.dim() == 2:  # one position per sample: kept flat, [B, I] and [B, O]
            return x, g
        return x.reshape(B, -1, x.shape[-1]), g.reshape(B, -1, g.shape[-1])
    if kind == "conv":
        return unfold_conv(module, x), g.reshape(B, g.shape[1], -1).transpose(1, 2)
    idx = x.reshape(B, -1)
    return idx, g.reshape(B, idx.shape[1], g.shape[-1])


#: a module's consistency check: scalars computed from the captured tensors (lhs), the same
#: linear functionals of the autograd gradient (target, still to be multiplied by the batch
#: size n) and a bound on the absolute terms of the sums (scale), each ``[k]``
Check = tuple[Tensor, Tensor, Tensor]


def _rtol(dtype: torch.dtype) -> float:
    return 1e-9 if dtype == torch.float64 else 3 * torch.finfo(dtype).eps ** 0.5


def _close(x: Tensor, y: Tensor, scale: Tensor) -> bool:
    """|x − y| within rounding of sums whose absolute terms add up to ``scale``."""
    tol = _rtol(x.dtype) * scale + torch.finfo(x.dtype).tiny
    return bool(((x - y).abs() <= tol).all())


def checks_pass(checks: list[Check], n: int) -> list[bool]:
    """Per module, whether its check holds: ``|lhs − n·target| ≤ rtol·scale`` elementwise.

    All modules are compared at once (one synchronizing reduction) when their checks share a
    dtype and device; each module separately only when that joint comparison fails, or when
    dtypes or devices differ.
    """
    if not checks:
        return []
    kinds = {(c[0].dtype, c[0].device) for c in checks}
    if len(kinds) == 1:
        lhs, tgt, scl = (torch.cat(parts) for parts in zip(*checks, strict=True))
        if _close(lhs, tgt * n, scl):
            return [True] * len(checks)
    return [_close(lhs, tgt * n, scl) for lhs, tgt, scl in checks]


@functools.lru_cache(maxsize=64)
def _probe(n: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A fixed, non-constant unit vector for the consistency checks (no random draw)."""
    v = torch.cos(1.7 * torch.arange(n, dtype=torch.float64) + 0.3)
    return (v / v.norm()).to(dtype=dtype, device=device)


def linear_module(
    a: Tensor,
    d: Tensor,
    w_mean: Tensor | None,
    b_mean: Tensor | None,
    w_ref: Tensor | None,
    b_ref: Tensor | None,
    budget: int = DEFAULT_BUDGET,
) -> tuple[tuple | None, tuple | None, Check]:
    """Per-sample statistics of a positions-linear module's weight ``[O, I]`` and bias ``[O]``.

    ``a`` is ``[B, I]`` (one position per sample: nothing per-sample is formed) or
    ``[B, P, I]``, ``d`` likewise with ``O``. ``w_mean``/``b_mean`` are the autograd batch
    gradients (``None``: parameter not wanted); returns ``(weight (sq, norm, dot), bias (sq,
    norm, dot), check)``. The check holds the scalars uᵀ(Σ_i G_i)v = Σ_{i,p} (u·d_ip)(a_ip·v)
    and u·Σ_i b_i against the autograd gradient's uᵀ ḡ v and u·ḡ_b, for fixed unit vectors
    u, v; their rounding is bounded through Cauchy–Schwarz by Σ_{i,p} |d_ip| |a_ip| and
    Σ_{i,p} |d_ip| (see :func:`checks_pass`).
    """
    flat = a.dim() == 2
    B, I = a.shape[0], a.shape[-1]
    O = d.shape[-1]
    u = _probe(O, d.dtype, d.device)
    du = d @ u  # [B] or [B, P]
    dd = d * d if flat else None
    d_abs = dd.sum(-1).sqrt() if dd is not None else torch.linalg.vector_norm(d, dim=-1)
    lhs, tgt, scl = [], [], []
    w_out = b_out = None
    if w_mean is not None:
        v = _probe(I, a.dtype, a.device)
        av = a @ v
        dot = None
        if flat:
            aa = a * a
            a_sq = aa.sum(-1)
            lhs.append(du.dot(av))
            scl.append(d_abs.dot(a_sq.sqrt()))
            sq = dd.T @ aa
            norm = dd.sum(-1) * a_sq
            if w_ref is not None:
                dot = ((d @ w_ref) * a).sum(1)
        else:
            lhs.append((du * av).sum())
            scl.append((d_abs * torch.linalg.vector_norm(a, dim=-1)).sum())
            sq = torch.zeros(O, I, dtype=a.dtype, device=a.device)
            norm = torch.empty(B, dtype=a.dtype, device=a.device)
            dot = None if w_ref is None else torch.empty(B, dtype=a.dtype, device=a.device)
            chunk = max(1, budget // max(1, O * I))
            for s in range(0, B, chunk):
                G = torch.bmm(d[s : s + chunk].transpose(1, 2), a[s : s + chunk])  # [c, O, I]
                flat_g = G.view(G.shape[0], -1)
                if dot is not None:  # G_i·R: O·I per sample, not P·O·I
                    dot[s : s + chunk] = flat_g @ w_ref.reshape(-1)
                flat_g.square_()  # in place: G is not needed any more
                sq += G.sum(0)
                norm[s : s + chunk] = flat_g.sum(1)
        tgt.append(u.dot(w_mean @ v))
        w_out = (sq, norm, dot)
    if b_mean is not None:
        gb = d if flat else d.sum(1)  # per-sample bias gradients [B, O]
        lhs.append(du.sum())
        tgt.append(u.dot(b_mean))
        scl.append(d_abs.sum())
        g2 = dd if flat else gb * gb
        b_out = (g2.sum(0), g2.sum(1), None if b_ref is None else gb @ b_ref)
    check = (torch.stack(lhs), torch.stack(tgt), torch.stack(scl))
    return w_out, b_out, check


def embedding_weight(
    idx: Tensor,
    d: Tensor,
    grad_mean: Tensor,
    n: int,
    ref: Tensor | None,
    padding_idx: int | None,
) -> tuple[Tensor, Tensor, Tensor | None, bool]:
    """Per-sample statistics of an embedding table ``[V, D]``: g_i[v] = Σ_{p: idx_ip = v} d_ip."""
    B, P = idx.shape
    V, D = grad_mean.shape
    sample = torch.arange(B, device=idx.device).unsqueeze(1).expand(B, P)
    idx = idx.reshape(-1)
    flat_d = d.reshape(-1, D)
    sample = sample.reshape(-1)
    if padding_idx is not None:
        keep = idx != (padding_idx % V)
        idx, flat_d, sample = idx[keep], flat_d[keep], sample[keep]
    keys, inv = torch.unique(sample * V + idx, return_inverse=True)
    comb = torch.zeros(keys.numel(), D, dtype=d.dtype, device=d.device).index_add_(0, inv, flat_d)
    rows, owner = keys % V, torch.div(keys, V, rounding_mode="floor")
    total = torch.zeros(V, D, dtype=d.dtype, device=d.device).index_add_(0, rows, comb)
    scale = torch.zeros(V, D, dtype=d.dtype, device=d.device).index_add_(0, idx, flat_d.abs())
    ok = _close(total, grad_mean * n, scale)
    c2 = comb * comb
    sq = torch.zeros(V, D, dtype=d.dtype, device=d.device).index_add_(0, rows, c2)
    norm = torch.zeros(B, dtype=d.dtype, device=d.device).index_add_(0, owner, c2.sum(1))
    dot = None
    if ref is not None:
        per_row = (comb * ref[rows]).sum(1)
        dot = torch.zeros(B, dtype=d.dtype, device=d.device).index_add_(0, owner, per_row)
    return sq, norm, dot, ok
