"""The noise floor of constant-step SGD on a quadratic: exact and bounded.

Setting (the :class:`sgdlab.problems.quadratic.Quadratic` problem): F(w) = ½ eᵀAe with
e = w − w*, F* = 0, and the minibatch gradient A e + ζ with E ζ = 0 and Cov ζ = κ C/b, where C
is the per-sample gradient covariance (mean-reduced loss), b the batch size, and κ = 1 with
replacement or κ = (N − b)/(N − 1) without replacement from N samples. SGD with step η is the
linear iteration

    e_{t+1} = (I − ηA) e_t − η ζ_t,

so the mean obeys m_{t+1} = (I − ηA) m_t and the covariance obeys the Lyapunov recursion
P_{t+1} = (I − ηA) P_t (I − ηA)ᵀ + η² κ C/b. Its fixed point (for 0 < ηλ_i < 2) is the
stationary covariance, and the expected excess loss is E F − F* = ½ mᵀAm + ½ tr(AP).

When A and C commute (same eigenbasis, eigenvalues λ_i and c_i) everything decouples:

    P_ii = η κ c_i / (b λ_i (2 − ηλ_i)),   E F − F* → Σ_i η κ c_i / (2b (2 − ηλ_i)),

whose small-η limit is η κ tr(C)/(4b) — the noise floor is linear in η/b.

Heavy-ball momentum (PyTorch convention, dampening 0): v_{t+1} = m v_t + g_t,
w_{t+1} = w_t − η v_{t+1}, i.e. e_{t+1} = ((1+m)I − ηA) e_t − m e_{t−1} − η ζ_t. Per
eigen-direction this is an AR(2) process with stationary variance

    γ_0 = (1 + m) η κ c / (b (1 − m) λ (2(1 + m) − ηλ)),

stable for |m| < 1 and 0 < ηλ < 2(1 + m); for small η it is the plain-SGD value with the
effective step η/(1 − m).

References:
    Bottou, Curtis & Nocedal (2018), "Optimization Methods for Large-Scale Machine Learning",
    SIAM Review 60(2), §4.2, Theorem 4.6. Mandt, Hoffman & Blei (2017), "Stochastic Gradient
    Descent as Approximate Bayesian Inference", JMLR, §3 (Lyapunov stationary covariance).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy.linalg import solve_discrete_lyapunov

from sgdlab.theory._common import FloatArray, as_matrix, as_vector, finite_population_factor


def sgd_stationary_covariance(
    A: ArrayLike, C: ArrayLike, eta: float, b: int = 1, n: int | None = None
) -> FloatArray:
    """Exact stationary covariance P of e = w − w* for constant-step SGD on the quadratic.

    Solves the discrete Lyapunov equation P = (I − ηA) P (I − ηA)ᵀ + η² κ C/b with
    ``scipy.linalg.solve_discrete_lyapunov`` (κ: :func:`finite_population_factor`).

    Args:
        A: Hessian, d×d (a 1-D input is taken as a diagonal matrix).
        C: per-sample gradient-noise covariance, d×d (or diagonal as 1-D, or a scalar σ²).
        eta: constant step size; needs max_i |1 − ηλ_i| < 1.
        b: batch size.
        n: population size for sampling without replacement, ``None`` for with replacement.

    Returns:
        The d×d stationary covariance.

    Example:
        >>> round(float(sgd_stationary_covariance([[1.0]], 1.0, 0.1)[0, 0]), 12)  # η/(2 − η)
        0.052631578947
    """
    A_ = as_matrix(A)
    d = A_.shape[0]
    M = np.eye(d) - eta * A_
    _check_stable(M, "I − ηA")
    Q = eta**2 * finite_population_factor(b, n) / b * as_matrix(C, d)
    P = solve_discrete_lyapunov(M, Q)
    return 0.5 * (P + P.T)


def sgd_stationary_excess_loss(
    A: ArrayLike, C: ArrayLike, eta: float, b: int = 1, n: int | None = None
) -> float:
    """Exact stationary E F(w) − F* = ½ tr(A P) of constant-step SGD on the quadratic.

    See :func:`sgd_stationary_covariance` for P and the arguments.
    """
    A_ = as_matrix(A)
    return 0.5 * float(np.trace(A_ @ sgd_stationary_covariance(A_, C, eta, b, n)))


def sgd_stationary_variance_eig(
    eigs: ArrayLike, c_diag: ArrayLike, eta: float, b: int = 1, n: int | None = None
) -> FloatArray:
    """Per-eigendirection stationary variance η κ c_i / (b λ_i (2 − ηλ_i)) when A, C commute.

    Args:
        eigs: Hessian eigenvalues λ_i > 0.
        c_diag: noise variances c_i in the same eigenbasis (scalar broadcasts).
        eta: step size with 0 < ηλ_i < 2.
        b: batch size.
        n: population size for sampling without replacement (``None``: with replacement).
    """
    lam = as_vector(eigs)
    c = as_vector(c_diag, lam.size)
    if np.any(lam <= 0) or np.any(eta * lam >= 2):
        raise ValueError("the stationary variance needs 0 < ηλ_i < 2 in every direction")
    kappa = finite_population_factor(b, n)
    return eta * kappa * c / (b * lam * (2.0 - eta * lam))


def sgd_stationary_excess_loss_eig(
    eigs: ArrayLike, c_diag: ArrayLike, eta: float, b: int = 1, n: int | None = None
) -> float:
    """Closed-form noise floor Σ_i η κ c_i / (2b (2 − ηλ_i)) for commuting A and C.

    Equals :func:`sgd_stationary_excess_loss` when C is diagonal in A's eigenbasis.
    """
    lam = as_vector(eigs)
    return 0.5 * float(np.sum(lam * sgd_stationary_variance_eig(lam, c_diag, eta, b, n)))


def small_eta_noise_floor(trace_C: float, eta: float, b: int = 1, n: int | None = None) -> float:
    """Small-step noise floor η κ tr(C)/(4b), the ηλ → 0 limit of the exact closed form.

    Independent of the curvature: the ½λ of the loss cancels the 1/λ of the variance.
    """
    return eta * finite_population_factor(b, n) * trace_C / (4.0 * b)


def sgd_transient_excess_loss(
    A: ArrayLike,
    C: ArrayLike,
    eta: float,
    e0: ArrayLike,
    steps: int,
    b: int = 1,
    n: int | None = None,
    P0: ArrayLike | None = None,
) -> FloatArray:
    """Exact E F(w_t) − F* for t = 0..steps of constant-step SGD from a given start.

    Runs the mean recursion m_{t+1} = (I − ηA) m_t and the covariance recursion
    P_{t+1} = (I − ηA) P_t (I − ηA)ᵀ + η² κ C/b, and returns ½ m_tᵀAm_t + ½ tr(AP_t).
    Exact for every t (no asymptotics); works for any A, C (commuting or not).

    Args:
        A, C, eta, b, n: as in :func:`sgd_stationary_covariance` (stability not required).
        e0: initial error w_0 − w* (length d).
        steps: number of SGD steps T.
        P0: covariance of a random start (default: deterministic start, P0 = 0).

    Returns:
        Array of length ``steps + 1``.
    """
    A_ = as_matrix(A)
    d = A_.shape[0]
    M = np.eye(d) - eta * A_
    Q = eta**2 * finite_population_factor(b, n) / b * as_matrix(C, d)
    m = as_vector(e0, d).copy()
    P = np.zeros((d, d)) if P0 is None else as_matrix(P0, d).copy()
    out = np.empty(steps + 1)
    for t in range(steps + 1):
        out[t] = 0.5 * (m @ A_ @ m + np.trace(A_ @ P))
        m = M @ m
        P = M @ P @ M.T + Q
    return out


def sgd_transient_excess_loss_eig(
    eigs: ArrayLike,
    c_diag: ArrayLike,
    eta: float,
    e0_eig: ArrayLike,
    t: ArrayLike,
    b: int = 1,
    n: int | None = None,
) -> FloatArray:
    """Closed-form E F(w_t) − F* for commuting A, C, at (possibly many) step counts t.

    With ρ_i = 1 − ηλ_i and v_i = η² κ c_i/b:

        E F(w_t) − F* = Σ_i ½ λ_i [ρ_i^{2t} e_{0,i}² + v_i (1 − ρ_i^{2t}) / (1 − ρ_i²)].

    Args:
        eigs: eigenvalues λ_i (> 0, with ηλ_i ≠ 2).
        c_diag: noise variances in the eigenbasis.
        eta: step size.
        e0_eig: initial error expressed in the eigenbasis, Qᵀ(w_0 − w*).
        t: step count(s) ≥ 0.
        b, n: batch size and optional population size (without replacement).
    """
    lam = as_vector(eigs)
    c = as_vector(c_diag, lam.size)
    e0 = as_vector(e0_eig, lam.size)
    tt = np.asarray(t, dtype=np.float64)[..., None]
    rho2 = (1.0 - eta * lam) ** 2
    v = eta**2 * finite_population_factor(b, n) * c / b
    decay = rho2**tt
    var = v * (1.0 - decay) / (1.0 - rho2)
    return np.sum(0.5 * lam * (decay * e0**2 + var), axis=-1)


# ------------------------------------------------------------------ heavy-ball momentum
def momentum_stationary_covariance(
    A: ArrayLike, C: ArrayLike, eta: float, momentum: float, b: int = 1, n: int | None = None
) -> FloatArray:
    """Stationary covariance of e_t for heavy-ball SGD, from the 2d-dim augmented system.

    z_t = (e_t, e_{t−1}) obeys z_{t+1} = T z_t + B ζ_t with T = [[(1+m)I − ηA, −mI], [I, 0]]
    and B = [−ηI; 0]; the stationary covariance solves P = T P Tᵀ + B (κ C/b) Bᵀ, and the
    top-left d×d block is returned. Convention: PyTorch SGD, v ← m v + g, w ← w − η v.
    """
    A_ = as_matrix(A)
    d = A_.shape[0]
    m = float(momentum)
    I = np.eye(d)
    T = np.block([[(1.0 + m) * I - eta * A_, -m * I], [I, np.zeros((d, d))]])
    _check_stable(T, "the momentum transition matrix")
    Q = np.zeros((2 * d, 2 * d))
    Q[:d, :d] = eta**2 * finite_population_factor(b, n) / b * as_matrix(C, d)
    P = solve_discrete_lyapunov(T, Q)[:d, :d]
    return 0.5 * (P + P.T)


def momentum_stationary_excess_loss(
    A: ArrayLike, C: ArrayLike, eta: float, momentum: float, b: int = 1, n: int | None = None
) -> float:
    """Stationary E F − F* = ½ tr(A P) of heavy-ball SGD.

    See :func:`momentum_stationary_covariance` for P and the convention.
    """
    A_ = as_matrix(A)
    return 0.5 * float(np.trace(A_ @ momentum_stationary_covariance(A_, C, eta, momentum, b, n)))


def momentum_stationary_excess_loss_eig(
    eigs: ArrayLike,
    c_diag: ArrayLike,
    eta: float,
    momentum: float,
    b: int = 1,
    n: int | None = None,
) -> float:
    """Closed form Σ_i (1+m) η κ c_i / (2b (1−m)(2(1+m) − ηλ_i)) for commuting A, C.

    From the AR(2) variance γ_0 = (1 − a_2) s² / ((1 + a_2)((1 − a_2)² − a_1²)) with
    a_1 = 1 + m − ηλ, a_2 = −m, s² = η² κ c/b. Needs |m| < 1 and 0 < ηλ_i < 2(1 + m).
    """
    lam = as_vector(eigs)
    c = as_vector(c_diag, lam.size)
    m = float(momentum)
    if abs(m) >= 1 or np.any(lam <= 0) or np.any(eta * lam >= 2 * (1 + m)):
        raise ValueError("needs |m| < 1 and 0 < ηλ_i < 2(1 + m)")
    kappa = finite_population_factor(b, n)
    return float(np.sum((1 + m) * eta * kappa * c / (2 * b * (1 - m) * (2 * (1 + m) - eta * lam))))


# ------------------------------------------------------------------ stability and BCN bound
def stability_threshold(L: float, momentum: float = 0.0) -> float:
    """Largest stable constant step on a quadratic of top curvature L: 2(1 + m)/L (m = 0: 2/L)."""
    return 2.0 * (1.0 + momentum) / L


class BCNConstants(NamedTuple):
    """Constants of Bottou–Curtis–Nocedal (2018) Assumptions 4.1, 4.3, 4.5.

    Attributes:
        L: Lipschitz constant of ∇F (Assumption 4.1).
        c: strong-convexity constant (Assumption 4.5).
        M: additive bound of V[g] ≤ M + M_V ‖∇F‖² (Assumption 4.3(c)).
        mu: ∇Fᵀ E[g] ≥ μ ‖∇F‖² (Assumption 4.3(b)); 1 for an unbiased gradient.
        M_G: M_V + μ_G², with ‖E g‖ ≤ μ_G ‖∇F‖; 1 for an unbiased gradient with M_V = 0.
    """

    L: float
    c: float
    M: float
    mu: float = 1.0
    M_G: float = 1.0


def bcn_constants_quadratic(
    eigs: ArrayLike, trace_C: float, b: int = 1, n: int | None = None
) -> BCNConstants:
    """BCN constants of the noisy quadratic: L = λ_max, c = λ_min, M = κ tr(C)/b, μ = M_G = 1.

    The minibatch gradient is unbiased (μ = μ_G = 1) and V[g] = E‖g − ∇F‖² = κ tr(C)/b for
    every w (M_V = 0), so the BCN step restriction ᾱ ≤ μ/(L M_G) reads η ≤ 1/L.
    """
    lam = as_vector(eigs)
    return BCNConstants(
        L=float(lam.max()), c=float(lam.min()), M=finite_population_factor(b, n) * trace_C / b
    )


def bcn_fixed_step_limit(eta: float, k: BCNConstants) -> float:
    """Limit ᾱ L M / (2 c μ) of the BCN Theorem 4.6 bound (the guaranteed noise floor)."""
    return eta * k.L * k.M / (2.0 * k.c * k.mu)


def bcn_fixed_step_bound(
    eta: float, k: BCNConstants, F1_gap: float, steps: ArrayLike
) -> FloatArray:
    """Bottou–Curtis–Nocedal (2018) Theorem 4.6: fixed-step SGD on a strongly convex F.

    Under Assumptions 4.1 (∇F L-Lipschitz), 4.3 (unbiased-enough first and bounded second
    moment) and 4.5 (c-strong convexity), for 0 < ᾱ ≤ μ/(L M_G) and every k ≥ 1:

        E[F(w_k) − F*] ≤ ᾱLM/(2cμ) + (1 − ᾱcμ)^{k−1} (F(w_1) − F* − ᾱLM/(2cμ)).

    Indexing is BCN's: w_1 is the starting point, so ``steps`` = k − 1 SGD steps taken.

    Args:
        eta: the fixed step ᾱ.
        k: the constants (e.g. :func:`bcn_constants_quadratic`).
        F1_gap: F(w_1) − F* at the (deterministic) start.
        steps: number of steps taken, k − 1 ≥ 0.
    """
    if not 0 < eta <= k.mu / (k.L * k.M_G):
        raise ValueError("Theorem 4.6 needs 0 < ᾱ ≤ μ/(L M_G)")
    lim = bcn_fixed_step_limit(eta, k)
    s = np.asarray(steps, dtype=np.float64)
    return lim + (1.0 - eta * k.c * k.mu) ** s * (F1_gap - lim)


def _check_stable(M: FloatArray, what: str) -> None:
    radius = float(np.max(np.abs(np.linalg.eigvals(M))))
    if radius >= 1.0:
        raise ValueError(
            f"no stationary distribution: spectral radius of {what} is {radius:.4g} ≥ 1"
        )
