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
    # curvature, sharpness and landscapes
    "FunctionObjective": "objective",
    "ModelObjective": "objective",
    "as_objective": "objective",
    "model_mode": "objective",
    "HessianOperator": "hvp",
    "hessian_operator": "hvp",
    "hessian_matrix": "hvp",
    "EigResult": "eigs",
    "hessian_eigs": "eigs",
    "lanczos": "eigs",
    "power_iteration": "eigs",
    "lanczos_tridiagonal": "eigs",
    "random_unit_vector": "eigs",
    "TraceResult": "trace",
    "hessian_trace": "trace",
    "rademacher": "trace",
    "SpectralDensity": "spectrum",
    "spectral_density": "spectrum",
    "gaussian_density": "spectrum",
    "SharpnessResult": "sharpness_measures",
    "AscentResult": "sharpness_measures",
    "sharpness": "sharpness_measures",
    "epsilon_sharpness": "sharpness_measures",
    "rho_sharpness": "sharpness_measures",
    "asam_sharpness": "sharpness_measures",
    "LossLine": "landscape",
    "LossSurface": "landscape",
    "filter_normalize": "landscape",
    "random_direction": "landscape",
    "line_slice": "landscape",
    "surface_slice": "landscape",
    "interpolation_slice": "landscape",
    "loss_line": "landscape",
    "loss_surface": "landscape",
    "loss_interpolation": "landscape",
    "loss_eigen_slice": "landscape",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sgdlab.measure' has no attribute {name!r}")
    return getattr(importlib.import_module(f"sgdlab.measure.{module}"), name)


def __dir__() -> list[str]:
    return sorted(_EXPORTS)


__all__ = sorted(_EXPORTS)
