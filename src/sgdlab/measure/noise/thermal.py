"""Effective temperature of SGD and the 1-D stationary variance it predicts.

Convention (overdamped Langevin): dw = −∇F(w) dt + √(2T) dW, whose stationary density is
p(w) ∝ exp(−F(w)/T). SGD, w ← w − η (∇F + ζ) with minibatch noise Cov ζ = Σ/b (batch b with
replacement, mean-reduced loss, Σ the per-sample gradient covariance), is an Euler–Maruyama
step of length dt = η of that SDE when the injected variance matches, η² Σ/b = 2 T η I, so
with the isotropic average σ² = tr Σ / d,

    T ≈ η · (tr Σ / d) / (2 b),

and under heavy-ball momentum m the effective step is η / (1 − m). Without replacement from N
samples Σ/b becomes Σ/b · (N − b)/(N − 1). References: Mandt, Hoffman & Blei 2017
("Stochastic Gradient Descent as Approximate Bayesian Inference"), Jastrzębski et al. 2017
("Three Factors Influencing Minima in SGD"). The approximation holds for small η·curvature;
the exact stationary variance of SGD on a 1-D quadratic is
:func:`sgd_stationary_variance_1d`, which tends to T/a as η → 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from sgdlab.measure.noise.stats import NoiseStats
from sgdlab.theory.langevin import sgd_temperature

CONVENTION = "dw = -grad F dt + sqrt(2T) dW, p(w) ∝ exp(-F/T); T = lr/(1-m) * (tr Σ/d) / (2b)"


@dataclass(frozen=True)
class TemperatureResult:
    """Temperature of the whole model and of each module (its trace and parameter count)."""

    value: float
    per_layer: dict[str, float]
    lr_effective: float
    batch_size: int
    dim: int
    convention: str = CONVENTION


def temperature(
    lr: float,
    batch_size: int,
    noise: NoiseStats | float,
    momentum: float = 0.0,
    dim: int | None = None,
    replacement: bool = True,
) -> float | TemperatureResult:
    """T = η/(1 − m) · tr Cov(g_b) / (2 d), with tr Cov(g_b) = tr Σ / b (see module docstring).

    Args:
        lr: step size η.
        batch_size: minibatch size b.
        noise: a :class:`~sgdlab.measure.noise.stats.NoiseStats` (uses its unbiased
            ``trace_sigma`` and finite-population formulas) or the value of tr Σ.
        momentum: heavy-ball momentum m in [0, 1).
        dim: d, the number of parameters; required with a float ``noise``, defaults to the
            measured parameter count with a ``NoiseStats``.
        replacement: minibatches drawn with replacement (else the finite-population factor
            (N − b)/(N − 1) of ``noise.population``).

    Returns:
        A float for a float ``noise``; a :class:`TemperatureResult` (total and per module)
        for a ``NoiseStats``.

    Example:
        >>> temperature(0.1, 10, 4.0, dim=2)  # 0.1 * (4/2) / 20
        0.01
    """
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    if batch_size < 1:
        raise ValueError("batch_size must be ≥ 1")
    lr_eff = lr / (1.0 - momentum)
    if not isinstance(noise, NoiseStats):
        if dim is None:
            raise ValueError("dim is required when noise is a tr Σ value")
        if not replacement:
            raise ValueError("sampling without replacement needs a NoiseStats with population")
        return sgd_temperature(lr, float(noise), batch_size, dim, momentum=momentum)
    d = dim or noise.num_params
    var_b = noise.minibatch_variance(batch_size, replacement)
    # each module: its own share of tr Cov(g_b), averaged over its own parameters
    share = var_b / noise.trace_cov if noise.trace_cov > 0 else 0.0
    per_layer = {
        name: lr_eff * layer.trace_cov * share / layer.num_params / 2
        for name, layer in noise.layers.items()
    }
    return TemperatureResult(
        value=lr_eff * var_b / d / 2,
        per_layer=per_layer,
        lr_effective=lr_eff,
        batch_size=batch_size,
        dim=d,
    )


def sgd_stationary_variance_1d(
    lr: float, batch_size: int, sigma2: float, curvature: float, momentum: float = 0.0
) -> float:
    """Exact stationary Var(w) of SGD on F(w) = a w²/2 with per-sample gradient variance σ².

    The iteration w' = (1 + m − η a) w − m w_prev − η ζ, Var ζ = σ²/b, is an AR(2) process
    with φ₁ = 1 + m − ηa, φ₂ = −m; its stationary variance is
    (1 − φ₂) s² / ((1 + φ₂)((1 − φ₂)² − φ₁²)) with s² = η²σ²/b. For m = 0 this is
    η²σ²/b / (1 − (1 − ηa)²) = ησ²/(b a (2 − ηa)) → T/a as η → 0 (T from :func:`temperature`
    with d = 1). Stable only for 0 < ηa < 2(1 + m).
    """
    a, m = curvature, momentum
    phi1, phi2 = 1.0 + m - lr * a, -m
    s2 = lr * lr * sigma2 / batch_size
    den = (1.0 + phi2) * ((1.0 - phi2) ** 2 - phi1**2)
    if not (0.0 < lr * a < 2.0 * (1.0 + m)) or den <= 0:
        raise ValueError("unstable: need 0 < lr·curvature < 2(1 + momentum)")
    return (1.0 - phi2) * s2 / den
