"""Noise scales of a finite problem at given parameters: exact B_simple, Hutchinson B_noise.

Used by the lab's ``critical-batch`` study (along a path) and by ``sgdlab advise`` (at a stored
run's final parameters). With the N per-sample gradients g_i of the whole dataset at w
(:func:`sgdlab.problems.autodiff.per_sample_grads`), G = mean g_i and Σ their 1/N covariance:

* B_simple = tr Σ / |G|² — exact (the whole population; no sampling error);
* B_noise = tr(HΣ) / (GᵀHG) (McCandlish et al. 2018, eq. 2.7), H the Hessian of the dataset's
  mean loss: tr(HΣ) by the instrument's Hutchinson estimator
  (:func:`sgdlab.measure.noise.scale.trace_h_sigma`, Rademacher probes in sample space, each
  an independent unbiased estimate) and GᵀHG by one Hessian-vector product
  (:class:`sgdlab.measure.curvature.hvp.HessianOperator`). Undefined (NaN) where GᵀHG ≤ 0.
"""

from __future__ import annotations

import numpy as np
import torch

from sgdlab.measure.curvature.hvp import HessianOperator
from sgdlab.measure.curvature.objective import FunctionObjective
from sgdlab.measure.noise.scale import trace_h_sigma
from sgdlab.problems.autodiff import per_sample_grads
from sgdlab.problems.base import Problem


def dataset_gradients(problem: Problem, w: torch.Tensor) -> torch.Tensor:
    """The N per-sample gradients ``[N, d]`` of a finite problem at ``w`` (float64)."""
    if not problem.finite or problem.X is None:
        raise ValueError(f"problem {problem.name!r} has no finite dataset to measure over")
    return per_sample_grads(problem, w.double(), problem.X.double(), problem.y)


def simple_scale(per_sample: torch.Tensor) -> float:
    """B_simple = tr Σ / |G|² of a dataset's N per-sample gradients ``[N, d]``: Σ their 1/N
    covariance, G their mean (exact: the whole population)."""
    g = per_sample.mean(dim=0)
    return float(((per_sample - g) ** 2).sum(dim=1).mean() / (g @ g))


def noise_terms(problem: Problem, w: torch.Tensor, per_sample: torch.Tensor, probes: int,
                generator: torch.Generator) -> tuple[np.ndarray, float]:  # fmt: skip
    """``probes`` independent Hutchinson estimates of tr(HΣ) (Σ the 1/N covariance of the rows
    of ``per_sample``) and GᵀHG, H the Hessian of the dataset's mean loss at ``w``."""
    X, y, n = problem.X.double(), problem.y, int(problem.n)
    objective = FunctionObjective.from_batched(
        lambda W: problem.per_sample_loss(W, X.unsqueeze(0), y.unsqueeze(0)).mean(dim=1))
    hvp = HessianOperator.from_objective(objective, w.double())
    scale = (n - 1) / n  # trace_h_sigma uses the 1/(N−1) covariance
    values = np.array([scale * trace_h_sigma(hvp, per_sample, n_probes=1, generator=generator)
                       for _ in range(probes)])  # fmt: skip
    g = per_sample.mean(dim=0)
    return values, float(g @ hvp(g))


def chain_noise_scales(problem: Problem, W: torch.Tensor, probes: int = 8,
                       seed: int = 0) -> dict[str, np.ndarray]:  # fmt: skip
    """Per row of ``W [K, d]``: exact tr Σ and |G|², the mean of ``probes`` Hutchinson estimates
    of tr(HΣ), and GᵀHG (``{"trace_sigma", "grad_sq", "trace_h_sigma", "ghg"}``, each ``[K]``);
    the probes are drawn from a generator seeded with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, list[float]] = {"trace_sigma": [], "grad_sq": [], "trace_h_sigma": [],
                                   "ghg": []}  # fmt: skip
    for w in W:
        D = dataset_gradients(problem, w)
        g = D.mean(dim=0)
        values, ghg = noise_terms(problem, w, D, probes, gen)
        out["trace_sigma"].append(float(((D - g) ** 2).sum(dim=1).mean()))
        out["grad_sq"].append(float(g @ g))
        out["trace_h_sigma"].append(float(values.mean()))
        out["ghg"].append(ghg)
    return {k: np.array(v) for k, v in out.items()}
