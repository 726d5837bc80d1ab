"""Rates: exact schedule recursion vs Monte Carlo, BCN/averaging bounds, GD rate, fits."""

from __future__ import annotations

import numpy as np
import pytest

from sgdlab.theory import (
    averaged_sgd_bound,
    averaged_sgd_optimal_constant_step,
    bcn_constants_quadratic,
    bcn_diminishing_bound,
    bcn_diminishing_schedule,
    expected_suboptimality_averaged_quadratic,
    expected_suboptimality_quadratic,
    fit_geometric_rate,
    fit_loglog_slope,
    gd_contraction_factor,
    gd_quadratic_bound,
    gd_strongly_convex_bound,
    sgd_transient_excess_loss_eig,
)

Z_SE = 4.0
LAM = np.array([0.5, 1.0, 2.0])
C = np.array([1.0, 0.5, 2.0])
E0 = np.array([2.0, -1.0, 1.0])


def _run_diag_sgd(lam, c, b, e0, etas, K, seed, average_weights=None):
    """K chains of SGD on a diagonal quadratic; returns losses [T+1, K] (and the average)."""
    rng = np.random.default_rng(seed)
    E = np.tile(e0, (K, 1))
    f = [0.5 * (E**2) @ lam]
    acc = np.zeros_like(E)
    for t, eta in enumerate(etas):
        if average_weights is not None:
            acc += average_weights[t] * E
        E = E - eta * (lam * E + np.sqrt(c / b) * rng.standard_normal(E.shape))
        f.append(0.5 * (E**2) @ lam)
    f = np.array(f)
    if average_weights is None:
        return f
    Ebar = acc / np.sum(average_weights)
    return f, 0.5 * (Ebar**2) @ lam


def _exact_grad_second_moment(lam, c, b, e0, etas):
    """E‖g_t‖² = Σ λ²(m² + v) + tr C/b along the exact recursion, t = 0..T−1."""
    m, v, out = e0.copy(), np.zeros_like(e0), []
    for eta in etas:
        out.append(np.sum(lam**2 * (m**2 + v)) + c.sum() / b)
        m, v = (1 - eta * lam) * m, (1 - eta * lam) ** 2 * v + eta**2 * c / b
    return np.array(out)


def test_schedule_recursion_equals_constant_step_closed_form():
    etas = np.full(50, 0.3)
    np.testing.assert_allclose(
        expected_suboptimality_quadratic(LAM, C, 4, E0, etas),
        sgd_transient_excess_loss_eig(LAM, C, 0.3, E0, np.arange(51), 4),
        rtol=1e-12,
    )
    # sampling without replacement scales only the noise part
    f_wr = expected_suboptimality_quadratic(LAM, C, 4, np.zeros(3), etas, n=20)
    f_r = expected_suboptimality_quadratic(LAM, C, 4, np.zeros(3), etas)
    np.testing.assert_allclose(f_wr, f_r * 16 / 19, rtol=1e-12)


def test_schedule_recursion_matches_monte_carlo_and_bcn_bound():
    b = 2
    k = bcn_constants_quadratic(LAM, C.sum(), b)
    beta = 4.0  # > 1/(cμ) = 2
    gamma = beta * k.L - 1  # α_1 = β/(γ + 1) = 1/L
    etas = bcn_diminishing_schedule(beta, gamma, 400)
    exact = expected_suboptimality_quadratic(LAM, C, b, E0, etas)
    K = 4000
    f = _run_diag_sgd(LAM, C, b, E0, etas, K, seed=1)
    t = np.array([1, 10, 50, 200, 400])
    se = f[t].std(axis=1) / np.sqrt(K)
    assert np.all(np.abs(f[t].mean(axis=1) - exact[t]) < Z_SE * se)
    bound = bcn_diminishing_bound(beta, gamma, k, exact[0], np.arange(401))
    assert np.all(exact <= bound)
    assert np.all(f.mean(axis=1) <= bound + Z_SE * f.std(axis=1) / np.sqrt(K))
    with pytest.raises(ValueError):
        bcn_diminishing_bound(1.5, gamma, k, exact[0], 1)  # β < 1/(cμ)
    with pytest.raises(ValueError):
        bcn_diminishing_bound(beta, 1.0, k, exact[0], 1)  # α_1 > 1/L


