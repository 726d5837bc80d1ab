"""Gradient-noise instruments for any ``nn.Module`` and mean-reduced loss.

* :mod:`~sgdlab.measure.noise.per_sample` — per-sample gradient statistics in one backward
  pass (Linear/Conv/Embedding fast path, ``torch.func`` fallback, loop reference);
* :mod:`~sgdlab.measure.noise.stats` — :func:`gradient_noise` → :class:`NoiseStats`
  (tr Σ ± SE, per-parameter variance, B_simple, GSNR, per layer);
* :mod:`~sgdlab.measure.noise.scale` — the McCandlish et al. (2018) two-batch noise-scale
  estimator and ``b_noise``;
* :mod:`~sgdlab.measure.noise.thermal` — the effective temperature (Langevin convention);
* :mod:`~sgdlab.measure.noise.checks` — unbiasedness test, finite-difference gradient check.
"""

from sgdlab.measure.noise.checks import (
    GradcheckResult,
    UnbiasednessResult,
    gradcheck,
    unbiasedness_test,
)
from sgdlab.measure.noise.per_sample import (
    PerSampleStats,
    per_sample_grads,
    per_sample_stats,
    stats_from_grads,
)
from sgdlab.measure.noise.scale import (
    NoiseScaleEstimator,
    NoiseScaleState,
    b_noise,
    trace_h_sigma,
    two_batch_estimates,
)
from sgdlab.measure.noise.stats import LayerNoise, NoiseStats, gradient_noise
from sgdlab.measure.noise.thermal import (
    TemperatureResult,
    sgd_stationary_variance_1d,
    temperature,
)

__all__ = [
    "GradcheckResult",
    "LayerNoise",
    "NoiseScaleEstimator",
    "NoiseScaleState",
    "NoiseStats",
    "PerSampleStats",
    "TemperatureResult",
    "UnbiasednessResult",
    "b_noise",
    "gradcheck",
    "gradient_noise",
    "per_sample_grads",
    "per_sample_stats",
    "sgd_stationary_variance_1d",
    "stats_from_grads",
    "temperature",
    "trace_h_sigma",
    "two_batch_estimates",
    "unbiasedness_test",
]
