"""Langevin picture: Gibbs density vs Euler–Maruyama, OU covariance, Kramers vs MFPT.

Covers: ``sgdlab.theory.langevin``.
"""

from __future__ import annotations

import numpy as np
import pytest

from sgdlab.theory import (
    gibbs_density,
    kramers_rate,
    laplace_occupancy_ratio,
    mean_first_passage_time,
    ou_isotropic_covariance,
    ou_stationary_covariance,
    sgd_sde_covariance,
    sgd_stationary_covariance,
    sgd_temperature,
)

Z_SE = 4.0


# an asymmetric double well with two minima of equal depth F = 0 at x = ±1 and different
# curvature U''(±1) = 2 e^{±1/2}: the left one is flatter. Saddle at x_s = 4(√(17/16) − 1).
def _U(x):
    return 0.25 * (x**2 - 1) ** 2 * np.exp(0.5 * x)


def _dU(x):
    return np.exp(0.5 * x) * (0.125 * (x**2 - 1) ** 2 + x * (x**2 - 1))


X_SADDLE = 4 * (np.sqrt(17 / 16) - 1)


def _double_well(x):
    return x**4 / 4 - x**2 / 2  # minima ±1 (U'' = 2), saddle 0 (U'' = −1), ΔU = 1/4


def test_gibbs_density_of_a_quadratic_is_the_ou_covariance():
    g = gibbs_density(lambda x: 2.0 * (x - 0.3) ** 2, np.linspace(-4, 4, 4001), 0.7)
    assert g.mass((-10.0, 10.0)) == pytest.approx(1.0)
    assert g.mean()[0] == pytest.approx(0.3, abs=1e-10)
    assert g.cov()[0, 0] == pytest.approx(0.7 / 4.0, rel=1e-8)
    A = np.array([[2.0, 0.6], [0.6, 1.0]])
    x = np.linspace(-4.5, 4.5, 901)
    g2 = gibbs_density(
        lambda X, Y: 0.5 * (A[0, 0] * X**2 + 2 * A[0, 1] * X * Y + Y**2), [x, x], 0.3
    )
    np.testing.assert_allclose(g2.cov(), ou_isotropic_covariance(A, 0.3), rtol=1e-6)
    np.testing.assert_allclose(g2.mean(), 0.0, atol=1e-10)
    assert g2.mass(np.ones((901, 901), bool)) == pytest.approx(1.0)


def test_gibbs_density_matches_euler_maruyama_langevin_and_the_flat_minimum_wins():
    T, dt, t_end, K = 0.25, 0.01, 30.0, 6000
    g = gibbs_density(_U, np.linspace(-3, 2.5, 5501), T)
    rng = np.random.default_rng(0)
    x = np.where(np.arange(K) % 2 == 0, -1.0, 1.0)
    s = np.sqrt(2 * T * dt)
    for _ in range(int(t_end / dt)):
        x = x - _dU(x) * dt + s * rng.standard_normal(K)
    p_left = g.mass((-10.0, X_SADDLE))
    left = x < X_SADDLE
    assert abs(left.mean() - p_left) < Z_SE * np.sqrt(p_left * (1 - p_left) / K)
    assert abs(x.mean() - g.mean()[0]) < Z_SE * x.std() / np.sqrt(K)
    m4 = np.mean((x - x.mean()) ** 4)
    assert abs(x.var() - g.cov()[0, 0]) < Z_SE * np.sqrt((m4 - x.var() ** 2) / K)
    # equal depths: the flatter (left) basin holds more mass
    assert left.mean() > 0.5 + Z_SE * 0.5 / np.sqrt(K)


def test_laplace_occupancy_ratio_is_the_small_temperature_limit_in_2d():
    """p₁/p₂ ≈ √(det H₂/det H₁) e^{−(F₁−F₂)/T}, relative error O(T)."""

    def F(X, Y):
        return _U(X) + 0.05 * X + 0.5 * np.exp(-0.3 * X) * Y**2

    # minima near x = ±1 shifted by the tilt; locate them and their Hessians numerically
    from scipy.optimize import minimize_scalar

    def Fx(x):
        return _U(x) + 0.05 * x

    mins = [minimize_scalar(Fx, bracket=(a - 0.3, a, a + 0.3)).x for a in (-1.0, 1.0)]
    h = 1e-4
    H = [np.diag([(Fx(m + h) - 2 * Fx(m) + Fx(m - h)) / h**2, np.exp(-0.3 * m)]) for m in mins]
    xg, yg = np.linspace(-2.5, 2.0, 901), np.linspace(-2.0, 2.0, 401)
    left = np.meshgrid(xg, yg, indexing="ij")[0] < X_SADDLE
    errs = []
    for T in (0.02, 0.01, 0.005):
        g = gibbs_density(F, [xg, yg], T)
        ratio = g.mass(left) / g.mass(~left)
        approx = laplace_occupancy_ratio(Fx(mins[0]), H[0], Fx(mins[1]), H[1], T)
        errs.append(abs(ratio / approx - 1))
    assert errs[-1] < 0.01
    # first-order convergence: halving T roughly halves the error
    assert 1.6 < errs[0] / errs[1] < 2.4 and 1.6 < errs[1] / errs[2] < 2.4


