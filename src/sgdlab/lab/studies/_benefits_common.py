"""Helpers of the benefits studies (escape, langevin, flat-minima): exact 1-D positions from a
landscape run's records, first exits, each run's own step sizes, temperature and exact chain.

The engine records F(w_t) (``objective``) and ‖w_t − w*‖ (``dist_to_opt``), not w itself. On a
1-D landscape these two determine w exactly: w = w* ± d, and the sign is the candidate whose
U matches the recorded F (:func:`positions`). Where U is symmetric about w* the sign is not
recoverable and the studies use d = |w − w*| (the folded law) instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from sgdlab.engine.result import RunResult
from sgdlab.lab.stats import groups
from sgdlab.problems import Problem
from sgdlab.theory.discrete_chain import SGDChain1D, sgd_chain_1d


def numpy_fn(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[np.ndarray], np.ndarray]:
    """A float64 numpy version of a landscape's 1-D profile function (u, du, d2u)."""
    return lambda x: fn(torch.as_tensor(np.asarray(x, dtype=np.float64))).numpy()


def positions(run: RunResult, prob: Problem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(steps, w₁ [K, n], other [K, n])`` of a 1-D landscape run, exactly.

    w₁ = w* ± d with the sign whose U matches the recorded F; ``other`` is the other
    candidate where both match F to rounding (near w*, where U(w* + d) − U(w* − d) = O(d³)
    is below float64's resolution of F, or where U happens to be symmetric), and w₁ itself
    elsewhere. A statistic is read exactly when it is the same for w₁ and ``other``
    (:func:`first_exit` checks this).

    Raises:
        ValueError: where neither candidate fits F (not a 1-D landscape run).
    """
    steps, F = run.metric("objective")
    _, d = run.metric("dist_to_opt")
    ws = float(prob.w_star[0])
    u = numpy_fn(prob.u)
    plus, minus = ws + d, ws - d
    with np.errstate(invalid="ignore", over="ignore"):  # a diverged chain's records are NaN
        ep, em = np.abs(u(plus) - F), np.abs(u(minus) - F)
    scale = 1e-9 * (1.0 + np.abs(F))
    live = np.isfinite(F)
    if (np.minimum(ep, em)[live] > scale[live]).any():
        raise ValueError("positions: the recorded F matches neither w* ± d (not a 1-D landscape)")
    w = np.where(ep <= em, plus, minus)
    tied = np.maximum(ep, em) <= scale
    return steps, w, np.where(tied, np.where(ep <= em, minus, plus), w)


def first_exit(
    steps: np.ndarray,
    w: np.ndarray,
    below: float | None = None,
    above: float | None = None,
    other: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per chain the first recorded step t ≥ 1 with w_t ≤ ``below`` or w_t ≥ ``above``.

    Returns:
        ``(times [K], escaped [K])``: censored chains get the last recorded step (the
        horizon H), so ``times`` is min(N, H) and its mean is the restricted mean escape time.

    Raises:
        ValueError: where the two readings of a record up to the chain's exit (``w``,
            ``other`` from :func:`positions`) disagree on whether it is outside. (Later
            records do not matter: a chain thrown far past the exit, where U(w* ± d) agree to
            rounding, or one that diverged afterwards, is read correctly.)
    """

    def outside(v: np.ndarray) -> np.ndarray:
        out = np.zeros(v.shape, dtype=bool)
        if below is not None:
            out |= v <= below
        if above is not None:
            out |= v >= above
        return out

    out = outside(w)
    out[:, steps < 1] = False
    escaped = out.any(axis=1)
    idx = np.where(escaped, np.argmax(out, axis=1), len(steps) - 1)
    if other is not None:  # the records up to each chain's exit must read the same both ways
        alt = outside(other)
        alt[:, steps < 1] = False
        upto = np.arange(len(steps))[None, :] <= idx[:, None]
        if ((alt != out) & upto).any():
            raise ValueError("first_exit: a record's position is ambiguous at the exit point; "
                             "move the exit away from w*")  # fmt: skip
    first = np.where(escaped, steps[idx], steps[-1])
    return first.astype(np.float64), escaped


def chain_lrs(run: RunResult) -> np.ndarray:
    """Each chain's step size η (the recorded ``lr`` at step 0), ``[K]``."""
    return run.metric("lr")[1][:, 0]


def lr_groups(run: RunResult, n: int) -> list[slice]:
    """The chain slices of a per-chain lr list of ``n`` values."""
    size = run.chains // n
    return [slice(g * size, (g + 1) * size) for g in range(n)]


def temperature(run: RunResult, prob: Problem, eta: float) -> float:
    """T of the run at step size η: ησ²/(2b) for SGD (σ the landscape's noise, b the batch),
    the configured temperature plus ησ²/(2b) for SGLD."""
    b = int(run.config["batch"]["size"])
    T = eta * prob.sigma**2 / (2 * b)
    opt = run.config["optimizer"]
    if opt["name"] == "sgld":
        T += float(opt["temperature"])
    return T


def landscape_chain(
    prob: Problem, eta: float, T: float, lo: float, hi: float, breaks: tuple[float, ...] = ()
) -> SGDChain1D:
    """The run's exact discrete chain w ↦ w − ηU'(w) + √(2ηT)ξ on [lo, hi]."""
    return sgd_chain_1d(numpy_fn(prob.du), eta, T, lo, hi, breaks=breaks)


def two_grid(fn: Callable[[SGDChain1D], float], chain: SGDChain1D) -> tuple[float, float]:
    """``(value, quadrature error)``: ``fn`` on the chain, and the change of the value when
    the panels are doubled (a conservative bound on the default grid's error)."""
    v = fn(chain)
    return v, abs(fn(chain.refined(2.0)) - v)


def split(values: np.ndarray, n: int) -> list[np.ndarray]:
    """:func:`sgdlab.lab.stats.groups`, re-exported for the per-chain lr lists."""
    return groups(values, n)


def log_ticks(ax, axis: str = "y") -> None:
    """Plain decimal labels on a log axis (1, 10, 100 rather than 10⁰ …)."""
    from matplotlib.ticker import FuncFormatter

    fmt = FuncFormatter(lambda v, _: f"{v:g}" if v >= 1e-3 and math.isfinite(v) else f"{v:.0e}")
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)
