"""Quantized gradients: the article's "approximate gradient computations" (§2).

Each chain's gradient g ``[d]`` is replaced by Q(g) before anything else of the update
(clipping, momentum, the step). Modes:

* ``stochastic`` (k ≥ 2 bits) — the chain's grid is the 2^k − 1 levels iΔ, |i| ≤ L =
  2^(k−1) − 1 (sign and magnitude; 0 is a level, so a zero coordinate stays 0), over
  [−R, R] with R = max_j |g_j| (per-chain scaling, as in QSGD) and Δ = R/L. With
  v = g_j/Δ, lower level ⌊v⌋ and p = v − ⌊v⌋, coordinate j is rounded **up with
  probability p** (u < p, u ~ U[0, 1) from the ``quantize`` stream). Given g it is
  **unbiased**, E[Q(g)_j] = g_j, with **variance Δ²·p(1 − p) ≤ Δ²/4** per coordinate: the
  gradient noise gains tr Var ≤ dΔ²/4 (Alistarh et al. 2017, *QSGD*, Lemma 3.1; Gupta et al.
  2015, *Deep learning with limited numerical precision*, eq. 3).
* ``nearest`` (k bits) — the same grid, rounded to the nearest level (ties to even):
  deterministic, **biased**: the error e_j = Q(g)_j − g_j is a fixed function of g with
  |e_j| ≤ Δ/2; over coordinates whose position on the grid is spread out it is close to
  uniform on [−Δ/2, Δ/2] (mean ≈ 0, mean square ≈ Δ²/12), but it does not average out
  over steps at a fixed w (a small coordinate |g_j| < Δ/2 can be rounded to 0 for ever).
* ``bfloat16`` / ``float16`` — the gradient rounded to that format and back (round to
  nearest even): relative error |e_j| ≤ 2^−8 |g_j| (bfloat16, 8 significant bits) or
  2^−11 |g_j| (float16, 11 bits), deterministic and biased; float16 overflows above 65504
  (the chain then diverges) and loses relative precision below 2^−14 (subnormals).

The deterministic modes draw nothing; ``stochastic`` with its stream turned off uses u = ½,
which is nearest rounding with ties down.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["MODES", "grid_step", "quantize"]

#: quantization modes (``quantize.mode`` of a config; ``none`` leaves the gradient alone)
MODES = ("none", "stochastic", "nearest", "bfloat16", "float16")

_FLOATS = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def grid_step(g: Tensor, bits: int) -> Tensor:
    """Δ = R/(2^(k−1) − 1) of each chain's grid, R = max_j |g_j|: ``g [K, d]`` → ``[K, 1]``."""
    if bits < 2:
        raise ValueError(f"a sign-and-magnitude grid needs at least 2 bits, got {bits}")
    R = g.abs().amax(dim=-1, keepdim=True)
    return R / (2 ** (bits - 1) - 1)


def quantize(g: Tensor, mode: str, bits: int = 8, u: Tensor | None = None) -> Tensor:
    """Q(g) for ``g [K, d]`` (module docstring); ``u [K, d]`` ~ U[0, 1) for ``stochastic``
    (``None``: u = ½). A chain whose gradient is 0 keeps it."""
    if mode == "none":
        return g
    if mode in _FLOATS:
        return g.to(_FLOATS[mode]).to(g.dtype)
    if mode not in ("stochastic", "nearest"):
        raise ValueError(f"unknown quantization mode {mode!r}; modes: {MODES}")
    delta = grid_step(g, bits)
    top = 2 ** (bits - 1) - 1
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    v = g / safe
    if mode == "nearest":
        level = torch.round(v)
    else:
        lower = torch.floor(v)
        up = (0.5 if u is None else u.to(g)) < (v - lower)
        level = lower + up.to(g.dtype)
    level = level.clamp(-top, top)
    return torch.where(delta > 0, level * delta, g)
