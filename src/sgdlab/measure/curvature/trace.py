"""Hessian trace by Hutchinson's estimator with Rademacher probes.

For probes z with independent entries ±1 (E zzᵀ = I),

    tr H = E[zᵀ H z],      Var[zᵀ H z] = 2 Σ_{i≠j} H_ij² = 2 (‖H‖_F² − Σ_i H_ii²)

(Hutchinson 1990; Avron & Toledo 2011: Rademacher probes have the least variance among
i.i.d. probes). With m probes the estimate is the sample mean of s_i = z_iᵀ H z_i and its
standard error is the sample standard deviation over √m, SE = sd(s)/√m; the
:meth:`TraceResult.confidence_interval` is mean ± t_{m−1, (1+level)/2}·SE (Student t, as the
probe values are a sum of many terms and close to normal). A diagonal H gives zero variance:
the estimate is then exact.

Probes are drawn from an explicit ``torch.Generator`` (never torch's global RNG). Stopping:
after ``min_probes``, stop as soon as SE ≤ rel_se·|estimate| + abs_se, or at ``max_probes``.
Stopping on the estimated SE slightly lowers the coverage of the interval; pass
``rel_se=None`` for a fixed number of probes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from sgdlab.measure.curvature.hvp import HvpMethod, LossFn, Mode, hessian_operator
from sgdlab.rng import as_generator


@dataclass(frozen=True)
class TraceResult:
    """Hutchinson estimate of tr H.

    Attributes:
        estimate: mean of the probe values zᵀHz.
        stderr: sample SD of the probe values / √m (``nan`` for one probe).
        n_probes: m; n_hvp: Hessian-vector products used (= m).
        samples: the probe values zᵢᵀHzᵢ ``[m]``.
        converged: whether the standard-error target was met.
    """

    estimate: float
    stderr: float
    n_probes: int
    n_hvp: int
    samples: np.ndarray
    converged: bool

    def confidence_interval(self, level: float = 0.95) -> tuple[float, float]:
        """Student-t interval estimate ± t_{m−1}·SE at ``level``."""
        if self.n_probes < 2 or not math.isfinite(self.stderr):
            return (-math.inf, math.inf)
        half = float(stats.t.ppf(0.5 + level / 2, self.n_probes - 1)) * self.stderr
        return (self.estimate - half, self.estimate + half)


def rademacher(dim: int, generator: torch.Generator, dtype: torch.dtype = torch.float64) -> Tensor:
    """A vector of independent ±1 entries drawn from ``generator``."""
    return torch.randint(0, 2, (dim,), generator=generator).to(dtype) * 2 - 1


def hessian_trace(
    model: Any,
    loss_fn: LossFn | None = None,
    inputs: Tensor | None = None,
    targets: Tensor | None = None,
    *,
    rel_se: float | None = 1e-2,
    abs_se: float = 0.0,
    max_probes: int = 1000,
    min_probes: int = 10,
    generator: torch.Generator | int = 0,
    dim: int | None = None,
    chunk_size: int | None = None,
    mode: Mode = "auto",
    method: HvpMethod = "double_backward",
) -> TraceResult:
    """tr ∇²L by Hutchinson's estimator with Rademacher probes (see the module docstring).

    Args:
        model: an ``nn.Module`` with ``loss_fn``, ``inputs``, ``targets`` (Hessian of the
            mean loss), a :class:`~sgdlab.measure.curvature.hvp.HessianOperator`, a dense tensor
            or a matvec callable (with ``dim``).
        rel_se: stop when SE ≤ rel_se·|estimate| + abs_se (``None``: use all ``max_probes``).
        abs_se: absolute part of the target, for traces near zero.
        max_probes, min_probes: probe budget and the minimum before testing the target.
        generator: source of the probes: a generator, or an int seed (default 0).

    Example:
        >>> H = torch.diag(torch.tensor([3.0, 1.0], dtype=torch.float64))
        >>> hessian_trace(H).estimate
        4.0
    """
    op = hessian_operator(
        model, loss_fn, inputs, targets, dim=dim, chunk_size=chunk_size, mode=mode, method=method
    )
    generator = as_generator(generator)
    start = op.n_hvp
    samples: list[float] = []
    converged = False
    se = math.nan
    for m in range(1, max_probes + 1):
        z = rademacher(op.dim, generator, op.dtype).to(op.device)
        samples.append(float(z @ op.matvec(z)))
        if m >= 2:
            se = float(np.std(samples, ddof=1)) / math.sqrt(m)
        if rel_se is not None and m >= max(min_probes, 2):
            if se <= rel_se * abs(float(np.mean(samples))) + abs_se:
                converged = True
                break
    arr = np.asarray(samples)
    return TraceResult(
        estimate=float(arr.mean()),
        stderr=se,
        n_probes=len(arr),
        n_hvp=op.n_hvp - start,
        samples=arr,
        converged=converged,
    )
