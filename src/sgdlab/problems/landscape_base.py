"""Shared machinery of the low-dimensional landscapes (see :mod:`sgdlab.problems.landscapes`).

A landscape is a population problem f(w; ξ) = U(w) + ξᵀw, ξ ~ N(0, σ² I); subclasses give U,
∇U, ∇²U and their critical points. :class:`_Profile` builds 1-D profiles (with an optional
confining ½k w₂² in 2-D) whose critical points are found by bracketing and Brent's method.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import Field
from scipy.optimize import brentq
from torch import Tensor

from sgdlab.errors import ConfigError
from sgdlab.problems.base import PerSampleLossModule, Problem, ProblemParams, mean_of_outputs

_MAX_POINTS = 4096
_Positive = Annotated[float, Field(gt=0)]


@dataclass(frozen=True)
class CriticalPoint:
    """A point with ∇U = 0: location ``w [d]``, value U(w), Hessian ``[d, d]`` and kind
    (``"minimum"``, ``"saddle"``, ``"maximum"`` or ``"degenerate"``; float64)."""

    w: Tensor
    value: float
    hessian: Tensor
    kind: str

    @property
    def index(self) -> int:
        """Number of negative Hessian eigenvalues (0 at a minimum, 1 at a simple saddle)."""
        return int((torch.linalg.eigvalsh(self.hessian) < 0).sum())


def _kind(H: Tensor) -> str:
    ev = torch.linalg.eigvalsh(H)
    scale = float(ev.abs().max()) or 1.0
    if bool((ev.abs() <= 1e-12 * scale).any()):
        return "degenerate"
    if bool((ev > 0).all()):
        return "minimum"
    if bool((ev < 0).all()):
        return "maximum"
    return "saddle"


class LandscapeParams(ProblemParams):
    noise_std: float = Field(1.0, ge=0, description="σ: per-sample gradient noise ξ ~ N(0, σ²I)")
    start: list[float] | None = Field(None, description="starting point (default per landscape)")
    init_scale: float = Field(0.0, ge=0, description="jitter: w0 = start + init_scale·N(0, I)")


class Landscape(Problem):
    """Base of the landscapes: f(w; ξ) = U(w) + ξᵀw with closed-form U, ∇U, ∇²U."""

    n = None

    def _setup(self, dim: int) -> None:
        self.dim = dim
        self.sigma = float(self.params.noise_std)
        start = self.params.start
        if start is None:
            self.start = self.default_start().to(self.dtype)
        else:
            if len(start) != dim:
                raise ConfigError("problem.start", f"needs {dim} coordinates, got {len(start)}")
            self.start = torch.tensor(start, dtype=self.dtype)

    # ------------------------------------------------------------- to implement
    @abstractmethod
    def potential(self, W: Tensor) -> Tensor:
        """U(W_k) ``[K]``."""

    @abstractmethod
    def potential_grad(self, W: Tensor) -> Tensor:
        """∇U(W_k) ``[K, d]``."""

    @abstractmethod
    def potential_hessian(self, w: Tensor) -> Tensor:
        """∇²U(w) ``[d, d]``."""

    @abstractmethod
    def critical_points(self) -> list[CriticalPoint]:
        """All critical points (in a documented region), float64."""

    def default_start(self) -> Tensor:
        return self.minima()[0].w

    # ------------------------------------------------------------------ shared
    def _point(self, w: Tensor) -> CriticalPoint:
        w = w.to(torch.float64)
        H = self.potential_hessian(w)
        return CriticalPoint(w, float(self.potential(w.unsqueeze(0))[0]), H, _kind(H))

    def minima(self) -> list[CriticalPoint]:
        """The local minima among :meth:`critical_points`, in their listed order."""
        return [c for c in self.critical_points() if c.kind == "minimum"]

    def _global(self) -> CriticalPoint:
        return min(self.minima(), key=lambda c: (round(c.value, 12), tuple((-c.w).tolist())))

    def sample(self, generator: torch.Generator, count: int) -> tuple[Tensor, Tensor]:
        dev = generator.device
        xi = self.sigma * torch.randn(
            count, self.dim, generator=generator, dtype=self.dtype, device=dev
        )
        return xi, torch.zeros(count, dtype=self.dtype, device=dev)

    def per_sample_loss(
        self, W: Tensor, x: Tensor, y: Tensor, noise: dict[str, Tensor] | None = None
    ) -> Tensor:
        return self.potential(W).unsqueeze(1) + torch.einsum("kbd,kd->kb", x, W)

    @property
    def random_init(self) -> bool:
        return self.params.init_scale > 0

    def init_params(self, generator: torch.Generator | None) -> Tensor:
        w0 = self.start.clone()
        if generator is not None and self.params.init_scale > 0:
            z = torch.randn(self.dim, generator=generator, dtype=self.dtype)
            w0 = w0 + self.params.init_scale * z
        return w0

    def closed_objective(self, W: Tensor) -> Tensor:
        return self.potential(W)

    def grad_F(self, W: Tensor) -> Tensor:
        return self.potential_grad(W)

    def hessian(self, w: Tensor) -> Tensor:
        return self.potential_hessian(w)

    def grad_cov(self, w: Tensor) -> Tensor:
        return self.sigma**2 * torch.eye(self.dim, dtype=w.dtype, device=w.device)

    @property
    def w_star(self) -> Tensor:
        return self._global().w.to(self.dtype)

    @property
    def f_star(self) -> float:
        return self._global().value

    def to_module(self, w: Tensor) -> tuple[torch.nn.Module, object]:
        return PerSampleLossModule(self, w), mean_of_outputs


# ----------------------------------------------------------- 1-D profiles (+ ½k w₂²)
class ProfileParams(LandscapeParams):
    dim: Literal[1, 2] = Field(1, description="1, or 2 with a confining ½k w₂²")
    k: float = Field(1.0, gt=0, description="curvature of the confining second coordinate")


class _Profile(Landscape):
    """U(w) = u(w₁) (+ ½k w₂² in 2-D) for a 1-D profile u."""

    @abstractmethod
    def u(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def du(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def d2u(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def roots(self) -> list[float]:
        """Critical points of u, increasing."""

    def potential(self, W: Tensor) -> Tensor:
        U = self.u(W[:, 0])
        if self.dim == 2:
            U = U + 0.5 * self.params.k * W[:, 1] ** 2
        return U

    def potential_grad(self, W: Tensor) -> Tensor:
        g = self.du(W[:, 0]).unsqueeze(1)
        if self.dim == 2:
            g = torch.cat([g, self.params.k * W[:, 1:2]], dim=1)
        return g

    def potential_hessian(self, w: Tensor) -> Tensor:
        diag = [self.d2u(w[0])]
        if self.dim == 2:
            diag.append(torch.as_tensor(self.params.k, dtype=w.dtype, device=w.device))
        return torch.diag(torch.stack(diag))

    def critical_points(self) -> list[CriticalPoint]:
        pts = []
        for r in self.roots():
            w = torch.zeros(self.dim, dtype=torch.float64)
            w[0] = r
            pts.append(self._point(w))
        return pts

    def _numeric_roots(self, lo: float, hi: float, step: float) -> list[float]:
        return _roots_1d(self._np(self.du), self._np(self.d2u), lo, hi, step)

    @staticmethod
    def _np(fn: Callable[[Tensor], Tensor]) -> Callable[[np.ndarray], np.ndarray]:
        return lambda t: fn(torch.as_tensor(t, dtype=torch.float64)).numpy()


def _roots_1d(
    g: Callable[[np.ndarray], np.ndarray],
    dg: Callable[[np.ndarray], np.ndarray],
    lo: float,
    hi: float,
    step: float,
) -> list[float]:
    """Zeros of g on [lo, hi]: sign changes on a grid of spacing ≤ step, Brent, one Newton."""
    n = max(2001, math.ceil((hi - lo) / step) + 1)
    t = np.linspace(lo, hi, n)
    v = g(t)
    found = [float(x) for x in t[v == 0]]
    for i in np.nonzero(v[:-1] * v[1:] < 0)[0]:
        r = brentq(lambda s: float(g(np.asarray(s))), t[i], t[i + 1], xtol=1e-15, rtol=1e-15)
        d = float(dg(np.asarray(r)))
        if d != 0:
            polished = r - float(g(np.asarray(r))) / d
            if t[i] <= polished <= t[i + 1]:
                r = polished
        found.append(float(r))
    return sorted(found)
