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

from typing import Literal

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
