"""Hessian-vector products as a counted linear operator, for models and flat functions.

:class:`HessianOperator` wraps v ↦ H v for the Hessian of a model's mean-reduced loss over a
batch or a whole dataset (accumulated over chunks: L = Σ_c (n_c/N) loss_fn(model(x_c), y_c),
see :mod:`sgdlab.measure.curvature.objective`), of a scalar function of a flat vector, or of a dense
matrix, and counts the products it computes. The product is by double backward,
H v = ∇(∇L · v) (Pearlmutter 1994), or by forward-over-reverse,
H v = ``torch.func.jvp(torch.func.grad(L), (w,), (v,))``; by default the model runs as it is
trained (``mode="auto"``: its own modes, dropout off; ``"eval"`` or ``"train"`` on request; its
mode is restored after every product), with the math attention backend.

Example:
    >>> model = torch.nn.Linear(3, 1).double()
    >>> x, y = torch.ones(8, 3, dtype=torch.float64), torch.zeros(8, 1, dtype=torch.float64)
    >>> op = HessianOperator.from_model(model, torch.nn.functional.mse_loss, x, y)
    >>> op.matvec(torch.ones(op.dim, dtype=torch.float64)).shape
    torch.Size([4])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sgdlab.measure.curvature.objective import (
    FunctionObjective,
    HvpMethod,
    LossFn,
    Mode,
    ModelObjective,
    Objective,
    as_objective,
    model_mode,
)

__all__ = [
    "FunctionObjective",
    "HessianOperator",
    "HvpMethod",
    "LossFn",
    "Mode",
    "ModelObjective",
    "Objective",
    "as_objective",
    "hessian_matrix",
    "hessian_operator",
    "model_mode",
]


class HessianOperator:
    """A symmetric linear operator v ↦ H v that counts its products.

    Build one with :meth:`from_model`, :meth:`from_function`, :meth:`from_objective`,
    :meth:`from_matrix` or directly from a matvec callable.

    Attributes:
        dim: d, the operator is d × d.
        dtype, device: of the vectors it takes and returns.
        n_hvp: number of products computed so far (:meth:`reset_count` zeroes it).
    """

    def __init__(
        self,
        matvec: Callable[[Tensor], Tensor],
        dim: int,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
    ) -> None:
        self._matvec, self.dim, self.dtype = matvec, int(dim), dtype
        self.device = torch.device(device)
        self.n_hvp = 0

    # ------------------------------------------------------------ constructors
    @classmethod
    def from_objective(
        cls, objective: Objective, w: Tensor, method: HvpMethod = "double_backward"
    ) -> HessianOperator:
        """Hessian of ``objective`` at the flat point ``w``."""
        if method not in ("double_backward", "forward_over_reverse"):
            raise ValueError(f"unknown HVP method {method!r}")
        w = w.detach().clone()
        return cls(lambda v: objective.hvp(w, v, method), w.numel(), w.dtype, w.device)

    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        loss_fn: LossFn,
        inputs: Tensor,
        targets: Tensor,
        *,
        chunk_size: int | None = None,
        mode: Mode = "auto",
        method: HvpMethod = "double_backward",
    ) -> HessianOperator:
        """Hessian of the model's mean loss over ``(inputs, targets)`` at its current weights."""
        obj = ModelObjective(model, loss_fn, inputs, targets, chunk_size=chunk_size, mode=mode)
        return cls.from_objective(obj, obj.w0, method)

    @classmethod
    def from_function(
        cls, fn: Callable[[Tensor], Tensor], w: Tensor, method: HvpMethod = "double_backward"
    ) -> HessianOperator:
        """Hessian of a scalar function of a flat vector at ``w``."""
        return cls.from_objective(as_objective(fn), w, method)

    @classmethod
    def from_matrix(cls, H: Tensor) -> HessianOperator:
        """A dense symmetric matrix ``H [d, d]`` (e.g. ``problem.hessian(w)``)."""
        if H.ndim != 2 or H.shape[0] != H.shape[1]:
            raise ValueError(f"expected a square matrix, got shape {tuple(H.shape)}")
        return cls(lambda v: H @ v, H.shape[0], H.dtype, H.device)

    # ---------------------------------------------------------------- products
    def matvec(self, v: Tensor | np.ndarray) -> Tensor:
        """H v for a vector of length d."""
        v = torch.as_tensor(v, dtype=self.dtype, device=self.device).reshape(-1)
        if v.numel() != self.dim:
            raise ValueError(f"vector of length {v.numel()} for a {self.dim}-dim operator")
        self.n_hvp += 1
        return self._matvec(v)

    __call__ = matvec

    def reset_count(self) -> None:
        self.n_hvp = 0

    def dense(self) -> Tensor:
        """The full matrix by d products H e_i (a reference for small d)."""
        eye = torch.eye(self.dim, dtype=self.dtype, device=self.device)
        H = torch.stack([self.matvec(e) for e in eye], dim=1)
        return 0.5 * (H + H.T)

    def as_linear_operator(self) -> Any:
        """A :class:`scipy.sparse.linalg.LinearOperator` (NumPy vectors, counted products)."""
        from scipy.sparse.linalg import LinearOperator

        def mv(x: np.ndarray) -> np.ndarray:
            return self.matvec(torch.as_tensor(np.asarray(x).reshape(-1))).cpu().numpy()

        np_dtype = torch.empty((), dtype=self.dtype).numpy().dtype
        return LinearOperator((self.dim, self.dim), matvec=mv, rmatvec=mv, dtype=np_dtype)


