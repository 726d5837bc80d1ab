"""Instruments: gradient noise, noise scale, temperature, curvature, sharpness, landscapes.

Names are resolved lazily from the submodules listed in ``_EXPORTS`` so that importing
``sgdlab.measure`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> submodule of sgdlab.measure that defines it
_EXPORTS: dict[str, str] = {
    # gradient noise (per-sample statistics without per-sample backward passes)
    "PerSampleStats": "per_sample",
    "per_sample_stats": "per_sample",
    "per_sample_grads": "per_sample",
    "stats_from_grads": "per_sample",
    "NoiseStats": "noise_stats",
    "LayerNoise": "noise_stats",
    "gradient_noise": "noise_stats",
    "NoiseScaleEstimator": "noise_scale",
    "NoiseScaleState": "noise_scale",
    "two_batch_estimates": "noise_scale",
    "trace_h_sigma": "noise_scale",
    "b_noise": "noise_scale",
    "temperature": "thermal",
    "TemperatureResult": "thermal",
    "sgd_stationary_variance_1d": "thermal",
    "unbiasedness_test": "checks",
    "UnbiasednessResult": "checks",
    "gradcheck": "checks",
    "GradcheckResult": "checks",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sgdlab.measure' has no attribute {name!r}")
    return getattr(importlib.import_module(f"sgdlab.measure.{module}"), name)


def __dir__() -> list[str]:
    return sorted(_EXPORTS)


__all__ = sorted(_EXPORTS)
