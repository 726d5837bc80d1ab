"""Convergence rates: decaying-step SGD, averaged SGD, GD's linear rate, and rate fits.

Conventions: mean-reduced loss; the quadratic problem F(w) = ½ eᵀAe, e = w − w*, with
minibatch gradient A e + ζ, Cov ζ = κ C/b (κ = (N − b)/(N − 1) without replacement, else 1).
A schedule is the array of step sizes (η_0, …, η_{T−1}) actually applied: step t maps w_t to
w_{t+1} = w_t − η_t g_t.

References:
    Bottou, Curtis & Nocedal (2018), SIAM Review 60(2), §4.2, Theorem 4.7 (O(1/k) for
    η_k = β/(γ + k)). Nemirovski, Juditsky, Lan & Shapiro (2009), SIAM J. Optim. 19(4), §2.2;
    Bubeck (2015), "Convex Optimization: Algorithms and Complexity", Theorem 6.1 (averaged
    SGD, O(1/√T)). Nesterov (2004), "Introductory Lectures", Theorem 2.1.15 (GD linear rate).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from sgdlab.theory._common import FloatArray, as_vector, finite_population_factor
from sgdlab.theory.noise_floor import BCNConstants


# ------------------------------------------------------------------ BCN Theorem 4.7
def bcn_diminishing_schedule(beta: float, gamma: float, steps: int) -> FloatArray:
    """The BCN step sizes α_k = β/(γ + k) for k = 1..steps (the k-th maps w_k to w_{k+1})."""
    return beta / (gamma + np.arange(1, steps + 1, dtype=np.float64))


def bcn_diminishing_nu(beta: float, gamma: float, k: BCNConstants, F1_gap: float) -> float:
    """ν = max(β²LM/(2(βcμ − 1)), (γ + 1)(F(w_1) − F*)) of BCN Theorem 4.7."""
    if beta * k.c * k.mu <= 1.0:
        raise ValueError("Theorem 4.7 needs β > 1/(cμ)")
    if gamma <= 0 or beta / (gamma + 1.0) > k.mu / (k.L * k.M_G):
        raise ValueError("Theorem 4.7 needs γ > 0 and α_1 = β/(γ + 1) ≤ μ/(L M_G)")
    return max(beta**2 * k.L * k.M / (2.0 * (beta * k.c * k.mu - 1.0)), (gamma + 1.0) * F1_gap)


def bcn_diminishing_bound(
    beta: float, gamma: float, k: BCNConstants, F1_gap: float, steps: ArrayLike
) -> FloatArray:
    """Bottou–Curtis–Nocedal (2018) Theorem 4.7: E[F(w_k) − F*] ≤ ν/(γ + k).

    Assumptions 4.1, 4.3, 4.5 (see :class:`~sgdlab.theory.noise_floor.BCNConstants`), steps
    α_k = β/(γ + k) with β > 1/(cμ), γ > 0 and α_1 ≤ μ/(L M_G). BCN index their start w_1,
    so after ``steps`` = k − 1 steps the bound is ν/(γ + steps + 1).
    """
    nu = bcn_diminishing_nu(beta, gamma, k, F1_gap)
    return nu / (gamma + 1.0 + np.asarray(steps, dtype=np.float64))


# ------------------------------------------------------------------ exact quadratic recursion
def expected_suboptimality_quadratic(
    A_eigs: ArrayLike,
    C_diag: ArrayLike,
    b: int,
    w0_minus_wstar: ArrayLike,
    schedule_values: ArrayLike,
    n: int | None = None,
) -> FloatArray:
    """Exact E F(w_t) − F*, t = 0..T, of SGD under any step schedule on the quadratic.

    For commuting A and C (eigenvalues λ_i, noise variances c_i in the same basis) each
    eigen-direction evolves independently: mean m ← (1 − η_tλ)m and variance
    v ← (1 − η_tλ)² v + η_t² κ c/b, and E F − F* = Σ ½ λ (m² + v). Exact, not asymptotic.

    Args:
        A_eigs: Hessian eigenvalues λ_i (≥ 0).
        C_diag: per-sample noise variances in A's eigenbasis (scalar broadcasts).
        b: batch size.
        w0_minus_wstar: initial error in the eigenbasis, Qᵀ(w_0 − w*).
        schedule_values: (η_0, …, η_{T−1}).
        n: population size for sampling without replacement (``None``: with replacement).

    Returns:
        Array of length T + 1.
    """
    lam = as_vector(A_eigs)
    moments = _eigen_moments(lam, C_diag, b, w0_minus_wstar, schedule_values, n)
    return np.array([0.5 * float(np.sum(lam * (m**2 + v))) for m, v in moments])


def _eigen_moments(
    lam: FloatArray,
    C_diag: ArrayLike,
    b: int,
    w0_minus_wstar: ArrayLike,
    schedule_values: ArrayLike,
    n: int | None,
) -> Iterator[tuple[FloatArray, FloatArray]]:
    """The exact recursion of SGD on the quadratic, per eigen-direction: yields the mean m_t
    and variance v_t of Qᵀ(w_t − w*) for t = 0..T, with m ← (1 − η_tλ)m and
    v ← (1 − η_tλ)² v + η_t² κ c/b (κ the finite-population factor)."""
    c = as_vector(C_diag, lam.size)
    m = as_vector(w0_minus_wstar, lam.size).copy()
    etas = as_vector(schedule_values)
    kappa = finite_population_factor(b, n)
    v = np.zeros_like(lam)
    yield m, v
    for eta in etas:
        rho = 1.0 - eta * lam
        m = rho * m
        v = rho**2 * v + eta**2 * kappa * c / b
        yield m, v


def quadratic_moments(
    A_eigs: ArrayLike,
    C_diag: ArrayLike,
    b: int,
    w0_minus_wstar: ArrayLike,
    schedule_values: ArrayLike,
    n: int | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Exact E‖w_t − w*‖² and E‖g_t‖² (minibatch gradient at w_t), t = 0..T, on the quadratic.

    From the same recursion as :func:`expected_suboptimality_quadratic`:
    E‖e_t‖² = Σ (m² + v) and E‖g_t‖² = Σ λ²(m² + v) + κ tr(C)/b.

    Returns:
        ``(dist2 [T+1], grad2 [T+1])``.
    """
    lam = as_vector(A_eigs)
    noise = finite_population_factor(b, n) * float(as_vector(C_diag, lam.size).sum()) / b
    e2 = [m**2 + v for m, v in _eigen_moments(lam, C_diag, b, w0_minus_wstar,
                                              schedule_values, n)]  # fmt: skip
    dist2 = np.array([float(x.sum()) for x in e2])
    grad2 = np.array([float((lam**2 * x).sum()) + noise for x in e2])
    return dist2, grad2


