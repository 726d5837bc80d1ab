"""Gradient draws at a fixed point under chosen noise sources (the ``sources`` study).

Each configuration is prepared by the engine (:func:`sgdlab.engine.prepare`) with M chains
all at the same parameters w; one step of the run's own sources is drawn — the minibatch
(``sampling``), the per-step loss draws (dropout masks, augmentation, dynamic labels) and the
update draws (the stochastic rounding's uniforms) — and each chain's gradient is computed
as the engine does (``Problem.loss_and_grad``, then the quantization of the update rule's
chain). The M rows are independent draws of the minibatch gradient g(w) under those
sources, so tr Σ = Σ_j Var(g_j) is estimated by the unbiased sample variance, with a
t-interval over independent groups of rows (:func:`trace_ci`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sgdlab.engine import prepare
from sgdlab.lab.stats import mean_ci
from sgdlab.measure import unbiasedness_test
from sgdlab.optim.quantization import grid_step, quantize

#: rows per group of the trace intervals (independent groups, t-interval over them)
GROUP = 8


@dataclass
class Draws:
    """``G [M, d]`` final (quantized) gradients, ``raw [M, d]`` before the quantization,
    ``qvar [M]`` the stochastic rounding's conditional variance Σ_j Δ²p(1−p) of each row
    (0 without it), ``ref [d]`` the unbiasedness test's reference."""

    G: torch.Tensor
    raw: torch.Tensor
    qvar: torch.Tensor
    ref: torch.Tensor


def draw_gradients(config: dict, w: torch.Tensor, M: int) -> Draws:
    """M independent gradient draws at ``w`` under ``config``'s sources (module docstring).

    The reference is ∇F (the full-data gradient of the deterministic network) when the
    ``sampling`` source is on, else the clean gradient of the (in-order) batch."""
    cfg = {**config, "chains": M, "steps": 1}
    plan = prepare(cfg)
    problem = plan.problem
    W = w.to(plan.dtype).reshape(1, -1).expand(M, -1).contiguous()
    x, y = plan.sampler.next()
    loss_draws, update_draws = plan.step_draws.next()
    _, raw = problem.loss_and_grad(W, x, y, loss_draws)
    q = cfg.get("quantize") or {}
    mode, bits = q.get("mode", "none"), q.get("bits", 8)
    G = quantize(raw, mode, bits, update_draws.get("quantize"))
    qvar = torch.zeros(M, dtype=raw.dtype)
    if mode == "stochastic" and plan.streams.enabled("quantize"):
        delta = grid_step(raw, bits)
        v = raw / torch.where(delta > 0, delta, torch.ones_like(delta))
        p = v - torch.floor(v)
        qvar = (delta**2 * p * (1 - p)).sum(1)
    if plan.streams.enabled("sampling"):
        ref = problem.grad_F(W[:1])[0]
    else:
        ref = problem.loss_and_grad(W[:1], x[:1], y[:1])[1][0]
    return Draws(G.double(), raw.double(), qvar.double(), ref.double())


def trace_cov(G: np.ndarray) -> float:
    """Σ_j of the unbiased sample variances of the columns of ``G``."""
    return float(G.var(axis=0, ddof=1).sum())


def _groups(n: int, size: int) -> list[np.ndarray]:
    """Consecutive groups of ``size`` rows (the remainder dropped): independent, as rows are."""
    return [np.arange(k * size, (k + 1) * size) for k in range(n // size)]


def trace_ci(G: torch.Tensor | np.ndarray, size: int = GROUP) -> tuple[float, float, float]:
    """tr Σ with a t-interval over independent groups of ``size`` rows, each giving an
    unbiased estimate (sample variances with ddof 1). A bootstrap over rows would be biased
    low — a resample's variance is short by its repeated rows, a (n−1)/n factor larger than
    the interval's half-width for a few dozen rows."""
    X = G.numpy() if isinstance(G, torch.Tensor) else G
    est = np.array([trace_cov(X[g]) for g in _groups(X.shape[0], size)])
    return mean_ci(est)


def quantization_excess(d: Draws, size: int = GROUP) -> tuple[float, float, float]:
    """tr Var(Q(g)) − tr Var(g) − mean Σ_j Δ²p(1−p), 0 in expectation by the law of total
    variance (E[Q(g) | g] = g), with a t-interval over independent groups of rows."""
    Q, R, qv = d.G.numpy(), d.raw.numpy(), d.qvar.numpy()
    est = [trace_cov(Q[g]) - trace_cov(R[g]) - float(qv[g].mean())
           for g in _groups(Q.shape[0], size)]  # fmt: skip
    return mean_ci(np.array(est))


def bias_test(d: Draws) -> tuple[float, float, float]:
    """(p-value, |mean − ref|, its typical size under H0) of the unbiasedness test."""
    res = unbiasedness_test(d.G, d.ref)
    return res.p_value, res.bias_norm, res.bias_norm_null
