"""The batch-size dial: minibatch variance, gradient noise scale, critical batch, LR scaling.

Conventions: mean-reduced loss; G = ∇F the full gradient, Σ the per-sample gradient
covariance (1/N normalisation for a finite set), H the Hessian. A minibatch mean of b
per-sample gradients has covariance Σ/b with replacement and Σ/b · (N − b)/(N − 1) without.

McCandlish et al. (2018) model one SGD step w ← w − ε g_B on the local quadratic
F(w − εg) ≈ F − εGᵀg + ½ε² gᵀHg, giving the expected improvement

    E ΔL(ε, B) = ε|G|² − ½ε² (GᵀHG + tr(HΣ)/B),

maximised at ε_opt(B) = ε_max/(1 + B_noise/B), with ε_max = |G|²/(GᵀHG) and
B_noise = tr(HΣ)/(GᵀHG); then ΔL_opt(B) = ΔL_max/(1 + B_noise/B), ΔL_max = ½|G|⁴/(GᵀHG).
B_simple = tr Σ/|G|² equals B_noise when H ∝ I. Training to a target needs S steps and
E = BS examples with (S/S_min − 1)(E/E_min − 1) = 1, i.e. S = S_min(1 + B_crit/B),
E = E_min(1 + B/B_crit), B_crit = E_min/S_min ≈ B_noise.

References:
    McCandlish, Kaplan, Amodei & OpenAI Dota Team (2018), "An Empirical Model of Large-Batch
    Training", arXiv:1812.06162, §2.2 (optimal step, noise scales), §2.3 (steps–examples
    trade-off). Goyal et al. (2017), "Accurate, Large Minibatch SGD", §2.1 (linear
    scaling). Krizhevsky (2014), "One weird trick", §4; Hoffer, Hubara & Soudry (2017),
    "Train longer, generalize better", §4 (square-root scaling). Smith & Le (2018), ICLR,
    §4 (noise scale ∝ η/b).
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from sgdlab.theory._common import FloatArray, as_matrix, as_vector, finite_population_factor


def minibatch_noise_trace(trace_sigma: float, b: int, n: int | None = None) -> float:
    """tr Cov(g_B) = tr Σ / b · κ, κ = (N − b)/(N − 1) without replacement (``n`` set), else 1."""
    return trace_sigma / b * finite_population_factor(b, n)


def b_simple(trace_sigma: float, grad: ArrayLike) -> float:
    """Simple noise scale B_simple = tr Σ / |G|² (McCandlish et al. 2018, §2.2)."""
    g = as_vector(grad)
    return float(trace_sigma / (g @ g))


def b_noise(H: ArrayLike, Sigma: ArrayLike, grad: ArrayLike) -> float:
    """Noise scale B_noise = tr(HΣ) / (GᵀHG) (McCandlish et al. 2018, §2.2)."""
    g = as_vector(grad)
    H_ = as_matrix(H, g.size)
    return float(np.trace(H_ @ as_matrix(Sigma, g.size)) / (g @ H_ @ g))


def expected_improvement(
    eps: ArrayLike, B: ArrayLike, H: ArrayLike, Sigma: ArrayLike, grad: ArrayLike
) -> FloatArray:
    """E[F(w) − F(w − ε g_B)] = ε|G|² − ½ε²(GᵀHG + tr(HΣ)/B), exact on a quadratic.

    Sampling with replacement (or an infinite population); broadcasts over ``eps`` and ``B``.
    """
    g = as_vector(grad)
    H_ = as_matrix(H, g.size)
    gHg = float(g @ H_ @ g)
    trHS = float(np.trace(H_ @ as_matrix(Sigma, g.size)))
    e = np.asarray(eps, dtype=np.float64)
    return e * float(g @ g) - 0.5 * e**2 * (gHg + trHS / np.asarray(B, dtype=np.float64))


def optimal_step(B: ArrayLike, eps_max: float, B_noise: float) -> FloatArray:
    """ε_opt(B) = ε_max / (1 + B_noise/B) (McCandlish et al. 2018, §2.2)."""
    return eps_max / (1.0 + B_noise / np.asarray(B, dtype=np.float64))


def eps_max(H: ArrayLike, grad: ArrayLike) -> float:
    """Noiseless optimal step ε_max = |G|² / (GᵀHG)."""
    g = as_vector(grad)
    return float((g @ g) / (g @ as_matrix(H, g.size) @ g))


def optimal_improvement(B: ArrayLike, delta_max: float, B_noise: float) -> FloatArray:
    """ΔL_opt(B) = ΔL_max / (1 + B_noise/B), ΔL_max = ½|G|⁴/(GᵀHG) (McCandlish §2.2)."""
    return delta_max / (1.0 + B_noise / np.asarray(B, dtype=np.float64))


def steps_to_target(B: ArrayLike, S_min: float, B_crit: float) -> FloatArray:
    """S(B) = S_min (1 + B_crit/B): optimiser steps to reach a target loss (McCandlish §2.3)."""
    return S_min * (1.0 + B_crit / np.asarray(B, dtype=np.float64))


def examples_to_target(B: ArrayLike, E_min: float, B_crit: float) -> FloatArray:
    """E(B) = E_min (1 + B/B_crit): training examples to reach a target loss (McCandlish §2.3)."""
    return E_min * (1.0 + np.asarray(B, dtype=np.float64) / B_crit)


def critical_batch_size(S_min: float, E_min: float) -> float:
    """B_crit = E_min / S_min, where the steps–examples trade-off (S/S_min−1)(E/E_min−1)=1 bends."""
    return E_min / S_min


def tradeoff_residual(S: ArrayLike, E: ArrayLike, S_min: float, E_min: float) -> FloatArray:
    """(S/S_min − 1)(E/E_min − 1) − 1: zero on McCandlish's Pareto curve."""
    S_ = np.asarray(S, dtype=np.float64)
    E_ = np.asarray(E, dtype=np.float64)
    return (S_ / S_min - 1.0) * (E_ / E_min - 1.0) - 1.0


