"""Linear regression with Gaussian design, in population or finite-sample mode.

Model: x ~ N(0, S), y = xᵀw* + ε with ε ~ N(0, σ²) independent of x. Per-sample loss
(note the ½):

    f(w; x, y) = ½ (xᵀw − y)²,        ∇f = x (xᵀw − y) = x (xᵀδ − ε),   δ = w − w*.

S = Q diag(λ) Qᵀ with eigenvalues λ (given, or spread between ``mu`` and ``L``; the default
``mu = L = 1`` is S = I) and Q the identity or a random rotation (``data`` stream).

**Population mode** (``n: None``; fresh samples from :meth:`LinearRegression.sample`):

    F(w) = ½ δᵀSδ + ½σ²,   ∇F = Sδ,   ∇²F = S,   F* = ½σ²  at w = w*,

    Σ(w) = Cov[∇f] = S δ δᵀ S + (δᵀSδ + σ²) S.

Derivation of Σ: E[∇f] = E[x xᵀ]δ − E[x ε] = Sδ. For the second moment, with ε independent
of x and zero-mean, E[∇f ∇fᵀ] = E[(xᵀδ)² x xᵀ] + σ² E[x xᵀ]. Isserlis' theorem for the
zero-mean Gaussian x gives E[x_i x_j x_k x_l] = S_ij S_kl + S_ik S_jl + S_il S_jk, hence
E[(xᵀδ)² x_i x_j] = S_ij (δᵀSδ) + 2 (Sδ)_i (Sδ)_j. Subtracting E[∇f]E[∇f]ᵀ = SδδᵀS:

    Σ(w) = (δᵀSδ) S + 2 SδδᵀS + σ² S − SδδᵀS = SδδᵀS + (δᵀSδ + σ²) S.

At the optimum Σ(w*) = σ² S (= σ² ∇²F: the "noise aligned with curvature" case).

**Finite mode** (``n: N``): N pairs (x_i, y_i) are drawn once from the ``data`` stream and F
is their mean loss. With Ŝ = XᵀX/N and b̂ = Xᵀy/N: ∇F = Ŝw − b̂, ∇²F = Ŝ, w* the least
squares solution (minimum-norm when N < d), F* = ½ mean (y − Xw*)², F(w) = F* + ½ δᵀŜδ,
and Σ(w) = (1/N) Σ_i r_i² x_i x_iᵀ − ∇F ∇Fᵀ with residuals r_i = x_iᵀw − y_i (the 1/N
covariance of the N per-sample gradients). Here w* is the least-squares minimiser; the
generating vector is kept as ``w_true``. :meth:`LinearRegression.sample` still draws fresh
pairs from the generating population (as in :mod:`sgdlab.problems.quadratic`); their mean
loss is the population F, not the finite-sample one.

Initial point of a chain: w* + init_scale · z with z ~ N(0, I/d) (``init`` stream), or
z = 1/√d when the ``init`` source is off.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field, field_validator, model_validator
from torch import Tensor
from torch.nn.utils import skip_init

from sgdlab.errors import ConfigError
from sgdlab.problems.base import Problem, ProblemParams
from sgdlab.problems.registry import register
from sgdlab.rng import Streams


class LinearRegressionParams(ProblemParams):
    dim: int = Field(10, gt=0, description="dimension d (number of features)")
    eigenvalues: list[float] | None = Field(
        None, description="spectrum of the design covariance S (overrides mu, L)"
    )
    mu: float = Field(1.0, gt=0, description="smallest eigenvalue of S (mu = L = 1: S = I)")
    L: float = Field(1.0, gt=0, description="largest eigenvalue of S")
    spacing: Literal["log", "linear"] = Field("log", description="spacing of the spectrum")
    rotate: bool = Field(False, description="random eigenbasis of S (data stream)")
    noise_std: float = Field(0.5, ge=0, description="σ, standard deviation of the label noise ε")
    n: int | None = Field(None, gt=1, description="finite number of samples; None = population")
    w_star: float | list[float] | Literal["random"] = Field(
        "random", description="true weights: scalar, list, or 'random' (N(0, I/d), data stream)"
    )
    init_scale: float = Field(1.0, ge=0, description="w0 = w* + init_scale·z, z ~ N(0, I/d)")

    @field_validator("eigenvalues")
    @classmethod
    def _positive(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and not v:
            raise ValueError("give at least one eigenvalue (or leave eigenvalues out)")
        if v is not None and any(e <= 0 for e in v):
            raise ValueError("eigenvalues of a covariance must be > 0")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> LinearRegressionParams:
        # as the quadratic: dim at its default counts as not given (stored configs carry it)
        default = type(self).model_fields["dim"].default
        d = self.dim
        if self.eigenvalues is not None and d != len(self.eigenvalues) and d != default:
            raise ValueError(
                f"dim ({d}) disagrees with the {len(self.eigenvalues)} eigenvalues: drop dim "
                "(the eigenvalues set it) or give one eigenvalue per dimension"
            )
        return self

    def estimated_bytes(self, itemsize: int) -> int:
        """Memory to build the problem (:mod:`sgdlab.engine.memory`): about six d×d float64
        matrices (Q, S, S^{1/2}, H, temporaries) and, with ``n``, the n×d design thrice."""
        d = len(self.eigenvalues) if self.eigenvalues is not None else self.dim
        return 6 * d * d * 8 + (3 * self.n * d * 8 if self.n else 0)


@register
class LinearRegression(Problem):
    name = "linear_regression"
    Params = LinearRegressionParams
    summary = "½(xᵀw−y)², x ~ N(0,S), y = xᵀw*+ε: population Σ(w) in closed form (Isserlis)"

    def __init__(
        self, params: LinearRegressionParams, streams: Streams, dtype: torch.dtype
    ) -> None:
        super().__init__(params, streams, dtype)
        p = params
        d = len(p.eigenvalues) if p.eigenvalues is not None else p.dim
        self.dim = d
        f64 = torch.float64
        if p.eigenvalues is not None:
            lam = torch.tensor(p.eigenvalues, dtype=f64)
        elif d == 1 or p.mu == p.L:
            lam = torch.full((d,), p.L, dtype=f64)
        elif p.spacing == "log":
            lam = torch.logspace(math.log10(p.L), math.log10(p.mu), d, dtype=f64)
        else:
            lam = torch.linspace(p.L, p.mu, d, dtype=f64)
        gen = streams.generator("data")
        if p.rotate:
            q, r = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=f64))
            Q = q * torch.sign(torch.diagonal(r))
        else:
            Q = torch.eye(d, dtype=f64)
        S = (Q * lam) @ Q.T
        S_sqrt = (Q * lam.sqrt()) @ Q.T
        if p.w_star == "random":
            w_true = torch.randn(d, generator=gen, dtype=f64) / math.sqrt(d)
        elif isinstance(p.w_star, float | int):
            w_true = torch.full((d,), float(p.w_star), dtype=f64)
        else:
            w_true = torch.tensor(p.w_star, dtype=f64)
            if w_true.shape != (d,):
                raise ConfigError("problem.w_star", f"needs a scalar, 'random' or {d} values")
        self.eigenvalues = lam.to(dtype)
        self.S_sqrt = S_sqrt.to(dtype)
        self.w_true = w_true.to(dtype)
        self.sigma = float(p.noise_std)
        self.n = p.n
        if p.n is None:
            self.H = S.to(dtype)
            self._w_star = w_true.to(dtype)
            self._f_star = 0.5 * self.sigma**2
        else:
            X = torch.randn(p.n, d, generator=gen, dtype=f64) @ S_sqrt
            y = X @ w_true + self.sigma * torch.randn(p.n, generator=gen, dtype=f64)
            H = X.T @ X / p.n
            w_ls = torch.linalg.lstsq(X, y.unsqueeze(1), driver="gelsd").solution.squeeze(1)
            self.X = X.to(dtype)
            self.y = y.to(dtype)
            self.H = H.to(dtype)
            self._w_star = w_ls.to(dtype)
            self._f_star = float(0.5 * ((X @ w_ls - y) ** 2).mean())

    # ------------------------------------------------------------------ sampling
    def sample(self, generator: torch.Generator, count: int) -> tuple[Tensor, Tensor]:
        """``count`` pairs: x = z S^{1/2} with z ~ N(0, I), then y = xᵀw* + σ ε."""
        dev = generator.device
        z = torch.randn(count, self.dim, generator=generator, dtype=self.dtype, device=dev)
        eps = torch.randn(count, generator=generator, dtype=self.dtype, device=dev)
        x = z @ self.S_sqrt.to(dev)
        return x, x @ self.w_true.to(dev) + self.sigma * eps

    def per_sample_loss(
        self, W: Tensor, x: Tensor, y: Tensor, noise: dict[str, Tensor] | None = None
    ) -> Tensor:
        r = torch.einsum("kbd,kd->kb", x, W) - y
        return 0.5 * r * r

    def loss_and_grad(
        self, W: Tensor, x: Tensor, y: Tensor, noise: dict[str, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Closed form: r_i = x_iᵀw − y_i, loss = mean ½r², gradient = (1/b) Σ_i r_i x_i."""
        r = torch.einsum("kbd,kd->kb", x, W) - y
        return 0.5 * (r * r).mean(dim=1), torch.einsum("kb,kbd->kd", r, x) / r.shape[1]

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

    # -------------------------------------------------------------- closed forms
    def closed_objective(self, W: Tensor) -> Tensor:
        delta = W - self._w_star.to(W)
        return self._f_star + 0.5 * ((delta @ self.H.to(W)) * delta).sum(-1)

    def grad_F(self, W: Tensor) -> Tensor:
        return (W - self._w_star.to(W)) @ self.H.to(W)

    def hessian(self, w: Tensor) -> Tensor:
        return self.H.clone()

    def grad_cov(self, w: Tensor) -> Tensor:
        if self.n is None:
            S = self.H.to(w)
            delta = w - self._w_star.to(w)
            s_delta = S @ delta
            return torch.outer(s_delta, s_delta) + (delta @ s_delta + self.sigma**2) * S
        X, y = self.X.to(w), self.y.to(w)
        r = X @ w - y
        g = X * r.unsqueeze(1)  # per-sample gradients [N, d]
        gc = g - g.mean(dim=0)
        return gc.T @ gc / self.n

    @property
    def f_star(self) -> float:
        return self._f_star

    @property
    def w_star(self) -> Tensor:
        return self._w_star.clone()

    @property
    def mu(self) -> float:
        """Smallest eigenvalue of ∇²F (strong convexity)."""
        return float(torch.linalg.eigvalsh(self.H.double()).min())

    @property
    def L(self) -> float:
        """Largest eigenvalue of ∇²F (smoothness)."""
        return float(torch.linalg.eigvalsh(self.H.double()).max())

    def to_module(self, w: Tensor) -> tuple[torch.nn.Module, object]:
        model = skip_init(torch.nn.Linear, self.dim, 1, bias=False, dtype=w.dtype, device=w.device)
        with torch.no_grad():
            model.weight.copy_(w.detach().reshape(1, -1))
        return model, half_mse


def half_mse(out: Tensor, target: Tensor) -> Tensor:
    """½ mean (out − y)², the loss of :class:`LinearRegression` (``out [b,1]`` or ``[b]``)."""
    return 0.5 * ((out.reshape(target.shape) - target) ** 2).mean()
