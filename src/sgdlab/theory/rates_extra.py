"""Extra closed forms for the rates study: exact moments of SGD on the quadratic and the
convex O(1/√T) bound for the *uniform* (Polyak–Ruppert) average with decreasing steps.

Conventions as in :mod:`sgdlab.theory.rates` (commuting A, C; eigenvalues λ_i ≥ 0, noise
variances c_i in A's eigenbasis; Cov ζ = κ C/b).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from sgdlab.theory._common import FloatArray, as_vector, finite_population_factor


def quadratic_moments(
    A_eigs: ArrayLike,
    C_diag: ArrayLike,
    b: int,
    w0_minus_wstar: ArrayLike,
    schedule_values: ArrayLike,
    n: int | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Exact E‖w_t − w*‖² and E‖g_t‖² (minibatch gradient at w_t), t = 0..T.

    Per eigen-direction: mean m ← (1 − η_tλ)m, variance v ← (1 − η_tλ)² v + η_t² κ c/b, so
    E‖e_t‖² = Σ (m² + v) and E‖g_t‖² = Σ λ²(m² + v) + κ tr(C)/b.

    Returns:
        ``(dist2 [T+1], grad2 [T+1])``.
    """
    lam = as_vector(A_eigs)
    c = as_vector(C_diag, lam.size)
    m = as_vector(w0_minus_wstar, lam.size).copy()
    etas = as_vector(schedule_values)
    kappa = finite_population_factor(b, n)
    v = np.zeros_like(lam)
    noise = kappa * float(c.sum()) / b
    dist2 = np.empty(etas.size + 1)
    grad2 = np.empty(etas.size + 1)
    for t in range(etas.size + 1):
        e2 = m**2 + v
        dist2[t] = float(e2.sum())
        grad2[t] = float((lam**2 * e2).sum()) + noise
        if t == etas.size:
            break
        rho = 1.0 - etas[t] * lam
        m = rho * m
        v = rho**2 * v + etas[t] ** 2 * kappa * c / b
    return dist2, grad2


def uniform_average_bound(schedule_values: ArrayLike, D2: float, G2: ArrayLike) -> float:
    """Convex bound for the uniform average w̄ = (1/T) Σ_{t<T} w_t with nonincreasing steps.

    For convex F, unbiased gradients with E‖g_t‖² ≤ G_t² and E‖w_t − w*‖² ≤ D² for t < T,
    summing E[F(w_t) − F*] ≤ (E‖e_t‖² − E‖e_{t+1}‖²)/(2η_t) + η_t G_t²/2 and using Jensen:

        E F(w̄_T) − F* ≤ [D²/(2η_{T−1}) + ½ Σ_{t<T} η_t G_t²] / T.

    With η_t = η₀/√(t+1) this is O(1/√T) (Nemirovski et al. 2009, §2.2; Bubeck 2015, §6.1).

    Args:
        schedule_values: (η_0, …, η_{T−1}), nonincreasing and positive.
        D2: bound on E‖w_t − w*‖² along the path.
        G2: bound on E‖g_t‖², a scalar or one value per step.
    """
    etas = as_vector(schedule_values)
    if np.any(np.diff(etas) > 0) or np.any(etas <= 0):
        raise ValueError("the bound needs positive, nonincreasing steps")
    g2 = np.broadcast_to(np.asarray(G2, dtype=np.float64), etas.shape)
    return float((D2 / (2.0 * etas[-1]) + 0.5 * np.sum(etas * g2)) / etas.size)