ScalingRule = Literal["linear", "sqrt", "temperature", "none"]


def scale_learning_rate(eta: float, b_old: int, b_new: int, rule: ScalingRule = "linear") -> float:
    """Learning rate for a new batch size under a scaling rule.

    * ``"linear"`` (Goyal et al. 2017): η ∝ b. Keeps η/b, hence the SGD temperature
      T = ησ²/(2b) and the small-step noise floor η tr C/(4b), unchanged; ``"temperature"``
      is the same rule named by what it preserves.
    * ``"sqrt"`` (Krizhevsky 2014; Hoffer et al. 2017): η ∝ √b. Keeps the covariance of one
      update, η² Σ/b, unchanged.
    * ``"none"``: η unchanged.
    """
    k = b_new / b_old
    if rule in ("linear", "temperature"):
        return eta * k
    if rule == "sqrt":
        return eta * float(np.sqrt(k))
    if rule == "none":
        return eta
    raise ValueError(f"unknown scaling rule {rule!r}")


class CriticalBatchFit(NamedTuple):
    """McCandlish's S(B) = S_min (1 + B_crit/B) fitted to measured steps to a target:
    ``s_min`` and ``b_crit`` (floats, or arrays over the rows of a batch of fits), and
    ``at_edge`` (B_crit at the end of the searched range: the data do not bend inside it)."""

    s_min: FloatArray | float
    b_crit: FloatArray | float
    at_edge: FloatArray | bool


def _fit_profile(log_b: FloatArray, y: FloatArray, s: FloatArray) -> tuple[FloatArray, FloatArray]:
    """For log B_crit = ``s`` ([R, m]): the profiled log S_min and the residual sum of squares
    of log S = log S_min + log(1 + B/b) over the batch sizes (``y`` [R, n])."""
    shape = np.log1p(np.exp(s[..., None] - log_b))  # [R, m, n]
    resid = y[:, None, :] - shape
    level = resid.mean(axis=-1)
    return level, ((resid - level[..., None]) ** 2).sum(axis=-1)


