"""The Monitor's noise scale: the smoothed two-batch estimator and, always, a lower bound.

Each measurement t gives unbiased estimates x_t of |G|² and y_t of tr Σ (two-batch,
McCandlish et al. 2018, appendix A.1) with standard errors s_t, u_t.
:class:`~sgdlab.measure.noise.NoiseScaleEstimator` averages them with bias-corrected EMAs,
x̂ = Σ_t w_t x_t with w_t = (1−β) β^(T−t) / (1−β^T), and reports B = ŷ / x̂.

When x̂ ≤ 0 the signal |G|² is below what the measurements resolve: B is not estimated
(``noise_scale`` is NaN) but it *exceeds* what this batch can resolve, and a lower bound
follows. Measurements at different steps use different batches, so they are independent
and Var x̂ = Σ_t w_t² s_t² (kept as an EMA with decay β² and weight (1−β)², divided by
(1−β^T)²). With z = 1.96 one-sided for each of the two limits (a joint level ≥ 95% by
Bonferroni),

    noise_scale_lower = max(ŷ − z SE(ŷ), 0) / (x̂ + z SE(x̂))    when x̂ + z SE(x̂) > 0,

and NaN where no bound follows (no standard error, or a non-positive upper limit). It is
recorded at every measurement, also when B is finite (then it is B's lower confidence limit).
"""

from __future__ import annotations

import math

from sgdlab.measure.noise import NoiseScaleEstimator

#: one-sided normal quantile for each of the two confidence limits of the bound
Z = 1.96

#: the reason recorded with a NaN noise scale
NAN_REASON = (
    "noise_scale is NaN while the bias-corrected |G|² estimate is ≤ 0: the gradient signal is "
    "below the noise at this batch, i.e. the noise scale exceeds what this batch can resolve "
    "(not that the batch is near it); noise_scale_lower is a 95% lower bound where one "
    "follows. Measure more steps or larger batches to resolve it"
)


class ScaleTracker:
    """:class:`NoiseScaleEstimator` plus the EMAs of the squared standard errors."""

    def __init__(self, beta: float) -> None:
        self.estimator = NoiseScaleEstimator(beta=beta)
        self.beta = beta
        self._var_g2 = 0.0
        self._var_tr = 0.0

    def update(
        self, small: float, big: float, b_small: float, b_big: float, g2_se: float, tr_se: float
    ) -> None:
        """One two-batch pair and the standard errors of its |G|² and tr Σ estimates."""
        self.estimator.update(small, big, b_small, b_big)
        b = self.beta
        self._var_g2 = b * b * self._var_g2 + (1 - b) ** 2 * g2_se * g2_se
        self._var_tr = b * b * self._var_tr + (1 - b) ** 2 * tr_se * tr_se

    @property
    def value(self) -> float:
        """B = EMA(tr Σ)/EMA(|G|²); NaN while EMA(|G|²) ≤ 0 (see :data:`NAN_REASON`)."""
        scale = self.estimator.b_simple
        return scale if math.isfinite(scale) else math.nan

    @property
    def lower(self) -> float:
        """The lower bound of the module docstring (NaN where none follows)."""
        t = self.estimator.steps
        if t == 0:
            return math.nan
        corr = (1 - self.beta**t) ** 2
        se_g2 = math.sqrt(self._var_g2 / corr)
        se_tr = math.sqrt(self._var_tr / corr)
        upper = self.estimator.grad_norm_sq + Z * se_g2
        low_tr = max(self.estimator.trace_cov - Z * se_tr, 0.0)
        if not (math.isfinite(upper) and math.isfinite(low_tr)) or upper <= 0:
            return math.nan
        return low_tr / upper
