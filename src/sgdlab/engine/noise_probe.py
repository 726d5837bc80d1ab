"""Gradient-noise probe of the engine: per-chain noise statistics of the minibatch.

At a recorded step t, for each chain k and its minibatch ξ_{k,1..b}, the per-sample
gradients g_i = ∇f(w_t; ξ_i) are computed for all chains at once by giving every sample its
own copy of its chain's parameters (:func:`sgdlab.problems.autodiff.per_sample_gradients`:
one backward pass, no loop), and

* ``noise_trace``    tr Σ̂ = (1/(b−1)) Σ_i ‖g_i − ḡ‖²  (unbiased per-sample covariance trace),
* ``noise_grad_sq``  ‖ḡ‖² (the minibatch gradient's squared norm),
* ``noise_b_simple`` B_simple = tr Σ / (‖ḡ‖² − tr Var ḡ)  (bias-corrected |∇F|², McCandlish
  et al. 2018; NaN when the corrected norm is not positive),
* ``noise_gsnr``     mean over coordinates of ḡ_j² / v_j (GSNR, Liu et al. 2020),
* ``noise_temperature`` T = η/(1−m) · tr Var(ḡ) / (2d) (overdamped Langevin convention
  dw = −∇F dt + √(2T) dW; m is the heavy-ball momentum when the rule has one).

With independent draws (with replacement, or a population) tr Σ = tr Σ̂ and tr Var ḡ = tr Σ̂/b.
When the batch holds b distinct samples of N (without replacement, or the full data),
tr Σ = tr Σ̂ (N−1)/N for the 1/N covariance of the data and tr Var ḡ = tr Σ̂/b · (N−b)/N,
which is zero for the full batch (gradient descent has no sampling noise: T = 0).

Stochastic layers (dropout) are evaluated deterministically (``noise=None``): the probe
measures the sampling noise. The same quantities for a ``torch.nn.Module`` are computed by
:func:`sgdlab.measure.gradient_noise`; a test checks the two agree in float64.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sgdlab.problems.autodiff import per_sample_gradients
from sgdlab.problems.base import Problem
from sgdlab.theory._common import population_noise_traces
from sgdlab.theory.langevin import sgd_temperature


def noise_statistics(
    problem: Problem,
    W: Tensor,
    x: Tensor,
    y: Tensor,
    lr: Tensor,
    momentum: Tensor | float = 0.0,
    population: int | None = None,
) -> dict[str, Tensor]:
    """The probe's quantities (module docstring) per chain, each ``[K]``; ``population`` is N
    when the batch holds distinct samples of N (the sampler's ``population``)."""
    g = per_sample_gradients(problem, W, x, y).double()
    b, d = g.shape[1], g.shape[2]
    mean = g.mean(dim=1)
    dev = g - mean.unsqueeze(1)
    var = dev.pow(2).sum(dim=1) / max(1, b - 1)  # [K, d]
    trace = var.sum(dim=1)
    g2 = mean.pow(2).sum(dim=1)
    N = population
    # tr Σ of the 1/N population covariance, and tr Var(ḡ) of this batch's mean
    trace_sigma, var_mean = population_noise_traces(trace, b, N)
    corrected = g2 - var_mean
    nan = torch.full_like(trace, float("nan"))
    b_simple = torch.where(corrected > 0, trace_sigma / corrected.clamp_min(1e-300), nan)
    ratio = torch.where(var > 0, mean.pow(2) / var.clamp_min(1e-300), torch.nan)
    gsnr = torch.nanmean(ratio, dim=1)
    m = torch.as_tensor(momentum, dtype=torch.float64)
    temperature = sgd_temperature(lr.double(), trace_sigma, b, d, momentum=m, n=N)
    return {
        "noise_trace": trace,
        "noise_grad_sq": g2,
        "noise_b_simple": b_simple,
        "noise_gsnr": gsnr,
        "noise_temperature": temperature.expand_as(trace),
    }
