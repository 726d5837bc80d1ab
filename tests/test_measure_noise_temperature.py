"""Temperature T = η/(1−m) · (tr Σ/d)/(2b) against SGD's stationary variance on a 1-D quadratic."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.linalg import solve_discrete_lyapunov
from torch import nn

from sgdlab.measure.noise.stats import gradient_noise
from sgdlab.measure.noise.thermal import TemperatureResult, sgd_stationary_variance_1d, temperature
from sgdlab.problems.quadratic import Quadratic, QuadraticParams
from sgdlab.rng import Streams

Z = 4.0


def test_formula_and_conventions() -> None:
    assert temperature(0.1, 10, 4.0, dim=2) == pytest.approx(0.1 * 2.0 / 20)
    assert temperature(0.1, 10, 4.0, momentum=0.5, dim=2) == pytest.approx(0.2 * 2.0 / 20)
    with pytest.raises(ValueError):
        temperature(0.1, 10, 4.0)


@pytest.mark.parametrize("m", [0.0, 0.5, 0.9])
def test_stationary_variance_closed_form(m: float) -> None:
    lr, b, s2, a = 0.05, 4, 1.3, 2.0
    # exact: discrete Lyapunov equation of the state (w_t, w_{t-1})
    F = np.array([[1 + m - lr * a, -m], [1.0, 0.0]])
    Q = np.array([[lr * lr * s2 / b, 0.0], [0.0, 0.0]])
    exact = solve_discrete_lyapunov(F, Q)[0, 0]
    assert sgd_stationary_variance_1d(lr, b, s2, a, m) == pytest.approx(exact, rel=1e-10)
    if m == 0.0:
        assert exact == pytest.approx(lr**2 * s2 / b / (1 - (1 - lr * a) ** 2), rel=1e-12)
    # small-step limit: Var → T/a, with relative error O(η a / (1 − m))
    t_over_a = temperature(lr, b, s2, momentum=m, dim=1) / a
    assert exact == pytest.approx(t_over_a, rel=2 * lr * a / (1 - m))
    assert sgd_stationary_variance_1d(1e-4, b, s2, a, m) == pytest.approx(
        temperature(1e-4, b, s2, momentum=m, dim=1) / a, rel=1e-3
    )


@pytest.mark.parametrize("m", [0.0, 0.5])
def test_simulated_sgd_on_1d_quadratic(m: float) -> None:
    """K independent chains of SGD on the quadratic problem (d = 1): Var(w) at stationarity
    matches the exact variance within 4 SE and T/a (T measured by gradient_noise) within
    4 SE plus the O(ηa) discretisation gap."""
    a, sigma, lr, b = 1.0, 1.5, 0.04, 4
    p = Quadratic(
        QuadraticParams(eigenvalues=[a], noise_std=sigma, w_star=0.0), Streams(0), torch.float64
    )
    gen = torch.Generator().manual_seed(7)
    K, steps = 10000, 250  # slowest mode ≤ 0.96 per step: 0.96^500 ≈ 1e-9 of Var is missing
    w = torch.zeros(K, dtype=torch.float64)
    v = torch.zeros_like(w)
    for _ in range(steps):
        # per-sample gradient a·w + ξ, ξ ~ N(0, σ²) (the problem's law, drawn directly)
        xi = sigma * torch.randn(K, b, generator=gen, dtype=torch.float64)
        g = a * w + xi.mean(1)
        v = m * v + g
        w = w - lr * v
    var = float(w.var())
    se = var * math.sqrt(2 / (K - 1))  # Gaussian stationary law
    exact = sgd_stationary_variance_1d(lr, b, sigma**2, a, m)
    assert abs(var - exact) < Z * se
    x, _ = p.sample(gen, 4000)
    model, loss_fn = p.to_module(torch.tensor([0.3], dtype=torch.float64))
    noise = gradient_noise(model, loss_fn, x, torch.zeros(4000, dtype=torch.float64))
    res = temperature(lr, b, noise, momentum=m)
    assert isinstance(res, TemperatureResult) and res.dim == 1
    t_se = lr / (1 - m) * noise.trace_cov_se / (2 * b)
    gap = abs(exact - temperature(lr, b, sigma**2, momentum=m, dim=1) / a)
    assert abs(var - res.value / a) < Z * (se + t_se / a) + gap


def test_per_layer_temperatures_add_up() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).double()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 2, (40,), generator=gen)
    noise = gradient_noise(model, nn.CrossEntropyLoss(), x, y, population=100)
    for replacement in (True, False):
        res = temperature(0.1, 8, noise, momentum=0.9, replacement=replacement)
        total = sum(t * noise.layers[k].num_params for k, t in res.per_layer.items())
        assert total == pytest.approx(res.value * res.dim, rel=1e-10)
        assert res.value == pytest.approx(
            1.0 * noise.minibatch_variance(8, replacement) / noise.num_params / 2, rel=1e-12
        )
