"""Linear regression: the Isserlis closed form of Σ(w), population moments, least squares."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sgdlab.errors import ConfigError
from sgdlab.problems import build_problem
from sgdlab.rng import Streams


def _per_sample_grads(problem, w, x, y):
    """∇f_i = x_i (x_iᵀw − y_i) by autograd, one chain per sample."""
    W = w.unsqueeze(0).repeat(x.shape[0], 1).requires_grad_(True)
    f = problem.per_sample_loss(W, x.unsqueeze(1), y.unsqueeze(1))
    (g,) = torch.autograd.grad(f.sum(), W)
    return g


@pytest.fixture(scope="module")
def pop():
    params = {"dim": 4, "eigenvalues": [3.0, 1.0, 0.5, 0.1], "rotate": True, "noise_std": 0.7}
    return build_problem("linear_regression", params, Streams(3))


@pytest.mark.parametrize("offset", [0.0, 0.5, 2.0])
def test_population_grad_cov_closed_form_matches_monte_carlo(pop, offset):
    """Σ(w) = SδδᵀS + (δᵀSδ + σ²)S against the covariance of 200k autograd gradients."""
    g = torch.Generator().manual_seed(int(10 * offset) + 1)
    direction = torch.randn(pop.dim, generator=g, dtype=torch.float64)
    w = pop.w_star + offset * direction
    M = 200_000
    x, y = pop.sample(g, M)
    G = _per_sample_grads(pop, w, x, y)
    Gc = G - G.mean(dim=0)
    prods = Gc.unsqueeze(2) * Gc.unsqueeze(1)
    est, se = prods.mean(0), prods.std(0) / M**0.5
    Sigma = pop.grad_cov(w)
    z = (est - Sigma).abs() / se
    assert z.max() < 5, f"max z = {z.max():.2f}"
    # and the closed form is not trivially close: the δ terms matter at this offset
    if offset > 0:
        assert (Sigma - pop.sigma**2 * pop.H).abs().max() > 10 * se.max()


def test_population_noise_at_optimum_is_sigma2_times_hessian(pop):
    torch.testing.assert_close(pop.grad_cov(pop.w_star), pop.sigma**2 * pop.hessian(pop.w_star))
    assert pop.f_star == pytest.approx(0.5 * 0.7**2)


def test_population_samples_have_the_stated_law(pop):
    M = 100_000
    x, y = pop.sample(torch.Generator().manual_seed(9), M)
    outer = x.unsqueeze(2) * x.unsqueeze(1)
    est, se = outer.mean(0), outer.std(0) / M**0.5
    assert ((est - pop.H).abs() / se).max() < 5
    eps = y - x @ pop.w_true
    eps2 = eps**2
    assert abs(eps2.mean() - pop.sigma**2) < 5 * eps2.std() / M**0.5
    assert abs(eps.mean()) < 5 * eps.std() / M**0.5
    assert torch.linalg.eigvalsh(pop.H).tolist() == pytest.approx([0.1, 0.5, 1.0, 3.0])


def test_finite_mode_is_least_squares():
    p = build_problem("linear_regression", {"dim": 5, "n": 30, "noise_std": 1.0}, Streams(4))
    X, y = p.X.numpy(), p.y.numpy()
    w_ls = np.linalg.lstsq(X, y, rcond=None)[0]
    np.testing.assert_allclose(p.w_star.numpy(), w_ls, rtol=1e-10, atol=1e-12)
    assert p.f_star == pytest.approx(0.5 * np.mean((X @ w_ls - y) ** 2), rel=1e-12)
    torch.testing.assert_close(p.hessian(p.w_star), p.X.T @ p.X / 30)
    w = p.w_star + 0.3
    direct = 0.5 * ((p.X @ w - p.y) ** 2).mean()
    torch.testing.assert_close(p.objective(w[None])[0], direct, rtol=1e-12, atol=1e-14)
    x, _ = p.sample(torch.Generator(), 3)  # fresh draws from the generating population
    assert x.shape == (3, 5)


def test_underdetermined_finite_mode_uses_the_minimum_norm_solution():
    p = build_problem("linear_regression", {"dim": 6, "n": 4}, Streams(5))
    w = p.w_star
    assert p.f_star == pytest.approx(0.0, abs=1e-20)
    np.testing.assert_allclose(w.numpy(), np.linalg.pinv(p.X.numpy()) @ p.y.numpy(), atol=1e-10)
    assert p.grad_F(w[None]).abs().max() < 1e-12


def test_w_star_options_and_errors():
    p = build_problem("linear_regression", {"dim": 3, "w_star": 2.0})
    assert p.w_star.tolist() == [2.0, 2.0, 2.0]
    p = build_problem("linear_regression", {"dim": 2, "w_star": [1.0, -1.0]})
    assert p.w_star.tolist() == [1.0, -1.0]
    with pytest.raises(ConfigError, match=r"problem\.w_star"):
        build_problem("linear_regression", {"dim": 3, "w_star": [1.0, 2.0]})
    with pytest.raises(ConfigError, match=r"problem\.eigenvalues"):
        build_problem("linear_regression", {"eigenvalues": [1.0, -1.0]})
    p = build_problem("linear_regression", {"dim": 3, "mu": 0.1, "L": 1.0})
    assert p.mu == pytest.approx(0.1) and p.L == pytest.approx(1.0)
