"""Langevin picture of SGD: Gibbs density, OU covariance, Kramers rate, flat-minimum odds.

Temperature convention (used throughout sgdlab): overdamped Langevin dynamics with unit
friction,

    dw = −∇F(w) dt + √(2T) dW,

whose stationary density is p(w) ∝ exp(−F(w)/T). SGD with step η, batch b and per-sample
gradient covariance C (mean-reduced loss) is, with one step = η time units, the
Euler–Maruyama scheme of dw = −∇F dt + √(η C/b) dW; for isotropic C = σ²I this is the
convention above with T = ησ²/(2b), and in general T = η tr(C)/(2bd) is the isotropic
equivalent. Heavy-ball momentum m replaces η by the effective step η/(1 − m).

References:
    Gardiner, "Handbook of Stochastic Methods", §5.2.7 (mean first-passage time), §5.5
    (Kramers); Hänggi, Talkner & Borkovec (1990), Rev. Mod. Phys. 62, Eq. (4.7b) (overdamped
    Kramers rate); Mandt, Hoffman & Blei (2017), JMLR, §3 (SGD as an OU process);
    Jastrzębski et al. (2017), "Three Factors Influencing Minima in SGD", §3 (T ∝ η/b).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.integrate import cumulative_trapezoid
from scipy.linalg import solve_continuous_lyapunov

from sgdlab.errors import ConfigError
from sgdlab.theory._common import FloatArray, as_matrix, finite_population_factor
from sgdlab.theory.discrete_chain import check_temperature


def _trapezoid_weights(x: FloatArray) -> FloatArray:
    dx = np.diff(x)
    w = np.zeros_like(x)
    w[:-1] += dx / 2
    w[1:] += dx / 2
    return w


@dataclass(frozen=True)
class GibbsDensity:
    """A Gibbs density p ∝ exp(−F/T) tabulated on a 1-D or 2-D tensor grid.

    Attributes:
        grids: one increasing 1-D grid per dimension.
        density: p on the grid (shape = grid lengths, ``indexing="ij"``), normalised so that
            the trapezoid rule integrates it to 1.
        T: the temperature.
    """

    grids: tuple[FloatArray, ...]
    density: FloatArray
    T: float

    @property
    def weights(self) -> FloatArray:
        """Trapezoid quadrature weights of the grid (same shape as ``density``)."""
        w = _trapezoid_weights(self.grids[0])
        for g in self.grids[1:]:
            w = np.multiply.outer(w, _trapezoid_weights(g))
        return w

    def mass(self, region: ArrayLike | tuple[float, float]) -> float:
        """Probability of a region: a boolean mask on the grid, or an interval (lo, hi) in 1-D.

        An interval is integrated exactly on the piecewise-linear interpolant of the
        cumulative trapezoid, so basin boundaries (saddles) need not lie on the grid.
        """
        if isinstance(region, tuple) and len(self.grids) == 1:
            x = self.grids[0]
            cdf = cumulative_trapezoid(self.density, x, initial=0.0)
            lo, hi = region
            return float(np.interp(hi, x, cdf) - np.interp(lo, x, cdf))
        mask = np.asarray(region, dtype=bool)
        return float(np.sum(self.density * self.weights * mask))

    def mean(self) -> FloatArray:
        """E[w] under the density (length d)."""
        pw = self.density * self.weights
        return np.array([np.sum(pw * X) for X in self._coords()])

    def cov(self) -> FloatArray:
        """Cov[w] under the density (d×d)."""
        pw = self.density * self.weights
        mu = self.mean()
        Z = [X - m for X, m in zip(self._coords(), mu, strict=True)]
        return np.array([[np.sum(pw * a * b) for b in Z] for a in Z])

    def _coords(self) -> list[FloatArray]:
        return list(np.meshgrid(*self.grids, indexing="ij"))


def gibbs_density(
    potential: Callable[..., ArrayLike], grids: ArrayLike | Sequence[ArrayLike], T: float
) -> GibbsDensity:
    """Tabulate and normalise p(w) = exp(−F(w)/T)/Z by trapezoid quadrature on a grid.

    Args:
        potential: F, vectorised: ``F(x)`` in 1-D, ``F(X, Y)`` on ``meshgrid(..., "ij")``
            arrays in 2-D.
        grids: a 1-D grid, or a sequence of one or two 1-D grids; they must cover the region
            where p is non-negligible.
        T: temperature (> 0).

    Example:
        >>> import numpy as np
        >>> g = gibbs_density(lambda x: x**2, np.linspace(-5, 5, 2001), 0.5)
        >>> round(float(g.cov()[0, 0]), 6)  # T/F'' = 0.25
        0.25
    """
    T = check_temperature(T)
    if isinstance(grids, np.ndarray) and grids.ndim == 1:
        gs: tuple[FloatArray, ...] = (np.asarray(grids, dtype=np.float64),)
    else:
        gs = tuple(np.asarray(g, dtype=np.float64) for g in grids)  # type: ignore[union-attr]
    coords = np.meshgrid(*gs, indexing="ij")
    U = np.asarray(potential(*coords), dtype=np.float64)
    logp = -(U - U.min()) / T
    p = np.exp(logp)
    w = _trapezoid_weights(gs[0])
    for g in gs[1:]:
        w = np.multiply.outer(w, _trapezoid_weights(g))
    p /= np.sum(p * w)
    return GibbsDensity(grids=gs, density=p, T=float(T))


# ------------------------------------------------------------------ Ornstein–Uhlenbeck
def ou_stationary_covariance(A: ArrayLike, D: ArrayLike) -> FloatArray:
    """Stationary covariance of dw = −A w dt + B dW with D = BBᵀ: solves AP + PAᵀ = D.

    Uses ``scipy.linalg.solve_continuous_lyapunov``; A must be stable (eigenvalues with
    positive real part).
    """
    A_ = as_matrix(A)
    P = solve_continuous_lyapunov(A_, as_matrix(D, A_.shape[0]))
    return 0.5 * (P + P.T)


def ou_isotropic_covariance(A: ArrayLike, T: float) -> FloatArray:
    """P = T A⁻¹, the solution of AP + PA = 2T I for symmetric positive-definite A.

    This is the covariance of the Gibbs density ∝ exp(−½ wᵀAw/T).
    """
    return T * np.linalg.inv(as_matrix(A))


def sgd_sde_covariance(
    A: ArrayLike,
    C: ArrayLike,
    eta: float,
    b: int = 1,
    momentum: float = 0.0,
    n: int | None = None,
) -> FloatArray:
    """Small-step (SDE) stationary covariance of SGD on a quadratic: AP + PA = η_eff κ C/b.

    SGD is the Euler–Maruyama scheme, time step η, of dw = −A(w − w*) dt + √(η κ C/b) dW, so
    D = η κ C/b; with momentum m the effective step is η_eff = η/(1 − m). For commuting A, C
    this is η κ c_i/(2bλ_i), the η → 0 limit of the exact discrete value
    η κ c_i/(bλ_i(2 − ηλ_i)) of :func:`sgdlab.theory.noise_floor.sgd_stationary_covariance`.
    """
    A_ = as_matrix(A)
    eta_eff = eta / (1.0 - momentum)
    D = eta_eff * finite_population_factor(b, n) / b * as_matrix(C, A_.shape[0])
    return ou_stationary_covariance(A_, D)


def sgd_temperature(
    eta: float,
    trace_C: float,
    b: int = 1,
    d: int = 1,
    momentum: float = 0.0,
    n: int | None = None,
) -> float:
    """Effective temperature T = η_eff κ tr(C)/(2bd) of SGD, η_eff = η/(1 − m).

    For isotropic per-sample noise C = σ²I this is ησ²/(2b) (d cancels), the T of
    dw = −∇F dt + √(2T) dW. For anisotropic C it is the temperature of the isotropic noise
    with the same total variance.
    """
    return eta / (1.0 - momentum) * finite_population_factor(b, n) * trace_C / (2.0 * b * d)


# ------------------------------------------------------------------ escape over a barrier
def kramers_rate(curv_min: float, curv_saddle: float, barrier: float, T: float) -> float:
    """Overdamped Kramers escape rate r = √(U''(min)|U''(saddle)|)/(2π) · exp(−ΔU/T).

    For dw = −U'(w) dt + √(2T) dW (unit friction) in 1-D, escaping from a minimum over a
    barrier of height ΔU = U(saddle) − U(min). Asymptotic as T/ΔU → 0, with relative error
    O(T/ΔU). Mean escape time ≈ 1/r to a point well past the saddle (≈ 1/(2r) to the
    saddle itself).
    """
    return float(np.sqrt(curv_min * abs(curv_saddle)) / (2 * np.pi) * np.exp(-barrier / T))


def mean_first_passage_time(
    potential: Callable[[FloatArray], ArrayLike],
    start: float,
    target: float,
    T: float,
    reflect: float,
    n_grid: int = 20001,
) -> float:
    """Exact mean first-passage time of 1-D overdamped Langevin dynamics, by quadrature.

    For dw = −U'(w) dt + √(2T) dW with a reflecting wall at a (``reflect``) and absorption
    at ``target`` (a < start < target, or mirrored when target < start < a):

        τ(x_0) = (1/T) ∫_{x_0}^{target} dy exp(U(y)/T) ∫_a^y dz exp(−U(z)/T).

    Take ``reflect`` far out where U is large to model an unbounded domain.

    Args:
        potential: U, vectorised.
        start, target, reflect: the points x_0, b, a.
        T: temperature.
        n_grid: trapezoid points on [a, b].

    Raises:
        ConfigError: T ≤ 0 (``T``); start not between the wall and the target (``start``).
    """
    T = check_temperature(T)
    sign = 1.0 if target > reflect else -1.0
    a, x0, tgt = sign * reflect, sign * start, sign * target
    if not a <= x0 <= tgt:
        raise ConfigError("start", f"{start:g} must lie between reflect = {reflect:g} and "
                          f"target = {target:g}")  # fmt: skip
    y = np.linspace(a, tgt, n_grid)
    u = np.asarray(potential(sign * y), dtype=np.float64) / T
    # log of the inner trapezoid integral ∫_a^y e^{−u}, accumulated in log space so that
    # e^{u(y)} · ∫ e^{−u} never overflows however large the barriers are relative to T
    seg = np.log(np.diff(y) / 2) + np.logaddexp(-u[:-1], -u[1:])
    log_inner = np.concatenate([[-np.inf], np.logaddexp.accumulate(seg)])
    integrand = np.exp(u + log_inner) / T
    outer = cumulative_trapezoid(integrand, y, initial=0.0)
    return float(outer[-1] - np.interp(x0, y, outer))


def laplace_occupancy_ratio(F1: float, H1: ArrayLike, F2: float, H2: ArrayLike, T: float) -> float:
    """Small-T ratio of Gibbs masses of two minima: p₁/p₂ ≈ √(det H₂/det H₁) exp(−(F₁ − F₂)/T).

    Laplace's method on each basin of p ∝ exp(−F/T): mass_i ≈ exp(−F_i/T) (2πT)^{d/2}
    / √det H_i. A flatter minimum (smaller det H) wins unless the sharper one is deeper by
    more than (T/2) log(det H₁/det H₂). Relative error O(T).

    Args:
        F1, F2: values of F at the two minima.
        H1, H2: Hessians there (scalars in 1-D, d×d matrices otherwise).
        T: temperature.
    """
    det1 = float(np.linalg.det(as_matrix(H1)))
    det2 = float(np.linalg.det(as_matrix(H2)))
    return float(np.sqrt(det2 / det1) * np.exp(-(F1 - F2) / T))
