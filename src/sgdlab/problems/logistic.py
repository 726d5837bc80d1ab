"""Multiclass (softmax) logistic regression with bias and an optional L2 penalty.

Parameters: a weight matrix with the bias as its last row, V = [A; bᵀ] of shape
``[p+1, C]``, flattened row-major, so ``w[j·C + c] = V[j, c]`` and d = (p+1)·C. With
x̃ = (x, 1) the logits are z = Vᵀx̃ = Aᵀx + b and the per-sample loss is

    f(w; x, y) = −log softmax(z)_y + (l2/2) ‖A‖²        (bias not penalised by default;
                                                         ``penalize_bias: true`` adds ‖b‖²)

The penalty is inside f (every sample carries it), so F = mean_i f_i exactly.

Closed forms, with p_i = softmax(z_i), e_y the one-hot label and M the 0/1 mask of
penalised entries:

    per-sample gradient  ∇f_i = x̃_i (p_i − e_{y_i})ᵀ + l2 · M ⊙ V
    ∇F  = (1/N) Σ_i x̃_i (p_i − e_{y_i})ᵀ + l2 · M ⊙ V
    ∇²F = (1/N) Σ_i (diag(p_i) − p_i p_iᵀ) ⊗ x̃_i x̃_iᵀ + l2 · diag(M)
            (entry [(j,a),(k,c)] = mean_i x̃_ij x̃_ik (δ_ac p_ia − p_ia p_ic))
    Σ(w) = (1/N) Σ_i (G_i − Ḡ)(G_i − Ḡ)ᵀ,   G_i = vec(x̃_i (p_i − e_{y_i})ᵀ)
            (the penalty is the same for every sample and drops out of Σ)

Softmax is invariant to adding one constant to every logit, so when the bias is not
penalised F is flat along "add t to every class bias": ∇²F has that null direction and the
minimiser is unique only up to it. :attr:`LogisticRegression.w_star` is the minimiser whose
biases sum to zero.

w* and F* (only when l2 > 0, so that a minimiser exists) are computed lazily on first
access, in float64, by damped Newton (direct solves for d ≤ 2000, conjugate gradients with
exact Hessian–vector products above) to ‖∇F‖ ≤ 1e-10, and cached on the instance.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import Tensor
from torch.nn.utils import skip_init

from sgdlab.problems.classifier import ClassifierProblem, _cross_entropy, batched_affine
from sgdlab.problems.datasets import DataParams
from sgdlab.problems.registry import register
from sgdlab.rng import Streams

_DIRECT_MAX_DIM = 2000
_GRAD_TOL = 1e-10


class LogisticRegressionParams(DataParams):
    l2: float = Field(0.0, ge=0, description="L2 penalty (l2/2)‖A‖² on the weights, inside f")
    penalize_bias: bool = Field(False, description="also penalise the bias (l2/2)‖b‖²")
    init_scale: float = Field(
        0.0, ge=0, description="w0 = init_scale·z, z ~ N(0, I/(p+1)); 0 starts at the origin"
    )


@register
class LogisticRegression(ClassifierProblem):
    name = "logistic_regression"
    Params = LogisticRegressionParams
    summary = "softmax cross-entropy with bias (+ l2/2‖A‖²): exact ∇F, Hessian, Σ; Newton w*"

    def __init__(
        self, params: LogisticRegressionParams, streams: Streams, dtype: torch.dtype
    ) -> None:
        super().__init__(params, streams, dtype)
        self._load(params, streams, dtype)
        p, C = self.n_features, self.n_classes
        self.dim = (p + 1) * C
        self.l2 = float(params.l2)
        mask = torch.ones(p + 1, C, dtype=dtype)
        if not params.penalize_bias:
            mask[p] = 0.0
        self.penalty_mask = mask.reshape(-1)
        self._w_star_cache: Tensor | None = None
        self._f_star_cache: float | None = None
        self.solver_info: dict | None = None
        self._finish()

    # ---------------------------------------------------------------- model
    def _split(self, W: Tensor) -> tuple[Tensor, Tensor]:
        V = W.reshape(W.shape[0], self.n_features + 1, self.n_classes)
        return V[:, :-1], V[:, -1:]

    def logits(self, W: Tensor, x: Tensor, noise: dict[str, Tensor] | None = None) -> Tensor:
        A, b = self._split(W)
        return batched_affine(b, x, A)

    def _penalty(self, W: Tensor) -> Tensor:
        if self.l2 == 0:
            return torch.zeros(W.shape[0], dtype=W.dtype, device=W.device)
        return 0.5 * self.l2 * (W * W * self.penalty_mask.to(W)).sum(dim=1)

    def per_sample_loss(
        self, W: Tensor, x: Tensor, y: Tensor, noise: dict[str, Tensor] | None = None
    ) -> Tensor:
        x, y = self.noisy_batch(x, y, noise)
        return _cross_entropy(self.logits(W, x), y) + self._penalty(W).unsqueeze(1)

    def loss_and_grad(
        self, W: Tensor, x: Tensor, y: Tensor, noise: dict[str, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Closed form: with P = softmax(z) and Y one-hot, the mean cross-entropy's gradient
        is x̃ᵀ(P − Y)/b (x̃ = [x, 1]), plus the penalty's l2·mask⊙W (on the batch after its
        augmentation and dynamic label noise, :meth:`noisy_batch`)."""
        x, y = self.noisy_batch(x, y, noise)
        A, bias = self._split(W)
        z = torch.baddbmm(bias, x, A)
        lse = torch.logsumexp(z, dim=-1, keepdim=True)
        yk = y.long().unsqueeze(-1)
        ce = (lse - z.gather(-1, yk)).squeeze(-1)
        R = torch.exp(z - lse)
        R.scatter_add_(-1, yk, -torch.ones_like(yk, dtype=R.dtype))
        b = x.shape[1]
        gA = torch.bmm(x.transpose(1, 2), R) / b
        gb = R.mean(dim=1, keepdim=True)
        grad = torch.cat([gA, gb], dim=1).reshape(W.shape)
        loss = ce.mean(dim=1)
        if self.l2 != 0:
            mask = self.penalty_mask.to(W)
            loss = loss + 0.5 * self.l2 * (W * W * mask).sum(dim=1)
            grad = grad + self.l2 * mask * W
        return loss, grad

    @property
    def random_init(self) -> bool:
        return self.params.init_scale > 0

    def init_params(self, generator: torch.Generator | None) -> Tensor:
        scale = self.params.init_scale / math.sqrt(self.n_features + 1)
        if generator is None or scale == 0:
            return torch.zeros(self.dim, dtype=self.dtype)
        return scale * torch.randn(self.dim, generator=generator, dtype=self.dtype)

    # ---------------------------------------------------------- closed forms
    def _chunk(self, per_row: int) -> int:
        return max(1, min(self.n, (1 << 22) // max(1, per_row)))

    def _residual_sums(self, W: Tensor, X: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Σ_i x̃_i (p_i − e_yi)ᵀ per chain ``[K, p+1, C]`` and Σ_i CE_i ``[K]``."""
        K = W.shape[0]
        p, C = self.n_features, self.n_classes
        G = torch.zeros(K, p + 1, C, dtype=W.dtype, device=W.device)
        ce = torch.zeros(K, dtype=W.dtype, device=W.device)
        chunk = self._chunk(K * C + p)
        for start in range(0, X.shape[0], chunk):
            xb = X[start : start + chunk].to(W)
            yb = y[start : start + chunk].to(W.device).long()
            z = self.logits(W, xb.unsqueeze(0).expand(K, *xb.shape))
            lse = torch.logsumexp(z, dim=-1, keepdim=True)
            r = torch.exp(z - lse)
            yk = yb.unsqueeze(0).expand(K, -1).unsqueeze(-1)
            ce += (lse.squeeze(-1) - z.gather(-1, yk).squeeze(-1)).sum(dim=1)
            r.scatter_add_(-1, yk, -torch.ones_like(yk, dtype=r.dtype))
            G[:, :p] += torch.einsum("nj,knc->kjc", xb, r)
            G[:, p] += r.sum(dim=1)
        return G, ce

    def closed_objective(self, W: Tensor) -> Tensor | None:
        return None  # the chunked full-data mean of Problem.objective

    def _grad_on(self, W: Tensor, X: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        G, ce = self._residual_sums(W, X, y)
        n = X.shape[0]
        grad = G.reshape(W.shape[0], -1) / n + self.l2 * self.penalty_mask.to(W) * W
        return grad, ce / n + self._penalty(W)

    def grad_F(self, W: Tensor) -> Tensor:
        return self._grad_on(W, self.X, self.y)[0]

    def _hessian_on(self, w: Tensor, X: Tensor, y: Tensor) -> Tensor:
        p, C, d = self.n_features, self.n_classes, self.dim
        H = torch.zeros(p + 1, C, p + 1, C, dtype=w.dtype, device=w.device)
        diag_view = H.diagonal(dim1=1, dim2=3)  # [p+1, p+1, C]: entries with a == c
        chunk = self._chunk(d + p)
        for start in range(0, X.shape[0], chunk):
            xt = _with_ones(X[start : start + chunk].to(w))
            P = torch.softmax(self.logits(w.unsqueeze(0), xt[:, :-1].unsqueeze(0))[0], dim=-1)
            Z = (xt.unsqueeze(2) * P.unsqueeze(1)).reshape(xt.shape[0], d)  # x̃_ij p_ia
            diag_view += (Z.T @ xt).reshape(p + 1, C, p + 1).permute(0, 2, 1)
            H -= (Z.T @ Z).reshape(p + 1, C, p + 1, C)
        H = H.reshape(d, d) / X.shape[0]
        return H + torch.diag(self.l2 * self.penalty_mask.to(w))

    def _hvp_on(self, w: Tensor, V: Tensor, X: Tensor) -> Tensor:
        """∇²F(w) V for a direction ``V [d]`` without forming the Hessian."""
        p, C = self.n_features, self.n_classes
        Vm = V.reshape(p + 1, C)
        out = torch.zeros(p + 1, C, dtype=w.dtype, device=w.device)
        chunk = self._chunk(2 * C + p)
        for start in range(0, X.shape[0], chunk):
            xt = _with_ones(X[start : start + chunk].to(w))
            P = torch.softmax(self.logits(w.unsqueeze(0), xt[:, :-1].unsqueeze(0))[0], dim=-1)
            s = xt @ Vm  # [n, C]
            q = P * s - P * (P * s).sum(dim=1, keepdim=True)
            out += xt.T @ q
        return out.reshape(-1) / X.shape[0] + self.l2 * self.penalty_mask.to(w) * V

    def hessian(self, w: Tensor) -> Tensor:
        return self._hessian_on(w, self.X, self.y)

    def grad_cov(self, w: Tensor) -> Tensor:
        d = self.dim
        mean = self._residual_sums(w.unsqueeze(0), self.X, self.y)[0].reshape(-1) / self.n
        cov = torch.zeros(d, d, dtype=w.dtype, device=w.device)
        chunk = self._chunk(2 * d)
        for start in range(0, self.n, chunk):
            xt = _with_ones(self.X[start : start + chunk].to(w))
            yb = self.y[start : start + chunk].to(w.device).long()
            P = torch.softmax(self.logits(w.unsqueeze(0), xt[:, :-1].unsqueeze(0))[0], dim=-1)
            P[torch.arange(len(yb), device=w.device), yb] -= 1.0
            G = (xt.unsqueeze(2) * P.unsqueeze(1)).reshape(len(yb), d) - mean
            cov += G.T @ G
        return cov / self.n

    # ------------------------------------------------------------ minimiser
    @property
    def w_star(self) -> Tensor | None:
        if self.l2 <= 0:
            return None
        if self._w_star_cache is None:
            self._solve()
        return self._w_star_cache.clone()

    @property
    def f_star(self) -> float | None:
        if self.l2 <= 0:
            return None
        if self._f_star_cache is None:
            self._solve()
        return self._f_star_cache

    def _solve(self) -> None:
        """Damped Newton in float64 from w = 0 to ‖∇F‖ ≤ 1e-10 (see the module docstring)."""
        X = self.X.to(torch.float64)
        y = self.y
        d, p, C = self.dim, self.n_features, self.n_classes
        w = torch.zeros(d, dtype=torch.float64, device=X.device)
        gauge = torch.zeros(p + 1, C, dtype=torch.float64, device=X.device)
        if self.penalty_mask[-1] == 0:
            gauge[p] = 1.0 / math.sqrt(C)
        gauge = gauge.reshape(-1)
        g, F = (t[0] for t in self._grad_on(w.unsqueeze(0), X, y))
        iterations = 0
        while iterations < 100 and float(g.norm()) > _GRAD_TOL:
            iterations += 1
            if d <= _DIRECT_MAX_DIM:
                H = self._hessian_on(w, X, y) + torch.outer(gauge, gauge)
                step = torch.linalg.solve(H, g)
            else:
                forcing = min(0.1, math.sqrt(float(g.norm())))  # inexact Newton: superlinear
                hvp = lambda v, w=w: self._hvp_on(w, v, X)  # noqa: E731
                step = _conjugate_gradient(hvp, g, tol=forcing, max_iter=min(2000, 10 * d))
            t, F_old, slope = 1.0, float(F), float(g @ step)
            while True:  # Armijo backtracking on F
                w_new = w - t * step
                g_new, F_new = (v[0] for v in self._grad_on(w_new.unsqueeze(0), X, y))
                if float(F_new) <= F_old - 1e-4 * t * slope or t < 1e-10:
                    break
                t *= 0.5
            if float(F_new) > F_old and float(g_new.norm()) >= float(g.norm()):
                break  # no further progress possible at float64 precision
            w, g, F = w_new, g_new, F_new
        w = w - (gauge @ w) * gauge  # biases summing to zero (the gauge; a no-op otherwise)
        g, F = (v[0] for v in self._grad_on(w.unsqueeze(0), X, y))
        self.solver_info = {"iterations": iterations, "grad_norm": float(g.norm())}
        self._w_star_cache = w.to(self.dtype)
        self._f_star_cache = float(F)

    def describe(self) -> dict:
        """As :meth:`Problem.describe`, without forcing the Newton solve (F* if already known)."""
        return {
            "name": self.name,
            "dim": self.dim,
            "n": self.n,
            "f_star": self._f_star_cache,
            "has_w_star": self.l2 > 0,
        }

    # ---------------------------------------------------------------- module
    def to_module(self, w: Tensor) -> tuple[torch.nn.Module, object]:
        p, C = self.n_features, self.n_classes
        V = w.detach().reshape(p + 1, C)
        model = skip_init(torch.nn.Linear, p, C, dtype=w.dtype, device=w.device)
        with torch.no_grad():
            model.weight.copy_(V[:p].T)
            model.bias.copy_(V[p])
        if self.l2 == 0:
            return model, torch.nn.CrossEntropyLoss()
        return model, _PenalizedCrossEntropy(model, self.l2, bool(self.params.penalize_bias))


class _PenalizedCrossEntropy(torch.nn.Module):
    """CrossEntropyLoss(mean) + (l2/2)‖weight‖² (+ ‖bias‖²) of the given linear model."""

    def __init__(self, model: torch.nn.Linear, l2: float, penalize_bias: bool) -> None:
        super().__init__()
        self.model = [model]  # a list, so the model's parameters are not registered twice
        self.l2 = l2
        self.penalize_bias = penalize_bias

    def forward(self, out: Tensor, target: Tensor) -> Tensor:
        model = self.model[0]
        pen = (model.weight**2).sum()
        if self.penalize_bias:
            pen = pen + (model.bias**2).sum()
        return torch.nn.functional.cross_entropy(out, target.long()) + 0.5 * self.l2 * pen


def _with_ones(x: Tensor) -> Tensor:
    return torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)], dim=1)


def _conjugate_gradient(hvp, b: Tensor, tol: float, max_iter: int = 2000) -> Tensor:
    """Solve H s = b for positive semi-definite H (b in its range) by conjugate gradients."""
    s = torch.zeros_like(b)
    r = b.clone()
    q = r.clone()
    rr = r @ r
    stop = (tol * b.norm()) ** 2
    for _ in range(max_iter):
        if rr <= stop:
            break
        Hq = hvp(q)
        alpha = rr / (q @ Hq)
        s += alpha * q
        r -= alpha * Hq
        rr_new = r @ r
        q = r + (rr_new / rr) * q
        rr = rr_new
    return s
