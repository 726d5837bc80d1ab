"""The gradient noise scale: two-batch estimators of |∇F|² and tr Σ, B_simple and B_noise.

McCandlish, Kaplan, Amodei et al. 2018, "An Empirical Model of Large-Batch Training",
section 2.2 and appendix A. For a minibatch gradient G_B (mean of B per-sample gradients,
reduction="mean"), E|G_B|² = |G|² + tr Σ / B with G = ∇F and Σ the per-sample gradient
covariance. Two batch sizes B_small < B_big give the unbiased estimators

    |G|² ≈ (B_big |G_big|² − B_small |G_small|²) / (B_big − B_small),
    tr Σ ≈ (|G_small|² − |G_big|²) / (1/B_small − 1/B_big),

each noisy, so :class:`NoiseScaleEstimator` smooths them by separate bias-corrected
exponential moving averages and reports B_simple = EMA(tr Σ) / EMA(|G|²) (the ratio of the
averages, not the average of ratios, which would be biased by noisy denominators).

**When the |G|² estimate is ≤ 0** (B_simple then reads ``inf``; a recorder writes NaN): the
signal is below the noise at this batch size — |∇F|² is smaller than what the measurement's
own noise (≈ tr Σ/B_big per estimate) can resolve, so the noise scale is larger than this
batch can measure. No point estimate follows, but a lower bound does:
:meth:`NoiseScaleEstimator.b_simple_lower` (and
:meth:`sgdlab.measure.noise.stats.NoiseStats.b_simple_lower` for one measurement) divide a
lower confidence limit of tr Σ by an upper confidence limit of |G|² (:func:`lower_bound`),
which stays finite and positive exactly where the point estimate does not.

B_noise = tr(HΣ) / (GᵀHG) (eq. 2.7 of the paper) weighs the noise by the curvature H; see
:func:`b_noise`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from sgdlab.measure.noise.per_sample import PerSampleStats


def two_batch_estimates(
    small_norm_sq: float, big_norm_sq: float, b_small: float, b_big: float
) -> tuple[float, float]:
    """Unbiased ``(|G|², tr Σ)`` from |G_small|² at batch ``b_small`` and |G_big|² at ``b_big``.

    ``b_big = inf`` stands for a gradient without sampling noise (the whole finite
    population): then |G|² = |G_big|² and tr Σ = b_small (|G_small|² − |G_big|²). With
    sampling without replacement from N samples, pass the effective batch sizes
    b (N − 1)/(N − b), for which E|G_b|² = |G|² + tr Σ/b holds with Σ the 1/N covariance.

    Example:
        >>> two_batch_estimates(1.0 + 4.0 / 2, 1.0 + 4.0 / 8, 2, 8)
        (1.0, 4.0)
    """
    if not b_big > b_small > 0:
        raise ValueError(f"need 0 < b_small < b_big, got {b_small}, {b_big}")
    if math.isinf(b_big):
        return float(big_norm_sq), float((small_norm_sq - big_norm_sq) * b_small)
    g2 = (b_big * big_norm_sq - b_small * small_norm_sq) / (b_big - b_small)
    s = (small_norm_sq - big_norm_sq) / (1.0 / b_small - 1.0 / b_big)
    return float(g2), float(s)


def lower_bound(
    trace: float, trace_se: float, g2: float, g2_se: float, confidence: float = 0.95
) -> float:
    """A lower confidence bound of B_simple = tr Σ / |G|² from estimates and standard errors.

    B ≥ max(tr Σ̂ − z·SE_tr, 0) / (|Ĝ|² + z·SE_G²) holds with probability ≥ ``confidence``
    when each one-sided limit holds with probability 1 − α/2, α = 1 − ``confidence``
    (Bonferroni; z = Φ⁻¹(1 − α/2), normal approximation of both estimators). ``inf`` when the
    upper limit of |G|² is ≤ 0 (nothing bounds B), NaN when an input is not finite.

    Example:
        >>> round(lower_bound(10.0, 0.0, -0.1, 0.5), 3)  # |G|² unresolved: B ≥ 10 / 0.88
        11.364
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if not all(math.isfinite(v) for v in (trace, trace_se, g2, g2_se)):
        return math.nan
    z = statistics.NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)
    upper = g2 + z * g2_se
    if upper <= 0:
        return math.inf
    return max(trace - z * trace_se, 0.0) / upper


class NoiseScaleState(NamedTuple):
    """Checkpointable state: step count, the raw (not yet bias-corrected) EMAs and the raw
    EMAs of their squares (for the standard errors; 0 in states saved before they existed)."""

    step: int
    g2_ema: float
    trace_ema: float
    g2_sq_ema: float = 0.0
    trace_sq_ema: float = 0.0


