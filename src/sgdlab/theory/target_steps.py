"""Steps to a target loss on the noisy quadratic: exact, for a constant step and the greedy one.

Setting (the :class:`sgdlab.problems.quadratic.Quadratic` problem): F(w) = ½ eᵀAe, e = w − w*,
F* = 0, minibatch gradient A e + ζ with Cov ζ = κ C/b (mean-reduced loss; κ = 1 with
replacement or from a population, (N − b)/(N − 1) without replacement from N samples). In A's
eigenbasis (eigenvalues λ_i) let c_i = (QᵀCQ)_ii. The mean m_i and the variance v_i of e_i
obey m ← (1 − ηλ)m and v ← (1 − ηλ)² v + η² κ c/b, and

    E F(w_t) − F* = ½ Σ_i λ_i (m_i² + v_i)

exactly — also when C does not commute with A, since the diagonal of Cov e in A's eigenbasis
evolves on its own (:func:`sgdlab.theory.rates.expected_suboptimality_quadratic`).

* **Constant step η** — closed form, with ρ = 1 − ηλ and u_∞ = η κ c / (b λ (2 − ηλ)):
  E F_t − F* = ½ Σ λ [ρ^{2t} m_0² + (1 − ρ^{2t}) u_∞]  (:func:`constant_step_suboptimality`).
* **The greedy step of McCandlish et al. (2018)** — each step maximises the expected
  improvement of the local model, ε_opt = |G|² / (GᵀHG + tr(HΣ)/B) (their §2.2), here with the
  expectations over the iterate's law, so that the schedule is deterministic and the recursion
  stays exact: with u_i = m_i² + v_i,

      η_t = Σ λ² u / (Σ λ³ u + κ Σ λ c / b),

  which is the η minimising E F(w_{t+1}) given the moments at t
  (:func:`greedy_schedule`).
* **Steps to a target** — the first passage of the expected curve below a target, read off at
  given record steps and interpolated in log F between the two records around the crossing
  (:func:`first_passage`, the same functional the lab applies to the mean of simulated chains),
  minimised over a grid of constant steps (:func:`tuned_steps_to_target`) or along the greedy
  schedule (:func:`greedy_steps_to_target`).
* **Noise scales along the path** — B_simple = tr Σ / |G|² and B_noise = tr(HΣ)/(GᵀHG)
  (McCandlish §2.2) with |G|², GᵀHG replaced by their expectations Σλ²u, Σλ³u (ratios of
  expectations, as a ratio of chain averages estimates them) (:func:`path_noise_scales`).

References:
    McCandlish, Kaplan, Amodei & OpenAI Dota Team (2018), "An Empirical Model of Large-Batch
    Training", arXiv:1812.06162, §2.2 (optimal step, noise scales), §2.3 and appendix D (steps
    and examples to a target). Shallue et al. (2019), "Measuring the Effects of Data
    Parallelism on Neural Network Training", JMLR 20, §3 (steps to a target with the learning
    rate tuned per batch size).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from sgdlab.theory._common import FloatArray, as_vector, finite_population_factor
from sgdlab.theory.rates import _eigen_moments


def constant_step_suboptimality(
    A_eigs: ArrayLike,
    C_diag: ArrayLike,
    b: int,
    w0_minus_wstar: ArrayLike,
    eta: float,
    steps: ArrayLike,
    n: int | None = None,
) -> FloatArray:
    """Exact E F(w_t) − F* of constant-step SGD on the quadratic at the steps ``steps``.

    Closed form of the recursion of :func:`sgdlab.theory.rates.expected_suboptimality_quadratic`
    with η_t = η: per eigen-direction, ρ = 1 − ηλ,

        E e_t² = ρ^{2t} m_0² + η² κ c/b · (1 − ρ^{2t}) / (1 − ρ²)

    (the last factor is t where ρ² = 1), and E F_t − F* = ½ Σ λ E e_t². Valid for any η (an
    unstable step gives a growing curve).

    Args:
        A_eigs: Hessian eigenvalues λ_i ≥ 0.
        C_diag: per-sample noise variances in A's eigenbasis, c_i = (QᵀCQ)_ii (scalar broadcasts).
        b: batch size.
        w0_minus_wstar: initial error in the eigenbasis, Qᵀ(w_0 − w*).
        eta: the constant step η > 0.
        steps: the steps t ≥ 0 at which to evaluate (any shape).
        n: population size when sampling without replacement (``None``: with replacement).

    Returns:
        E F(w_t) − F*, shaped like ``steps``.

    Example:
        >>> round(float(constant_step_suboptimality([1.0], [1.0], 1, [0.0], 0.1, 10**6)), 12)
        0.026315789474
    """
    lam = as_vector(A_eigs)
    c = as_vector(C_diag, lam.size)
    m0 = as_vector(w0_minus_wstar, lam.size)
    t = np.asarray(steps, dtype=np.float64)
    rho2 = (1.0 - eta * lam) ** 2
    q = eta**2 * finite_population_factor(b, n) * c / b
    tt = t[..., None]
    one = np.isclose(rho2, 1.0, rtol=0.0, atol=1e-15)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # unstable: grows to ∞
        decay = rho2**tt
        geom = np.where(one, tt, (1.0 - decay) / np.where(one, 1.0, 1.0 - rho2))
        e2 = decay * m0**2 + q * geom
    return 0.5 * (e2 * lam).sum(axis=-1)


def greedy_schedule(
    A_eigs: ArrayLike,
    C_diag: ArrayLike,
    b: int,
    w0_minus_wstar: ArrayLike,
    steps: int,
    n: int | None = None,
) -> tuple[FloatArray, FloatArray]:
    """McCandlish's greedy-optimal steps computed from the exact moments, and the exact curve.

    At each step t, with u_i = m_i² + v_i the second moment of e_i,

        η_t = Σ λ² u / (Σ λ³ u + κ Σ λ c / b)     (ε_opt of McCandlish et al. 2018, §2.2)

    minimises E F(w_{t+1}) = ½ Σ λ [(1 − ηλ)² u + η² κ c/b] over η. The schedule depends on
    the law of w_t only, never on the chain, so E F along it is the exact recursion.

    Args:
        A_eigs, C_diag, b, w0_minus_wstar, n: as in :func:`constant_step_suboptimality`.
        steps: number of steps T.

    Returns:
        ``(etas [T], E F(w_t) − F* for t = 0..T [T + 1])``.

    Example:
        >>> etas, f = greedy_schedule([1.0], [0.0], 1, [1.0], 1)  # noiseless: the Newton step
        >>> float(etas[0]), float(f[-1])
        (1.0, 0.0)
    """
    lam = as_vector(A_eigs)
    c = as_vector(C_diag, lam.size)
    m = as_vector(w0_minus_wstar, lam.size).copy()
    noise = finite_population_factor(b, n) * c / b
    trace_hs = float(np.sum(lam * noise))
    v = np.zeros_like(lam)
    etas = np.empty(steps)
    curve = np.empty(steps + 1)
    for t in range(steps + 1):
        u = m * m + v
        curve[t] = 0.5 * float(np.sum(lam * u))
        if t == steps:
            break
        num, den = float(np.sum(lam**2 * u)), float(np.sum(lam**3 * u)) + trace_hs
        eta = num / den if den > 0 else 0.0
        etas[t] = eta
        rho = 1.0 - eta * lam
        m, v = rho * m, rho**2 * v + eta**2 * noise
    return etas, curve


def first_passage(steps: ArrayLike, values: ArrayLike, target: float) -> FloatArray:
    """The step at which a curve first reaches ``target``, from its values at record steps.

    The first record i with value ≤ target is found; the crossing is interpolated linearly in
    log(value) between records i − 1 and i (step t_0 when the first record is already below);
    NaN where the curve never reaches the target or a NaN (a diverged chain) comes first.
    Works on the last axis: ``values [..., n]`` gives ``[...]``.

    Example:
        >>> float(first_passage([0, 10, 20], [1.0, 0.1, 0.01], 0.1 ** 1.5))
        15.0
    """
    st = np.asarray(steps, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    below = v <= target
    bad = ~np.isfinite(v)
    hit = below.any(axis=-1)
    i = np.argmax(below, axis=-1)
    # a NaN before the first crossing means the curve is undefined there: no passage
    first_bad = np.where(bad.any(axis=-1), np.argmax(bad, axis=-1), v.shape[-1])
    ok = hit & (first_bad > i)
    i_prev = np.maximum(i - 1, 0)
    a = np.log(np.maximum(np.take_along_axis(v, i_prev[..., None], -1)[..., 0], 1e-300))
    z = np.log(np.maximum(np.take_along_axis(v, i[..., None], -1)[..., 0], 1e-300))
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(a != z, (a - np.log(target)) / (a - z), 1.0)
    t = np.where(i == 0, st[0], st[i_prev] + np.clip(frac, 0.0, 1.0) * (st[i] - st[i_prev]))
    return np.where(ok, t, np.nan)


class TunedSteps(NamedTuple):
    """Steps to the target with the best step of a grid: ``steps`` (S*), ``eta`` (η*), and the
    hitting time of every step of the grid (``per_eta``, NaN where it never hits)."""

    steps: float
    eta: float
    per_eta: FloatArray


def tuned_steps_to_target(
    A_eigs: ArrayLike,
    C_diag: ArrayLike,
    b: int,
    w0_minus_wstar: ArrayLike,
    etas: ArrayLike,
    target: float,
    record_steps: ArrayLike,
    n: int | None = None,
) -> TunedSteps:
    """Exact steps to ``target`` of constant-step SGD with the step tuned over the grid ``etas``.

    For each η of the grid, the exact curve (:func:`constant_step_suboptimality`) is read at
    ``record_steps`` and its :func:`first_passage` taken; S* is the smallest, η* its step (as
    Shallue et al. 2019 tune per batch size). NaN when no step of the grid reaches the target
    within the records.
    """
    rec = np.asarray(record_steps, dtype=np.float64)
    hits = np.array([
        float(first_passage(rec, constant_step_suboptimality(
            A_eigs, C_diag, b, w0_minus_wstar, float(e), rec, n), target))
        for e in as_vector(etas)
    ])  # fmt: skip
    return _best(hits, as_vector(etas))


def greedy_steps_to_target(
    A_eigs: ArrayLike,
    C_diag: ArrayLike,
    b: int,
    w0_minus_wstar: ArrayLike,
    target: float,
    record_steps: ArrayLike,
    n: int | None = None,
) -> float:
    """Exact steps to ``target`` along McCandlish's greedy schedule (:func:`greedy_schedule`),
    read at ``record_steps`` like a simulated run (NaN if not reached by the last record)."""
    rec = np.asarray(record_steps, dtype=np.float64)
    _, curve = greedy_schedule(A_eigs, C_diag, b, w0_minus_wstar, int(rec[-1]), n)
    return float(first_passage(rec, curve[rec.astype(int)], target))


def _best(hits: FloatArray, etas: FloatArray) -> TunedSteps:
    if not np.isfinite(hits).any():
        return TunedSteps(float("nan"), float("nan"), hits)
    j = int(np.nanargmin(hits))
    return TunedSteps(float(hits[j]), float(etas[j]), hits)


def path_noise_scales(
    A_eigs: ArrayLike,
    C_diag: ArrayLike,
    b: int,
    w0_minus_wstar: ArrayLike,
    schedule_values: ArrayLike,
    n: int | None = None,
) -> tuple[FloatArray, FloatArray]:
    """B_simple and B_noise along the exact recursion, t = 0..T (McCandlish et al. 2018, §2.2).

    With u_i = E e_i² at step t: B_simple(t) = Σ c / Σ λ² u and B_noise(t) = Σ λ c / Σ λ³ u —
    the per-sample tr Σ and tr(HΣ) over the expected |G|² and GᵀHG (ratios of expectations).
    The batch size enters only through the path (b, κ shape the moments, not the scales).

    Returns:
        ``(b_simple [T + 1], b_noise [T + 1])``.
    """
    lam = as_vector(A_eigs)
    c = as_vector(C_diag, lam.size)
    u = np.array([m * m + v for m, v in _eigen_moments(
        lam, c, b, w0_minus_wstar, schedule_values, n)])  # fmt: skip
    with np.errstate(divide="ignore"):
        return c.sum() / (u @ lam**2), float(lam @ c) / (u @ lam**3)