def fit_critical_batch(
    batch_sizes: ArrayLike, steps: ArrayLike, span: float = 7.0
) -> CriticalBatchFit:
    """Fit S(B) = S_min (1 + B_crit/B) (McCandlish et al. 2018, §2.3, eq. 2.11) by least
    squares in log S, each batch size weighing equally.

    For a fixed B_crit the best log S_min is the mean of log S − log(1 + B_crit/B), so the fit
    is a one-dimensional search over log B_crit in [log B_min − ``span``, log B_max + ``span``]:
    a grid of 241 points, then golden-section refinement in the bracket around the best one
    (to 1e-10 in log B_crit). Equivalent to (S/S_min − 1)(E/E_min − 1) = 1 with E = B·S and
    B_crit = E_min/S_min. Vectorized: ``steps`` may be ``[R, n]`` (R fits at once, e.g. bootstrap
    resamples); a row with a non-finite entry gives NaN.

    Args:
        batch_sizes: the batch sizes B_i (n ≥ 2, > 0).
        steps: the steps to target S_i (> 0), ``[n]`` or ``[R, n]``.
        span: how far (in log units) beyond the measured B range B_crit is searched.

    Returns:
        :class:`CriticalBatchFit` (floats for 1-D ``steps``, arrays of length R otherwise).

    Example:
        >>> B = np.array([1.0, 4, 16, 64, 256])
        >>> fit = fit_critical_batch(B, steps_to_target(B, 100.0, 20.0))
        >>> round(float(fit.s_min), 6), round(float(fit.b_crit), 6)
        (100.0, 20.0)
    """
    log_b = np.log(as_vector(batch_sizes))
    S = np.asarray(steps, dtype=np.float64)
    one = S.ndim == 1
    S = np.atleast_2d(S)
    if log_b.size < 2 or S.shape[1] != log_b.size:
        raise ValueError(f"need ≥ 2 batch sizes and steps [R, {log_b.size}], got {S.shape}")
    good = np.isfinite(S).all(axis=1) & (S > 0).all(axis=1)
    y = np.log(np.where(good[:, None], S, 1.0))
    lo, hi = log_b.min() - span, log_b.max() + span
    grid = np.linspace(lo, hi, 241)
    _, rss = _fit_profile(log_b, y, np.broadcast_to(grid, (y.shape[0], grid.size)))
    k = np.argmin(rss, axis=1)
    at_edge = (k == 0) | (k == grid.size - 1)
    a = grid[np.maximum(k - 1, 0)]
    c = grid[np.minimum(k + 1, grid.size - 1)]
    g = (np.sqrt(5.0) - 1.0) / 2.0
    while float(np.max(c - a)) > 1e-10:  # golden-section search, all rows at once
        x1, x2 = c - g * (c - a), a + g * (c - a)
        _, r = _fit_profile(log_b, y, np.stack([x1, x2], axis=1))
        left = r[:, 0] <= r[:, 1]
        a, c = np.where(left, a, x1), np.where(left, x2, c)
    s = 0.5 * (a + c)
    level, _ = _fit_profile(log_b, y, s[:, None])
    s_min = np.where(good, np.exp(level[:, 0]), np.nan)
    b_crit = np.where(good, np.exp(s), np.nan)
    if one:
        return CriticalBatchFit(float(s_min[0]), float(b_crit[0]), bool(at_edge[0]))
    return CriticalBatchFit(s_min, b_crit, at_edge & good)


def divergence_batch_size(
    eta0: float, b0: float, lam_max: float, rule: ScalingRule = "linear"
) -> float:
    """The batch size at which a step tuned at (b₀, η₀) and scaled by ``rule`` reaches the
    stability edge η·λ_max = 2 of SGD on a quadratic (the mean e ← (1 − ηλ)e grows beyond it).

    Linear: η₀ b/b₀ = 2/λ_max ⇒ b = 2 b₀ / (η₀ λ_max); square root: b = b₀ (2/(η₀ λ_max))²;
    ``none``: ∞ when η₀ λ_max < 2 (else b₀).

    Example:
        >>> divergence_batch_size(0.1, 8, 2.0), divergence_batch_size(0.1, 8, 2.0, "sqrt")
        (80.0, 800.0)
    """
    x = 2.0 / (eta0 * lam_max)
    if rule in ("linear", "temperature"):
        return b0 * x
    if rule == "sqrt":
        return b0 * x * x
    if rule == "none":
        return math.inf if x > 1 else b0
    raise ValueError(f"unknown scaling rule {rule!r}")
