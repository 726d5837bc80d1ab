"""Per-sample kernels of normalization layers with an elementwise affine map (private to
:mod:`sgdlab.measure.noise.per_sample`).

Each layer computes z = x̂ ⊙ γ + β from a normalized input x̂ that depends on the sample
alone, so with the per-sample output gradients d = n·∂L/∂z (mean-reduced L) the per-sample
parameter gradients are sums over the sample's positions p:

    g_i(γ) = Σ_p d_ip ⊙ x̂_ip,      g_i(β) = Σ_p d_ip,

formed exactly as ``[n, C]`` tensors (the size of one activation row per sample). x̂ is
recomputed from the captured input by the layer's own functional form without γ and β
(``F.layer_norm``, ``F.rms_norm``, ``F.group_norm``), i.e.:

* ``nn.LayerNorm`` (Ba et al. 2016): x̂ = (x − μ)/√(σ² + ε), μ and the biased σ² over the
  ``normalized_shape`` (last) dimensions;
* ``nn.RMSNorm`` (Zhang & Sennrich 2019; torch ≥ 2.4): x̂ = x/√(mean(x²) + ε), ε = the
  dtype's machine epsilon when the layer's ``eps`` is ``None``; weight only;
* ``nn.GroupNorm`` (Wu & He 2018): μ, σ² per sample over each group of channels and all
  positions, γ and β per channel;
* ``nn.BatchNorm1d/2d/3d`` in **eval** mode with running statistics: x̂ = (x − μ_run)/√(σ²_run
  + ε). In train mode samples interact through the batch statistics and there is no
  per-sample gradient (:func:`norm_kind` returns ``None``; the callers refuse such models).

Subclasses are not matched (they may override ``forward``). Each kernel also returns a
:data:`~sgdlab.measure.noise._layers.Check` that compares Σ_i g_i with the autograd gradient
(catches a γ or β used outside the layer's own forward).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sgdlab.measure.noise._layers import Check, _probe

_RMSNorm = getattr(nn, "RMSNorm", None)  # torch ≥ 2.4
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def norm_kind(module: nn.Module) -> str | None:
    """``layernorm``, ``rmsnorm``, ``groupnorm``, ``batchnorm`` (eval, running statistics) or
    ``None``."""
    t = type(module)
    if t is nn.LayerNorm:
        return "layernorm" if module.elementwise_affine else None
    if _RMSNorm is not None and t is _RMSNorm:
        return "rmsnorm" if module.elementwise_affine else None
    if t is nn.GroupNorm:
        return "groupnorm" if module.affine else None
    if t in _BATCHNORMS:
        if module.training or not module.track_running_stats or not module.affine:
            return None
        return "batchnorm"
    return None


def normalized(kind: str, module: nn.Module, x: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    """x̂ (by the layer's own functional form without the affine map) and the dimensions to
    sum over per sample (the positions)."""
    if kind in ("layernorm", "rmsnorm"):
        shape = tuple(module.normalized_shape)
        pos = tuple(range(1, x.dim() - len(shape)))
        if kind == "layernorm":
            return F.layer_norm(x, shape, None, None, module.eps), pos
        return F.rms_norm(x, shape, None, module.eps), pos
    if kind == "groupnorm":
        return F.group_norm(x, module.num_groups, None, None, module.eps), tuple(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    rm, rv = module.running_mean.view(shape), module.running_var.view(shape)
    return (x - rm) * torch.rsqrt(rv + module.eps), tuple(range(2, x.dim()))


def per_sample(kind: str, module: nn.Module, x: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
    """``(g(γ), |d ⊙ x̂|)`` and ``(g(β), |d|)`` summed over positions, each ``[n, C]``
    (C = the number of γ entries); the absolute values bound the rounding of the sums."""
    xh, pos = normalized(kind, module, x)
    dx = d * xh
    B = x.shape[0]

    def flat(t: Tensor) -> Tensor:  # summed over the positions: [n, C]
        return (t.sum(pos) if pos else t).reshape(B, -1)

    return torch.stack([flat(dx), flat(d)]), torch.stack([flat(dx.abs()), flat(d.abs())])


def affine_module(
    gw: Tensor | None,
    gb: Tensor | None,
    scale_w: Tensor | None,
    scale_b: Tensor | None,
    w_mean: Tensor | None,
    b_mean: Tensor | None,
    w_ref: Tensor | None,
    b_ref: Tensor | None,
) -> tuple[tuple | None, tuple | None, Check | None]:
    """``(sq_sum, norm_sq [n], dot [n] | None)`` of γ and β from per-sample gradients
    ``[n, C]`` and the check: u·Σ_i g_i against the autograd gradient's u·ḡ (times n), within
    rounding of Σ_i |terms|·|u|."""
    lhs, tgt, scl = [], [], []
    outs: list[tuple | None] = []
    for g, s, mean, ref in ((gw, scale_w, w_mean, w_ref), (gb, scale_b, b_mean, b_ref)):
        if g is None or mean is None:
            outs.append(None)
            continue
        u = _probe(g.shape[1], g.dtype, g.device)
        m = mean.reshape(-1)
        lhs.append(g.sum(0) @ u)
        tgt.append(m @ u)
        assert s is not None
        scl.append(s.sum(0) @ u.abs())
        g2 = g * g
        dot = None if ref is None else g @ ref.reshape(-1).to(g)
        outs.append((g2.sum(0).reshape(mean.shape), g2.sum(1), dot))
    check = (torch.stack(lhs), torch.stack(tgt), torch.stack(scl)) if lhs else None
    return outs[0], outs[1], check