def test_ou_and_sde_covariances():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    A = (q * np.array([0.5, 1.0, 3.0])) @ q.T
    B = rng.standard_normal((3, 3))
    D = B @ B.T
    P = ou_stationary_covariance(A, D)
    np.testing.assert_allclose(A @ P + P @ A.T, D, atol=1e-12)
    np.testing.assert_allclose(
        ou_stationary_covariance(A, 2 * 0.4 * np.eye(3)),
        ou_isotropic_covariance(A, 0.4),
        rtol=1e-10,
    )
    # SDE covariance = small-η limit of the exact discrete one, with O(η) error
    errs = []
    for eta in (0.02, 0.01, 0.005):
        Pd = sgd_stationary_covariance(A, D, eta, b=4)
        Ps = sgd_sde_covariance(A, D, eta, b=4)
        errs.append(np.linalg.norm(Pd - Ps) / np.linalg.norm(Ps))
    assert errs[-1] < 0.01 and 1.8 < errs[0] / errs[1] < 2.2 and 1.8 < errs[1] / errs[2] < 2.2
    # momentum: effective step η/(1 − m)
    np.testing.assert_allclose(
        sgd_sde_covariance(A, D, 0.01, 2, momentum=0.9),
        sgd_sde_covariance(A, D, 0.1, 2),
        rtol=1e-12,
    )


def test_sgd_temperature_convention():
    eta, sigma2, b, d = 0.1, 3.0, 8, 5
    T = sgd_temperature(eta, sigma2 * d, b, d)
    assert T == pytest.approx(eta * sigma2 / (2 * b))
    assert sgd_temperature(eta, sigma2 * d, b, d, momentum=0.75) == pytest.approx(4 * T)
    # isotropic SGD on a quadratic: stationary covariance → T A⁻¹ (the Gibbs covariance)
    A = np.diag([0.5, 1.0, 2.0, 4.0, 0.1])
    P = sgd_sde_covariance(A, sigma2 * np.eye(d), eta, b)
    np.testing.assert_allclose(P, ou_isotropic_covariance(A, T), rtol=1e-12)


def test_kramers_rate_is_the_small_temperature_limit_of_the_exact_mfpt():
    """τ·r → 1 with error O(T/ΔU); the first correction is 1 + (3/2)T for this well.

    Laplace expansion of τ = (1/T)∫e^{U/T}∫e^{−U/T}: each of the two Gaussian integrals gets
    1 + T(5U'''²/(24U''³) − U''''/(8U''²)) = 1 + (3/4)T (well: U''=2, U'''=−6, U''''=6;
    barrier of −U: curvature 1, third derivative 0, fourth −6).
    """
    dU = 0.25
    prev = None
    for T in (0.025, 0.0125, 0.00625, 0.003125):
        tau = mean_first_passage_time(_double_well, -1.0, 1.0, T, reflect=-3.0, n_grid=40001)
        r = kramers_rate(2.0, -1.0, dU, T)
        assert abs(tau * r - 1) < T / dU
        resid = abs((tau * r - 1) / T - 1.5)  # O(T): shrinks ∝ T
        if prev is not None:
            assert resid < 0.65 * prev
        prev = resid
    # absorbing at the saddle itself: half the crossings return, τ ≈ 1/(2r)
    T = 0.003125
    tau0 = mean_first_passage_time(_double_well, -1.0, 0.0, T, reflect=-3.0, n_grid=40001)
    assert abs(2 * tau0 * kramers_rate(2.0, -1.0, dU, T) - 1) < T / dU
    # mirror image: by symmetry, +1 → −1 equals −1 → +1
    assert mean_first_passage_time(_double_well, 1.0, -1.0, 0.05, reflect=3.0) == pytest.approx(
        mean_first_passage_time(_double_well, -1.0, 1.0, 0.05, reflect=-3.0), rel=1e-10
    )


def test_mfpt_integral_matches_langevin_simulation():
    """Euler–Maruyama with a Brownian-bridge crossing check (no discrete-monitoring bias)."""
    T, dt, K = 0.25, 0.005, 3000
    tau = mean_first_passage_time(_double_well, -1.0, 1.0, T, reflect=-4.0)
    rng = np.random.default_rng(2)
    x = np.full(K, -1.0)
    alive = np.arange(K)
    times = np.zeros(K)
    s2 = 2 * T * dt
    step = 0
    while alive.size:
        step += 1
        xa = x[alive]
        xn = xa - (xa**3 - xa) * dt + np.sqrt(s2) * rng.standard_normal(xa.size)
        x[alive] = xn
        p_cross = np.exp(-2 * np.clip(1 - xa, 0, None) * np.clip(1 - xn, 0, None) / s2)
        hit = (xn >= 1.0) | (rng.random(xa.size) < p_cross)
        times[alive[hit]] = (step - 0.5) * dt
        alive = alive[~hit]
    assert abs(times.mean() - tau) < Z_SE * times.std() / np.sqrt(K)
