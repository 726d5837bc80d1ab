"""Escape from a strict saddle: GD stalls on the stable manifold, SGD noise kicks it off.

Model: near a strict saddle F(w) ≈ ½ Σ_i λ_i w_i² with one negative curvature λ = −γ
(γ > 0). The unstable coordinate x under SGD with step η and batch b evolves independently:

    x_{t+1} = q x_t − η ζ_t,   q = 1 + ηγ,   Var ζ_t = s² = κ c/b,

with c the per-sample gradient variance along the unstable direction (mean-reduced loss,
κ the without-replacement factor). Then x_t = q^t (x_0 + Y_t) with
Y_t = −η Σ_{s<t} q^{−s−1} ζ_s → Y ~ N(0, η²s²/(q² − 1)).

* GD (s = 0) from x_0 ≠ 0 leaves the ball |x| < r after exactly ⌈log(r/|x_0|)/log q⌉ steps;
  from x_0 = 0 — exactly on the stable manifold — it never does.
* SGD from x_0 = 0 escapes after τ ≈ log(r/|Y|)/log q steps; averaging over Y with
  E log|Z| = −(γ_E + log 2)/2 for Z ~ N(0, 1), and +½ for the integer rounding,

      E τ ≈ [log(r/σ_Y) + (γ_E + log 2)/2] / log(1 + ηγ) + ½,   σ_Y = ηs/√(q² − 1),

  i.e. ≈ log(r/σ_Y)/(ηγ) for small ηγ: logarithmic in the noise, inverse in the curvature.
  Asymptotic for r ≫ σ_Y and ηγ ≪ 1.

References:
    Lee, Simchowitz, Jordan & Recht (2016), "Gradient Descent Only Converges to Minimizers",
    COLT (GD avoids strict saddles for almost every start). Ge, Huang, Jin & Yuan (2015),
    "Escaping From Saddle Points", COLT; Jin et al. (2017), ICML, §4 (noise escapes in
    O(log(·)/(ηγ)) steps).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from sgdlab.theory._common import FloatArray, finite_population_factor


def saddle_unstable_second_moment(
    t: ArrayLike,
    eta: float,
    gamma: float,
    noise_var: float,
    b: int = 1,
    x0: float = 0.0,
    n: int | None = None,
) -> FloatArray:
    """Exact E x_t² = q^{2t} x_0² + η² s² (q^{2t} − 1)/(q² − 1) along the unstable direction."""
    q2 = (1.0 + eta * gamma) ** 2
    s2 = finite_population_factor(b, n) * noise_var / b
    g = q2 ** np.asarray(t, dtype=np.float64)
    return g * x0**2 + eta**2 * s2 * (g - 1.0) / (q2 - 1.0)


def gd_saddle_escape_steps(x0: float, radius: float, eta: float, gamma: float) -> float:
    """Exact number of GD steps to reach |x| ≥ r: ⌈log(r/|x_0|)/log(1 + ηγ)⌉, ∞ if x_0 = 0."""
    if x0 == 0.0:
        return math.inf
    if abs(x0) >= radius:
        return 0.0
    return float(math.ceil(math.log(radius / abs(x0)) / math.log1p(eta * gamma)))


def sgd_saddle_escape_steps(
    radius: float, eta: float, gamma: float, noise_var: float, b: int = 1, n: int | None = None
) -> float:
    """Mean SGD steps to reach |x| ≥ r from the saddle (x_0 = 0); see the module docstring.

    E τ ≈ [log(r/σ_Y) + (γ_E + log 2)/2] / log(1 + ηγ) + ½ with σ_Y = ηs/√((1+ηγ)² − 1),
    s² = κ·noise_var/b.
    """
    s2 = finite_population_factor(b, n) * noise_var / b
    if s2 <= 0:
        return math.inf
    q = 1.0 + eta * gamma
    sigma_y = eta * math.sqrt(s2 / (q * q - 1.0))
    euler_gamma = 0.5772156649015329
    return (math.log(radius / sigma_y) + 0.5 * (euler_gamma + math.log(2.0))) / math.log(q) + 0.5