class NoiseScaleEstimator:
    """Running B_simple from two-batch estimates with bias-corrected EMAs.

    After t updates each average is ``m_t / (1 − β^t)`` with m_t = β m_{t−1} + (1 − β) x_t
    (Adam-style bias correction), so an early estimate is not shrunk towards zero. With
    decay β the averages hold ≈ 1/(1 − β) updates' worth of information. Documented accuracy
    (``tests/test_measure_noise_scale.py``): with β = 0.999, 3000 updates at
    (b_small, b_big) = (16, 128) recover a known B_simple = 20 within 10% (sd ≈ 2% over seeds).

    Args:
        beta: EMA decay in [0, 1) (``0`` keeps only the last update).
        state: a saved :class:`NoiseScaleState` to continue from.

    Example:
        >>> est = NoiseScaleEstimator(beta=0.9)
        >>> est.update(1.0 + 4.0 / 2, 1.0 + 4.0 / 8, 2, 8)
        >>> round(est.b_simple, 6)
        4.0
    """

    def __init__(self, beta: float = 0.99, state: NoiseScaleState | None = None) -> None:
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        self.beta = beta
        self.state = state or NoiseScaleState(0, 0.0, 0.0)

    # ------------------------------------------------------------------ feeding
    def update(
        self, small_norm_sq: float, big_norm_sq: float, b_small: float, b_big: float
    ) -> None:
        """Add one pair of squared gradient norms at batch sizes ``b_small < b_big``."""
        g2, s = two_batch_estimates(small_norm_sq, big_norm_sq, b_small, b_big)
        st, b = self.state, self.beta
        self.state = NoiseScaleState(
            st.step + 1,
            b * st.g2_ema + (1 - b) * g2,
            b * st.trace_ema + (1 - b) * s,
            b * st.g2_sq_ema + (1 - b) * g2 * g2,
            b * st.trace_sq_ema + (1 - b) * s * s,
        )

    def update_from_microbatches(
        self, micro_norms_sq: Sequence[float] | Tensor, micro_size: int, full_norm_sq: float
    ) -> None:
        """k micro-batches of ``micro_size`` samples: their squared gradient norms and the
        squared norm of their mean (the k·``micro_size`` batch gradient). The small-batch
        norm is the mean of the k micro norms (unbiased, lower variance than one)."""
        norms = torch.as_tensor(micro_norms_sq, dtype=torch.float64).reshape(-1)
        k = norms.numel()
        if k < 2:
            raise ValueError("need at least 2 micro-batches")
        self.update(float(norms.mean()), float(full_norm_sq), micro_size, k * micro_size)

    def update_data_parallel(
        self, local_norms_sq: Sequence[float] | Tensor, global_norm_sq: float, local_batch: int
    ) -> None:
        """Data-parallel: each device's squared local gradient norm (batch ``local_batch``) and
        the squared norm of the all-reduced (averaged) gradient; equal local batches."""
        self.update_from_microbatches(local_norms_sq, local_batch, global_norm_sq)

    def update_from_per_sample(self, stats: PerSampleStats) -> None:
        """Micro-batches of size 1 from :func:`~sgdlab.measure.noise.per_sample.per_sample_stats`
        (no extra backward pass): mean |g_i|² at b = 1 against |ḡ|² at b = n."""
        big = float(sum((m * m).sum() for m in stats.mean().values()))
        self.update(float(stats.total_norm_sq().mean()), big, 1, stats.n)

    # ------------------------------------------------------------------ reading
    def _corrected(self, raw: float) -> float:
        t = self.state.step
        if t == 0:
            return math.nan
        return raw / (1 - self.beta**t)

    @property
    def steps(self) -> int:
        return self.state.step

    @property
    def grad_norm_sq(self) -> float:
        """Bias-corrected EMA of the |G|² estimates."""
        return self._corrected(self.state.g2_ema)

    @property
    def trace_cov(self) -> float:
        """Bias-corrected EMA of the tr Σ estimates."""
        return self._corrected(self.state.trace_ema)

    @property
    def b_simple(self) -> float:
        """EMA(tr Σ) / EMA(|G|²); ``inf`` while the |G|² average is ≤ 0 (the signal is below
        the noise at this batch: see the module docstring and :meth:`b_simple_lower`)."""
        g2 = self.grad_norm_sq
        if math.isnan(g2):
            return math.nan
        return math.inf if g2 <= 0 else self.trace_cov / g2

    @property
    def effective_updates(self) -> float:
        """n_eff = (Σ w)² / Σ w² of the EMA weights w_i ∝ β^(t−i):
        (1 − β^t)² (1 + β) / ((1 − β)(1 − β^(2t))); 1 after one update, → (1+β)/(1−β)."""
        t, b = self.state.step, self.beta
        if t == 0:
            return 0.0
        if b == 0.0:
            return 1.0
        return (1 - b**t) ** 2 * (1 + b) / ((1 - b) * (1 - b ** (2 * t)))

    def _se(self, raw: float, raw_sq: float) -> float:
        """SE of a bias-corrected EMA: the weighted variance of the updates, made unbiased
        by n_eff/(n_eff − 1) (reliability weights), divided by n_eff; NaN below 2 updates'
        worth of information. Assumes the updates are independent (disjoint batches) around
        a slowly moving mean."""
        n_eff = self.effective_updates
        if n_eff <= 1.0 + 1e-12 or self.state.step < 3:
            return math.nan
        mean, mean_sq = self._corrected(raw), self._corrected(raw_sq)
        var = max(mean_sq - mean * mean, 0.0) * n_eff / (n_eff - 1)
        return math.sqrt(var / n_eff)

    @property
    def grad_norm_sq_se(self) -> float:
        """Standard error of :attr:`grad_norm_sq` (see :meth:`_se`)."""
        return self._se(self.state.g2_ema, self.state.g2_sq_ema)

    @property
    def trace_cov_se(self) -> float:
        """Standard error of :attr:`trace_cov` (see :meth:`_se`)."""
        return self._se(self.state.trace_ema, self.state.trace_sq_ema)

    def b_simple_lower(self, confidence: float = 0.95) -> float:
        """A lower confidence bound of B_simple from the averages and their standard errors
        (:func:`lower_bound`): finite where :attr:`b_simple` reads ``inf``; NaN before three
        updates (or with ``beta=0``), when no standard error exists."""
        return lower_bound(
            self.trace_cov, self.trace_cov_se, self.grad_norm_sq, self.grad_norm_sq_se,
            confidence,
        )  # fmt: skip


