"""Confidence intervals from independent chains.

Chains of one run are independent (each has its own random streams), so any per-chain
summary (a time average of F − F* over a window, a final value, a hitting time) is an iid
sample across chains. Two methods are used, and each finding names its own:

* :func:`mean_ci` — **t-interval**: mean over chains ± t_{(1+level)/2, K−1} · s/√K.
* :func:`bootstrap_ci`, :func:`bootstrap_groups` (chains resampled within each of several
  independent runs or groups) / :func:`theory.rates.fit_loglog_slope` — **bootstrap over
  chains**:
  resample whole chains (rows) with replacement, recompute the statistic, take the
  percentile interval. The generator is seeded from the run's ``probe`` stream
  (:func:`probe_seed`), never the global RNG, so a finding is a function of its configs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats as sps

from sgdlab.rng import Streams

T_INTERVAL = "mean over chains ± t-quantile·SE (95%)"
BOOTSTRAP = "percentile bootstrap over chains (95%, 2000 resamples, probe-stream seed)"


def probe_seed(seed: int | None) -> int:
    """A 32-bit seed from the ``probe`` stream of root seed ``seed`` (for bootstraps)."""
    return int(Streams(seed).seed_sequence("probe").generate_state(1)[0])


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, lo, hi)`` of iid per-chain values (NaN chains dropped): t-interval."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(v.mean())
    if v.size < 2:
        return m, float("nan"), float("nan")
    half = float(sps.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return m, m - half, m + half


def bootstrap_ci(
    values: np.ndarray,
    statistic: Callable[[np.ndarray], float],
    seed: int,
    level: float = 0.95,
    n_boot: int = 2000,
) -> tuple[float, float, float]:
    """``(estimate, lo, hi)`` of ``statistic(values)`` with a bootstrap over rows (chains).

    ``values`` is ``[K, ...]``; ``statistic`` maps an array of the same layout to a float.
    Resamples whose statistic is not finite are dropped.
    """
    v = np.asarray(values, dtype=np.float64)
    return bootstrap_groups([v], lambda gs: statistic(gs[0]), seed, level, n_boot)


def bootstrap_groups(
    groups: Sequence[np.ndarray],
    statistic: Callable[[list[np.ndarray]], float],
    seed: int,
    level: float = 0.95,
    n_boot: int = 2000,
) -> tuple[float, float, float]:
    """``(estimate, lo, hi)`` of a statistic of several independent groups of chains (e.g. one
    group per run, or per learning rate): each resample draws the chains of every group
    with replacement, within the group. Resamples whose statistic is not finite are dropped.
    """
    gs = [np.asarray(g, dtype=np.float64) for g in groups]
    est = float(statistic(gs))
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        s = float(statistic([g[rng.integers(0, len(g), len(g))] for g in gs]))
        if np.isfinite(s):
            boots.append(s)
    if len(boots) < n_boot // 2:
        return est, float("nan"), float("nan")
    a = (1 - level) / 2
    lo, hi = np.quantile(boots, [a, 1 - a])
    return est, float(lo), float(hi)


def window_mean(steps: np.ndarray, values: np.ndarray, start: int) -> np.ndarray:
    """Per-chain time average of ``values [K, n]`` over recorded steps ≥ ``start``: ``[K]``."""
    mask = np.asarray(steps) >= start
    return np.asarray(values)[:, mask].mean(axis=1)


def groups(values: np.ndarray, n_groups: int) -> list[np.ndarray]:
    """Split ``[K, ...]`` into the contiguous chain groups of a per-chain list (see
    :func:`sgdlab.optim.per_chain`): group g is rows g·K/L … (g+1)·K/L − 1."""
    K = values.shape[0]
    size = K // n_groups
    return [values[g * size : (g + 1) * size] for g in range(n_groups)]


def _intercept(x: np.ndarray, y: np.ndarray, degree: int = 1) -> float:
    coef, *_ = np.linalg.lstsq(np.vander(x, degree + 1, increasing=True), y, rcond=None)
    return float(coef[0])


def zero_limit(
    x: np.ndarray,
    groups: Sequence[np.ndarray],
    reference: np.ndarray,
    seed: int,
) -> dict:
    """Extrapolate the ratio r(x) = mean(group) / reference to x → 0 (zero noise).

    The leading correction of a small-noise expansion is linear in the noise parameter x
    (η at fixed b, or 1/b at fixed η), so r = c₀ + a·x is fitted by least squares and c₀ gets
    a bootstrap interval over the chains of every group (:func:`bootstrap_groups`). The
    **model error** of the extrapolation is |c₀ − c₀'| with c₀' the intercept of the
    quadratic fit c₀' + a'x + b'x² (the next order of the expansion): how much the limit
    moves when the correction is allowed to bend.

    Returns:
        ``{"estimate", "ci": (lo, hi), "model_error", "slope", "quadratic_intercept",
        "ratios": r}``.
    """
    x = np.asarray(x, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    r = np.array([float(np.mean(g)) for g in groups]) / ref

    def stat(gs: list[np.ndarray]) -> float:
        return _intercept(x, np.array([g.mean() for g in gs]) / ref)

    est, lo, hi = bootstrap_groups(groups, stat, seed)
    quad = _intercept(x, r, degree=2) if len(x) >= 3 else est
    slope = float(np.linalg.lstsq(np.vander(x, 2, increasing=True), r, rcond=None)[0][1])
    return {
        "estimate": est,
        "ci": (lo, hi),
        "model_error": abs(est - quad),
        "slope": slope,
        "quadratic_intercept": quad,
        "ratios": r,
    }


WILSON = "Wilson score interval over independent chains (95%)"
WELCH = "difference of chain means ± Welch t-quantile·SE (95%)"


def wilson_ci(successes: int, n: int, level: float = 0.95) -> tuple[float, float, float]:
    """``(p̂, lo, hi)`` for a binomial proportion of ``n`` independent chains (Wilson score
    interval: it keeps its level near p = 0 or 1, where p̂ ± z·SE collapses to a point).

    Example:
        >>> [round(v, 4) for v in wilson_ci(0, 50)]
        [0.0, 0.0, 0.0713]
    """
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 ≤ successes ≤ n and n ≥ 1, got {successes}/{n}")
    z = float(sps.norm.ppf(0.5 + level / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return p, max(0.0, float(centre - half)), min(1.0, float(centre + half))


def welch_diff_ci(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """``(mean(a) − mean(b), lo, hi)`` for two independent groups of iid per-chain values
    (Welch's t-interval with the Welch–Satterthwaite degrees of freedom)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    d = float(a.mean() - b.mean())
    half = float(sps.t.ppf(0.5 + level / 2, df) * np.sqrt(va + vb))
    return d, d - half, d + half


def integrated_autocorrelation_time(x: np.ndarray, c: float = 5.0) -> float:
    """Integrated autocorrelation time τ_int = 1 + 2 Σ_{k≥1} ρ(k) of the rows of ``x [K, n]``
    (chains, equally spaced records), with Sokal's automatic window: the smallest M with
    M ≥ c·τ_int(M). The autocovariance is averaged over the chains (each centred on its own
    mean). The variance of a time average of n correlated records is τ_int times the naive
    s²/n — why the lab never takes an SE over correlated steps.

    Reference: Sokal, "Monte Carlo Methods in Statistical Mechanics" (1997), §3.
    """
    v = np.atleast_2d(np.asarray(x, dtype=np.float64))
    v = v - v.mean(axis=1, keepdims=True)
    n = v.shape[1]
    f = np.fft.rfft(v, 2 * n, axis=1)
    acov = np.fft.irfft(f * np.conj(f), axis=1)[:, :n].mean(axis=0) / n
    if acov[0] <= 0:
        return float("nan")
    rho = acov / acov[0]
    tau = 1.0
    for m in range(1, n):
        tau += 2 * rho[m]
        if m >= c * tau:
            return float(tau)
    return float("nan")
