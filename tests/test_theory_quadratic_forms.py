"""theory.quadratic_forms: Imhof's formula against closed forms (to quadrature accuracy) and
the stationary increase probability of SGD against Monte Carlo (to its standard error)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from sgdlab.theory.noise_floor import sgd_stationary_covariance
from sgdlab.theory.quadratic_forms import (
    quadratic_form_exceedance,
    sgd_increase_matrix,
    sgd_increase_probability,
)


@pytest.mark.parametrize("a", [0.1, 0.5, 2.0, 10.0])
def test_difference_of_two_chi_squares(a):
    # P(X − aY > 0), X, Y ~ χ²₁ independent: (2/π) arctan(1/√a)
    got = quadratic_form_exceedance(np.diag([1.0, -a]), np.eye(2))
    assert got == pytest.approx(2 / np.pi * np.arctan(1 / np.sqrt(a)), abs=1e-10)


def test_threshold_and_correlated_covariance():
    # χ²₃ tail at x = 3; and a form in a correlated Gaussian equals the whitened one
    got = quadratic_form_exceedance(np.eye(3), np.eye(3), x=3.0, epsabs=1e-12)
    assert got == pytest.approx(stats.chi2.sf(3.0, 3), abs=1e-12)
    L = np.array([[1.0, 0.0], [0.7, 0.5]])
    M = np.diag([1.0, -1.5])
    # z = L u: zᵀMz = uᵀ(LᵀML)u, a form in white noise
    assert quadratic_form_exceedance(M, L @ L.T) == pytest.approx(
        quadratic_form_exceedance(L.T @ M @ L, np.eye(2)), abs=1e-10
    )


def test_reversible_chain_increases_half_the_time():
    A = np.diag([1.0, 0.5, 0.2])
    for C in (np.eye(3), np.diag([1.0, 2.0, 3.0])):  # both commute with A
        assert sgd_increase_probability(A, C, 0.3, b=2) == pytest.approx(0.5, abs=1e-10)


def test_increase_probability_matches_monte_carlo():
    """Non-commuting noise (P(increase) ≠ ½): 10⁶ stationary pairs, |MC − exact| ≤ 4.4 SE
    (two-sided 10⁻⁵ level: no false failure in practice)."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    A = q @ np.diag([2.0, 1.0, 0.5, 0.1]) @ q.T
    C = np.diag([5.0, 1.0, 0.1, 0.01])
    eta, b, n = 0.4, 1, 1_000_000
    P = sgd_stationary_covariance(A, C, eta, b)
    e = rng.multivariate_normal(np.zeros(4), P, size=n)
    zeta = rng.multivariate_normal(np.zeros(4), C / b, size=n)
    e2 = e - eta * (e @ A + zeta)
    mc = float(np.mean(0.5 * np.einsum("ij,jk,ik->i", e2, A, e2)
                       > 0.5 * np.einsum("ij,jk,ik->i", e, A, e)))  # fmt: skip
    exact = sgd_increase_probability(A, C, eta, b)
    se = np.sqrt(exact * (1 - exact) / n)
    assert abs(exact - 0.5) > 10 * se  # the case is not the reversible ½
    assert abs(mc - exact) <= 4.4 * se
    z = np.hstack([e[:1000], zeta[:1000]])
    M = sgd_increase_matrix(A, eta)
    np.testing.assert_allclose(np.einsum("ij,jk,ik->i", z, M, z),
                               0.5 * np.einsum("ij,jk,ik->i", e2[:1000], A, e2[:1000])
                               - 0.5 * np.einsum("ij,jk,ik->i", e[:1000], A, e[:1000]),
                               rtol=1e-9, atol=1e-12)  # fmt: skip
