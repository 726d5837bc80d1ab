"""Hessian eigenvalue density by stochastic Lanczos quadrature (SLQ).

The spectral density φ(t) = (1/d) Σ_i δ(t − λ_i) is smoothed with a Gaussian kernel g_σ and
estimated as in Ghorbani, Krishnan & Xiao (2019, §2; Golub & Meurant 2010, ch. 6, 11):
for each of R runs draw a random unit vector v (Gaussian, from ``generator``), run m Lanczos
steps (full reorthogonalization) from v, and take the eigenvalues θ_j (nodes) and squared first
components τ_j = (e_1ᵀ s_j)² (weights, Σ_j τ_j = 1) of T_m. Then

    vᵀ f(H) v ≈ Σ_j τ_j f(θ_j)       (Gauss quadrature, exact for polynomials of degree ≤ 2m−1),
    φ_σ(t) ≈ (1/R) Σ_runs Σ_j τ_j g_σ(t − θ_j),   g_σ(x) = exp(−x²/2σ²) / (σ√(2π)),

since E_v[vᵀ f(H) v] = tr f(H)/d for a uniformly random unit vector. So d·(1/R)Σ τθ is an
estimate of tr H. σ defaults to ``sigma_frac`` times the spread of the nodes. A run that breaks
down (invariant Krylov space) stops early: its quadrature is then exact with fewer nodes;
missing nodes are stored with weight 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal
from torch import Tensor

from sgdlab.measure.curvature.eigs import lanczos_tridiagonal, random_unit_vector
from sgdlab.measure.curvature.hvp import HvpMethod, LossFn, Mode, hessian_operator
from sgdlab.rng import as_generator


@dataclass(frozen=True)
class SpectralDensity:
    """A smoothed spectral density and its quadrature nodes.

    Attributes:
        grid: points t ``[n_grid]``; density: φ_σ(t) ``[n_grid]`` (integrates to ≈ 1).
        nodes, weights: Ritz values θ and weights τ per run, ``[R, m]`` (padding has τ = 0).
        sigma: kernel width σ; dim: d; n_hvp: Hessian-vector products used.
    """

    grid: np.ndarray
    density: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    sigma: float
    dim: int
    n_hvp: int

    def moment(self, p: int) -> float:
        """Quadrature estimate of tr(H^p)/d: the mean over runs of Σ_j τ_j θ_j^p."""
        return float(np.mean(np.sum(self.weights * self.nodes**p, axis=1)))

    @property
    def trace(self) -> float:
        """SLQ estimate of tr H = d · moment(1)."""
        return self.dim * self.moment(1)


def gaussian_density(
    grid: np.ndarray, nodes: np.ndarray, weights: np.ndarray, sigma: float
) -> np.ndarray:
    """(1/R) Σ_runs Σ_j τ_j g_σ(t − θ_j) on ``grid``."""
    diff = grid[:, None] - nodes.reshape(-1)[None, :]
    kern = np.exp(-0.5 * (diff / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
    return kern @ weights.reshape(-1) / nodes.shape[0]


def spectral_density(
    model: Any,
    loss_fn: LossFn | None = None,
    inputs: Tensor | None = None,
    targets: Tensor | None = None,
    *,
    n_runs: int = 10,
    n_iter: int = 80,
    n_grid: int = 1000,
    sigma: float | None = None,
    sigma_frac: float = 0.01,
    grid: np.ndarray | None = None,
    generator: torch.Generator | int = 0,
    dim: int | None = None,
    chunk_size: int | None = None,
    mode: Mode = "auto",
    method: HvpMethod = "double_backward",
) -> SpectralDensity:
    """Gaussian-smoothed Hessian eigenvalue density by SLQ (see the module docstring).

    Args:
        model: an ``nn.Module`` with ``loss_fn``, ``inputs``, ``targets``, or anything
            :func:`~sgdlab.measure.curvature.hvp.hessian_operator` accepts.
        n_runs: R independent Lanczos runs; n_iter: m steps per run (≤ d). Cost: R·m HVPs.
        sigma: kernel width; default ``sigma_frac`` × (max node − min node).
        grid: evaluation points; default ``n_grid`` points over the node range ± 5σ.
        generator: start vectors: a generator, or an int seed (default 0).

    Example:
        >>> H = torch.diag(torch.arange(1.0, 6.0, dtype=torch.float64))
        >>> round(spectral_density(H, n_runs=2, n_iter=5).trace, 6) > 0
        True
    """
    op = hessian_operator(
        model, loss_fn, inputs, targets, dim=dim, chunk_size=chunk_size, mode=mode, method=method
    )
    generator = as_generator(generator)
    start = op.n_hvp
    m = min(n_iter, op.dim)
    nodes = np.zeros((n_runs, m))
    weights = np.zeros((n_runs, m))
    for run in range(n_runs):
        v = random_unit_vector(op.dim, op.dtype, op.device, generator)
        alpha, beta, _ = lanczos_tridiagonal(op.matvec, v, m, restart=False)
        if len(alpha) == 1:
            theta, S = alpha, np.ones((1, 1))
        else:
            theta, S = eigh_tridiagonal(alpha, beta[:-1])
        nodes[run, : len(theta)] = theta
        weights[run, : len(theta)] = S[0] ** 2
    used = weights > 0
    lo, hi = float(nodes[used].min()), float(nodes[used].max())
    if sigma is None:
        sigma = sigma_frac * max(hi - lo, 1e-12 * max(abs(lo), abs(hi), 1.0))
    if grid is None:
        grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, n_grid)
    grid = np.asarray(grid, dtype=np.float64)
    return SpectralDensity(
        grid=grid,
        density=gaussian_density(grid, nodes, weights, sigma),
        nodes=nodes,
        weights=weights,
        sigma=float(sigma),
        dim=op.dim,
        n_hvp=op.n_hvp - start,
    )
