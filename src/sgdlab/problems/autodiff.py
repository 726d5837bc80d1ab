"""Autograd fallbacks for finite problems without closed forms: ∇F, Hessian, Σ.

All use the chain axis of :meth:`Problem.per_sample_loss`: because chains are independent,
stacking ``c`` copies of ``w`` as ``c`` chains that each see one sample and back-propagating
the sum of their losses gives the ``c`` per-sample gradients ∇f(w; ξ_i) in one pass (row i
of ``W.grad``). Losses are evaluated deterministically (``noise=None``: no dropout).

Scaling: F = (1/N) Σ_i f_i, ∇F the mean of per-sample gradients, and
Σ(w) = (1/N) Σ_i (∇f_i − ∇F)(∇f_i − ∇F)ᵀ (the 1/N population covariance).
"""

from __future__ import annotations

import torch
from torch import Tensor

from sgdlab.problems.base import Problem


def _chunk(problem: Problem, per_row: int, budget: int = 1 << 24) -> int:
    return max(1, min(problem.n or 1, budget // max(1, per_row)))


#: bound on K·b·d elements of per-sample gradients held at once
MAX_ELEMENTS = 1 << 25


def per_sample_gradients(problem: Problem, W: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """∇f(W_k; ξ_{k,i}) for every chain and sample: ``W [K,d]``, ``x [K,b,...]``, ``y [K,b]``
    → ``[K, b, d]``. Every sample gets its own copy of its chain's parameters (one backward
    pass, no loop over samples), in chunks of chains bounded by :data:`MAX_ELEMENTS`."""
    K, b = y.shape[0], y.shape[1]
    d = W.shape[1]
    step = max(1, MAX_ELEMENTS // max(1, b * d))
    out = []
    for start in range(0, K, step):
        Wc = W[start : start + step].detach()
        k = Wc.shape[0]
        Wr = Wc.repeat_interleave(b, dim=0).requires_grad_(True)
        xr = x[start : start + step].reshape(k * b, 1, *x.shape[2:])
        yr = y[start : start + step].reshape(k * b, 1)
        with torch.enable_grad():
            loss = problem.per_sample_loss(Wr, xr, yr, None)
            (g,) = torch.autograd.grad(loss.sum(), Wr)
        out.append(g.reshape(k, b, d))
    return torch.cat(out)


def per_sample_grads(problem: Problem, w: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """∇f(w; x_i, y_i) for every row: ``w [d]``, ``x [c, ...]``, ``y [c]`` → ``[c, d]``."""
    return per_sample_gradients(problem, w.unsqueeze(0), x.unsqueeze(0), y.unsqueeze(0))[0]


def grad_F(problem: Problem, W: Tensor) -> Tensor:
    """∇F(W_k) ``[K, d]`` over the full dataset of a finite problem, in chunks."""
    assert problem.X is not None and problem.y is not None and problem.n is not None
    K = W.shape[0]
    chunk = _chunk(problem, K * problem.dim)
    with torch.enable_grad():
        Wg = W.detach().clone().requires_grad_(True)
        total = torch.zeros_like(Wg)
        for start in range(0, problem.n, chunk):
            xb = problem.X[start : start + chunk].to(W.device)
            yb = problem.y[start : start + chunk].to(W.device)
            xk = xb.unsqueeze(0).expand(K, *xb.shape)
            yk = yb.unsqueeze(0).expand(K, *yb.shape)
            loss = problem.per_sample_loss(Wg, xk.to(W.dtype), yk).sum()
            (g,) = torch.autograd.grad(loss, Wg)
            total += g
    return total / problem.n


def grad_cov(problem: Problem, w: Tensor) -> Tensor:
    """Σ(w) ``[d, d]``: 1/N covariance of the N per-sample gradients (two passes, centred)."""
    assert problem.X is not None and problem.y is not None and problem.n is not None
    d = problem.dim
    mean = grad_F(problem, w.unsqueeze(0))[0]
    chunk = _chunk(problem, 4 * d)
    cov = torch.zeros(d, d, dtype=w.dtype, device=w.device)
    for start in range(0, problem.n, chunk):
        xb = problem.X[start : start + chunk].to(w)
        yb = problem.y[start : start + chunk].to(w.device)
        g = per_sample_grads(problem, w, xb, yb) - mean
        cov += g.T @ g
    return cov / problem.n


def hessian(problem: Problem, w: Tensor) -> Tensor:
    """∇²F(w) ``[d, d]`` by autograd (vectorised over directions), summed over data chunks."""
    assert problem.X is not None and problem.y is not None and problem.n is not None
    d = problem.dim
    chunk = _chunk(problem, 64 * d, budget=1 << 24)
    H = torch.zeros(d, d, dtype=w.dtype, device=w.device)
    for start in range(0, problem.n, chunk):
        xb = problem.X[start : start + chunk].to(w).unsqueeze(0)
        yb = problem.y[start : start + chunk].to(w.device).unsqueeze(0)

        def f(v: Tensor, xb: Tensor = xb, yb: Tensor = yb) -> Tensor:
            return problem.per_sample_loss(v.unsqueeze(0), xb, yb).sum()

        H += torch.autograd.functional.hessian(f, w.detach(), vectorize=True)
    return H / problem.n
