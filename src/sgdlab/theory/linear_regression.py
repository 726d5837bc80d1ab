"""Exact second moments of SGD on Gaussian linear regression (state-dependent noise).

Model (:mod:`sgdlab.problems.linear_regression`, population mode): x ~ N(0, S), y = xᵀw* + ε,
ε ~ N(0, σ²), per-sample loss ½(xᵀw − y)², so ∇F = Sδ (δ = w − w*) and the per-sample
gradient covariance is Σ(w) = SδδᵀS + (δᵀSδ + σ²)S — it depends on w, and at w* it is σ²S,
aligned with the curvature, not isotropic. SGD with step η and b fresh samples per step:

    δ' = δ − η ḡ,   E[ḡ | δ] = Sδ,   E[ḡḡᵀ | δ] = SδδᵀS + Σ(δ)/b,

so P = E δδᵀ evolves exactly (Isserlis' theorem for the Gaussian x) as

    P' = P − η(SP + PS) + η² [(1 + 1/b) SPS + (tr(SP) + σ²) S / b].

In S's eigenbasis the diagonal p_i evolves on its own (SPS and tr(SP) need only it):

    p_i' = (1 − 2ηλ_i + η²(1 + 1/b)λ_i²) p_i + (η²λ_i/b)(Σ_j λ_j p_j + σ²).

Three stationary predictions for P (temperature convention of :mod:`sgdlab.theory.langevin`):

* **exact** (finite η): the fixed point of the recursion (:func:`linreg_sgd_stationary`);
* **Lyapunov / SDE** (η → 0, noise frozen at Σ(w*) = σ²S): SP + PS = (η/b)σ²S, so
  P = ησ²/(2b)·I — isotropic, although S is not;
* **Gibbs** at the isotropic-equivalent temperature T = η tr Σ(w*)/(2bd) = ησ² tr S/(2bd):
  P = T S⁻¹, which puts most variance along the flattest direction.

The shape ratio tr P / tr(SP) = E‖δ‖² / E[δᵀSδ] does not depend on the temperature's
constant: Gibbs predicts tr(S⁻¹)/d, the Lyapunov solution d/tr S. With anisotropic noise
SGD's stationary law is not the Gibbs law of F, whatever T is chosen.

References:
    Mandt, Hoffman & Blei (2017), JMLR, §3–4 (the OU/Lyapunov picture); Zhu, Wu, Yu, Wu & Ma
    (2019), ICML, "The anisotropic noise in SGD" (noise aligned with curvature); Bach &
    Moulines (2013) for the least-squares second-moment recursion.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from sgdlab.errors import ConfigError
from sgdlab.theory._common import FloatArray


def _check(eigenvalues: ArrayLike, eta: float, b: int) -> FloatArray:
    lam = np.asarray(eigenvalues, dtype=np.float64).reshape(-1)
    if lam.size == 0 or (lam <= 0).any():
        raise ConfigError("eigenvalues", "need positive eigenvalues of the design covariance S")
    if not eta > 0:
        raise ConfigError("eta", f"the step size must be positive, got {eta}")
    if b < 1:
        raise ConfigError("b", f"the batch size must be ≥ 1, got {b}")
    return lam


def _recursion(lam: FloatArray, eta: float, b: int) -> FloatArray:
    """The matrix M of p' = M p + c (diagonal of P in S's eigenbasis)."""
    M = np.diag(1 - 2 * eta * lam + eta**2 * (1 + 1 / b) * lam**2)
    return M + (eta**2 / b) * np.outer(lam, lam)


def linreg_sgd_second_moments(
    eigenvalues: ArrayLike, noise_var: float, eta: float, b: int, p0: ArrayLike, steps: int
) -> FloatArray:
    """diag P_t (in S's eigenbasis) for t = 0 … ``steps``, exactly (module docstring).

    Args:
        eigenvalues: λ_i of S.
        noise_var: σ², the label-noise variance.
        eta, b: step size and batch size (fresh samples each step).
        p0: diag P_0 = (Qᵀδ_0)² for a deterministic start δ_0.
        steps: number of updates.

    Returns:
        ``[steps + 1, d]``; E‖δ_t‖² is the row sum and E[δ_tᵀSδ_t] = row @ λ.
    """
    lam = _check(eigenvalues, eta, b)
    M = _recursion(lam, eta, b)
    c = eta**2 * noise_var * lam / b
    out = np.empty((int(steps) + 1, lam.size))
    p = np.asarray(p0, dtype=np.float64).reshape(-1).copy()
    out[0] = p
    for t in range(1, int(steps) + 1):
        p = M @ p + c
        out[t] = p
    return out


def linreg_sgd_stationary(eigenvalues: ArrayLike, noise_var: float, eta: float, b: int = 1
                          ) -> FloatArray:  # fmt: skip
    """diag P of SGD's exact stationary law: (I − M) p = η²σ²λ/b.

    Raises:
        ConfigError (``eta``): the recursion is unstable (spectral radius of M ≥ 1: no
            stationary law; lower η).

    Example:
        >>> p = linreg_sgd_stationary([1.0, 0.1], 1.0, 0.01)  # ≈ ησ²/(2b) = 0.005 each
        >>> [round(float(v), 5) for v in p]
        [0.00508, 0.00503]
    """
    lam = _check(eigenvalues, eta, b)
    M = _recursion(lam, eta, b)
    if np.max(np.abs(np.linalg.eigvals(M))) >= 1:
        raise ConfigError("eta", f"η = {eta:g} is too large: the second moments of SGD diverge")
    return np.linalg.solve(np.eye(lam.size) - M, eta**2 * noise_var * lam / b)


def linreg_lyapunov(eigenvalues: ArrayLike, noise_var: float, eta: float, b: int = 1
                    ) -> FloatArray:  # fmt: skip
    """diag P of the small-η (SDE) law with the noise frozen at Σ(w*) = σ²S: ησ²/(2b) each."""
    lam = _check(eigenvalues, eta, b)
    return np.full(lam.size, eta * noise_var / (2 * b))


def linreg_gibbs(eigenvalues: ArrayLike, noise_var: float, eta: float, b: int = 1) -> FloatArray:
    """diag P of the Gibbs law ∝ exp(−F/T) at T = η tr Σ(w*)/(2bd) = ησ² tr S/(2bd): T/λ_i."""
    lam = _check(eigenvalues, eta, b)
    T = eta * noise_var * lam.sum() / (2 * b * lam.size)
    return T / lam


def shape_ratio(p: ArrayLike, eigenvalues: ArrayLike) -> float:
    """tr P / tr(SP) = E‖δ‖² / E[δᵀSδ] from diag P in S's eigenbasis (temperature-free)."""
    p = np.asarray(p, dtype=np.float64)
    return float(p.sum() / (np.asarray(eigenvalues, dtype=np.float64) @ p))