def test_one_over_t_slope_from_chains_recovers_exact_slope():
    """fit_loglog_slope on simulated chains: its CI covers the slope of the exact curve (≈ −1)."""
    b, beta, gamma = 1, 4.0, 7.0
    etas = bcn_diminishing_schedule(beta, gamma, 4000)
    exact = expected_suboptimality_quadratic(LAM, C, b, E0, etas)
    T = np.array([250, 500, 1000, 2000, 4000])
    exact_slope = fit_loglog_slope(T, np.vstack([exact[T], exact[T]])).slope
    assert abs(exact_slope + 1) < 0.05
    f = _run_diag_sgd(LAM, C, b, E0, etas, K=400, seed=2)
    fit = fit_loglog_slope(T, f[T].T, n_boot=1000)
    assert fit.ci_low <= exact_slope <= fit.ci_high
    assert fit.ci_high - fit.ci_low < 0.3


def test_averaged_iterate_exact_vs_monte_carlo_and_bound():
    b, T, eta0 = 1, 300, 0.5
    etas = eta0 / np.sqrt(np.arange(1, T + 1))
    K = 6000
    for weights in (etas, np.ones(T)):
        _, fbar = _run_diag_sgd(LAM, C, b, E0, etas, K, seed=3, average_weights=weights)
        exact = expected_suboptimality_averaged_quadratic(LAM, C, b, E0, etas, weights=weights)
        assert abs(fbar.mean() - exact) < Z_SE * fbar.std() / np.sqrt(K)
    exact = expected_suboptimality_averaged_quadratic(LAM, C, b, E0, etas)
    G2 = _exact_grad_second_moment(LAM, C, b, E0, etas)
    R2 = float(E0 @ E0)
    assert exact <= averaged_sgd_bound(etas, R2, G2) <= averaged_sgd_bound(etas, R2, G2.max())
    # the horizon-tuned constant step and its RG/√T bound
    eta, bound = averaged_sgd_optimal_constant_step(np.sqrt(R2), np.sqrt(G2.max()), T)
    const = np.full(T, eta)
    assert bound == pytest.approx(averaged_sgd_bound(const, R2, G2.max()))
    G2c = _exact_grad_second_moment(LAM, C, b, E0, const)
    assert G2c.max() <= G2.max()  # so G = √max G2 is a valid bound for this run too
    assert expected_suboptimality_averaged_quadratic(LAM, C, b, E0, const) <= bound


def test_gd_linear_rate():
    lam = np.array([0.1, 0.5, 2.0])
    F = lambda e: 0.5 * np.sum(lam * e**2)  # noqa: E731
    for eta in [0.1, 0.5, 0.9]:
        rho = gd_contraction_factor(lam, eta)
        assert rho == pytest.approx(max(abs(1 - eta * 0.1), abs(1 - eta * 2.0)))
        e = np.array([1.0, -2.0, 0.7])
        F0 = F(e)
        for t in range(60):
            assert F(e) <= gd_quadratic_bound(F0, rho, t) * (1 + 1e-12)
            e = (1 - eta * lam) * e
        # equality along the slowest-contracting eigenvector
        i = int(np.argmax(np.abs(1 - eta * lam)))
        e = np.eye(3)[i]
        assert F((1 - eta * lam) ** 25 * e) == pytest.approx(gd_quadratic_bound(F(e), rho, 25))
    e = np.array([1.0, -2.0, 0.7])
    F0 = F(e)
    for t in range(100):
        assert F(e) <= gd_strongly_convex_bound(F0, 0.1, 2.0, t) * (1 + 1e-12)
        e = (1 - lam / 2.0) * e


def test_fit_loglog_slope_recovers_minus_one_with_calibrated_ci():
    rng = np.random.default_rng(4)
    T = np.array([10, 20, 50, 100, 200, 500, 1000], dtype=float)
    K = 30
    cover = 0
    reps = 100
    for _ in range(reps):
        values = 3.0 / T * rng.lognormal(0.0, 0.5, size=(K, T.size))
        fit = fit_loglog_slope(T, values, n_boot=400, seed=int(rng.integers(1 << 31)))
        cover += fit.ci_low <= -1.0 <= fit.ci_high
    # binomial SE of the coverage of a 95% interval
    se = np.sqrt(0.95 * 0.05 / reps)
    assert cover / reps > 0.95 - Z_SE * se
    assert fit_loglog_slope(T, np.vstack([2 / T, 5 / T])).slope == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        fit_loglog_slope(T, -np.ones((3, T.size)))


def test_fit_geometric_rate_recovers_rho():
    rng = np.random.default_rng(5)
    t = np.arange(0, 60, 5, dtype=float)
    values = 2.0 * 0.93**t * rng.lognormal(0.0, 0.3, size=(50, t.size))
    fit = fit_geometric_rate(t, values)
    assert fit.ci_low <= 0.93 <= fit.ci_high
    assert fit.ci_high - fit.ci_low < 0.01
