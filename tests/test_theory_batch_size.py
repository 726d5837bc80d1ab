"""Batch-size relations: minibatch variance, McCandlish noise scale, scaling rules."""

from __future__ import annotations

import numpy as np
import pytest

from sgdlab.theory import (
    b_noise,
    b_simple,
    critical_batch_size,
    eps_max,
    examples_to_target,
    expected_improvement,
    finite_population_factor,
    minibatch_noise_trace,
    optimal_improvement,
    optimal_step,
    scale_learning_rate,
    sgd_stationary_excess_loss_eig,
    sgd_temperature,
    small_eta_noise_floor,
    steps_to_target,
    tradeoff_residual,
)

Z_SE = 4.0


def test_minibatch_variance_with_and_without_replacement():
    rng = np.random.default_rng(0)
    N, d, R = 50, 3, 40000
    X = rng.standard_normal((N, d)) * np.array([1.0, 2.0, 0.5]) + 1.0
    G = X.mean(axis=0)
    tr_sigma = float(np.sum((X - G) ** 2) / N)  # 1/N per-sample covariance
    for b in (1, 5, 20, 50):
        idx_r = rng.integers(0, N, size=(R, b))
        idx_w = np.argsort(rng.random((R, N)), axis=1)[:, :b]
        for idx, n in ((idx_r, None), (idx_w, N)):
            s = np.sum((X[idx].mean(axis=1) - G) ** 2, axis=1)  # E s = tr Cov(g_B)
            expected = minibatch_noise_trace(tr_sigma, b, n)
            assert abs(s.mean() - expected) <= Z_SE * s.std() / np.sqrt(R) + 1e-12
    assert minibatch_noise_trace(tr_sigma, N, N) == 0.0  # full batch: no noise
    assert finite_population_factor(1, N) == 1.0
    with pytest.raises(ValueError):
        finite_population_factor(N + 1, N)


def _quadratic_case():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    H = (q * np.array([0.2, 0.5, 1.0, 3.0])) @ q.T
    B = rng.standard_normal((4, 4))
    Sigma = B @ B.T
    G = rng.standard_normal(4)
    return H, Sigma, G


def test_expected_improvement_matches_simulated_sgd_step():
    H, Sigma, G = _quadratic_case()
    Lc = np.linalg.cholesky(Sigma)
    rng = np.random.default_rng(2)
    R = 40000
    for B in (1, 8, 64):
        eps = float(optimal_step(B, eps_max(H, G), b_noise(H, Sigma, G)))
        g = G + rng.standard_normal((R, 4)) @ Lc.T / np.sqrt(B)  # minibatch gradient
        # exact change of F = ½ eᵀHe with ∇F = G at the current point: εGᵀg − ½ε² gᵀHg
        dl = eps * g @ G - 0.5 * eps**2 * np.einsum("ri,ij,rj->r", g, H, g)
        expected = float(expected_improvement(eps, B, H, Sigma, G))
        assert abs(dl.mean() - expected) < Z_SE * dl.std() / np.sqrt(R)


def test_optimal_step_and_improvement_algebra():
    H, Sigma, G = _quadratic_case()
    bn, em = b_noise(H, Sigma, G), eps_max(H, G)
    dmax = 0.5 * float(G @ G) ** 2 / float(G @ H @ G)
    for B in (1.0, 10.0, 1000.0):
        e = float(optimal_step(B, em, bn))
        grid = np.linspace(0.5 * e, 1.5 * e, 1001)
        assert grid[np.argmax(expected_improvement(grid, B, H, Sigma, G))] == pytest.approx(
            e, rel=2e-3
        )
        assert float(expected_improvement(e, B, H, Sigma, G)) == pytest.approx(
            float(optimal_improvement(B, dmax, bn))
        )
    # B_noise = B_simple when the Hessian is isotropic
    assert b_noise(2.0 * np.eye(4), Sigma, G) == pytest.approx(b_simple(np.trace(Sigma), G))


def test_steps_examples_tradeoff():
    S_min, E_min = 1000.0, 64000.0
    Bc = critical_batch_size(S_min, E_min)
    B = np.array([1.0, 16.0, 64.0, 256.0, 4096.0])
    S, E = steps_to_target(B, S_min, Bc), examples_to_target(B, E_min, Bc)
    np.testing.assert_allclose(tradeoff_residual(S, E, S_min, E_min), 0.0, atol=1e-12)
    np.testing.assert_allclose(E, B * S)  # examples = batch × steps
    # at B = B_crit both cost twice their minimum
    assert steps_to_target(Bc, S_min, Bc) == 2 * S_min
    assert examples_to_target(Bc, E_min, Bc) == 2 * E_min


def test_learning_rate_scaling_rules_preserve_their_invariants():
    eta, b = 0.05, 32
    for k in (2, 8, 0.25):
        b2 = int(b * k)
        lin = scale_learning_rate(eta, b, b2, "linear")
        assert lin / b2 == pytest.approx(eta / b)
        assert sgd_temperature(lin, 3.0, b2, 3) == pytest.approx(sgd_temperature(eta, 3.0, b, 3))
        assert small_eta_noise_floor(3.0, lin, b2) == pytest.approx(
            small_eta_noise_floor(3.0, eta, b)
        )
        assert scale_learning_rate(eta, b, b2, "temperature") == lin
        sq = scale_learning_rate(eta, b, b2, "sqrt")
        assert sq**2 / b2 == pytest.approx(eta**2 / b)  # update covariance η²Σ/b
        assert scale_learning_rate(eta, b, b2, "none") == eta
    # the exact noise floor is preserved by the linear rule up to O(ηL)
    lam, c = np.array([0.1, 1.0]), np.array([1.0, 1.0])
    f1 = sgd_stationary_excess_loss_eig(lam, c, 0.01, 1)
    f8 = sgd_stationary_excess_loss_eig(lam, c, 0.08, 8)
    assert abs(f8 / f1 - 1) < 0.08 * lam.max()
    with pytest.raises(ValueError):
        scale_learning_rate(eta, b, 64, "cubic")  # type: ignore[arg-type]
