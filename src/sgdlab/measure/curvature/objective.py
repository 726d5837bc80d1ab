"""Losses as functions of a flat parameter vector: value, gradient and Hessian-vector product.

A model is viewed as a function of its **flat parameter vector** w (every parameter with
``requires_grad``, flattened in ``named_parameters()`` order). With data {(x_i, y_i)}, i ≤ N,
split into chunks c of n_c samples, the loss is the user's mean-reduced loss

    L(w) = Σ_c (n_c / N) · loss_fn(model_w(x_c), y_c),

which is exactly loss_fn over the whole dataset when ``loss_fn`` averages over samples
(``reduction="mean"``); with one chunk it is the batch loss. Gradients and Hessian-vector
products are accumulated chunk by chunk with the same weights n_c/N (memory of one chunk):

    H v = ∇_w (∇_w L(w) · v)                 double backward (Pearlmutter 1994), or
    H v = d/dt ∇_w L(w + t v) |_{t=0}        forward-over-reverse, ``torch.func.jvp(grad(L))``.

The model is evaluated with :func:`torch.func.functional_call`: its parameters are never
modified, its buffers are copied for every call (running statistics of normalization layers
are not updated: they are as before after every measurement). Which function is measured
(``mode``; the modules' ``training`` flags are restored afterwards):

* ``"auto"`` (default) — **the function being trained**: every module in its own mode, dropout
  off (``nn.Dropout*`` and ``nn.MultiheadAttention``'s; see :mod:`sgdlab.measure._modes`). A
  train-mode BatchNorm normalizes with the statistics of the batch (of each chunk, with
  ``chunk_size``), as in the training step; measuring the eval-mode network instead gave a
  different loss, gradient and λ_max (issue 14: on resnet18 λ_max 11 373 vs 191);
* ``"eval"`` — the eval-mode network (running statistics), ``"train"`` — everything in train
  mode (dropout draws from torch's global generator, so the loss is random and curvature
  instruments measure a random operator), ``None`` — the modes as they are.

**Attention.** Only the math backend of ``F.scaled_dot_product_attention`` has a double
backward (the CPU flash kernel's backward is not differentiable: "derivative for
aten::_scaled_dot_product_flash_attention_for_cpu_backward is not implemented"), so every
evaluation runs under :func:`math_attention` (the backend choice is restored afterwards);
``nn.MultiheadAttention``, ``nn.TransformerEncoder`` and HF's ``sdpa`` attention then give
exact Hessian-vector products.

:class:`FunctionObjective` gives the same interface to any scalar function of a flat tensor,
e.g. a built-in problem's objective (``FunctionObjective.from_batched(problem.objective)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch
from torch import Tensor, nn

from sgdlab.measure._modes import apply_mode, math_attention

__all__ = [
    "FunctionObjective",
    "HvpMethod",
    "LossFn",
    "Mode",
    "ModelObjective",
    "Objective",
    "as_objective",
    "math_attention",
    "model_mode",
]

Mode = Literal["auto", "eval", "train"] | None
HvpMethod = Literal["double_backward", "forward_over_reverse"]
LossFn = Callable[[Tensor, Tensor], Tensor]


@contextmanager
def model_mode(model: nn.Module, mode: Mode) -> Iterator[None]:
    """Run the block with ``model`` in ``"auto"`` (its own modes, dropout off), ``"train"``
    or ``"eval"`` mode (``None``: as it is) and the math attention backend; every submodule's
    ``training`` flag is restored afterwards."""
    flags = [m.training for m in model.modules()]
    apply_mode(model, mode)
    try:
        with math_attention():
            yield
    finally:
        for m, flag in zip(model.modules(), flags, strict=True):
            m.training = flag


def _or_zeros(g: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if g is None else g


class FunctionObjective:
    """A scalar function of a flat vector, ``fn(w [d]) -> []``, with autograd derivatives.

    Args:
        fn: differentiable scalar function of a flat tensor.
    """

    def __init__(self, fn: Callable[[Tensor], Tensor]) -> None:
        self.fn = fn

    @classmethod
    def from_batched(cls, fn_batched: Callable[[Tensor], Tensor]) -> FunctionObjective:
        """Wrap a vectorized ``fn(W [K, d]) -> [K]`` such as ``problem.objective``."""
        return cls(lambda w: fn_batched(w.unsqueeze(0))[0])

    def __call__(self, w: Tensor) -> Tensor:
        return self.fn(w)

    def value_and_grad(self, w: Tensor) -> tuple[Tensor, Tensor]:
        """(L(w), ∇L(w)) by one backward pass."""
        with torch.enable_grad():
            w = w.detach().requires_grad_(True)
            value = self.fn(w)
            (g,) = torch.autograd.grad(value, w, allow_unused=True)
        return value.detach(), _or_zeros(g, w).detach()

    def hvp(self, w: Tensor, v: Tensor, method: HvpMethod = "double_backward") -> Tensor:
        """∇²L(w) v by double backward or by forward-over-reverse."""
        if method == "forward_over_reverse":
            return torch.func.jvp(torch.func.grad(self.fn), (w.detach(),), (v,))[1]
        with torch.enable_grad():
            w = w.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.fn(w), w, create_graph=True, allow_unused=True)
            if g is None or not g.requires_grad:  # L is affine in w
                return torch.zeros_like(w)
            (hv,) = torch.autograd.grad(g, w, grad_outputs=v, allow_unused=True)
        return _or_zeros(hv, w).detach()


class ModelObjective:
    """A model's mean-reduced loss over a dataset as a function of its flat parameters.

    Args:
        model: the network; its parameters with ``requires_grad`` are the coordinates of w.
        loss_fn: ``loss_fn(model(x), y)`` with ``reduction="mean"``.
        inputs, targets: the batch or whole dataset ``x [N, ...]``, ``y [N, ...]``.
        chunk_size: samples per chunk (``None``: all at once); chunk losses are weighted n_c/N.
        mode: ``"auto"`` (default: the function being trained, dropout off), ``"eval"``,
            ``"train"`` or ``None`` (leave the model's mode); see the module docstring.

    Attributes:
        w0: a detached copy of the model's current flat parameters ``[d]``.
        names, shapes: parameter names and shapes, in flattening order.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        inputs: Tensor,
        targets: Tensor,
        *,
        chunk_size: int | None = None,
        mode: Mode = "auto",
    ) -> None:
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("the model has no parameters with requires_grad=True")
        if not isinstance(inputs, Tensor) or not isinstance(targets, Tensor):
            raise TypeError(
                "curvature instruments take inputs and targets as single tensors with the "
                f"sample in dim 0 (got {type(inputs).__name__} and {type(targets).__name__}); "
                "wrap a model with several inputs or no targets in a module that takes one "
                "tensor, and a loss without targets in loss_fn(out, y) that ignores y"
            )
        self.model, self.loss_fn, self.mode = model, loss_fn, mode
        self.inputs, self.targets = inputs, targets
        self.n = int(inputs.shape[0])
        self.chunk_size = chunk_size or self.n
        self.names = [n for n, _ in named]
        self.shapes = [tuple(p.shape) for _, p in named]
        self.numels = [p.numel() for _, p in named]
        self.w0 = torch.cat([p.detach().reshape(-1) for _, p in named]).clone()
        self.dim, self.dtype, self.device = self.w0.numel(), self.w0.dtype, self.w0.device

    # ------------------------------------------------------------------ helpers
    def unflatten(self, w: Tensor) -> dict[str, Tensor]:
        """Parameter dict (views of ``w``) for :func:`torch.func.functional_call`."""
        parts = torch.split(w, self.numels)
        return {n: t.view(s) for n, t, s in zip(self.names, parts, self.shapes, strict=True)}

    def flatten(self, params: nn.Module | dict[str, Tensor]) -> Tensor:
        """Flat vector of a same-architecture model's (or a state dict's) parameters."""
        src = dict(params.named_parameters()) if isinstance(params, nn.Module) else params
        return torch.cat([src[n].detach().reshape(-1) for n in self.names]).to(self.w0)

    def chunks(self) -> Iterator[tuple[Tensor, Tensor, float]]:
        """``(x_c, y_c, n_c / N)`` for every chunk."""
        for start in range(0, self.n, self.chunk_size):
            x = self.inputs[start : start + self.chunk_size]
            yield x, self.targets[start : start + self.chunk_size], x.shape[0] / self.n

    def forward(self, w: Tensor, x: Tensor) -> Tensor:
        """Model output at parameters ``w`` (buffers copied, so never updated in place)."""
        state: dict[str, Any] = {n: b.clone() for n, b in self.model.named_buffers()}
        state.update(self.unflatten(w))
        return torch.func.functional_call(self.model, state, (x,))

    def _chunk_loss(self, w: Tensor, x: Tensor, y: Tensor, weight: float) -> Tensor:
        return weight * self.loss_fn(self.forward(w, x), y)

    # ------------------------------------------------------------ the objective
    def __call__(self, w: Tensor) -> Tensor:
        """L(w), differentiable in ``w`` (the graph spans all chunks; prefer
        :meth:`value_and_grad` for large data)."""
        with model_mode(self.model, self.mode):
            return sum(self._chunk_loss(w, x, y, c) for x, y, c in self.chunks())

    def value_and_grad(self, w: Tensor) -> tuple[Tensor, Tensor]:
        """(L(w), ∇L(w)), one backward pass per chunk."""
        value = torch.zeros((), dtype=self.dtype, device=self.device)
        grad = torch.zeros_like(self.w0)
        with model_mode(self.model, self.mode), torch.enable_grad():
            for x, y, c in self.chunks():
                wl = w.detach().requires_grad_(True)
                loss = self._chunk_loss(wl, x, y, c)
                (g,) = torch.autograd.grad(loss, wl, allow_unused=True)
                value, grad = value + loss.detach(), grad + _or_zeros(g, wl)
        return value, grad

    def hvp(self, w: Tensor, v: Tensor, method: HvpMethod = "double_backward") -> Tensor:
        """∇²L(w) v, accumulated over chunks."""
        out = torch.zeros_like(self.w0)
        with model_mode(self.model, self.mode):
            for x, y, c in self.chunks():
                if method == "forward_over_reverse":

                    def f(wf: Tensor, x: Tensor = x, y: Tensor = y, c: float = c) -> Tensor:
                        return self._chunk_loss(wf, x, y, c)

                    out += torch.func.jvp(torch.func.grad(f), (w.detach(),), (v,))[1]
                    continue
                with torch.enable_grad():
                    wl = w.detach().requires_grad_(True)
                    (g,) = torch.autograd.grad(
                        self._chunk_loss(wl, x, y, c), wl, create_graph=True, allow_unused=True
                    )
                    if g is None or not g.requires_grad:
                        continue
                    (hv,) = torch.autograd.grad(g, wl, grad_outputs=v, allow_unused=True)
                    out += _or_zeros(hv, wl).detach()
        return out

    def evaluate(self, w: Tensor, accuracy: bool = False) -> tuple[float, float | None]:
        """(L(w), accuracy) without gradients; accuracy = mean of argmax(output) == target."""
        loss, correct = 0.0, 0
        with model_mode(self.model, self.mode), torch.no_grad():
            for x, y, c in self.chunks():
                out = self.forward(w, x)
                loss += c * float(self.loss_fn(out, y))
                if accuracy:
                    correct += int((out.argmax(dim=-1) == y).sum())
        return loss, (correct / self.n if accuracy else None)


Objective = FunctionObjective | ModelObjective


def as_objective(fn: Objective | Callable[[Tensor], Tensor]) -> Objective:
    """A :class:`FunctionObjective` for a plain callable; objectives pass through."""
    if isinstance(fn, FunctionObjective | ModelObjective):
        return fn
    if not callable(fn):
        raise TypeError(f"expected a callable loss of a flat vector, got {type(fn).__name__}")
    return FunctionObjective(fn)
