"""The 1-D SGD chain at a finite step size: its exact stationary law and first-passage times.

Model (temperature convention of :mod:`sgdlab.theory.langevin`): SGD on a 1-D potential U
with additive Gaussian gradient noise, or SGLD with exact gradients, is the Markov chain

    w_{t+1} = m(w_t) + s ξ_t,    m(w) = w − η U'(w),    s = √(2ηT),    ξ_t ~ N(0, 1),

with T = ησ²/(2b) for SGD (batch b, per-sample gradient variance σ², mean-reduced loss:
the step noise is ησ/√b = √(2ηT)) and T the SGLD temperature for SGLD. Its transition
density is k(x, y) = φ((y − m(x))/s)/s. As η → 0 with t = ηN fixed it is the overdamped
Langevin SDE dw = −U'(w) dt + √(2T) dW; at a finite η it is not: on a quadratic ½κw² its
stationary variance is 2T/(κ(2 − ηκ)) = ησ²/(bκ(2 − ηκ)), not the Gibbs T/κ, and its
first-passage times differ from the SDE's.

This module computes the chain's laws exactly up to quadrature error (Nyström's method):
the integral operator ∫ k(x, y) f(y) dy is replaced by a composite Gauss–Legendre rule on
[lo, hi] (8 nodes per panel) whose panels are no wider than 2s (and ``max_panel``), with a
panel break at every point where U' may jump (``breaks``: kinks of a piecewise potential)
and where a first-passage region ends. Between nodes every law is evaluated through the Nyström
interpolant u(y) = Σ_i w_i u(x_i) k(x_i, y), so bin masses and densities at any point are
exact functions of the node values.

* :meth:`SGDChain1D.stationary` — the eigenvector of the forward operator
  u ↦ ∫ u(x) k(x, ·) dx (inverse iteration at 1); refused when more than ``tol`` of the mass
  leaves [lo, hi] per step (the grid does not cover the law).
* :meth:`SGDChain1D.first_passage` — N = min{t ≥ 1 : w_t ∉ (a, b)}: the mean solves the
  backward equation τ(x) = 1 + ∫_a^b k(x, y) τ(y) dy (one linear solve); the survival
  S_t(x) = P_x(N > t) iterates S_t = ∫_a^b k(·, y) S_{t−1}(y) dy until S_t/S_{t−1} has
  converged to the quasi-stationary factor λ, after which S_{t+j} = λ^j S_t exactly (to
  rounding). An open side (a = lo or b = hi with ``None``) must be unreachable: the expected
  number of steps that leave through it is checked.
* :meth:`SGDChain1D.evolve` — the law at given steps from a point or a density.

Accuracy: spectral in the panel width for smooth U (and for piecewise-smooth U with its
kinks given in ``breaks``): on the tilted double well a mean first-passage time changes by
≈ 1e-9 (relative) from panels of 2s to panels of s, and by ≈ 1e-14 from s to s/2.
:meth:`SGDChain1D.refined` scales every panel; the studies quote as quadrature error the
change of an answer when the panels are doubled (to 4s: an overestimate of the default
grid's error, at an eighth of the cost of halving them).

References:
    Nyström's method for Markov operators: Atkinson, "The Numerical Solution of Integral
    Equations of the Second Kind" (1997), §4.1. First-passage (backward) equations of a Markov
    chain: Norris, "Markov Chains" (1997), Thm 1.3.5 (mean hitting times). The finite-η
    stationary variance: Mandt, Hoffman & Blei (2017), JMLR, §3; Yaida (2019), ICLR.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike
from scipy import linalg as sla
from scipy.special import ndtr

from sgdlab.errors import ConfigError
from sgdlab.theory._common import FloatArray
from sgdlab.theory.chain_laws import ChainLaw, FirstPassage

#: Gauss–Legendre nodes per panel
GAUSS_NODES = 8
#: largest share of the mass that may leave [lo, hi] (per step, or in all for a passage)
COVER_TOL = 1e-9

Grad = Callable[[FloatArray], ArrayLike]


def check_temperature(T: float, name: str = "T") -> float:
    """``T`` as a float, or a :class:`~sgdlab.errors.ConfigError` naming ``name`` if T ≤ 0."""
    T = float(T)
    if not T > 0 or not math.isfinite(T):
        raise ConfigError(name, f"the temperature must be positive and finite, got {T}")
    return T


def _gauss_panels(breaks: FloatArray, max_width: float) -> tuple[FloatArray, FloatArray]:
    """Nodes and weights of the composite Gauss–Legendre rule on the panels between
    consecutive ``breaks`` (each split into equal panels no wider than ``max_width``)."""
    t, wt = np.polynomial.legendre.leggauss(GAUSS_NODES)
    nodes, weights = [], []
    for a, b in itertools.pairwise(breaks):
        n = max(1, math.ceil((b - a) / max_width - 1e-12))
        e = np.linspace(a, b, n + 1)
        half = np.diff(e)[:, None] / 2
        nodes.append(((e[:-1] + e[1:])[:, None] / 2 + half * t).reshape(-1))
        weights.append((half * wt).reshape(-1))
    return np.concatenate(nodes), np.concatenate(weights)


@dataclass(frozen=True)
class SGDChain1D:
    """The discretised chain (see the module docstring); build it with :func:`sgd_chain_1d`.

    Attributes:
        grad: U' (vectorised).
        eta, T: step size and temperature (s = √(2ηT)).
        lo, hi: the domain.
        breaks: panel breaks (kinks of U, ends of first-passage regions), inside (lo, hi).
        panel: the largest panel width (:func:`sgd_chain_1d`: 2s, or less).
    """

    grad: Grad
    eta: float
    T: float
    lo: float
    hi: float
    breaks: tuple[float, ...] = ()
    panel: float = math.inf

    @property
    def s(self) -> float:
        """Step noise standard deviation √(2ηT) (= ησ/√b for SGD)."""
        return math.sqrt(2.0 * self.eta * self.T)

    @cached_property
    def _grid(self) -> tuple[FloatArray, FloatArray]:
        pts = np.unique(np.array([self.lo, *self.breaks, self.hi], dtype=np.float64))
        return _gauss_panels(pts, min(self.panel, self.hi - self.lo))

    @property
    def nodes(self) -> FloatArray:
        """Quadrature nodes x_i on [lo, hi] (Gauss–Legendre, 8 per panel)."""
        return self._grid[0]

    @property
    def weights(self) -> FloatArray:
        """Quadrature weights w_i (Σ w_i f(x_i) ≈ ∫_lo^hi f)."""
        return self._grid[1]

    def drift(self, x: ArrayLike) -> FloatArray:
        """m(x) = x − ηU'(x)."""
        x = np.asarray(x, dtype=np.float64)
        return x - self.eta * np.asarray(self.grad(x), dtype=np.float64)

    @cached_property
    def drift_nodes(self) -> FloatArray:
        """m(x_i) at the nodes."""
        return self.drift(self.nodes)

    def kernel(self, x: ArrayLike, y: ArrayLike | None = None) -> FloatArray:
        """k(x_i, y_j) = φ((y_j − m(x_i))/s)/s, ``[len(x), len(y)]`` (y: the nodes)."""
        mx = self.drift(np.atleast_1d(x))
        yy = self.nodes if y is None else np.atleast_1d(np.asarray(y, dtype=np.float64))
        z = (yy[None, :] - mx[:, None]) / self.s
        return np.exp(-0.5 * z * z) / (self.s * math.sqrt(2 * math.pi))

    @cached_property
    def _K(self) -> FloatArray:
        return self.kernel(self.nodes)

    @cached_property
    def leak(self) -> FloatArray:
        """Per node, the exact probability that one step leaves [lo, hi]."""
        m = self.drift_nodes
        return ndtr((self.lo - m) / self.s) + ndtr((m - self.hi) / self.s)

    def refined(self, factor: float = 0.5) -> SGDChain1D:
        """The same chain with every panel width multiplied by ``factor`` (½: halved; 2:
        doubled — a cheap, conservative quadrature-error estimate, since the error of the
        default grid is far below the change to the coarser one)."""
        width = min(self.panel, self.hi - self.lo)
        return SGDChain1D(self.grad, self.eta, self.T, self.lo, self.hi, self.breaks,
                          width * factor)  # fmt: skip

    # ------------------------------------------------------------------ laws
    def _forward(self, u: FloatArray) -> FloatArray:
        """One step of a law: u'(y_j) = Σ_i w_i u_i k(x_i, y_j)."""
        return (self.weights * u) @ self._K

    def point_law(self, x0: float) -> FloatArray:
        """Density at the nodes after one step from the point x0."""
        return self.kernel([x0])[0]

    def stationary(self, tol: float = COVER_TOL) -> ChainLaw:
        """The stationary law (inverse iteration of the forward operator at eigenvalue 1).

        Raises:
            ConfigError (``lo`` or ``hi``): more than ``tol`` of the stationary mass leaves
                [lo, hi] in one step — the grid does not cover the law; widen it.
        """
        n = self.nodes.size
        lu = sla.lu_factor(self._K.T * self.weights - np.eye(n) * (1.0 + 1e-13))
        u = np.ones(n)
        for _ in range(5):
            u = sla.lu_solve(lu, u)
            u /= self.weights @ u
        u = np.maximum(u, 0.0)
        u /= self.weights @ u
        self._check_cover(u, tol, "stationary law", per_step=True)
        return ChainLaw(self, u)

    def _check_cover(self, mass_density: FloatArray, tol: float, what: str,
                     per_step: bool, live: FloatArray | None = None,
                     open_lo: bool = True, open_hi: bool = True) -> float:  # fmt: skip
        m = self.drift_nodes if live is None else self.drift_nodes[live]
        w = self.weights if live is None else self.weights[live]
        low = float((w * mass_density) @ ndtr((self.lo - m) / self.s)) if open_lo else 0.0
        high = float((w * mass_density) @ ndtr((m - self.hi) / self.s)) if open_hi else 0.0
        if low + high > tol:
            side = "lo" if low >= high else "hi"
            unit = "per step" if per_step else "in expected steps"
            raise ConfigError(
                side, f"the grid [{self.lo:g}, {self.hi:g}] does not cover the {what}: "
                f"{low + high:.2e} of its mass leaves through {side} {unit}; widen the domain",
            )  # fmt: skip
        return low + high

    def evolve(self, start: float | ArrayLike, steps: Sequence[int]) -> list[ChainLaw]:
        """The laws of w_t at the given steps t ≥ 1 from a point ``start`` (a float) or from a
        density given at the nodes (the law of w_0)."""
        ts = sorted({int(t) for t in steps})
        if not ts or ts[0] < 1:
            raise ConfigError("steps", "evolve needs steps t ≥ 1")
        point = np.ndim(start) == 0
        prev = None if point else np.asarray(start, dtype=np.float64)
        u = self.point_law(float(start)) if point else self._forward(prev)
        out: dict[int, ChainLaw] = {}
        for t in range(1, ts[-1] + 1):
            if t > 1:
                prev, u = u, self._forward(u)
            if t in ts:
                out[t] = ChainLaw(self, u, prev=prev,
                                  start=float(start) if point and t == 1 else None)  # fmt: skip
        return [out[int(t)] for t in steps]

    def window_law(self, start: float | ArrayLike, steps: Sequence[int],
                   tol: float = 1e-13) -> ChainLaw:  # fmt: skip
        """The average of the laws of w_t over the given steps (all ≥ 2) from a point or a
        density: the exact expectation of a histogram (or any time average) over recorded
        steps, transient included. Once the law has converged to the stationary one (L1
        distance ≤ ``tol``), the remaining steps use the stationary law.
        """
        ts = sorted({int(t) for t in steps})
        if not ts or ts[0] < 2:
            raise ConfigError("steps", "window_law needs recorded steps t ≥ 2")
        pi = self.stationary().values
        want = set(ts)
        point = np.ndim(start) == 0
        u = self.point_law(float(start)) if point else self._forward(
            np.asarray(start, dtype=np.float64))  # fmt: skip
        acc, acc_prev, n = np.zeros_like(u), np.zeros_like(u), 0
        for t in range(2, ts[-1] + 1):
            prev, u = u, self._forward(u)
            if t in want:
                acc, acc_prev, n = acc + u, acc_prev + prev, n + 1
            if float(self.weights @ np.abs(u - pi)) <= tol:
                rest = sum(1 for x in ts if x > t)
                acc, acc_prev, n = acc + rest * pi, acc_prev + rest * pi, n + rest
                break
        return ChainLaw(self, acc / n, prev=acc_prev / n)

    # ---------------------------------------------------------- first passage
    def first_passage(
        self,
        start: float | ArrayLike,
        exit_below: float | None = None,
        exit_above: float | None = None,
        tol: float = COVER_TOL,
        every: int = 1,
    ) -> FirstPassage:
        """First passage out of (a, b), a = ``exit_below`` (or ``lo``), b = ``exit_above`` (or
        ``hi``), from a point ``start`` in (a, b) or from a density of w_0 at the nodes.

        With ``every`` = e > 1 the chain is *observed* every e steps (as the engine records
        it): N_e = min{t ∈ eℕ : w_t ∉ (a, b)}, the first passage of the e-step skeleton, whose
        kernel is the e-th power of the one-step operator (no killing in between). N_e ≥ N,
        and the difference is exact: compare with ``every=1``.

        Raises:
            ConfigError: ``start`` outside (a, b); an exit that is not ``lo``, ``hi`` or a
                break; an open side (``None``) through which more than ``tol``·E N expected
                steps leave (the grid does not cover the chain before it exits).
        """
        a = self.lo if exit_below is None else float(exit_below)
        b = self.hi if exit_above is None else float(exit_above)
        for name, v in (("exit_below", a), ("exit_above", b)):
            if v not in (self.lo, self.hi, *self.breaks):
                raise ConfigError(name, f"{v:g} must be lo, hi or one of the chain's breaks "
                                  f"{self.breaks} (a panel must end there)")  # fmt: skip
        if not a < b:
            raise ConfigError("exit_above", f"need exit_below < exit_above, got {a:g} ≥ {b:g}")
        live = (self.nodes > a) & (self.nodes < b)
        if np.ndim(start) == 0:
            if not a < float(start) < b:
                raise ConfigError("start", f"{float(start):g} is not inside ({a:g}, {b:g})")
            row = self.point_law(float(start))
        else:
            row = self._forward(np.asarray(start, dtype=np.float64))
        if every < 1:
            raise ConfigError("every", f"must be ≥ 1, got {every}")
        full = self._K * self.weights  # B_ij = k(x_i, x_j) w_j; masses evolve by Bᵀ
        lost = self.leak_at(start) if every > 1 else 0.0  # unobserved exits of [lo, hi]
        for _ in range(every - 1):
            if _ > 0:
                lost += float((self.weights * row) @ self.leak)
            row = self._forward(row)  # w_e's density (no killing before the first look)
        if every > 1:
            full = np.linalg.matrix_power(full, every)
        B = full[np.ix_(live, live)]
        q1 = self.weights[live] * row[live]  # masses of the first observed state on (a, b)
        lu = sla.lu_factor(np.eye(B.shape[0]) - B)
        visits = sla.lu_solve(lu, q1, trans=1)  # Σ_t masses of w_t, t ≥ 1: (I − Bᵀ)⁻¹ q1
        mean = every * (1.0 + float(visits.sum()))
        rate = _exit_rate(lu, B.shape[0])
        if not (math.isfinite(mean) and mean > 0 and rate > 1e-12):
            raise ConfigError("T", f"the exit from ({a:g}, {b:g}) is too rare to compute "
                              f"in float64 (exit probability per step {rate:.1e}); raise T")
        leak = self._check_cover(visits / self.weights[live], tol * mean,
                                 "chain before it exits", per_step=False, live=live,
                                 open_lo=exit_below is None, open_hi=exit_above is None)
        u = np.zeros(self.nodes.size)
        u[live] = visits / self.weights[live]
        for _ in range(every - 1):  # steps between observations: exits of [lo, hi] unseen
            lost += float((self.weights * u) @ self.leak)
            u = self._forward(u)
        return FirstPassage((a, b), mean, rate, leak, B, q1, every, lost)

    def leak_at(self, x0: float | ArrayLike) -> float:
        """Probability that one step from the point x0 (or the density ``x0`` at the nodes)
        leaves [lo, hi]."""
        if np.ndim(x0) == 0:
            m = float(self.drift(np.array([float(x0)]))[0])
            return float(ndtr((self.lo - m) / self.s) + ndtr((m - self.hi) / self.s))
        return float((self.weights * np.asarray(x0, dtype=np.float64)) @ self.leak)


