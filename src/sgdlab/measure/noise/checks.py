"""Debugging checks: is the minibatch gradient unbiased, and is autograd's gradient right?

* :func:`unbiasedness_test` — H0: E[g_b] = ∇F for the minibatch gradients g_b a sampler
  produces (a biased sampler — one that drops a class, reuses stale samples, or scales a
  subset — makes E[g_b] ≠ ∇F while each step still looks like a gradient).
* :func:`gradcheck` — central finite differences against autograd in float64, for any model
  (catches a wrong custom ``torch.autograd.Function`` or a detached path).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from scipy import stats as sps
from torch import Tensor, nn

from sgdlab.measure.noise.per_sample import Inputs, LossFn


@dataclass(frozen=True)
class UnbiasednessResult:
    """Outcome of :func:`unbiasedness_test`.

    Attributes:
        statistic: the test statistic (t for ``split``, F for ``hotelling``).
        p_value: p-value under H0: E[g_b] = ∇F (small → biased).
        method: ``"split"`` or ``"hotelling"``.
        n_draws: M, the number of minibatch gradients.
        dim: d.
        bias_norm: |mean(g_b) − ∇F|, the observed bias.
        bias_norm_null: √(tr Ŝ / M), its typical size under H0 (Ŝ the sample covariance).
    """

    statistic: float
    p_value: float
    method: str
    n_draws: int
    dim: int
    bias_norm: float
    bias_norm_null: float


def _split_t(X: Tensor, Y: Tensor) -> tuple[float, float]:
    """One-sided t-test of E[(y − 0)·u] > 0 along u = mean(X)/|mean(X)| (X, Y centred at ∇F)."""
    u = X.mean(0)
    nu = float(u.norm())
    if nu == 0:
        return 0.0, 1.0
    z = Y @ (u / nu)
    m = Y.shape[0]
    sd = float(z.std())
    if sd == 0:
        return (math.inf, 0.0) if float(z.mean()) > 0 else (0.0, 1.0)
    t = float(z.mean()) / (sd / math.sqrt(m))
    return t, float(sps.t.sf(t, df=m - 1))


def unbiasedness_test(
    minibatch_grads: Tensor | Callable[[], Tensor],
    full_grad: Tensor,
    *,
    n_draws: int | None = None,
    method: Literal["auto", "split", "hotelling"] = "auto",
) -> UnbiasednessResult:
    """Test H0: E[g_b] = ∇F from M independent minibatch gradients.

    Methods (both valid for any d, the second needs d < M):

    * ``split`` — sample splitting: the first half of the draws estimates the bias direction
      u = mean_A − ∇F; the projections z_j = (g_j − ∇F)·u/|u| of the *other* half are
      independent of u, with mean 0 under H0, so a one-sided one-sample t-test (df = M/2 − 1)
      is valid whatever d is (exact for Gaussian g, asymptotically otherwise). The halves swap
      roles and the smaller p-value is doubled (Bonferroni). Powerful when the bias is at
      least comparable to √(tr Σ_b / M).
    * ``hotelling`` — Hotelling's T² = M (ḡ − ∇F)ᵀ S⁻¹ (ḡ − ∇F),
      F = (M − d)/(d (M − 1)) T² ~ F(d, M − d) under H0 (Gaussian g).

    ``auto`` uses Hotelling when d ≤ M/4, else the split test.

    Args:
        minibatch_grads: ``[M, d]`` independent minibatch gradients, or a callable returning
            one ``[d]`` draw (called ``n_draws`` times; it owns its random generator).
        full_grad: ∇F ``[d]``.
        n_draws: M when a callable is given.
        method: see above.
    """
    if callable(minibatch_grads):
        if n_draws is None:
            raise ValueError("n_draws is required with a sampler callable")
        G = torch.stack([minibatch_grads().reshape(-1) for _ in range(n_draws)])
    else:
        G = minibatch_grads.reshape(minibatch_grads.shape[0], -1)
    G = G.double()
    g = full_grad.reshape(-1).to(G)
    M, d = G.shape
    if M < 4:
        raise ValueError("need at least 4 minibatch gradients")
    D = G - g
    bias = float(D.mean(0).norm())
    null = math.sqrt(float(G.var(0).sum()) / M)
    if method == "auto":
        method = "hotelling" if d <= M // 4 else "split"
    if method == "hotelling":
        if d >= M:
            raise ValueError(f"Hotelling's test needs d < M (d={d}, M={M})")
        S = torch.cov(G.T).reshape(d, d)
        m = D.mean(0)
        t2 = M * float(m @ torch.linalg.lstsq(S, m.unsqueeze(1)).solution.squeeze(1))
        f = (M - d) / (d * (M - 1)) * t2
        return UnbiasednessResult(f, float(sps.f.sf(f, d, M - d)), method, M, d, bias, null)
    if method != "split":
        raise ValueError(f"unknown method {method!r}")
    h = M // 2
    t1, p1 = _split_t(D[:h], D[h:])
    t2_, p2 = _split_t(D[h:], D[:h])
    t, p = (t1, p1) if p1 <= p2 else (t2_, p2)
    return UnbiasednessResult(t, min(1.0, 2 * p), "split", M, d, bias, null)


# --------------------------------------------------------------------------- gradcheck
@dataclass(frozen=True)
class GradcheckResult:
    """Outcome of :func:`gradcheck`: max relative error overall and per parameter."""

    max_rel_error: float
    per_param: dict[str, float]
    n_checked: int
    ok: bool


def gradcheck(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Inputs,
    targets: Tensor | None,
    eps: float = 1e-6,
    n_coords: int = 16,
    *,
    generator: torch.Generator | None = None,
    tol: float = 1e-5,
    mode: Literal["eval", "train"] | None = "eval",
) -> GradcheckResult:
    """Central finite differences (f(w + ε e_j) − f(w − ε e_j)) / 2ε vs autograd, in float64.

    Works on a float64 deep copy of ``model`` (the original is untouched). For each trainable
    parameter, ``n_coords`` coordinates are checked (drawn with ``generator``, or evenly spaced
    without one). The relative error of a coordinate is
    |a − f| / max(|a|, |f|, atol) with atol = 1e-3 · max_j |a_j| over all checked parameters
    (at least 1e-12): central differences in float64 carry an absolute rounding error of
    ≈ 1e-16 · |loss| / ε ≈ 1e-10 (ε = 1e-6), which would swamp the relative error of a
    near-zero coordinate; a wrong backward shows on the large coordinates anyway.

    Args:
        model, loss_fn, inputs, targets: as for
            :func:`~sgdlab.measure.noise.stats.gradient_noise`.
        eps: finite-difference step.
        n_coords: coordinates per parameter.
        generator: draws the coordinates.
        tol: ``ok`` is ``max_rel_error < tol``.
        mode: mode of the copy (``"eval"`` by default: dropout would make f random).

    Returns:
        :class:`GradcheckResult`.
    """
    net = copy.deepcopy(model).double()
    if mode == "eval":
        net.eval()
    elif mode == "train":
        net.train()
    x = tuple(inputs) if isinstance(inputs, tuple | list) else (inputs,)
    x = tuple(t.double() if t.is_floating_point() else t for t in x)
    y = targets.double() if targets is not None and targets.is_floating_point() else targets

    def f() -> Tensor:
        out = net(*x)
        return loss_fn(out) if y is None else loss_fn(out, y)

    params = {k: p for k, p in net.named_parameters() if p.requires_grad}
    loss = f()
    grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    grads = [
        torch.zeros_like(p) if g is None else g for p, g in zip(params.values(), grads, strict=True)
    ]
    scale = max((float(g.abs().max()) for g in grads if g.numel()), default=0.0)
    atol = max(1e-3 * scale, 1e-12)
    per: dict[str, float] = {}
    count = 0
    with torch.no_grad():
        for (name, p), g in zip(params.items(), grads, strict=True):
            flat, gflat = p.view(-1), g.reshape(-1)
            k = min(n_coords, flat.numel())
            if generator is None:
                idx = torch.linspace(0, flat.numel() - 1, k).round().long()
            else:
                idx = torch.randperm(flat.numel(), generator=generator)[:k]
            worst = 0.0
            for j in idx.tolist():
                old = float(flat[j])
                flat[j] = old + eps
                fp = float(f())
                flat[j] = old - eps
                fm = float(f())
                flat[j] = old
                fd, ad = (fp - fm) / (2 * eps), float(gflat[j])
                worst = max(worst, abs(ad - fd) / max(abs(ad), abs(fd), atol))
            per[name] = worst
            count += k
    top = max(per.values(), default=0.0)
    return GradcheckResult(top, per, count, top < tol)
