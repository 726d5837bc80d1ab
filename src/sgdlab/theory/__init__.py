"""Closed forms every sgdlab study compares its measurements to.

Pure numpy/scipy functions, one topic per module:

* :mod:`~sgdlab.theory.noise_floor` — constant-step SGD on a quadratic: exact stationary
  covariance (discrete Lyapunov), noise floor, exact transient, heavy-ball momentum, the
  Bottou–Curtis–Nocedal Theorem 4.6 bound.
* :mod:`~sgdlab.theory.rates` — BCN Theorem 4.7 (O(1/k)), exact expected suboptimality
  under any schedule, averaged SGD (O(1/√T)), GD's linear rate, log-log and geometric fits.
* :mod:`~sgdlab.theory.langevin` — Gibbs density, OU covariance, Kramers rate, exact mean
  first-passage time, SGD temperature, Laplace (flat-minimum) occupancy ratio.
* :mod:`~sgdlab.theory.batch_size` — minibatch variance, noise scales, critical batch size
  and the McCandlish fit S = S_min(1 + B_crit/b), learning-rate scaling rules and the batch
  where a scaled step diverges.
* :mod:`~sgdlab.theory.target_steps` — exact steps to a target on the noisy quadratic for a
  constant step (tuned over a grid) and for McCandlish's greedy step; first passage of a
  recorded curve; noise scales along a path.
* :mod:`~sgdlab.theory.escape` — strict-saddle escape times of GD and SGD.
* :mod:`~sgdlab.theory.discrete_chain` — the 1-D SGD chain at a finite step size on a grid:
  its exact stationary law, laws at any step, and first-passage times (mean, survival,
  observed every e steps) — the references where η is not small.
* :mod:`~sgdlab.theory.basins` — Gibbs basin masses (quadrature; closed form for two
  parabolas at a cusp), Kramers' escape time, the Arrhenius slope.
* :mod:`~sgdlab.theory.linear_regression` — exact second moments of SGD on Gaussian linear
  regression (state-dependent noise), its stationary covariance against the SDE's Lyapunov
  solution and the Gibbs law.
* :mod:`~sgdlab.theory.quadratic_forms` — Imhof's law of Gaussian quadratic forms; the exact
  stationary probability that an SGD step increases F.

Conventions (stated again in each module): mean-reduced loss; minibatch gradient noise
covariance C/b with replacement, C/b·(N − b)/(N − 1) without; temperature of
dw = −∇F dt + √(2T) dW (density ∝ exp(−F/T)), SGD T ≈ ησ²/(2b); momentum m: η/(1 − m).
"""

from sgdlab.theory._common import finite_population_factor
from sgdlab.theory.basins import (
    arrhenius_slope,
    gibbs_basin_mass,
    kramers_escape_time,
    piecewise_quadratic_gibbs_masses,
)
from sgdlab.theory.batch_size import (
    CriticalBatchFit,
    b_noise,
    b_simple,
    critical_batch_size,
    divergence_batch_size,
    eps_max,
    examples_to_target,
    expected_improvement,
    fit_critical_batch,
    minibatch_noise_trace,
    optimal_improvement,
    optimal_step,
    scale_learning_rate,
    steps_to_target,
    tradeoff_residual,
)
from sgdlab.theory.discrete_chain import (
    ChainLaw,
    FirstPassage,
    SGDChain1D,
    check_temperature,
    sgd_chain_1d,
)
from sgdlab.theory.escape import (
    gd_saddle_escape_steps,
    saddle_unstable_second_moment,
    sgd_saddle_escape_steps,
)
from sgdlab.theory.langevin import (
    GibbsDensity,
    gibbs_density,
    kramers_rate,
    laplace_occupancy_ratio,
    mean_first_passage_time,
    ou_isotropic_covariance,
    ou_stationary_covariance,
    sgd_sde_covariance,
    sgd_temperature,
)
from sgdlab.theory.linear_regression import (
    linreg_gibbs,
    linreg_lyapunov,
    linreg_sgd_second_moments,
    linreg_sgd_stationary,
    shape_ratio,
)
from sgdlab.theory.noise_floor import (
    BCNConstants,
    bcn_constants_quadratic,
    bcn_fixed_step_bound,
    bcn_fixed_step_limit,
    momentum_stationary_covariance,
    momentum_stationary_excess_loss,
    momentum_stationary_excess_loss_eig,
    sgd_stationary_covariance,
    sgd_stationary_excess_loss,
    sgd_stationary_excess_loss_eig,
    sgd_stationary_variance_eig,
    sgd_transient_excess_loss,
    sgd_transient_excess_loss_eig,
    small_eta_noise_floor,
    stability_threshold,
)
from sgdlab.theory.quadratic_forms import (
    quadratic_form_exceedance,
    sgd_increase_matrix,
    sgd_increase_probability,
)
from sgdlab.theory.rates import (
    RateFit,
    SlopeFit,
    averaged_sgd_bound,
    averaged_sgd_optimal_constant_step,
    bcn_diminishing_bound,
    bcn_diminishing_nu,
    bcn_diminishing_schedule,
    expected_suboptimality_averaged_quadratic,
    expected_suboptimality_quadratic,
    fit_geometric_rate,
    fit_loglog_slope,
    gd_contraction_factor,
    gd_quadratic_bound,
    gd_strongly_convex_bound,
    quadratic_moments,
    uniform_average_bound,
)
from sgdlab.theory.target_steps import (
    TunedSteps,
    constant_step_suboptimality,
    first_passage,
    greedy_schedule,
    greedy_steps_to_target,
    path_noise_scales,
    tuned_steps_to_target,
)