def expected_suboptimality_averaged_quadratic(
    A_eigs: ArrayLike,
    C_diag: ArrayLike,
    b: int,
    w0_minus_wstar: ArrayLike,
    schedule_values: ArrayLike,
    weights: ArrayLike | None = None,
    n: int | None = None,
) -> float:
    """Exact E F(w̄_T) − F* of the averaged iterate w̄_T = Σ_{t<T} a_t w_t / Σ_{t<T} a_t.

    The default weights a_t = η_t give the step-weighted (Nemirovski et al. 2009) average of
    the points at which the gradients were taken, w_0..w_{T−1}, to which
    :func:`averaged_sgd_bound` applies; pass ``np.ones(T)`` for the uniform Polyak–Ruppert
    average. Per eigen-direction (commuting A, C), with ρ_t = 1 − η_tλ and
    e_{t+1} = ρ_t e_t − η_t ζ_t, the noise ζ_s enters ē with coefficient −η_s h_s / Σa,
    h_s = Σ_{t>s} a_t Π_{s<u<t} ρ_u (backward recursion h_s = a_{s+1} + ρ_{s+1} h_{s+1}), so

        E F(w̄) − F* = Σ_i ½ λ_i [(Σ_t a_t Π_{u<t} ρ_u)² e_0² + Σ_s η_s² κ c/b h_s²] / (Σa)².
    """
    lam = as_vector(A_eigs)
    c = as_vector(C_diag, lam.size)
    e0 = as_vector(w0_minus_wstar, lam.size)
    etas = as_vector(schedule_values)
    T = etas.size
    a = etas.copy() if weights is None else as_vector(weights, T)
    kappa = finite_population_factor(b, n)
    rho = 1.0 - etas[:, None] * lam[None, :]  # [T, d]
    prod = np.vstack([np.ones((1, lam.size)), np.cumprod(rho, axis=0)[:-1]])  # Π_{u<t} ρ_u
    mean = (a[:, None] * prod).sum(axis=0) * e0
    h = np.zeros((T, lam.size))  # h_{T−1} = 0 (ζ_{T−1} only reaches w_T, not averaged)
    for s in range(T - 2, -1, -1):
        h[s] = a[s + 1] + rho[s + 1] * h[s + 1]
    var = (etas[:, None] ** 2 * kappa * c / b * h**2).sum(axis=0)
    return float(np.sum(0.5 * lam * (mean**2 + var)) / a.sum() ** 2)


def averaged_sgd_bound(schedule_values: ArrayLike, R2: float, G2: ArrayLike) -> float:
    """Convex O(1/√T) bound of step-weighted averaged SGD (Bubeck 2015, Thm 6.1 proof).

    For convex F, unbiased stochastic gradients with E‖g_t‖² ≤ G_t², and ‖w_0 − w*‖² ≤ R²
    (no projection needed when the second-moment bound holds along the path):

        E F(w̄_T) − F* ≤ (R² + Σ_t η_t² G_t²) / (2 Σ_t η_t),   w̄_T = Σ η_t w_t / Σ η_t,

    averaging w_0..w_{T−1}. With η_t = R/(G√T) constant this is RG/√T; with
    η_t = η_0/√(t+1) it is O(log T/√T).

    Args:
        schedule_values: (η_0, …, η_{T−1}).
        R2: squared initial distance ‖w_0 − w*‖² (or its expectation).
        G2: second-moment bound, a scalar or one value per step.
    """
    etas = as_vector(schedule_values)
    g2 = np.broadcast_to(np.asarray(G2, dtype=np.float64), etas.shape)
    return float((R2 + np.sum(etas**2 * g2)) / (2.0 * np.sum(etas)))


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