def hessian_operator(
    model: Any,
    loss_fn: LossFn | None = None,
    inputs: Tensor | None = None,
    targets: Tensor | None = None,
    *,
    dim: int | None = None,
    chunk_size: int | None = None,
    mode: Mode = "auto",
    method: HvpMethod = "double_backward",
) -> HessianOperator:
    """Any supported Hessian description as a :class:`HessianOperator`.

    ``model`` may be an ``nn.Module`` (with ``loss_fn``, ``inputs``, ``targets``), a
    :class:`HessianOperator` (returned as is), a dense square tensor, a SciPy
    ``LinearOperator``, or a matvec callable ``v [d] -> H v`` (give ``dim``).
    """
    if isinstance(model, HessianOperator):
        return model
    if isinstance(model, nn.Module):
        if loss_fn is None or inputs is None or targets is None:
            raise ValueError("a model needs loss_fn, inputs and targets")
        return HessianOperator.from_model(
            model, loss_fn, inputs, targets, chunk_size=chunk_size, mode=mode, method=method
        )
    if isinstance(model, Tensor):
        return HessianOperator.from_matrix(model)
    if hasattr(model, "matvec") and hasattr(model, "shape"):  # scipy LinearOperator
        lin = model
        return HessianOperator(
            lambda v: torch.as_tensor(lin.matvec(v.cpu().numpy()), dtype=torch.float64),
            lin.shape[0],
        )
    if callable(model):
        if dim is None:
            raise ValueError("a matvec callable needs dim=")
        return HessianOperator(model, dim)
    raise TypeError(f"cannot make a Hessian operator from {type(model).__name__}")


def hessian_matrix(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Tensor,
    targets: Tensor,
    *,
    mode: Mode = "auto",
    block: int | None = None,
) -> Tensor:
    """The exact Hessian ``[d, d]`` of the mean loss over the flat parameters (O(d²) memory).

    ``block=None`` uses :func:`torch.autograd.functional.hessian` (the slow, obviously correct
    reference for tests); ``block=b`` computes the columns H e_i, b at a time, by
    ``torch.func.vmap`` of forward-over-reverse products (much faster for d in the thousands;
    symmetrized as (H + Hᵀ)/2).
    """
    obj = ModelObjective(model, loss_fn, inputs, targets, mode=mode)
    if block is None:
        return torch.autograd.functional.hessian(obj, obj.w0)
    w0 = obj.w0

    def column(e: Tensor) -> Tensor:
        return torch.func.jvp(torch.func.grad(obj), (w0,), (e,))[1]

    eye = torch.eye(obj.dim, dtype=w0.dtype, device=w0.device)
    H = torch.cat([torch.func.vmap(column)(eye[i : i + block]) for i in range(0, obj.dim, block)])
    return 0.5 * (H + H.T)
