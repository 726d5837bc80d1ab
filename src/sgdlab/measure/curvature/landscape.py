"""Loss-landscape slices: 1-D lines and 2-D planes through a point.

A slice evaluates L(w0 + α d1) on a line or L(w0 + α d1 + β d2) on a plane, for directions
that are random (from an explicit generator), the difference between two solutions
(interpolation: L((1 − α) w_a + α w_b), Goodfellow et al. 2015) or the top Hessian
eigenvectors (unit norm, so α is a Euclidean distance in parameter space).

Filter normalization (Li et al. 2018, §4): a Gaussian direction d is rescaled filter by
filter, d_{i,j} ← d_{i,j} · ‖θ_{i,j}‖ / ‖d_{i,j}‖, where a filter is the slice along the first
axis of a ≥2-D parameter θ_i: a row of a Linear weight ``[out, in]``, an output channel of a
Conv weight ``[out, in, k, k]``. One-dimensional parameters (biases, normalization scales and
shifts) are zeroed with ``ignore="biasbn"`` (Li et al.'s setting for their figures) or, with
``ignore=None``, kept and rescaled as a single filter to the norm of the whole vector (Li et
al.'s code instead copies the weights there). This makes the slice invariant to the
per-filter rescalings that ReLU/BatchNorm networks allow, so slices of different networks can
be compared.

Model slices are evaluated with :class:`~sgdlab.measure.curvature.hvp.ModelObjective` (the model's
parameters are never modified). Flat-parameter slices take any loss of a flat vector; with
``vectorized=True`` the loss takes a stack ``W [K, d] -> [K]`` — a built-in problem's
``objective`` — and a whole 2-D grid is evaluated in one call with the grid points as K.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from sgdlab.measure.curvature.eigs import hessian_eigs
from sgdlab.measure.curvature.hvp import LossFn, Mode, ModelObjective

Ignore = Literal["biasbn"] | None
Normalization = Literal["filter", "unit"] | None


@dataclass(frozen=True)
class LossLine:
    """L(w0 + α d) along a line.

    Attributes:
        alphas: ``[n]``; losses: ``[n]``; accuracies: ``[n]`` or ``None``.
        kind: ``"random"``, ``"interpolation"``, ``"eigenvector"`` or ``"direction"``.
        marks: named α positions to mark in figures (e.g. ``{"w0": 0.0}``).
    """

    alphas: np.ndarray
    losses: np.ndarray
    accuracies: np.ndarray | None = None
    kind: str = "direction"
    marks: dict[str, float] = field(default_factory=lambda: {"w0": 0.0})


@dataclass(frozen=True)
class LossSurface:
    """L(w0 + α d1 + β d2) on a grid: ``losses[i, j]`` is at ``(alphas[i], betas[j])``."""

    alphas: np.ndarray
    betas: np.ndarray
    losses: np.ndarray
    accuracies: np.ndarray | None = None
    kind: str = "direction"


def filter_normalize(
    direction: Sequence[Tensor], weights: Sequence[Tensor], ignore: Ignore = "biasbn"
) -> list[Tensor]:
    """Li et al. (2018) filter normalization of a per-parameter direction (module docstring).

    Returns new tensors; each filter of a ≥2-D direction gets the norm of the matching weight
    filter; 1-D ones are zeroed (``ignore="biasbn"``) or rescaled as one filter (``None``).
    """
    if ignore not in ("biasbn", None):
        raise ValueError(f"ignore must be 'biasbn' or None, not {ignore!r}")
    out = []
    for d, w in zip(direction, weights, strict=True):
        if d.shape != w.shape:
            raise ValueError(f"direction shape {tuple(d.shape)} != weight {tuple(w.shape)}")
        if d.dim() <= 1:
            if ignore == "biasbn":
                out.append(torch.zeros_like(d))
            else:
                out.append(d * (w.norm() / (d.norm() + 1e-10)))
            continue
        dn = d.reshape(d.shape[0], -1).norm(dim=1)
        wn = w.reshape(w.shape[0], -1).norm(dim=1)
        factor = (wn / (dn + 1e-10)).reshape(-1, *([1] * (d.dim() - 1)))
        out.append(d * factor)
    return out


def random_direction(
    params: nn.Module | Sequence[Tensor] | Tensor,
    generator: torch.Generator,
    *,
    normalization: Normalization = "filter",
    ignore: Ignore = "biasbn",
) -> Tensor:
    """A Gaussian direction as a flat vector, drawn from ``generator``.

    Args:
        params: a model (its trainable parameters, in ``named_parameters`` order), a list of
            parameter tensors, or a flat vector ``w0 [d]`` (no filter structure).
        normalization: ``"filter"`` (Li et al., needs a model or tensor list), ``"unit"``
            (‖d‖ = 1) or ``None`` (raw N(0, I)).
        ignore: handling of 1-D parameters under filter normalization.
    """
    if isinstance(params, nn.Module):
        tensors = [p.detach() for p in params.parameters() if p.requires_grad]
    elif isinstance(params, Tensor):
        if normalization == "filter":
            raise ValueError(
                "filter normalization needs the parameter tensors (a model or a list); "
                "a flat vector has no filters: use normalization='unit'"
            )
        tensors = [params.detach()]
    else:
        tensors = [p.detach() for p in params]
    raw = [torch.randn(t.shape, generator=generator, dtype=torch.float64).to(t) for t in tensors]
    if normalization == "filter":
        raw = filter_normalize(raw, tensors, ignore)
    flat = torch.cat([r.reshape(-1) for r in raw])
    if normalization == "unit":
        flat = flat / flat.norm()
    elif normalization not in ("filter", None):
        raise ValueError(f"normalization must be 'filter', 'unit' or None, not {normalization!r}")
    return flat


# ------------------------------------------------------------------ flat parameters
def _grid(values: np.ndarray | Sequence[float] | None, lo: float, hi: float, n: int) -> np.ndarray:
    """``values`` as float64, or the default ``linspace(lo, hi, n)``."""
    if values is None:
        return np.linspace(lo, hi, n)
    return np.asarray(values, dtype=np.float64)


def _evaluate(fn: Callable[[Tensor], Tensor], W: Tensor, vectorized: bool, chunk: int) -> Tensor:
    with torch.no_grad():
        if vectorized:
            return torch.cat([fn(W[i : i + chunk]) for i in range(0, len(W), chunk)])
        return torch.stack([torch.as_tensor(fn(w)) for w in W])


def line_slice(
    fn: Callable[[Tensor], Tensor],
    w0: Tensor,
    direction: Tensor,
    alphas: np.ndarray | Sequence[float] | None = None,
    *,
    vectorized: bool = False,
    chunk: int = 4096,
    kind: str = "direction",
) -> LossLine:
    """L(w0 + α d) for each α (``vectorized``: ``fn(W [K, d]) -> [K]``)."""
    a = _grid(alphas, -1, 1, 51)
    W = w0.detach() + torch.as_tensor(a).to(w0)[:, None] * direction.to(w0)[None, :]
    losses = _evaluate(fn, W, vectorized, chunk).cpu().numpy()
    return LossLine(alphas=a, losses=losses, kind=kind)


def surface_slice(
    fn: Callable[[Tensor], Tensor],
    w0: Tensor,
    d1: Tensor,
    d2: Tensor,
    alphas: np.ndarray | Sequence[float] | None = None,
    betas: np.ndarray | Sequence[float] | None = None,
    *,
    vectorized: bool = False,
    chunk: int = 4096,
    kind: str = "direction",
) -> LossSurface:
    """L(w0 + α d1 + β d2) on the grid alphas × betas; with ``vectorized`` the whole grid is
    one stack of K = len(alphas)·len(betas) points (in chunks of ``chunk``)."""
    a = _grid(alphas, -1, 1, 21)
    b = _grid(betas, -1, 1, 21)
    A, B = np.meshgrid(a, b, indexing="ij")
    ta, tb = torch.as_tensor(A.reshape(-1)).to(w0), torch.as_tensor(B.reshape(-1)).to(w0)
    W = w0.detach() + ta[:, None] * d1.to(w0)[None, :] + tb[:, None] * d2.to(w0)[None, :]
    losses = _evaluate(fn, W, vectorized, chunk).cpu().numpy().reshape(len(a), len(b))
    return LossSurface(alphas=a, betas=b, losses=losses, kind=kind)


def interpolation_slice(
    fn: Callable[[Tensor], Tensor],
    w_a: Tensor,
    w_b: Tensor,
    alphas: np.ndarray | Sequence[float] | None = None,
    *,
    vectorized: bool = False,
    chunk: int = 4096,
) -> LossLine:
    """L((1 − α) w_a + α w_b): α = 0 is w_a, α = 1 is w_b."""
    a = _grid(alphas, -0.5, 1.5, 41)
    line = line_slice(fn, w_a, w_b - w_a, a, vectorized=vectorized, chunk=chunk)
    return LossLine(line.alphas, line.losses, None, "interpolation", {"w_a": 0.0, "w_b": 1.0})


# ----------------------------------------------------------------------- models
def _model_values(
    obj: ModelObjective, W: Tensor, accuracy: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    vals = [obj.evaluate(w, accuracy) for w in W]
    losses = np.array([v[0] for v in vals])
    return losses, (np.array([v[1] for v in vals]) if accuracy else None)


def loss_line(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Tensor,
    targets: Tensor,
    *,
    direction: Tensor | None = None,
    alphas: np.ndarray | Sequence[float] | None = None,
    generator: torch.Generator | None = None,
    normalization: Normalization = "filter",
    ignore: Ignore = "biasbn",
    accuracy: bool = False,
    chunk_size: int | None = None,
    mode: Mode = "auto",
    kind: str | None = None,
) -> LossLine:
    """1-D slice of a model's mean loss through its current weights.

    ``direction`` is a flat vector; ``None`` draws a :func:`random_direction` from
    ``generator`` (required then). ``accuracy`` adds argmax-accuracy (classification).
    """
    obj = ModelObjective(model, loss_fn, inputs, targets, chunk_size=chunk_size, mode=mode)
    if direction is None:
        if generator is None:
            raise ValueError("a random direction needs an explicit generator")
        direction = random_direction(model, generator, normalization=normalization, ignore=ignore)
        kind = kind or "random"
    a = _grid(alphas, -1, 1, 51)
    W = obj.w0 + torch.as_tensor(a).to(obj.w0)[:, None] * direction.to(obj.w0)[None, :]
    losses, accs = _model_values(obj, W, accuracy)
    return LossLine(alphas=a, losses=losses, accuracies=accs, kind=kind or "direction")


def loss_surface(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Tensor,
    targets: Tensor,
    *,
    directions: tuple[Tensor, Tensor] | None = None,
    alphas: np.ndarray | Sequence[float] | None = None,
    betas: np.ndarray | Sequence[float] | None = None,
    generator: torch.Generator | None = None,
    normalization: Normalization = "filter",
    ignore: Ignore = "biasbn",
    accuracy: bool = False,
    chunk_size: int | None = None,
    mode: Mode = "auto",
    kind: str | None = None,
) -> LossSurface:
    """2-D slice of a model's mean loss; ``directions=None`` draws two random
    (filter-normalized) directions from ``generator``."""
    obj = ModelObjective(model, loss_fn, inputs, targets, chunk_size=chunk_size, mode=mode)
    if directions is None:
        if generator is None:
            raise ValueError("random directions need an explicit generator")
        directions = tuple(  # type: ignore[assignment]
            random_direction(model, generator, normalization=normalization, ignore=ignore)
            for _ in range(2)
        )
        kind = kind or "random"
    d1, d2 = (d.to(obj.w0) for d in directions)  # type: ignore[union-attr]
    a = _grid(alphas, -1, 1, 21)
    b = _grid(betas, -1, 1, 21)
    A, B = np.meshgrid(a, b, indexing="ij")
    ta, tb = torch.as_tensor(A.reshape(-1)).to(obj.w0), torch.as_tensor(B.reshape(-1)).to(obj.w0)
    W = obj.w0 + ta[:, None] * d1[None, :] + tb[:, None] * d2[None, :]
    losses, accs = _model_values(obj, W, accuracy)
    shape = (len(a), len(b))
    return LossSurface(
        alphas=a,
        betas=b,
        losses=losses.reshape(shape),
        accuracies=None if accs is None else accs.reshape(shape),
        kind=kind or "direction",
    )


def loss_interpolation(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Tensor,
    targets: Tensor,
    w_a: Tensor | nn.Module,
    w_b: Tensor | nn.Module,
    *,
    alphas: np.ndarray | Sequence[float] | None = None,
    accuracy: bool = False,
    chunk_size: int | None = None,
    mode: Mode = "auto",
) -> LossLine:
    """L((1 − α) w_a + α w_b) for two solutions of ``model``'s architecture (flat vectors or
    models with the same parameter names)."""
    obj = ModelObjective(model, loss_fn, inputs, targets, chunk_size=chunk_size, mode=mode)
    wa = obj.flatten(w_a) if isinstance(w_a, nn.Module) else w_a.to(obj.w0)
    wb = obj.flatten(w_b) if isinstance(w_b, nn.Module) else w_b.to(obj.w0)
    a = _grid(alphas, -0.5, 1.5, 41)
    W = wa + torch.as_tensor(a).to(wa)[:, None] * (wb - wa)[None, :]
    losses, accs = _model_values(obj, W, accuracy)
    return LossLine(a, losses, accs, "interpolation", {"w_a": 0.0, "w_b": 1.0})


def loss_eigen_slice(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Tensor,
    targets: Tensor,
    *,
    k: Literal[1, 2] = 2,
    alphas: np.ndarray | Sequence[float] | None = None,
    betas: np.ndarray | Sequence[float] | None = None,
    tol: float = 1e-4,
    generator: torch.Generator | int = 0,
    accuracy: bool = False,
    chunk_size: int | None = None,
    mode: Mode = "auto",
) -> LossLine | LossSurface:
    """Slice along the top Hessian eigenvector (``k=1``: a line) or the top two (``k=2``: a
    plane), unit-norm eigenvectors from :func:`~sgdlab.measure.curvature.eigs.hessian_eigs`
    (``generator``: its Lanczos start, a generator or an int seed)."""
    if k not in (1, 2):
        raise ValueError("k must be 1 (a line) or 2 (a plane)")
    eig = hessian_eigs(
        model, loss_fn, inputs, targets, k=k, tol=tol, generator=generator,
        chunk_size=chunk_size, mode=mode,
    )  # fmt: skip
    common = dict(accuracy=accuracy, chunk_size=chunk_size, mode=mode, kind="eigenvector")
    if k == 1:
        return loss_line(
            model, loss_fn, inputs, targets, direction=eig.vectors[:, 0], alphas=alphas, **common
        )
    return loss_surface(
        model, loss_fn, inputs, targets, directions=(eig.vectors[:, 0], eig.vectors[:, 1]),
        alphas=alphas, betas=betas, **common,
    )  # fmt: skip
