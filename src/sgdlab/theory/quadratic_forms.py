"""Gaussian quadratic forms: the exact law of a change of F under the stationary Gaussian law.

* :func:`quadratic_form_exceedance` — P(zᵀMz > x) for z ~ N(0, S), by Imhof's (1961)
  inversion of the characteristic function (numerical quadrature: exact up to its stated
  absolute error);
* :func:`sgd_increase_probability` — the stationary probability that one SGD step increases
  F on the quadratic F(w) = ½ eᵀAe (e = w − w*), minibatch gradient Ae + ζ with
  ζ ~ N(0, C/b), the iterate drawn from its exact stationary law N(0, P) (discrete Lyapunov,
  :func:`sgdlab.theory.noise_floor.sgd_stationary_covariance`).

Reference: J. P. Imhof (1961), "Computing the distribution of quadratic forms in normal
variables", Biometrika 48, eq. 3.2.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike
from scipy import integrate

from sgdlab.theory._common import as_matrix
from sgdlab.theory.noise_floor import sgd_stationary_covariance

__all__ = ["quadratic_form_exceedance", "sgd_increase_matrix", "sgd_increase_probability"]


def quadratic_form_exceedance(
    M: ArrayLike, S: ArrayLike, x: float = 0.0, epsabs: float = 1e-10
) -> float:
    """P(zᵀMz > x) for z ~ N(0, S) (M symmetric, S positive semidefinite).

    With λ_j the eigenvalues of S^{1/2} M S^{1/2}, zᵀMz = Σ λ_j χ²₁ and (Imhof 1961)

        P(Q > x) = ½ + (1/π) ∫₀^∞ sin θ(u) / (u ρ(u)) du,
        θ(u) = ½ Σ arctan(λ_j u) − ½ x u,   ρ(u) = Π (1 + λ_j² u²)^{1/4}.

    For x = 0 the integrand does not oscillate in its tail; for x ≠ 0 the tail is taken as
    two Fourier integrals (QUADPACK QAWF).

    Args:
        M: the symmetric matrix of the form.
        S: the covariance of z.
        x: the threshold.
        epsabs: absolute error requested from the quadrature.

    Example:
        >>> round(quadratic_form_exceedance(np.diag([1.0, -1.0]), np.eye(2)), 12)
        0.5
    """
    M_, S_ = as_matrix(M), as_matrix(S)
    w, V = np.linalg.eigh(S_)
    root = (V * np.sqrt(np.clip(w, 0.0, None))) @ V.T
    lam = np.linalg.eigvalsh(root @ (0.5 * (M_ + M_.T)) @ root)
    lam = lam[np.abs(lam) > 1e-14 * max(1.0, float(np.abs(lam).max()))]
    if lam.size == 0:
        return float(x < 0)

    def amplitude(u: float) -> tuple[float, float]:
        # θ(u) = α(u) − xu/2 and 1/(u ρ(u)), ρ(u) = Π (1 + λ²u²)^{1/4}
        alpha = 0.5 * float(np.sum(np.arctan(lam * u)))
        return alpha, 1.0 / (u * math.exp(0.25 * float(np.sum(np.log1p((lam * u) ** 2)))))

    def integrand(u: float) -> float:
        if u == 0.0:
            return 0.5 * float(np.sum(lam)) - 0.5 * x
        alpha, amp = amplitude(u)
        return math.sin(alpha - 0.5 * x * u) * amp

    scale = 1.0 / float(np.abs(lam).max())
    if x == 0.0:
        total = _quad_to_infinity(integrand, scale, epsabs)
    else:
        # [0, c]: the plain integrand (bounded at 0); [c, ∞): sin(α − xu/2) expanded into
        # sin α cos(xu/2) − cos α sin(xu/2), each a Fourier integral (QUADPACK's QAWF)
        c = scale
        head, _ = integrate.quad(integrand, 0.0, c, epsabs=epsabs, epsrel=1e-12, limit=500)
        w, sign = 0.5 * abs(x), math.copysign(1.0, x)
        cos_part, _ = integrate.quad(lambda u: math.sin(amplitude(u)[0]) * amplitude(u)[1], c,
                                     np.inf, weight="cos", wvar=w, epsabs=epsabs)  # fmt: skip
        sin_part, _ = integrate.quad(lambda u: math.cos(amplitude(u)[0]) * amplitude(u)[1], c,
                                     np.inf, weight="sin", wvar=w, epsabs=epsabs)  # fmt: skip
        total = head + cos_part - sign * sin_part
    return 0.5 + total / math.pi


def _quad_to_infinity(f: Callable[[float], float], scale: float, epsabs: float) -> float:
    """∫₀^∞ f for a non-oscillating tail, by pieces [0, s], [s, 10 s], … until a piece far
    out is below ``epsabs`` (with x = 0 the integrand decays like u^{−1−m/2}, m the number
    of nonzero λ_j)."""
    total, a, b = 0.0, 0.0, scale
    for _ in range(60):
        piece, _ = integrate.quad(f, a, b, epsabs=epsabs / 10, epsrel=1e-12, limit=500)
        total += piece
        if abs(piece) < epsabs and b > 100 * scale:
            break
        a, b = b, 10 * b
    return total


def sgd_increase_matrix(A: ArrayLike, eta: float) -> np.ndarray:
    """M with F(w') − F(w) = zᵀMz for z = (e, ζ): one SGD step e' = (I − ηA)e − ηζ on
    F = ½ eᵀAe. With G = I − ηA: M = [[½(GAG − A), −½ηGA], [−½ηAG, ½η²A]]."""
    A_ = as_matrix(A)
    G = np.eye(A_.shape[0]) - eta * A_
    top = np.hstack([0.5 * (G @ A_ @ G - A_), -0.5 * eta * G @ A_])
    bottom = np.hstack([-0.5 * eta * A_ @ G, 0.5 * eta**2 * A_])
    return np.vstack([top, bottom])


def sgd_increase_probability(
    A: ArrayLike, C: ArrayLike, eta: float, b: int = 1, n: int | None = None
) -> float:
    """Stationary P(F(w_{t+1}) > F(w_t)) of constant-step SGD on the quadratic.

    e_t ~ N(0, P) (the exact stationary law of the linear iteration with Gaussian noise,
    P from :func:`~sgdlab.theory.noise_floor.sgd_stationary_covariance`), ζ ~ N(0, κC/b)
    independent of e_t, and F(w_{t+1}) − F(w_t) = zᵀMz (:func:`sgd_increase_matrix`).

    Example:
        >>> p = sgd_increase_probability(np.eye(2), np.eye(2), 0.1)
        >>> 0.4 < p < 0.6
        True
    """
    A_, C_ = as_matrix(A), as_matrix(C)
    d = A_.shape[0]
    P = sgd_stationary_covariance(A_, C_, eta, b, n)
    kappa = 1.0 if n is None else (n - b) / (n - 1)
    S = np.zeros((2 * d, 2 * d))
    S[:d, :d] = P
    S[d:, d:] = kappa * C_ / b
    return quadratic_form_exceedance(sgd_increase_matrix(A_, eta), S)
