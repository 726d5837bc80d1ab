"""Two-batch noise-scale estimators and B_noise against the quadratic's closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sgdlab.measure.noise.per_sample import per_sample_stats
from sgdlab.measure.noise.scale import (
    NoiseScaleEstimator,
    b_noise,
    trace_h_sigma,
    two_batch_estimates,
)
from sgdlab.problems.quadratic import Quadratic, QuadraticParams
from sgdlab.rng import Streams

Z = 4.0


def quadratic() -> Quadratic:
    params = QuadraticParams(dim=10, mu=0.1, L=1.0, rotate=True, noise="isotropic")
    return Quadratic(params, Streams(0), torch.float64)


def test_two_batch_estimates_are_exact_on_expectations() -> None:
    g2, tr, bs, bb = 0.7, 12.0, 4, 32
    assert two_batch_estimates(g2 + tr / bs, g2 + tr / bb, bs, bb) == pytest.approx((g2, tr))
    with pytest.raises(ValueError):
        two_batch_estimates(1.0, 1.0, 8, 8)


def test_estimator_recovers_b_simple_within_10_percent() -> None:
    """3000 updates, β = 0.999, (b_small, b_big) = (16, 128) on a quadratic with B_simple = 20.

    Per update the tr Σ estimate has sd ≈ 0.85 tr Σ; a bias-corrected EMA over 3000 updates at
    β = 0.999 averages ≈ 1800 effective updates, so B_simple has sd ≈ 2.2% (10% ≈ 4.5 sd).
    """
    p = quadratic()
    tr = float(torch.trace(p.C))  # = 10
    # w = w* + c A⁻¹ 1 has ∇F = c 1, |∇F|² = 10 c²; c² = tr/200 gives B_simple = 20
    w = p.w_star + math.sqrt(tr / 200) * torch.linalg.solve(p.A, torch.ones(10).double())
    grad = p.grad_F(w.unsqueeze(0))[0]
    assert tr / float(grad @ grad) == pytest.approx(20.0)
    gen = torch.Generator().manual_seed(0)
    est = NoiseScaleEstimator(beta=0.999)
    steps, bs, bb = 3000, 16, 128
    xi, _ = p.sample(gen, steps * (bs + bb))
    xi = xi.reshape(steps, bs + bb, 10)
    small = grad + xi[:, :bs].mean(1)
    big = grad + xi[:, bs:].mean(1)
    for s, b in zip((small**2).sum(1).tolist(), (big**2).sum(1).tolist(), strict=True):
        est.update(s, b, bs, bb)
    assert est.steps == steps
    assert est.b_simple == pytest.approx(20.0, rel=0.10)
    assert est.trace_cov == pytest.approx(tr, rel=0.10)
    # checkpoint: a restored estimator continues bit-for-bit
    clone = NoiseScaleEstimator(beta=0.999, state=est.state)
    est.update(1.5, 0.9, bs, bb)
    clone.update(1.5, 0.9, bs, bb)
    assert clone.state == est.state


def test_microbatch_and_data_parallel_feeding_match_update() -> None:
    micro = [3.0, 2.0, 4.0, 3.0]
    a, b, c = (NoiseScaleEstimator(0.9) for _ in range(3))
    a.update(3.0, 1.25, 8, 32)
    b.update_from_microbatches(micro, 8, 1.25)
    c.update_data_parallel(torch.tensor(micro), 1.25, 8)
    assert a.state == b.state == c.state
    assert math.isnan(NoiseScaleEstimator().b_simple)


def test_per_sample_feeding_equals_unbiased_trace_and_norm() -> None:
    """Micro-batches of one sample: tr Σ estimate = the 1/(n−1) sample trace, no extra pass."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(50, 4, generator=gen, dtype=torch.float64)
    y = torch.randn(50, 2, generator=gen, dtype=torch.float64)
    model = nn.Linear(4, 2).double()
    st = per_sample_stats(model, nn.MSELoss(), x, y)
    est = NoiseScaleEstimator(beta=0.0)
    est.update_from_per_sample(st)
    mean = st.mean()
    g2 = sum(float((m * m).sum()) for m in mean.values())
    var_sum = sum(float(((st.sq_sum[k] - 50 * mean[k] ** 2) / 49).sum()) for k in mean)
    assert est.trace_cov == pytest.approx(var_sum, rel=1e-10)
    assert est.grad_norm_sq == pytest.approx(g2 - var_sum / 50, rel=1e-10)


def test_b_noise_on_quadratic() -> None:
    """H = A, Σ = C: B_noise = tr(AC) / (gᵀAg); tr(AĈ) from per-sample gradients within SE."""
    p = quadratic()
    A, C = p.A, p.C
    w = p.w_star + 0.3
    g = p.grad_F(w.unsqueeze(0))[0]
    hvp = lambda v: A @ v  # noqa: E731
    exact = float(torch.trace(A @ C)) / float(g @ A @ g)
    assert b_noise(hvp, g, trace_hs=float(torch.trace(A @ C))) == pytest.approx(exact, rel=1e-12)
    n = 2000
    xi, _ = p.sample(torch.Generator().manual_seed(1), n)
    G = g + xi
    D = xi - xi.mean(0)
    q = ((D @ A) * D).sum(1)  # D_iᵀ A D_i
    tr_hat = trace_h_sigma(hvp, G)
    assert tr_hat == pytest.approx(float(q.sum()) / (n - 1), rel=1e-10)
    assert abs(tr_hat - float(torch.trace(A @ C))) < Z * float(q.std()) / math.sqrt(n)
    # Hutchinson-style: unbiased for tr(AĈ); Var(zᵀKz) = 2 Σ_{i≠j} K_ij² for Rademacher z
    k = 200
    K = D @ A @ D.T / (n - 1)
    sd = math.sqrt(2 * float((K**2).sum() - (torch.diagonal(K) ** 2).sum()))
    hut = trace_h_sigma(hvp, G, n_probes=k, generator=torch.Generator().manual_seed(2))
    assert abs(hut - tr_hat) < Z * sd / math.sqrt(k)
    assert b_noise(hvp, g, G) == pytest.approx(tr_hat / float(g @ A @ g), rel=1e-12)
