"""What :mod:`sgdlab.theory.discrete_chain` returns: a law of the chain and a first passage.

* :class:`ChainLaw` — a density at the chain's quadrature nodes, with its Nyström interpolant
  (one step of the chain from the law one step earlier), so bin masses and densities at any
  point are exact functions of the node values.
* :class:`FirstPassage` — the mean, the survival function P(N > t) (iterated until the
  quasi-stationary factor has settled, then geometric), restricted means and exit
  probabilities of a first passage, possibly observed every e steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtr

from sgdlab.errors import ConfigError
from sgdlab.theory._common import FloatArray

if TYPE_CHECKING:
    from sgdlab.theory.discrete_chain import SGDChain1D


@dataclass(frozen=True)
class ChainLaw:
    """A law of the chain: its density at the quadrature nodes and how it was reached.

    Between nodes the density is the Nyström interpolant — one step of the chain from the law
    one step earlier (``prev`` at the nodes, or the point ``start`` after the first step; the
    stationary law is its own predecessor) — so :meth:`density` and :meth:`bin_masses` are
    exact functions of the node values. ``values`` integrate to 1 with ``weights``.
    """

    chain: SGDChain1D
    values: FloatArray
    prev: FloatArray | None = None
    start: float | None = None

    @property
    def nodes(self) -> FloatArray:
        """The chain's quadrature nodes."""
        return self.chain.nodes

    @property
    def weights(self) -> FloatArray:
        """The chain's quadrature weights."""
        return self.chain.weights

    @property
    def total(self) -> float:
        """∫ u (1 for a probability law)."""
        return float(self.weights @ self.values)

    def expect(self, f: Callable[[FloatArray], ArrayLike]) -> float:
        """E f(w) = ∫ f u, by the nodes' quadrature."""
        return float(self.weights @ (np.asarray(f(self.nodes), dtype=np.float64) * self.values))

    @property
    def mean(self) -> float:
        """E w (normalised by :attr:`total`)."""
        return self.expect(lambda x: x) / self.total

    @property
    def var(self) -> float:
        """Var w (normalised by :attr:`total`)."""
        m = self.mean
        return self.expect(lambda x: (x - m) ** 2) / self.total

    def _source(self) -> tuple[FloatArray, FloatArray]:
        """(drift m(x_i), mass of x_i) of the law one step earlier."""
        c = self.chain
        if self.start is not None:
            return c.drift(np.array([self.start])), np.ones(1)
        prev = self.values if self.prev is None else self.prev
        return c.drift_nodes, c.weights * prev

    def density(self, y: ArrayLike) -> FloatArray:
        """u(y) at any points (Nyström interpolant)."""
        y = np.asarray(y, dtype=np.float64)
        m, q = self._source()
        z = (y.reshape(-1, 1) - m) / self.chain.s
        k = np.exp(-0.5 * z * z) / (self.chain.s * math.sqrt(2 * math.pi))
        return (k @ q).reshape(y.shape)

    def bin_masses(self, edges: ArrayLike) -> FloatArray:
        """∫ u over each bin [e_j, e_{j+1}] (exact Gaussian integrals of the interpolant)."""
        e = np.asarray(edges, dtype=np.float64)
        m, q = self._source()
        return np.diff(ndtr((e.reshape(-1, 1) - m) / self.chain.s) @ q)

    def mass(self, lo: float, hi: float) -> float:
        """∫_lo^hi u."""
        return float(self.bin_masses([lo, hi])[0])


@dataclass(frozen=True)
class FirstPassage:
    """First passage N = min{t ≥ 1 : w_t ∉ (a, b)} of the chain from a start.

    Attributes:
        region: (a, b).
        mean: E N (steps).
        rate: 1 − λ, λ the quasi-stationary survival factor per observation (S_{t+e} = λ S_t
            for large t).
        open_leak: expected number of steps leaving through an open side (given as ``None``:
            the grid's end), which the grid counts as exits; ≤ ``tol``·E N.
        every: the observation cadence e (N is the first passage of the e-step skeleton).
        unobserved_leak: expected number of steps between observations at which the chain
            leaves [lo, hi] (the grid drops that mass: a bound on the probability error, and
            H times it on a restricted mean's). 0 when ``every`` = 1.
    """

    region: tuple[float, float]
    mean: float
    rate: float
    open_leak: float
    _B: FloatArray = field(repr=False)
    _q1: FloatArray = field(repr=False)
    every: int = 1
    unobserved_leak: float = 0.0

    def survival(self, steps: ArrayLike) -> FloatArray:
        """P(N > t) at each step t ≥ 0 (N observed every ``every`` steps)."""
        t = np.atleast_1d(np.asarray(steps, dtype=np.int64))
        if t.size and (t < 0).any():
            raise ConfigError("steps", "survival needs steps t ≥ 0")
        t = t // self.every  # N_e > t ⟺ N_e > e⌊t/e⌋: the skeleton's step index
        S = self._table(int(t.max()) if t.size else 0)
        n = len(S) - 1
        lam = 1.0 - self.rate
        return np.where(t <= n, S[np.minimum(t, n)], S[-1] * lam ** np.maximum(t - n, 0))

    def restricted_mean(self, horizon: int) -> float:
        """E min(N, H) = Σ_{t<H} P(N > t): the mean of escape times censored at H."""
        if horizon < 1:
            raise ConfigError("horizon", f"must be ≥ 1, got {horizon}")
        return float(self.survival(np.arange(int(horizon))).sum())

    def escape_probability(self, horizon: int) -> float:
        """P(N ≤ H)."""
        return float(1.0 - self.survival([int(horizon)])[0])

    def _table(self, t_max: int) -> FloatArray:
        """S_0 … S_{t*}, t* ≤ t_max: iterated until S_t/S_{t−1} has settled on λ (then the
        tail is geometric) or S_t underflows."""
        lam = 1.0 - self.rate
        S = [1.0]
        q = self._q1
        stable = 0
        for _ in range(t_max):
            S.append(float(q.sum()))
            q = self._B.T @ q
            if S[-1] < 1e-300:
                break
            stable = stable + 1 if abs(S[-1] / S[-2] - lam) <= 1e-13 * lam else 0
            if stable >= 10:
                break
        return np.array(S)
