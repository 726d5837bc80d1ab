"""Extreme Hessian eigenvalues: Lanczos with full reorthogonalization, and power iteration.

Lanczos builds an orthonormal basis V_m of the Krylov space span{v, Hv, …, H^{m−1}v} with
H V_m = V_m T_m + β_m v_{m+1} e_mᵀ, T_m tridiagonal. A Ritz pair (θ, y = V_m s) of T_m has
residual

    r = ‖H y − θ y‖ = β_m |s_m|                        (no extra product needed),

and, H being symmetric, some eigenvalue λ of H satisfies |λ − θ| ≤ r (Weyl / Kahan bound;
Parlett, *The Symmetric Eigenvalue Problem*, Thm 4.5.1). The default stopping rule
(``bound="residual"``) stops when every wanted pair has r ≤ tol·|θ| + atol, which bounds the
**error** of the eigenvalue, not the change between iterations. ``bound="gap"`` uses the sharper
estimate min(r, r²/gap) with gap the distance from θ to the nearest other Ritz value
(Parlett Thm 11.7.1); it is only as reliable as that gap estimate. Every vector is
reorthogonalized against the whole basis (twice: "twice is enough"), so the basis stays
orthonormal to rounding and ``r`` equals the true residual up to rounding. If the Krylov space
becomes invariant (breakdown, e.g. from repeated eigenvalues), the iteration never stops at that
step but continues from a fresh random vector orthogonal to the basis (T becomes block
diagonal), so later blocks can reveal eigenvalues the first one missed; the Krylov space grows
until convergence or ``max_iter`` (an operator with very few distinct eigenvalues, like c·I,
therefore costs up to ``max_iter`` products).

Caveat shared by all Krylov methods: r certifies that θ is within r of *some* eigenvalue. A
random start vector (from ``generator``) has a nonzero component along every eigenvector with
probability one, so θ converges to the extreme eigenvalues; within one Krylov run a repeated
eigenvalue is found once.

:func:`power_iteration` is the reference (PyHessian, Yao et al. 2020): v ← Hv/‖Hv‖, θ = vᵀHv,
stopping when |θ_t − θ_{t−1}| / (|θ_{t−1}| + 1e-6) < tol (``rule="relative_change"``) — which
bounds the progress, not the error — or when r/|θ| ≤ tol (``rule="residual"``). It converges to
the eigenvalue of largest *magnitude* at rate (|λ_2|/|λ_1|)^{2t} in the Rayleigh quotient.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal
from torch import Tensor

from sgdlab.measure.curvature.hvp import HessianOperator, HvpMethod, LossFn, Mode, hessian_operator
from sgdlab.rng import as_generator

Which = Literal["largest", "smallest", "both"]


@dataclass(frozen=True)
class EigResult:
    """Eigenvalue estimates of a symmetric operator.

    Attributes:
        values: ``[k]``: largest first for ``"largest"``, most negative first for ``"smallest"``;
            for ``"both"`` the k largest (descending) then the k smallest (ascending), so
            ``values[0]`` is λ_max and ``values[k]`` is λ_min.
        vectors: ``[d, len(values)]`` unit eigenvector estimates (columns).
        residuals: ‖H v_i − λ_i v_i‖ for each pair (bounds |λ_i − exact|, see module doc).
        error_bounds: the error estimate the stopping rule compared with tol·|λ_i| + atol.
        n_hvp: Hessian-vector products used.
        converged: whether every wanted pair met the stopping rule.
        iterations: Krylov dimension (Lanczos) or number of iterations (power).
        method: ``"lanczos"`` or ``"power"``; rule: the stopping rule used.
        history: the extreme estimate after every product (λ_max, or λ_min for ``"smallest"``).
    """

    values: Tensor
    vectors: Tensor
    residuals: Tensor
    error_bounds: Tensor
    n_hvp: int
    converged: bool
    iterations: int
    method: str
    rule: str
    which: str
    history: list[float] = field(default_factory=list)


def random_unit_vector(
    dim: int, dtype: torch.dtype, device: torch.device, generator: torch.Generator | int = 0
) -> Tensor:
    """A Gaussian direction from ``generator`` (a generator or an int seed, see
    :func:`sgdlab.rng.as_generator`) normalized to ‖v‖ = 1."""
    generator = as_generator(generator)
    v = torch.randn(dim, generator=generator, dtype=torch.float64).to(dtype=dtype, device=device)
    return v / v.norm()


def _wanted(theta: np.ndarray, k: int, which: str) -> np.ndarray:
    """Indices into ascending ``theta`` of the wanted Ritz values, in output order."""
    m = len(theta)
    top = np.arange(m - 1, m - 1 - min(k, m), -1)
    bottom = np.arange(min(k, m))
    if which == "largest":
        return top
    if which == "smallest":
        return bottom
    return np.concatenate([top, bottom])


def _error_bounds(theta: np.ndarray, r: np.ndarray, idx: np.ndarray, bound: str) -> np.ndarray:
    if bound == "residual" or len(theta) == 1:
        return r[idx]
    out = []
    for i in idx:
        gap = np.min(np.abs(np.delete(theta, i) - theta[i]))
        out.append(min(r[i], r[i] ** 2 / gap) if gap > 0 else r[i])
    return np.asarray(out)


def lanczos_tridiagonal(
    matvec: Callable[[Tensor], Tensor],
    v0: Tensor,
    num_steps: int,
    *,
    generator: torch.Generator | int = 0,
    restart: bool = True,
    stop: Callable[[np.ndarray, np.ndarray], bool] | None = None,
) -> tuple[np.ndarray, np.ndarray, Tensor]:
    """Lanczos tridiagonalization with full reorthogonalization.

    Args:
        matvec: v ↦ H v (H symmetric).
        v0: start vector (normalized here).
        num_steps: at most this many products (capped at the dimension).
        generator: random vectors after a breakdown (``restart=True``).
        restart: on breakdown continue from a random orthogonal vector (β set to 0);
            otherwise stop there (as stochastic Lanczos quadrature needs).
        stop: ``stop(alpha, beta) -> bool`` called after each step with the diagonal
            ``alpha [m]`` and off-diagonal ``beta [m]`` (``beta[-1]`` couples to the next vector).

    Returns:
        ``(alpha [m], beta [m], V [m, d])``: T_m = tridiag(beta[:-1], alpha, beta[:-1]) and the
        orthonormal basis rows.
    """
    dim = v0.numel()
    num_steps = min(num_steps, dim)
    generator = as_generator(generator)
    V = torch.zeros(num_steps, dim, dtype=v0.dtype, device=v0.device)
    V[0] = v0 / v0.norm()
    alpha: list[float] = []
    beta: list[float] = []
    eps = torch.finfo(v0.dtype).eps
    for j in range(num_steps):
        w = matvec(V[j])
        a = float(V[j] @ w)
        w = w - a * V[j] - (beta[-1] * V[j - 1] if j > 0 else 0.0)
        for _ in range(2):
            w = w - V[: j + 1].T @ (V[: j + 1] @ w)
        b = float(w.norm())
        alpha.append(a)
        beta.append(b)
        scale = max(max(abs(x) for x in alpha), max(beta), 1e-300)
        broke = b <= 1e3 * eps * scale
        if broke:
            beta[-1] = 0.0
        if j + 1 == num_steps or (stop is not None and stop(np.array(alpha), np.array(beta))):
            break
        if broke:
            if not restart:
                break
            w = random_unit_vector(dim, v0.dtype, v0.device, generator)
            for _ in range(2):
                w = w - V[: j + 1].T @ (V[: j + 1] @ w)
            b = float(w.norm())
        V[j + 1] = w / b
    m = len(alpha)
    return np.array(alpha), np.array(beta), V[:m]


def lanczos(
    op: HessianOperator,
    k: int = 1,
    which: Which = "largest",
    tol: float = 1e-4,
    max_iter: int | None = None,
    *,
    generator: torch.Generator | int = 0,
    bound: Literal["residual", "gap"] = "residual",
    atol: float = 0.0,
    v0: Tensor | None = None,
) -> EigResult:
    """Extreme eigenpairs of a symmetric operator by Lanczos (see the module docstring).

    Stops when every wanted Ritz pair has error bound ≤ tol·|θ| + atol; ``max_iter`` defaults to
    min(d, max(300, 20k)). A pair is certified by the residual bound, so eigenvalues exactly 0
    need ``atol`` > 0 (or a Krylov space that fills R^d).
    """
    if which not in ("largest", "smallest", "both"):
        raise ValueError(f"which must be 'largest', 'smallest' or 'both', not {which!r}")
    if bound not in ("residual", "gap"):
        raise ValueError(f"bound must be 'residual' or 'gap', not {bound!r}")
    d = op.dim
    k = min(k, d)
    need = min(d, 2 * k if which == "both" else k)
    max_iter = min(d, max_iter or max(300, 20 * k))
    generator = as_generator(generator)
    start = op.n_hvp
    history: list[float] = []
    state: dict[str, Any] = {"converged": False}

    def ritz(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(alpha) == 1:
            return alpha.copy(), np.ones((1, 1))
        return eigh_tridiagonal(alpha, beta[:-1])

    def stop(alpha: np.ndarray, beta: np.ndarray) -> bool:
        theta, S = ritz(alpha, beta)
        history.append(float(theta[0] if which == "smallest" else theta[-1]))
        if len(alpha) < d and (len(alpha) < need or beta[-1] == 0.0):
            return False  # too few Ritz values, or a breakdown: extremality is not certified
        r = abs(beta[-1]) * np.abs(S[-1])
        idx = _wanted(theta, k, which)
        err = _error_bounds(theta, r, idx, bound)
        state["converged"] = bool(np.all(err <= tol * np.abs(theta[idx]) + atol))
        return state["converged"]

    v = v0 if v0 is not None else random_unit_vector(d, op.dtype, op.device, generator)
    alpha, beta, V = lanczos_tridiagonal(op.matvec, v, max_iter, generator=generator, stop=stop)
    theta, S = ritz(alpha, beta)
    r = abs(beta[-1]) * np.abs(S[-1])
    idx = _wanted(theta, k, which)
    vecs = V.T @ torch.as_tensor(S[:, idx], dtype=V.dtype, device=V.device)
    vecs = vecs / vecs.norm(dim=0, keepdim=True)
    converged = state["converged"] or len(alpha) == d
    return EigResult(
        values=torch.as_tensor(theta[idx], dtype=op.dtype),
        vectors=vecs,
        residuals=torch.as_tensor(r[idx], dtype=op.dtype),
        error_bounds=torch.as_tensor(_error_bounds(theta, r, idx, bound), dtype=op.dtype),
        n_hvp=op.n_hvp - start,
        converged=converged,
        iterations=len(alpha),
        method="lanczos",
        rule=bound,
        which=which,
        history=history,
    )


def hessian_eigs(
    model: Any,
    loss_fn: LossFn | None = None,
    inputs: Tensor | None = None,
    targets: Tensor | None = None,
    *,
    k: int = 1,
    which: Which = "largest",
    tol: float = 1e-4,
    max_iter: int | None = None,
    generator: torch.Generator | int = 0,
    bound: Literal["residual", "gap"] = "residual",
    atol: float = 0.0,
    dim: int | None = None,
    chunk_size: int | None = None,
    mode: Mode = "auto",
    method: HvpMethod = "double_backward",
) -> EigResult:
    """The k extreme eigenvalues of the loss Hessian, certified to relative error ``tol``.

    Args:
        model: an ``nn.Module`` (with ``loss_fn``, ``inputs``, ``targets``: the Hessian of the
            mean loss over them, see :mod:`sgdlab.measure.curvature.hvp`), or a
            :class:`HessianOperator`, a dense symmetric tensor (e.g. ``problem.hessian(w)``) or a
            matvec callable (``dim``).
        k: number of eigenvalues at each wanted end.
        which: ``"largest"`` (sharpness), ``"smallest"`` (most negative curvature: saddles) or
            ``"both"``.
        tol: relative error bound: each returned λ is within tol·|λ| + atol of an eigenvalue.
        max_iter: maximum Krylov dimension (= number of HVPs).
        generator: start vector: a generator, or an int seed (default 0; see
            :func:`sgdlab.rng.as_generator`).
        bound: ``"residual"`` (rigorous Weyl bound r) or ``"gap"`` (estimate min(r, r²/gap)).
        dim, chunk_size, mode, method: see :func:`sgdlab.measure.curvature.hvp.hessian_operator`.

    Example:
        >>> H = torch.diag(torch.tensor([3.0, 1.0, -2.0], dtype=torch.float64))
        >>> hessian_eigs(H, which="both").values.tolist()
        [3.0, -2.0]
    """
    op = hessian_operator(
        model, loss_fn, inputs, targets, dim=dim, chunk_size=chunk_size, mode=mode, method=method
    )
    return lanczos(op, k, which, tol, max_iter, generator=generator, bound=bound, atol=atol)


def power_iteration(
    op: Any,
    tol: float = 1e-3,
    max_iter: int = 1000,
    *,
    rule: Literal["relative_change", "residual"] = "relative_change",
    generator: torch.Generator | int = 0,
    dim: int | None = None,
) -> EigResult:
    """Dominant eigenpair (largest |λ|) by power iteration, the PyHessian reference.

    Each iteration uses one product: u = Hv, θ = vᵀu, r = ‖u − θv‖, then v ← u/‖u‖. With
    ``rule="relative_change"`` it stops when |θ_t − θ_{t−1}| / (|θ_{t−1}| + 1e-6) < tol (as
    PyHessian does; the true error can be much larger than tol when |λ_2|/|λ_1| is near 1);
    with ``rule="residual"`` when r ≤ tol·|θ| (a bound on the error, as in :func:`lanczos`).
    """
    if rule not in ("relative_change", "residual"):
        raise ValueError(f"rule must be 'relative_change' or 'residual', not {rule!r}")
    op = hessian_operator(op, dim=dim)
    start = op.n_hvp
    v = random_unit_vector(op.dim, op.dtype, op.device, generator)
    history: list[float] = []
    theta_prev, converged, r = math.nan, False, math.inf
    for it in range(max_iter):
        u = op.matvec(v)
        theta = float(v @ u)
        r = float((u - theta * v).norm())
        history.append(theta)
        if rule == "residual":
            converged = r <= tol * abs(theta)
        elif len(history) > 1:
            converged = abs(theta - theta_prev) / (abs(theta_prev) + 1e-6) < tol
        if converged or it == max_iter - 1:
            break  # v is the vector θ and r belong to
        norm = u.norm()
        if norm == 0:  # v in the null space: θ = 0 is exact
            converged = True
            break
        v, theta_prev = u / norm, theta
    return EigResult(
        values=torch.tensor([history[-1]], dtype=op.dtype),
        vectors=v.reshape(-1, 1),
        residuals=torch.tensor([r], dtype=op.dtype),
        error_bounds=torch.tensor([r], dtype=op.dtype),
        n_hvp=op.n_hvp - start,
        converged=converged,
        iterations=len(history),
        method="power",
        rule=rule,
        which="largest",
        history=history,
    )
