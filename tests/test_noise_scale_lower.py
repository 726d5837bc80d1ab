"""Lower confidence bounds of the noise scale where the point estimate is NaN/inf.

Covers: ``sgdlab.measure.noise.scale.lower_bound``, ``NoiseScaleEstimator.b_simple_lower``
(EMA standard errors) and ``NoiseStats.b_simple_lower``. Coverage is checked by simulation
with a known B_simple in the regime the issue describes (|G|² below what the batch resolves,
so most point estimates are inf): the fraction of replicates whose bound lies below the truth
must reach the nominal 95% up to 3 binomial standard errors (R replicates:
SE = √(0.95·0.05/R)); fixed seeds.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sgdlab.measure import NoiseScaleEstimator, gradient_noise
from sgdlab.measure.noise.scale import NoiseScaleState, lower_bound

F64 = torch.float64


def coverage_floor(r: int, level: float = 0.95) -> float:
    return level - 3 * math.sqrt(level * (1 - level) / r)


def test_lower_bound_formula_and_edges() -> None:
    z = 1.959963984540054  # Φ⁻¹(0.975): two one-sided 97.5% limits, 95% jointly (Bonferroni)
    assert lower_bound(10.0, 1.0, 0.5, 0.1) == pytest.approx((10 - z) / (0.5 + z * 0.1))
    assert lower_bound(1.0, 5.0, 0.5, 0.1) == 0.0  # tr Σ not resolved above 0
    assert lower_bound(1.0, 0.1, -1.0, 0.1) == math.inf  # |G|² resolved ≤ 0: no upper limit
    assert math.isnan(lower_bound(math.nan, 0.1, 1.0, 0.1))
    with pytest.raises(ValueError, match="confidence"):
        lower_bound(1.0, 0.1, 1.0, 0.1, confidence=1.0)


def test_old_states_without_squares_still_load() -> None:
    est = NoiseScaleEstimator(beta=0.5, state=NoiseScaleState(2, 0.75, 3.0))
    assert est.grad_norm_sq == pytest.approx(1.0) and math.isnan(est.b_simple_lower())


def linear_problem(n: int, gen: torch.Generator):
    """y = w*·x + ε, x ~ N(0, I_5), ε ~ N(0, 1), loss ½(w·x − y)² at w = w* + Δ, |Δ|² = 0.01:
    g_i = x_i (x_iᵀΔ − ε_i), G = Δ, Σ = (|Δ|² + 1) I + ΔΔᵀ, so
    B_simple = (5·1.01 + 0.01)/0.01 = 506 — eight times n = 64."""
    x = torch.randn(n, 5, generator=gen, dtype=F64)
    y = torch.randn(n, generator=gen, dtype=F64)  # w* = 0 without loss of generality
    return x, y


def test_noise_stats_lower_bound_covers_the_truth() -> None:
    torch.manual_seed(0)  # test-side initialisation only
    model = nn.Linear(5, 1, bias=False).double()
    with torch.no_grad():
        model.weight.fill_(0.1 / math.sqrt(5))  # Δ with |Δ|² = 0.01
    loss_fn = lambda out, y: 0.5 * (out.squeeze(-1) - y).pow(2).mean()  # noqa: E731
    truth, gen, r = 506.0, torch.Generator().manual_seed(7), 300
    lows, infinite = [], 0
    for _ in range(r):
        st = gradient_noise(model, loss_fn, *linear_problem(64, gen))
        lows.append(st.b_simple_lower())
        infinite += math.isinf(st.b_simple_unbiased)
    covered = sum(lo <= truth for lo in lows) / r
    assert covered >= coverage_floor(r), covered
    assert infinite > r // 4  # the regime of the issue: many point estimates are inf
    # informative: where |G|² ≈ 0 the bound is ≈ n (1 − z·SE_rel(tr Σ)) / (z √2) ≈ n/6 here
    assert sorted(lows)[r // 2] > 64 / 8


def test_ema_lower_bound_covers_the_truth() -> None:
    """The Monitor's use: two-batch updates with micro-batches of one sample (mean |g_i|² at
    b = 1 against |ḡ|² at b = 32), g ~ N(G, I_20), |G|² = 0.05: B_simple = 20/0.05 = 400."""
    gen = torch.Generator().manual_seed(11)
    d, b, t, r = 20, 32, 40, 200
    G = torch.full((d,), math.sqrt(0.05 / d), dtype=F64)
    truth = d / 0.05
    g = G + torch.randn(r, t, b, d, generator=gen, dtype=F64)
    small = g.pow(2).sum(-1).mean(-1)  # [r, t]
    big = g.mean(2).pow(2).sum(-1)
    lows, infinite = [], 0
    for i in range(r):
        est = NoiseScaleEstimator(beta=0.9)
        for j in range(t):
            est.update(float(small[i, j]), float(big[i, j]), 1, b)
        lows.append(est.b_simple_lower())
        infinite += math.isinf(est.b_simple)
    covered = sum(lo <= truth for lo in lows) / r
    assert covered >= coverage_floor(r), covered
    assert all(lo > 0 for lo in lows) and sorted(lows)[r // 2] > b
