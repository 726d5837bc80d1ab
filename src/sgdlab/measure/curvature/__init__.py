"""Curvature, sharpness and loss-landscape instruments for any objective or model.

* :mod:`~sgdlab.measure.curvature.objective` — the objective adapters (a function of a flat
  vector, or a model and a loss on a batch);
* :mod:`~sgdlab.measure.curvature.hvp` — Hessian-vector products and the dense Hessian;
* :mod:`~sgdlab.measure.curvature.eigs` — Lanczos / power iteration for extreme eigenvalues;
* :mod:`~sgdlab.measure.curvature.trace` — Hutchinson's trace estimator with its standard error;
* :mod:`~sgdlab.measure.curvature.spectrum` — stochastic Lanczos quadrature (spectral density);
* :mod:`~sgdlab.measure.curvature.sharpness` — λ_max, tr H, ε-, ρ- and adaptive sharpness;
* :mod:`~sgdlab.measure.curvature.landscape` — 1-D/2-D slices, interpolation, filter
  normalization.
"""

from sgdlab.measure.curvature.eigs import (
    EigResult,
    hessian_eigs,
    lanczos,
    lanczos_tridiagonal,
    power_iteration,
    random_unit_vector,
)
from sgdlab.measure.curvature.hvp import HessianOperator, hessian_matrix, hessian_operator
from sgdlab.measure.curvature.landscape import (
    LossLine,
    LossSurface,
    filter_normalize,
    interpolation_slice,
    line_slice,
    loss_eigen_slice,
    loss_interpolation,
    loss_line,
    loss_surface,
    random_direction,
    surface_slice,
)
from sgdlab.measure.curvature.objective import (
    FunctionObjective,
    ModelObjective,
    as_objective,
    model_mode,
)
from sgdlab.measure.curvature.sharpness import (
    AscentResult,
    SharpnessResult,
    asam_sharpness,
    epsilon_sharpness,
    rho_sharpness,
    sharpness,
)
from sgdlab.measure.curvature.spectrum import SpectralDensity, gaussian_density, spectral_density
from sgdlab.measure.curvature.trace import TraceResult, hessian_trace, rademacher

__all__ = [
    "AscentResult",
    "EigResult",
    "FunctionObjective",
    "HessianOperator",
    "LossLine",
    "LossSurface",
    "ModelObjective",
    "SharpnessResult",
    "SpectralDensity",
    "TraceResult",
    "as_objective",
    "asam_sharpness",
    "epsilon_sharpness",
    "filter_normalize",
    "gaussian_density",
    "hessian_eigs",
    "hessian_matrix",
    "hessian_operator",
    "hessian_trace",
    "interpolation_slice",
    "lanczos",
    "lanczos_tridiagonal",
    "line_slice",
    "loss_eigen_slice",
    "loss_interpolation",
    "loss_line",
    "loss_surface",
    "model_mode",
    "power_iteration",
    "rademacher",
    "random_direction",
    "random_unit_vector",
    "rho_sharpness",
    "sharpness",
    "spectral_density",
    "surface_slice",
]
