"""Sharpness of a point w: curvature and worst-case loss increase in a neighbourhood.

Measures (all on the mean-reduced loss L of :mod:`sgdlab.measure.curvature.hvp`):

* **λ_max** of ∇²L(w) by Lanczos (:func:`~sgdlab.measure.curvature.eigs.hessian_eigs`) and
  **tr ∇²L(w)** by Hutchinson (:func:`~sgdlab.measure.curvature.trace.hessian_trace`).
* **ε-sharpness** (Keskar et al. 2017, Metric 2.1, full space A = I): with the box
  C_ε = {δ : |δ_j| ≤ ε(|w_j| + 1)},

      φ_ε(w) = 100 · (max_{δ∈C_ε} L(w + δ) − L(w)) / (1 + L(w))      (a percentage).

  The inner maximum is computed as Keskar et al. do, by L-BFGS-B (SciPy) with the box as
  bounds, from the vertex ε(|w|+1)⊙sign(∇L(w)) (the first-order maximizer; random signs where
  the gradient is 0), from the vertices along any given ``directions`` (e.g. the top Hessian
  eigenvector) and from ``n_random_starts`` random vertices; the best local maximum is kept.
  Maximizing even a convex quadratic over a box is NP-hard, so this is a lower bound that is
  exact when the best start lies in the basin of the global maximum (e.g. separable L).
* **ρ-sharpness** (SAM, Foret et al. 2021, eq. 1): max_{‖δ‖₂ ≤ ρ} L(w + δ) − L(w), by projected
  gradient ascent on the ball (step doubled after an ascent, quartered after a failure, so the
  loss never decreases) from the first-order SAM point ρ∇L/‖∇L‖ and from ±ρ·v_1, v_1 the top
  Hessian eigenvector. For L quadratic at its minimum the exact value is ½ρ²λ_max, reached at
  ρv_1.
* **Adaptive (ASAM) sharpness** (Kwon et al. 2021, eq. 5 with the element-wise operator
  T_w = diag(|w| + η)): max_{‖T_w^{-1}δ‖₂ ≤ ρ} L(w + δ) − L(w). Substituting δ = T_w u gives the
  ρ-ball problem for u ↦ L(w + T_w u), solved as above (top eigenvector of T_w H T_w). With
  η = 0 it is invariant under any rescaling w ↦ a⊙w that leaves L unchanged.

Reparametrization (Dinh et al. 2017): for a ReLU net, scaling one layer by α and the next by
1/α leaves the function — hence L, and ε- or ρ-sharpness measured in function space — unchanged,
but multiplies the Hessian blocks by 1/α², α·1/α and α², so λ_max, tr H and the ρ-sharpness can
be made arbitrarily large or small at the same minimum. Flatness numbers are comparable only
within one parametrization; the adaptive variant removes the element-wise rescaling freedom.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor, nn

from sgdlab.measure.curvature.eigs import lanczos
from sgdlab.measure.curvature.hvp import (
    HessianOperator,
    HvpMethod,
    LossFn,
    Mode,
    ModelObjective,
    Objective,
    as_objective,
)
from sgdlab.measure.curvature.trace import hessian_trace
from sgdlab.rng import as_generator

ALL_MEASURES = ("lambda_max", "trace", "epsilon", "rho", "asam")


@dataclass(frozen=True)
class AscentResult:
    """A worst-case perturbation found by an ascent.

    Attributes:
        value: the sharpness (a percentage for ε-sharpness; L(w+δ) − L(w) otherwise).
        loss: L(w); perturbed_loss: L(w + δ); delta: δ ``[d]``; n_evals: loss+gradient calls;
        n_hvp: Hessian-vector products (the curvature start of the ball ascent).
    """

    value: float
    loss: float
    perturbed_loss: float
    delta: Tensor
    n_evals: int
    n_hvp: int = 0


def _signs(v: Tensor, generator: torch.Generator) -> Tensor:
    """sign(v) with random ±1 where v = 0."""
    rand = torch.randint(0, 2, v.shape, generator=generator).to(v) * 2 - 1
    return torch.where(v == 0, rand, torch.sign(v))


def epsilon_sharpness(
    fn: Objective | Callable[[Tensor], Tensor],
    w: Tensor,
    epsilon: float = 1e-3,
    *,
    maxiter: int = 50,
    directions: Sequence[Tensor] = (),
    n_random_starts: int = 0,
    generator: torch.Generator | int = 0,
) -> AscentResult:
    """Keskar et al. (2017) ε-sharpness of ``fn`` at the flat point ``w`` (module docstring).

    Args:
        fn: the loss of a flat vector (callable or an objective from :mod:`~.hvp`).
        epsilon: relative box size; the box is |δ_j| ≤ ε(|w_j| + 1).
        maxiter: L-BFGS-B iterations per start.
        directions: extra starts at the box vertices ε(|w|+1)⊙sign(direction).
        n_random_starts: extra starts at random vertices (from ``generator``).
    """
    obj, gen = as_objective(fn), as_generator(generator)
    w = w.detach()
    bound = (epsilon * (w.abs() + 1)).cpu().numpy().astype(np.float64)
    loss0, g0 = obj.value_and_grad(w)
    n_evals = 1

    def neg(delta: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal n_evals
        n_evals += 1
        val, g = obj.value_and_grad(w + torch.as_tensor(delta).to(w))
        return -float(val), -g.detach().cpu().numpy().astype(np.float64)

    starts = [_signs(g0, gen)] + [_signs(d.to(w), gen) for d in directions]
    starts += [_signs(torch.zeros_like(w), gen) for _ in range(n_random_starts)]
    best_val, best_delta = float(loss0), np.zeros_like(bound)
    for s in starts:
        res = minimize(
            neg,
            bound * s.cpu().numpy(),
            jac=True,
            method="L-BFGS-B",
            bounds=list(zip(-bound, bound, strict=True)),
            options={"maxiter": maxiter},
        )
        if -res.fun > best_val:
            best_val, best_delta = -float(res.fun), np.clip(res.x, -bound, bound)
    l0 = float(loss0)
    return AscentResult(
        value=100.0 * (best_val - l0) / (1.0 + l0),
        loss=l0,
        perturbed_loss=best_val,
        delta=torch.as_tensor(best_delta).to(w),
        n_evals=n_evals,
    )


def rho_sharpness(
    fn: Objective | Callable[[Tensor], Tensor],
    w: Tensor,
    rho: float = 0.05,
    *,
    steps: int = 20,
    scale: Tensor | None = None,
    directions: Sequence[Tensor] = (),
    curvature_start: bool = True,
    lanczos_tol: float = 1e-3,
    n_random_starts: int = 0,
    generator: torch.Generator | int = 0,
    method: HvpMethod = "double_backward",
) -> AscentResult:
    """SAM ρ-sharpness max_{‖δ/s‖₂ ≤ ρ} L(w + δ) − L(w) (``scale`` s; ``None``: s = 1).

    Projected gradient ascent in u = δ/s on the ball ‖u‖ ≤ ρ, ``steps`` loss+gradient
    evaluations per start. Starts: the first-order point ρ·s∇L/‖s∇L‖; ±ρ times the top
    eigenvector of diag(s) H diag(s) (``curvature_start``, Lanczos to ``lanczos_tol``); the given
    ``directions`` (in δ space); ``n_random_starts`` random directions.
    """
    obj, gen = as_objective(fn), as_generator(generator)
    w = w.detach()
    s = torch.ones_like(w) if scale is None else scale.to(w)
    loss0, g0 = obj.value_and_grad(w)
    n_evals = 1

    def value_grad(u: Tensor) -> tuple[float, Tensor]:
        nonlocal n_evals
        n_evals += 1
        val, g = obj.value_and_grad(w + s * u)
        return float(val), s * g

    def unit(v: Tensor) -> Tensor | None:
        n = v.norm()
        return v / n if n > 0 else None

    starts = [unit(s * g0)]
    n_hvp = 0
    if curvature_start:
        op = HessianOperator(lambda u: s * obj.hvp(w, s * u, method), w.numel(), w.dtype, w.device)
        top = lanczos(op, 1, "largest", lanczos_tol, 50, generator=gen).vectors[:, 0]
        starts += [top, -top]
        n_hvp = op.n_hvp
    starts += [unit(d.to(w) / s) for d in directions]
    starts += [unit(torch.randn(w.shape, generator=gen).to(w)) for _ in range(n_random_starts)]
    best_f, best_u = float(loss0), torch.zeros_like(w)
    for u0 in starts:
        if u0 is None:
            continue
        u = rho * u0
        f, g = value_grad(u)
        gnorm = float(g.norm())
        eta = rho / gnorm if gnorm > 0 else 0.0
        for _ in range(steps - 1):
            if eta * float(g.norm()) < 1e-12 * rho:
                break
            cand = u + eta * g
            cand = cand * min(1.0, rho / max(float(cand.norm()), 1e-300))
            f_new, g_new = value_grad(cand)
            if f_new > f:
                u, f, g, eta = cand, f_new, g_new, 2 * eta
            else:
                eta *= 0.25
        if f > best_f:
            best_f, best_u = f, u
    l0 = float(loss0)
    return AscentResult(
        value=best_f - l0,
        loss=l0,
        perturbed_loss=best_f,
        delta=s * best_u,
        n_evals=n_evals,
        n_hvp=n_hvp,
    )


def asam_sharpness(
    fn: Objective | Callable[[Tensor], Tensor],
    w: Tensor,
    rho: float = 0.5,
    eta: float = 0.01,
    **kwargs: Any,
) -> AscentResult:
    """Adaptive sharpness (ASAM, Kwon et al. 2021): max over ‖δ/(|w| + η)‖₂ ≤ ρ of
    L(w + δ) − L(w); ``kwargs`` go to :func:`rho_sharpness`."""
    return rho_sharpness(fn, w, rho, scale=w.detach().abs() + eta, **kwargs)


@dataclass(frozen=True)
class SharpnessResult:
    """All sharpness measures at one point (``nan`` for measures not asked for).

    Attributes:
        loss: L(w). lambda_max: top Hessian eigenvalue; lambda_max_residual: its ‖Hv − λv‖.
        trace, trace_stderr: Hutchinson estimate of tr H and its standard error.
        epsilon, epsilon_sharpness: Keskar box size and φ_ε (a percentage).
        rho, rho_sharpness: SAM radius and max_{‖δ‖≤ρ} L(w+δ) − L(w).
        asam_rho, asam_eta, asam_sharpness: ASAM radius, η and the adaptive sharpness.
        n_hvp: Hessian-vector products used in total.
    """

    loss: float
    lambda_max: float = float("nan")
    lambda_max_residual: float = float("nan")
    trace: float = float("nan")
    trace_stderr: float = float("nan")
    epsilon: float = float("nan")
    epsilon_sharpness: float = float("nan")
    rho: float = float("nan")
    rho_sharpness: float = float("nan")
    asam_rho: float = float("nan")
    asam_eta: float = float("nan")
    asam_sharpness: float = float("nan")
    n_hvp: int = 0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def sharpness(
    model: nn.Module | Objective | Callable[[Tensor], Tensor],
    loss_fn: LossFn | None = None,
    inputs: Tensor | None = None,
    targets: Tensor | None = None,
    *,
    w: Tensor | None = None,
    measures: Collection[str] = ALL_MEASURES,
    epsilon: float = 1e-3,
    rho: float = 0.05,
    asam_rho: float = 0.5,
    asam_eta: float = 0.01,
    tol: float = 1e-4,
    trace_rel_se: float = 0.05,
    trace_max_probes: int = 200,
    ascent_steps: int = 20,
    generator: torch.Generator | int = 0,
    chunk_size: int | None = None,
    mode: Mode = "auto",
    method: HvpMethod = "double_backward",
) -> SharpnessResult:
    """λ_max, tr H, ε-, ρ- and adaptive sharpness in one call (see the module docstring).

    Args:
        model: an ``nn.Module`` (with ``loss_fn``, ``inputs``, ``targets``; measured at its
            current weights), or a loss of a flat vector (then give ``w``), e.g.
            ``FunctionObjective.from_batched(problem.objective)``.
        measures: subset of ``("lambda_max", "trace", "epsilon", "rho", "asam")``.
        tol: relative error bound of λ_max (Lanczos residual rule).
        trace_rel_se, trace_max_probes: Hutchinson stopping rule.
        ascent_steps: loss+gradient evaluations per start of the ρ / ASAM ascent and
            L-BFGS-B iterations per start of the ε ascent.
        generator: all random draws (Lanczos start, probes, tie-breaking signs).
    """
    unknown = set(measures) - set(ALL_MEASURES)
    if unknown:
        raise ValueError(f"unknown measures {sorted(unknown)}; choose from {ALL_MEASURES}")
    gen = as_generator(generator)
    if isinstance(model, nn.Module):
        if loss_fn is None or inputs is None or targets is None:
            raise ValueError("a model needs loss_fn, inputs and targets")
        obj: Objective = ModelObjective(
            model, loss_fn, inputs, targets, chunk_size=chunk_size, mode=mode
        )
        w = obj.w0
    else:
        if w is None:
            raise ValueError("a flat-vector loss needs the point w=")
        obj = as_objective(model)
    w = w.detach()
    op = HessianOperator.from_objective(obj, w, method)
    out: dict[str, Any] = {"loss": float(obj.value_and_grad(w)[0])}
    directions: list[Tensor] = []
    if {"lambda_max", "epsilon", "rho"} & set(measures):
        eig = lanczos(op, 1, "largest", tol, generator=gen)
        directions = [eig.vectors[:, 0]]
        if "lambda_max" in measures:
            out["lambda_max"] = float(eig.values[0])
            out["lambda_max_residual"] = float(eig.residuals[0])
    if "trace" in measures:
        tr = hessian_trace(op, rel_se=trace_rel_se, max_probes=trace_max_probes, generator=gen)
        out["trace"], out["trace_stderr"] = tr.estimate, tr.stderr
    if "epsilon" in measures:
        res = epsilon_sharpness(
            obj, w, epsilon, maxiter=ascent_steps, directions=directions, generator=gen
        )
        out["epsilon"], out["epsilon_sharpness"] = epsilon, res.value
    if "rho" in measures:
        res = rho_sharpness(
            obj,
            w,
            rho,
            steps=ascent_steps,
            directions=directions + [-d for d in directions],
            curvature_start=False,
            generator=gen,
        )
        out["rho"], out["rho_sharpness"] = rho, res.value
    n_hvp = op.n_hvp
    if "asam" in measures:
        res = asam_sharpness(obj, w, asam_rho, asam_eta, steps=ascent_steps, generator=gen)
        out.update(asam_rho=asam_rho, asam_eta=asam_eta, asam_sharpness=res.value)
        n_hvp += res.n_hvp
    return SharpnessResult(n_hvp=n_hvp, **out)
