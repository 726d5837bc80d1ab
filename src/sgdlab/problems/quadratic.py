"""Quadratic objective with additive gradient noise of chosen covariance.

Per-sample loss, with ξ ~ N(0, C):

    f(w; ξ) = ½ (w − w*)ᵀ A (w − w*) + ξᵀ (w − w*)

so that F(w) = E f = ½ (w − w*)ᵀ A (w − w*), ∇F(w) = A (w − w*), ∇²F = A, F* = 0, and the
per-sample gradient ∇f = A(w − w*) + ξ has covariance Σ(w) = C for every w. A minibatch of b
samples has gradient noise ζ = mean of b ξ's, with covariance C/b.

A = Q diag(λ) Qᵀ with eigenvalues λ (given, or spread between ``mu`` and ``L``) and Q the
identity or a random rotation (``data`` stream). The noise covariance C is ``isotropic``
(σ² I), ``hessian`` (σ² A, curvature-aligned as near a well-specified model's optimum) or
``diagonal`` (diag(σ² ⊙ v) from ``noise_diag``).

With ``n`` set, the problem is finite: N draws of ξ are taken once from the ``data``
stream and centred, so F is still exactly the quadratic and Σ is their 1/N covariance.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field, field_validator, model_validator
from torch import Tensor

from sgdlab.errors import ConfigError
from sgdlab.problems.base import PerSampleLossModule, Problem, ProblemParams, mean_of_outputs
from sgdlab.problems.registry import register
from sgdlab.rng import Streams


class QuadraticParams(ProblemParams):
    dim: int = Field(10, gt=0, description="dimension d")
    eigenvalues: list[float] | None = Field(None, description="Hessian spectrum (overrides mu, L)")
    mu: float = Field(0.1, gt=0, description="smallest Hessian eigenvalue")
    L: float = Field(1.0, gt=0, description="largest Hessian eigenvalue")
    spacing: Literal["log", "linear"] = Field("log", description="how eigenvalues fill [mu, L]")
    rotate: bool = Field(False, description="random eigenbasis (data stream) instead of identity")
    noise: Literal["isotropic", "hessian", "diagonal"] = Field(
        "isotropic", description="noise covariance C: σ²I, σ²A or diag(σ²·noise_diag)"
    )
    noise_std: float = Field(1.0, ge=0, description="σ, scale of the per-sample gradient noise")
    noise_diag: list[float] | None = Field(None, description="per-coordinate variances (diagonal)")
    n: int | None = Field(None, gt=1, description="finite number of samples; None = population")
    w_star: float | list[float] = Field(0.0, description="minimiser (scalar broadcasts)")
    init_scale: float = Field(1.0, ge=0, description="w0 = w* + init_scale·z, z ~ N(0, I/d)")

    @field_validator("eigenvalues")
    @classmethod
    def _positive(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and not v:
            raise ValueError("give at least one eigenvalue (or leave eigenvalues out)")
        if v is not None and any(e < 0 for e in v):
            raise ValueError("eigenvalues must be ≥ 0 (a quadratic bowl)")
        return v

    @field_validator("noise_diag")
    @classmethod
    def _variances(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and any(e < 0 for e in v):
            raise ValueError("noise_diag holds variances: each must be ≥ 0")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> QuadraticParams:
        if self.eigenvalues is None and self.mu > self.L:
            raise ValueError(f"mu ({self.mu}) must not exceed L ({self.L}): swap them")
        # eigenvalues set the dimension; a dim given as well must agree. dim at its default
        # counts as not given: a stored config carries every default (dim 10 beside the
        # eigenvalues of a run that left it out), and reloading it must still work
        default = type(self).model_fields["dim"].default
        d = self.dim
        if self.eigenvalues is not None and d != len(self.eigenvalues) and d != default:
            raise ValueError(
                f"dim ({self.dim}) disagrees with the {len(self.eigenvalues)} eigenvalues: "
                "drop dim (the eigenvalues set it) or give one eigenvalue per dimension"
            )
        return self

    def estimated_bytes(self, itemsize: int) -> int:
        """Memory to build the problem: about eight d×d float64 matrices (A, Q, C, C^{1/2},
        their eigendecomposition and dtype copies) and, with ``n``, the N×d samples thrice."""
        d = len(self.eigenvalues) if self.eigenvalues is not None else self.dim
        return 8 * d * d * 8 + (3 * self.n * d * 8 if self.n else 0)


@register
class Quadratic(Problem):
    name = "quadratic"
    Params = QuadraticParams
    summary = "½(w−w*)ᵀA(w−w*) + ξᵀ(w−w*), ξ ~ N(0, C): every quantity in closed form"

    def __init__(self, params: QuadraticParams, streams: Streams, dtype: torch.dtype) -> None:
        super().__init__(params, streams, dtype)
        p = params
        d = len(p.eigenvalues) if p.eigenvalues is not None else p.dim
        self.dim = d
        if p.eigenvalues is not None:
            lam = torch.tensor(p.eigenvalues, dtype=torch.float64)
        elif d == 1:
            lam = torch.tensor([p.L], dtype=torch.float64)
        elif p.spacing == "log":
            lam = torch.logspace(math.log10(p.L), math.log10(p.mu), d, dtype=torch.float64)
        else:
            lam = torch.linspace(p.L, p.mu, d, dtype=torch.float64)
        data_gen = streams.generator("data")
        if p.rotate:
            q, r = torch.linalg.qr(torch.randn(d, d, generator=data_gen, dtype=torch.float64))
            Q = q * torch.sign(torch.diagonal(r))
        else:
            Q = torch.eye(d, dtype=torch.float64)
        self.eigenvalues = lam.to(dtype)
        self.Q = Q.to(dtype)
        self.A = ((Q * lam) @ Q.T).to(dtype)
        if p.noise == "isotropic":
            C = p.noise_std**2 * torch.eye(d, dtype=torch.float64)
        elif p.noise == "hessian":
            C = p.noise_std**2 * (Q * lam) @ Q.T
        else:
            if p.noise_diag is None or len(p.noise_diag) != d:
                raise ConfigError(
                    "problem.noise_diag", f"noise='diagonal' needs noise_diag with {d} variances"
                )
            C = p.noise_std**2 * torch.diag(torch.tensor(p.noise_diag, dtype=torch.float64))
        evals, evecs = torch.linalg.eigh(C)
        self.C_sqrt = ((evecs * evals.clamp_min(0).sqrt()) @ evecs.T).to(dtype)
        ws = p.w_star
        w_star = (
            torch.full((d,), float(ws), dtype=torch.float64)
            if isinstance(ws, float | int)
            else torch.tensor(ws, dtype=torch.float64)
        )
        if w_star.shape != (d,):
            raise ConfigError("problem.w_star", f"needs a scalar or {d} values")
        self._w_star = w_star.to(dtype)
        self.n = p.n
        if p.n is not None:
            xi = torch.randn(p.n, d, generator=data_gen, dtype=torch.float64) @ self.C_sqrt.double()
            xi = xi - xi.mean(dim=0)
            self.X = xi.to(dtype)
            self.y = torch.zeros(p.n, dtype=dtype)
            self.C = (xi.T @ xi / p.n).to(dtype)
        else:
            self.C = C.to(dtype)

    # -------------------------------------------------------------- sampling
    def sample(self, generator: torch.Generator, count: int) -> tuple[Tensor, Tensor]:
        dev = generator.device  # as linear_regression: samples live on the stream's device
        z = torch.randn(count, self.dim, generator=generator, dtype=self.dtype, device=dev)
        return z @ self.C_sqrt.to(dev), torch.zeros(count, dtype=self.dtype, device=dev)

    def per_sample_loss(
        self, W: Tensor, x: Tensor, y: Tensor, noise: dict[str, Tensor] | None = None
    ) -> Tensor:
        delta = W - self._w_star.to(W)  # [K, d]
        quad = 0.5 * ((delta @ self.A.to(W)) * delta).sum(-1)  # [K]
        return quad.unsqueeze(1) + torch.einsum("kbd,kd->kb", x, delta)

    def loss_and_grad(
        self, W: Tensor, x: Tensor, y: Tensor, noise: dict[str, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Closed form: loss = ½δᵀAδ + ξ̄ᵀδ, gradient Aδ + ξ̄ (ξ̄ the batch mean of ξ)."""
        delta = W - self._w_star.to(W)
        Ad = delta @ self.A.to(W)
        xi = x.mean(dim=1)
        return 0.5 * (Ad * delta).sum(-1) + (xi * delta).sum(-1), Ad + xi

    @property
    def random_init(self) -> bool:
        return self.params.init_scale > 0

    def init_params(self, generator: torch.Generator | None) -> Tensor:
        d = self.dim
        if generator is None:
            z = torch.ones(d, dtype=self.dtype) / math.sqrt(d)
        else:
            z = torch.randn(d, generator=generator, dtype=self.dtype) / math.sqrt(d)
        return self._w_star + self.params.init_scale * z

    # ---------------------------------------------------------- closed forms
    def closed_objective(self, W: Tensor) -> Tensor:
        delta = W - self._w_star.to(W)
        return 0.5 * ((delta @ self.A.to(W)) * delta).sum(-1)

    def grad_F(self, W: Tensor) -> Tensor:
        return (W - self._w_star.to(W)) @ self.A.to(W)

    def hessian(self, w: Tensor) -> Tensor:
        return self.A.clone()

    def grad_cov(self, w: Tensor) -> Tensor:
        return self.C.clone()

    @property
    def f_star(self) -> float:
        return 0.0

    @property
    def w_star(self) -> Tensor:
        return self._w_star.clone()

    @property
    def mu(self) -> float:
        """Strong-convexity constant (smallest Hessian eigenvalue)."""
        return float(self.eigenvalues.min())

    @property
    def L(self) -> float:
        """Smoothness constant (largest Hessian eigenvalue)."""
        return float(self.eigenvalues.max())

    def to_module(self, w: Tensor) -> tuple[torch.nn.Module, object]:
        return PerSampleLossModule(self, w), mean_of_outputs