__all__ = [
    "BCNConstants",
    "ChainLaw",
    "CriticalBatchFit",
    "FirstPassage",
    "GibbsDensity",
    "RateFit",
    "SGDChain1D",
    "SlopeFit",
    "TunedSteps",
    "arrhenius_slope",
    "averaged_sgd_bound",
    "averaged_sgd_optimal_constant_step",
    "b_noise",
    "b_simple",
    "bcn_constants_quadratic",
    "bcn_diminishing_bound",
    "bcn_diminishing_nu",
    "bcn_diminishing_schedule",
    "bcn_fixed_step_bound",
    "bcn_fixed_step_limit",
    "check_temperature",
    "constant_step_suboptimality",
    "critical_batch_size",
    "divergence_batch_size",
    "eps_max",
    "examples_to_target",
    "expected_improvement",
    "expected_suboptimality_averaged_quadratic",
    "expected_suboptimality_quadratic",
    "finite_population_factor",
    "first_passage",
    "fit_critical_batch",
    "fit_geometric_rate",
    "fit_loglog_slope",
    "gd_contraction_factor",
    "gd_quadratic_bound",
    "gd_saddle_escape_steps",
    "gd_strongly_convex_bound",
    "gibbs_basin_mass",
    "gibbs_density",
    "greedy_schedule",
    "greedy_steps_to_target",
    "kramers_escape_time",
    "kramers_rate",
    "laplace_occupancy_ratio",
    "linreg_gibbs",
    "linreg_lyapunov",
    "linreg_sgd_second_moments",
    "linreg_sgd_stationary",
    "mean_first_passage_time",
    "minibatch_noise_trace",
    "momentum_stationary_covariance",
    "momentum_stationary_excess_loss",
    "momentum_stationary_excess_loss_eig",
    "optimal_improvement",
    "optimal_step",
    "ou_isotropic_covariance",
    "ou_stationary_covariance",
    "path_noise_scales",
    "piecewise_quadratic_gibbs_masses",
    "quadratic_form_exceedance",
    "quadratic_moments",
    "saddle_unstable_second_moment",
    "scale_learning_rate",
    "sgd_chain_1d",
    "sgd_increase_matrix",
    "sgd_increase_probability",
    "sgd_saddle_escape_steps",
    "sgd_sde_covariance",
    "sgd_stationary_covariance",
    "sgd_stationary_excess_loss",
    "sgd_stationary_excess_loss_eig",
    "sgd_stationary_variance_eig",
    "sgd_temperature",
    "sgd_transient_excess_loss",
    "sgd_transient_excess_loss_eig",
    "shape_ratio",
    "small_eta_noise_floor",
    "stability_threshold",
    "steps_to_target",
    "tradeoff_residual",
    "tuned_steps_to_target",
    "uniform_average_bound",
]