# --------------------------------------------------------------------------- B_noise
HVP = Callable[[Tensor], Tensor]


def trace_h_sigma(
    hvp: HVP,
    per_sample_grads: Tensor,
    *,
    n_probes: int | None = None,
    generator: torch.Generator | None = None,
) -> float:
    """tr(HΣ̂) with Σ̂ the 1/(n−1) sample covariance of ``per_sample_grads [n, d]``.

    Exact (``n_probes=None``): (1/(n−1)) Σ_i D_iᵀ H D_i with D_i = g_i − ḡ, n HVPs.
    Hutchinson-style (``n_probes=k``): v = Dᵀz/√(n−1) with z Rademacher in Rⁿ has
    E[vᵀHv] = tr(HΣ̂), so the mean of k such quadratic forms is unbiased (k HVPs;
    ``generator`` draws z).
    """
    D = per_sample_grads - per_sample_grads.mean(0)
    n = D.shape[0]
    if n < 2:
        raise ValueError("need at least 2 per-sample gradients")
    if n_probes is None:
        vecs = D / math.sqrt(n - 1)
        return float(sum(v @ hvp(v) for v in vecs))
    if generator is None:
        raise ValueError("Hutchinson probes need an explicit torch.Generator")
    total = 0.0
    for _ in range(n_probes):
        z = torch.randint(0, 2, (n,), generator=generator, device=generator.device).to(D) * 2 - 1
        v = z @ D / math.sqrt(n - 1)
        total += float(v @ hvp(v))
    return total / n_probes


def b_noise(
    hvp: HVP,
    grad: Tensor,
    per_sample_grads: Tensor | None = None,
    *,
    trace_hs: float | None = None,
    n_probes: int | None = None,
    generator: torch.Generator | None = None,
) -> float:
    """B_noise = tr(HΣ) / (GᵀHG) (McCandlish et al. 2018, eq. 2.7).

    Args:
        hvp: v ↦ Hv for flat vectors ``[d]`` (e.g. a Hessian-vector product of the full loss).
        grad: the (estimated) true gradient G ``[d]``.
        per_sample_grads: ``[n, d]`` per-sample gradients for tr(HΣ̂) (see
            :func:`trace_h_sigma`); or pass ``trace_hs`` directly.
        trace_hs: a known tr(HΣ).
        n_probes, generator: Hutchinson-style estimate of tr(HΣ̂) (see :func:`trace_h_sigma`).
    """
    if trace_hs is None:
        if per_sample_grads is None:
            raise ValueError("pass per_sample_grads or trace_hs")
        trace_hs = trace_h_sigma(hvp, per_sample_grads, n_probes=n_probes, generator=generator)
    den = float(grad @ hvp(grad))
    return math.inf if den == 0 else trace_hs / den
