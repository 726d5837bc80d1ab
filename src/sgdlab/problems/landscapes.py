"""Low-dimensional landscapes U(w) with additive Gaussian gradient noise.

Every landscape is a population problem with per-sample loss

    f(w; ξ) = U(w) + ξᵀw,    ξ ~ N(0, σ² I_d),

so F = E f = U, ∇f = ∇U(w) + ξ, Σ(w) = σ² I for every w, and a minibatch of b samples
has gradient noise of covariance σ²/b · I. Batches are ``x = ξ [K, b, d]`` (``y`` is a
dummy of zeros). Each landscape gives U, ∇U and ∇²U in closed form and lists its critical
points (:meth:`Landscape.critical_points`, each with value, Hessian and kind); w* is the
global minimiser (ties: the lexicographically largest point) and F* = U(w*).

Landscapes (``dim`` 1 or 2 for the first three: in 2-D a confining ½k w₂² is added, so a
1-D maximum becomes a saddle):

* ``double_well``: U = h (w₁² − 1)². Minima w₁ = ±1 (U = 0, U'' = 8h), maximum w₁ = 0
  (U = h, U'' = −4h): barrier height h.
* ``tilted_double_well``: U = h (w₁² − 1)² + c w₁. Critical points solve
  4h w³ − 4h w + c = 0 (three real roots when |c| < 8h/(3√3)); they are found numerically
  (bracketing on a grid, then Brent's method). For c > 0 the left minimum is global.
* ``two_basin``: U = −Σ_m D_m exp(−κ_m (w₁ − a_m)² / (2 D_m)) + ½ c_conf w₁². Each
  Gaussian well alone has its minimum at a_m with depth D_m and curvature exactly κ_m; the
  wells overlap, so the true minima (and the barrier between them) are found numerically
  and reported with their exact U and U''. Default: a sharp well (κ = 20) at −1 and a flat
  one (κ = 2) at +1.5, equal depths 1.
* ``saddle``: U = ½ λ x² + γ (−½ y² + y⁴/(4m²)) in 2-D. Strict saddle at 0 with Hessian
  diag(λ, −γ); minima (0, ±m) with U = −γm²/4 and Hessian diag(λ, 2γ). Bounded below.
* ``anharmonic`` (½κw₁² + ¼βw₁⁴) and ``piecewise_two_basin`` (two parabolas joined at a
  cusp, closed-form Gibbs basin masses): see :mod:`sgdlab.problems.basin_landscapes`.
* ``rastrigin``: U = A d + Σ_i (w_i² − A cos 2πw_i) in d dimensions. Global minimum 0 at
  w = 0 with Hessian (2 + 4π²A) I; local minima near the integer lattice. Critical points
  are listed on the box [−extent, extent]^d (products of the 1-D roots, at most 4096).

Initial point of a chain: ``start`` (a landscape-specific default: a non-global or the
first minimum, the saddle, …) plus ``init_scale`` · z with z ~ N(0, I_d) from the ``init``
stream (no jitter when that source is off).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from sgdlab.errors import ConfigError
from sgdlab.problems import basin_landscapes  # noqa: F401  (registers anharmonic, piecewise_two_basin)
from sgdlab.problems.landscape_base import (
    _MAX_POINTS,
    CriticalPoint,
    Landscape,
    LandscapeParams,
    ProfileParams,
    _Positive,
    _Profile,
    _roots_1d,
)
from sgdlab.problems.registry import register
from sgdlab.rng import Streams


class DoubleWellParams(ProfileParams):
    h: float = Field(1.0, gt=0, description="barrier height h: U = h(w₁²−1)²")


@register
class DoubleWell(_Profile):
    name = "double_well"
    Params = DoubleWellParams
    summary = "h(w₁²−1)² (+½k w₂²) + ξᵀw: symmetric minima ±1, barrier h"

    def __init__(self, params: DoubleWellParams, streams: Streams, dtype: torch.dtype) -> None:
        super().__init__(params, streams, dtype)
        self._setup(params.dim)

    def u(self, t: Tensor) -> Tensor:
        return self.params.h * (t * t - 1) ** 2

    def du(self, t: Tensor) -> Tensor:
        return 4 * self.params.h * t * (t * t - 1)

    def d2u(self, t: Tensor) -> Tensor:
        return self.params.h * (12 * t * t - 4)

    def roots(self) -> list[float]:
        return [-1.0, 0.0, 1.0]


class TiltedDoubleWellParams(DoubleWellParams):
    c: float = Field(0.25, description="tilt c: U = h(w₁²−1)² + c·w₁")


@register
class TiltedDoubleWell(DoubleWell):
    name = "tilted_double_well"
    Params = TiltedDoubleWellParams
    summary = "h(w₁²−1)² + c·w₁ (+½k w₂²) + ξᵀw: metastable and global minima found numerically"

    def u(self, t: Tensor) -> Tensor:
        return super().u(t) + self.params.c * t

    def du(self, t: Tensor) -> Tensor:
        return super().du(t) + self.params.c

    def roots(self) -> list[float]:
        h, c = self.params.h, self.params.c
        bound = 1.0 + max(1.0, abs(c) / (4 * h)) + 0.1  # Cauchy bound on the cubic's roots
        return self._numeric_roots(-bound, bound, 1e-3)

    def default_start(self) -> Tensor:
        mins = self.minima()
        glob = self._global()
        other = [m for m in mins if not torch.equal(m.w, glob.w)]
        return (other or [glob])[0].w


class TwoBasinParams(ProfileParams):
    depths: list[_Positive] = Field([1.0, 1.0], description="well depths D_m (first: sharp)")
    curvatures: list[_Positive] = Field(
        [20.0, 2.0], description="curvatures κ_m at the centres (same length as depths)"
    )
    centers: list[float] = Field([-1.0, 1.5], description="well centres a_m (same length)")
    confine: float = Field(0.0, ge=0, description="optional ½·confine·w₁² keeping chains near")


@register
class TwoBasin(_Profile):
    name = "two_basin"
    Params = TwoBasinParams
    summary = "−Σ D exp(−κ(w₁−a)²/(2D)) + ξᵀw: a sharp and a flat minimum (flat-vs-sharp, escape)"

    def __init__(self, params: TwoBasinParams, streams: Streams, dtype: torch.dtype) -> None:
        super().__init__(params, streams, dtype)
        m = len(params.depths)
        for field in ("depths", "curvatures", "centers"):
            if len(getattr(params, field)) != m or m == 0:
                raise ConfigError(
                    f"problem.{field}", "depths, curvatures and centers need one value per well"
                )
        self._D = torch.tensor(params.depths, dtype=torch.float64)
        self._kappa = torch.tensor(params.curvatures, dtype=torch.float64)
        self._a = torch.tensor(params.centers, dtype=torch.float64)
        self._setup(params.dim)

    def _wells(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """(t − a_m) and D_m exp(…), shapes ``[*t, m]``."""
        D, kappa, a = self._D.to(t), self._kappa.to(t), self._a.to(t)
        s = t.unsqueeze(-1) - a
        return s, D * torch.exp(-kappa * s * s / (2 * D))

    def u(self, t: Tensor) -> Tensor:
        _, e = self._wells(t)
        return -e.sum(-1) + 0.5 * self.params.confine * t * t

    def du(self, t: Tensor) -> Tensor:
        s, e = self._wells(t)
        r = self._kappa.to(t) / self._D.to(t)
        return (r * s * e).sum(-1) + self.params.confine * t

    def d2u(self, t: Tensor) -> Tensor:
        s, e = self._wells(t)
        r = self._kappa.to(t) / self._D.to(t)
        return (r * e * (1 - r * s * s)).sum(-1) + self.params.confine

    def roots(self) -> list[float]:
        width = float((self._D / self._kappa).sqrt().max())
        narrow = float((self._D / self._kappa).sqrt().min())
        lo = min(float(self._a.min()), 0.0) - 8 * width
        hi = max(float(self._a.max()), 0.0) + 8 * width
        return self._numeric_roots(lo, hi, narrow / 50)

    def default_start(self) -> Tensor:
        """The minimum nearest the first centre (by default the sharp well)."""
        a0 = float(self._a[0])
        return min(self.minima(), key=lambda c: abs(float(c.w[0]) - a0)).w


# --------------------------------------------------------------------------- saddle
class SaddleParams(LandscapeParams):
    curvature_x: float = Field(1.0, gt=0, description="λ: curvature along x")
    negative_curvature: float = Field(1.0, gt=0, description="γ: −γ is the curvature along y at 0")
    minima_y: float = Field(1.0, gt=0, description="m: the minima sit at (0, ±m)")


@register
class Saddle(Landscape):
    name = "saddle"
    Params = SaddleParams
    summary = "½λx² + γ(−½y² + y⁴/(4m²)) + ξᵀw: strict saddle at 0, minima (0, ±m)"

    def __init__(self, params: SaddleParams, streams: Streams, dtype: torch.dtype) -> None:
        super().__init__(params, streams, dtype)
        p = params
        self.lam, self.gamma, self.m = p.curvature_x, p.negative_curvature, p.minima_y
        self._setup(2)

    def potential(self, W: Tensor) -> Tensor:
        x, y = W[:, 0], W[:, 1]
        return 0.5 * self.lam * x * x + self.gamma * (-0.5 * y * y + y**4 / (4 * self.m**2))

    def potential_grad(self, W: Tensor) -> Tensor:
        x, y = W[:, 0], W[:, 1]
        return torch.stack([self.lam * x, self.gamma * (-y + y**3 / self.m**2)], dim=1)

    def potential_hessian(self, w: Tensor) -> Tensor:
        hy = self.gamma * (-1 + 3 * w[1] ** 2 / self.m**2)
        return torch.diag(
            torch.stack([torch.as_tensor(self.lam, dtype=w.dtype, device=w.device), hy])
        )

    def critical_points(self) -> list[CriticalPoint]:
        pts = [(0.0, -self.m), (0.0, 0.0), (0.0, self.m)]
        return [self._point(torch.tensor(p, dtype=torch.float64)) for p in pts]

    def default_start(self) -> Tensor:
        return torch.zeros(2, dtype=torch.float64)


# ------------------------------------------------------------------------ rastrigin
class RastriginParams(LandscapeParams):
    dim: int = Field(2, gt=0, description="dimension d")
    A: float = Field(10.0, gt=0, description="amplitude A of the cosine ripples")
    extent: float = Field(
        5.12, gt=0, description="critical points are listed on [−extent, extent]^d"
    )


@register
class Rastrigin(Landscape):
    name = "rastrigin"
    Params = RastriginParams
    summary = "A·d + Σ(w_i² − A cos 2πw_i) + ξᵀw: many local minima, global minimum 0 at 0"

    def __init__(self, params: RastriginParams, streams: Streams, dtype: torch.dtype) -> None:
        super().__init__(params, streams, dtype)
        self.A = params.A
        self._setup(params.dim)

    def potential(self, W: Tensor) -> Tensor:
        return self.A * self.dim + (W * W - self.A * torch.cos(2 * math.pi * W)).sum(-1)

    def potential_grad(self, W: Tensor) -> Tensor:
        return 2 * W + 2 * math.pi * self.A * torch.sin(2 * math.pi * W)

    def potential_hessian(self, w: Tensor) -> Tensor:
        return torch.diag(2 + 4 * math.pi**2 * self.A * torch.cos(2 * math.pi * w))

    def roots_1d(self) -> list[float]:
        """Critical points of one coordinate's term w² − A cos 2πw on [−extent, extent]."""

        def g(t: np.ndarray) -> np.ndarray:
            return 2 * t + 2 * np.pi * self.A * np.sin(2 * np.pi * t)

        def dg(t: np.ndarray) -> np.ndarray:
            return 2 + 4 * np.pi**2 * self.A * np.cos(2 * np.pi * t)

        e = self.params.extent
        return _roots_1d(g, dg, -e, e, 1e-3)

    def critical_points(self) -> list[CriticalPoint]:
        roots = self.roots_1d()
        return self._products(roots)

    def minima(self) -> list[CriticalPoint]:
        roots = [
            r
            for r in self.roots_1d()
            if 2 + 4 * math.pi**2 * self.A * math.cos(2 * math.pi * r) > 0
        ]
        return self._products(roots)

    def _products(self, roots: list[float]) -> list[CriticalPoint]:
        if len(roots) ** self.dim > _MAX_POINTS:
            raise ValueError(
                f"{len(roots)}^{self.dim} critical points exceed {_MAX_POINTS}: lower "
                "problem.extent or use roots_1d() (the landscape is separable)"
            )
        return [
            self._point(torch.tensor(p, dtype=torch.float64))
            for p in itertools.product(roots, repeat=self.dim)
        ]

    @property
    def w_star(self) -> Tensor:
        return torch.zeros(self.dim, dtype=self.dtype)

    @property
    def f_star(self) -> float:
        return 0.0

    def default_start(self) -> Tensor:
        return torch.full((self.dim,), 3.0, dtype=torch.float64)
