"""Basins under the Gibbs law and over barriers: masses, Kramers' escape time, Arrhenius slope.

Temperature convention of :mod:`sgdlab.theory.langevin`: dw = −U'(w) dt + √(2T) dW, Gibbs
density p ∝ exp(−U/T); SGD with step η, batch b, isotropic per-sample gradient variance σ²
has T = ησ²/(2b) (time t = η·steps).

* :func:`gibbs_basin_mass` — the Gibbs mass of an interval by adaptive quadrature (the
  domain must hold the law).
* :func:`piecewise_quadratic_gibbs_masses` — the closed form for two parabolas joined at a
  cusp (the ``piecewise_two_basin`` landscape): basin i = one parabola on a half-line,
  Z_i = e^{−E_i/T} √(2πT/κ_i) Φ(|a_i − c|√(κ_i/T)).
* :func:`kramers_escape_time` — 2π/√(U''(a)|U''(s)|) · e^{ΔU/T}, the T → 0 mean escape time
  over a smooth barrier (relative error O(T/ΔU)); it refuses a barrier that does not exist.
* :func:`arrhenius_slope` — d ln τ / d(1/T) by least squares; ΔU for Kramers' law, below ΔU
  at moderate T for the exact mean first-passage time.

References:
    Hänggi, Talkner & Borkovec (1990), Rev. Mod. Phys. 62, Eq. (4.7b) (overdamped Kramers);
    Gardiner, "Handbook of Stochastic Methods", §5.2.7 (mean first-passage time);
    Jastrzębski et al. (2017), "Three Factors Influencing Minima in SGD", §3 (flat vs sharp
    under the Gibbs law).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import integrate
from scipy.special import log_ndtr

from sgdlab.errors import ConfigError
from sgdlab.theory._common import FloatArray
from sgdlab.theory.discrete_chain import check_temperature


def gibbs_basin_mass(
    potential: Callable[[float], float],
    basin: tuple[float, float],
    T: float,
    domain: tuple[float, float],
    breaks: Sequence[float] = (),
) -> float:
    """Gibbs mass ∫_basin e^{−U/T} / ∫_domain e^{−U/T} by adaptive quadrature.

    Args:
        potential: U at a float.
        basin: (lo, hi) inside ``domain``.
        T: temperature (> 0).
        domain: (lo, hi) that holds the law: e^{−(U − U_min)/T} at its ends must be below
            1e-12, else the mass outside would be missed.
        breaks: points where U is not smooth (cusps), passed to the quadrature.

    Example:
        >>> round(gibbs_basin_mass(lambda x: x * x, (0.0, 10.0), 0.5, (-10.0, 10.0)), 12)
        0.5
    """
    T = check_temperature(T)
    lo, hi = (float(v) for v in domain)
    a, b = (float(v) for v in basin)
    if not lo < hi:
        raise ConfigError("domain", f"needs lo < hi, got ({lo:g}, {hi:g})")
    if not lo <= a < b <= hi:
        raise ConfigError("basin", f"({a:g}, {b:g}) must be an interval inside the domain")
    grid = np.linspace(lo, hi, 2001)
    u = np.array([potential(float(x)) for x in grid])
    umin = float(u.min())
    ends = max(math.exp(-(potential(lo) - umin) / T), math.exp(-(potential(hi) - umin) / T))
    if ends > 1e-12:
        raise ConfigError("domain", f"({lo:g}, {hi:g}) does not cover the Gibbs law: the density "
                          f"at its ends is {ends:.1e} of its peak; widen it")  # fmt: skip

    def f(x: float) -> float:
        return math.exp(-(potential(x) - umin) / T)

    dips = grid[1:-1][(u[1:-1] <= u[:-2]) & (u[1:-1] <= u[2:])]  # the wells' bottoms

    def integral(p: float, q: float) -> float:
        pts = sorted({float(x) for x in (*breaks, *dips) if p < x < q})
        return integrate.quad(f, p, q, points=pts or None, limit=400, epsabs=0, epsrel=1e-12)[0]

    return integral(a, b) / integral(lo, hi)


def piecewise_quadratic_gibbs_masses(
    curvatures: ArrayLike, minima_values: ArrayLike, centers: ArrayLike, T: float,
    cusp: float = 0.0,
) -> FloatArray:  # fmt: skip
    """Gibbs masses of the two basins of U = ½κ_s(w − a_s)² + E_s (w < c), ½κ_f(w − a_f)² + E_f
    (w ≥ c), with a_s < c < a_f: p_i = Z_i/(Z_s + Z_f),

        Z_i = e^{−E_i/T} √(2πT/κ_i) Φ(|a_i − c| √(κ_i/T)).

    For T → 0 the ratio p_f/p_s tends to Laplace's √(κ_s/κ_f) e^{−(E_f − E_s)/T}
    (:func:`sgdlab.theory.laplace_occupancy_ratio`); the Φ factors are the tails cut off at
    the cusp.

    Returns:
        ``[p_sharp, p_flat]`` (left, right basin).

    Example:
        >>> p = piecewise_quadratic_gibbs_masses([16, 1], [0, 0], [-0.25, 1.0], 1e-3)
        >>> round(float(p[1] / p[0]), 9)  # Laplace: √16
        4.0
    """
    T = check_temperature(T)
    k = np.asarray(curvatures, dtype=np.float64)
    e = np.asarray(minima_values, dtype=np.float64)
    a = np.asarray(centers, dtype=np.float64)
    if k.shape != (2,) or (k <= 0).any():
        raise ConfigError("curvatures", f"needs two positive values, got {k.tolist()}")
    if e.shape != (2,) or a.shape != (2,):
        raise ConfigError("centers", "minima_values and centers need two values each")
    if not a[0] < cusp < a[1]:
        raise ConfigError("centers", f"need a_s < cusp < a_f, got {a.tolist()} and {cusp:g}")
    logz = -e / T + 0.5 * np.log(2 * np.pi * T / k) + log_ndtr(np.abs(a - cusp) * np.sqrt(k / T))
    z = np.exp(logz - logz.max())
    return z / z.sum()


def kramers_escape_time(curv_min: float, curv_saddle: float, barrier: float, T: float) -> float:
    """Kramers' mean escape time 2π/√(U''(a)|U''(s)|) · e^{ΔU/T} (time units; steps × η).

    The T → 0 limit of the mean first-passage time from a minimum a over a smooth barrier top
    s to a point well past it (dw = −U' dt + √(2T) dW); relative error O(T/ΔU).

    Raises:
        ConfigError: T ≤ 0 (``T``); ΔU ≤ 0 (``barrier``: there is no barrier);
            U''(a) ≤ 0 (``curv_min``: not a minimum); U''(s) ≥ 0 (``curv_saddle``: not a
            barrier top).
    """
    T = check_temperature(T)
    if not barrier > 0:
        raise ConfigError("barrier", f"ΔU = {barrier:g}: there is no barrier to escape over "
                          "(the start must be a minimum below the saddle)")  # fmt: skip
    if not curv_min > 0:
        raise ConfigError("curv_min", f"U''(a) = {curv_min:g}: the start is not a minimum")
    if not curv_saddle < 0:
        raise ConfigError("curv_saddle", f"U''(s) = {curv_saddle:g}: not a barrier top "
                          "(Kramers needs U''(s) < 0)")  # fmt: skip
    return 2 * math.pi / math.sqrt(curv_min * -curv_saddle) * math.exp(barrier / T)


def arrhenius_slope(temperatures: ArrayLike, times: ArrayLike) -> float:
    """Least-squares slope of ln τ on 1/T (ΔU for Kramers' law).

    Example:
        >>> T = np.array([0.1, 0.2, 0.4])
        >>> round(arrhenius_slope(T, 3.0 * np.exp(0.7 / T)), 12)
        0.7
    """
    T = np.asarray(temperatures, dtype=np.float64)
    tau = np.asarray(times, dtype=np.float64)
    if T.shape != tau.shape or T.size < 2:
        raise ConfigError("temperatures", "needs at least two temperatures, one time each")
    if (T <= 0).any():
        raise ConfigError("temperatures", "every temperature must be positive")
    if (tau <= 0).any():
        raise ConfigError("times", "every escape time must be positive")
    x = 1.0 / T - np.mean(1.0 / T)
    return float(x @ (np.log(tau) - np.log(tau).mean()) / (x @ x))