def averaged_sgd_optimal_constant_step(R: float, G: float, T: int) -> tuple[float, float]:
    """The horizon-tuned constant step η = R/(G√T) and its bound RG/√T (Bubeck 2015, Thm 6.1)."""
    return R / (G * np.sqrt(T)), R * G / np.sqrt(T)


# ------------------------------------------------------------------ gradient descent
def gd_contraction_factor(eigs: ArrayLike, eta: float) -> float:
    """ρ = max_i |1 − ηλ_i|: GD on a quadratic contracts each error component by ≤ ρ per step."""
    return float(np.max(np.abs(1.0 - eta * as_vector(eigs))))


def gd_quadratic_bound(F0_gap: float, rho: float, t: ArrayLike) -> FloatArray:
    """F(w_t) − F* ≤ ρ^{2t} (F(w_0) − F*) for GD on a quadratic with contraction factor ρ."""
    return F0_gap * rho ** (2.0 * np.asarray(t, dtype=np.float64))


def gd_strongly_convex_bound(F0_gap: float, mu: float, L: float, t: ArrayLike) -> FloatArray:
    """F(w_t) − F* ≤ (1 − μ/L)^t (F(w_0) − F*): GD, η = 1/L, μ-strongly convex L-smooth F."""
    return F0_gap * (1.0 - mu / L) ** np.asarray(t, dtype=np.float64)


# ------------------------------------------------------------------ fits
class SlopeFit(NamedTuple):
    """A fitted exponent and its bootstrap confidence interval."""

    slope: float
    ci_low: float
    ci_high: float


class RateFit(NamedTuple):
    """A fitted geometric rate ρ (values ∝ ρ^t) and its bootstrap confidence interval."""

    rho: float
    ci_low: float
    ci_high: float


def _bootstrap_ols_slope(
    x: FloatArray, values: ArrayLike, level: float, n_boot: int, seed: int
) -> tuple[float, float, float]:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[None, :]
    K, nx = v.shape
    if nx != x.size or nx < 2:
        raise ValueError(f"values must be [K, {x.size}] with at least two abscissae")
    xc = x - x.mean()

    def slope(means: FloatArray) -> FloatArray:
        if np.any(means <= 0):
            raise ValueError("the chain mean must be positive at every abscissa to take its log")
        y = np.log(means)
        return (y - y.mean(axis=-1, keepdims=True)) @ xc / (xc @ xc)

    est = float(slope(v.mean(axis=0)))
    if K < 2:
        raise ValueError("a bootstrap over chains needs K ≥ 2 chains")
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(K, np.full(K, 1.0 / K), size=n_boot)  # [B, K]
    # inflate the bootstrap spread by √(K/(K−1)): the resampling variance is biased low by
    # (K−1)/K, which makes percentile intervals under-cover for a few dozen chains
    boots = est + (slope(counts @ v / K) - est) * np.sqrt(K / (K - 1))
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(boots, [alpha, 1.0 - alpha])
    return est, float(lo), float(hi)


def fit_loglog_slope(
    T: ArrayLike, values: ArrayLike, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> SlopeFit:
    """Fit the exponent p of E[value] ∝ T^p from K independent chains, with a bootstrap CI.

    Method: average the K chains at each T, regress log(mean) on log T by ordinary least
    squares; the confidence interval is the percentile interval of the same estimate over
    ``n_boot`` bootstrap resamples of whole chains (rows), so correlation along a chain is
    respected, with the bootstrap deviations scaled by √(K/(K − 1)) (small-K correction).
    Coverage is close to nominal from K ≈ 30 chains (≈ 94% for a 95% interval in the tests)
    and low for a handful of chains (≈ 86% at K = 5). Chains must be independent; the mean
    must be positive at every T.

    Args:
        T: abscissae (> 0), length n.
        values: array [K, n] (or [n] for one chain, which cannot give a CI).
        level: confidence level.
        n_boot: bootstrap resamples.
        seed: seed of the bootstrap generator (the fit is deterministic given it).

    Example:
        >>> import numpy as np
        >>> T = np.array([10.0, 100.0, 1000.0])
        >>> fit_loglog_slope(T, np.vstack([3 / T, 5 / T])).slope
        -1.0
    """
    x = np.log(as_vector(T))
    return SlopeFit(*_bootstrap_ols_slope(x, values, level, n_boot, seed))


def fit_geometric_rate(
    t: ArrayLike, values: ArrayLike, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> RateFit:
    """Fit ρ of E[value] ∝ ρ^t from K chains: OLS of log(mean over chains) on t, chain bootstrap.

    Same method as :func:`fit_loglog_slope` with t on a linear axis; returns ρ = exp(slope)
    and the exponentiated percentile interval.
    """
    s, lo, hi = _bootstrap_ols_slope(as_vector(t), values, level, n_boot, seed)
    return RateFit(float(np.exp(s)), float(np.exp(lo)), float(np.exp(hi)))