def _exit_rate(lu: tuple, n: int) -> float:
    """1 − λ, λ the Perron root of B: the smallest eigenvalue of I − B by inverse iteration
    (with the LU factors of I − B), to a relative 1e-14."""
    v = np.ones(n) / math.sqrt(n)
    mu = 0.0
    for _ in range(500):
        x = sla.lu_solve(lu, v)
        new = 1.0 / float(np.linalg.norm(x))
        v = x * new
        if abs(new - mu) <= 1e-14 * new:
            return new
        mu = new
    return mu


def sgd_chain_1d(
    grad: Grad,
    eta: float,
    T: float,
    lo: float,
    hi: float,
    *,
    breaks: Sequence[float] = (),
    max_panel: float = math.inf,
) -> SGDChain1D:
    """The 1-D SGD (or SGLD) chain w ↦ w − ηU'(w) + √(2ηT)ξ on [lo, hi], discretised.

    Args:
        grad: U', vectorised over a float64 array.
        eta: step size η > 0.
        T: temperature T > 0 (SGD: ησ²/(2b); see :func:`sgdlab.theory.sgd_temperature`).
        lo, hi: the domain; it must hold the law (checked when a law is computed).
        breaks: points inside (lo, hi) where U' may jump and where first-passage regions end.
        max_panel: the largest panel width (default 2s; lower it where U varies on a scale
            shorter than the step noise s).

    Example:
        >>> chain = sgd_chain_1d(lambda x: 2.0 * x, 0.1, 0.5, -4.0, 4.0)  # κ = 2, ηκ = 0.2
        >>> round(chain.stationary().var, 10)  # 2T/(κ(2 − ηκ)), not the Gibbs T/κ = 0.25
        0.2777777778
    """
    eta = float(eta)
    if not eta > 0 or not math.isfinite(eta):
        raise ConfigError("eta", f"the step size must be positive and finite, got {eta}")
    T = check_temperature(T)
    lo, hi = float(lo), float(hi)
    if not lo < hi:
        raise ConfigError("hi", f"the domain needs lo < hi, got [{lo:g}, {hi:g}]")
    inner = sorted({float(p) for p in breaks})
    bad = [p for p in inner if not lo < p < hi]
    if bad:
        raise ConfigError("breaks", f"{bad[0]:g} is not inside the domain ({lo:g}, {hi:g})")
    if not max_panel > 0:
        raise ConfigError("max_panel", f"must be positive, got {max_panel}")
    return SGDChain1D(grad, eta, T, lo, hi, tuple(inner),
                      min(2 * math.sqrt(2 * eta * T), float(max_panel)))  # fmt: skip
