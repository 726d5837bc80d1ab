"""The ``Problem`` protocol: F(w) = E_ξ[f(w; ξ)] over stacked chains.

Shapes and conventions (all problems):

* Parameters are flat: one chain is ``w`` of shape ``[d]``; an ensemble is ``W`` of shape
  ``[K, d]``. Problems that are neural networks unflatten ``W`` internally.
* A batch for ``K`` chains is ``(x, y)`` with ``x`` of shape ``[K, b, *x_shape]`` and ``y`` of
  shape ``[K, b]`` (``y`` may be a dummy for problems without targets).
* ``per_sample_loss(W, x, y)`` returns ``f(W_k; ξ_{k,i})`` of shape ``[K, b]``; the minibatch
  loss is its **mean** over ``b`` (``reduction="mean"``), so the minibatch gradient is
  g_b = (1/b) Σ_i ∇f(w; ξ_i) and its covariance is Σ(w)/b when sampled with replacement.
* Regularizers are part of f (each sample carries the full penalty), so F = E_ξ f exactly.
* ``objective(W)`` is F(W_k): a closed form where one exists, otherwise the mean of f over
  the whole finite dataset (computed in chunks).
* ``grad_cov(w)`` is Σ(w) = Cov_ξ[∇f(w; ξ)], normalised by 1/N over a finite dataset
  (the population covariance of the N per-sample gradients) or the population value.

Finite problems expose ``data`` (tensors ``X [N, ...]``, ``y [N]``) and set ``n``; population
problems set ``n = None`` and draw fresh samples with :meth:`Problem.sample`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor

from sgdlab.rng import Streams


class ProblemParams(BaseModel):
    """Base class of every problem's validated parameters (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Problem(ABC):
    """A stochastic objective F(w) = E_ξ[f(w; ξ)] with optional closed forms.

    Subclasses set ``name``, ``Params`` (a :class:`ProblemParams` subclass), ``dim``,
    ``n``, and implement :meth:`per_sample_loss` and :meth:`init_params`; finite problems
    set ``X``/``y``, population problems implement :meth:`sample`.
    """

    name: ClassVar[str]
    Params: ClassVar[type[ProblemParams]]
    #: one-line description shown by ``sgdlab problems``
    summary: ClassVar[str] = ""

    dim: int
    n: int | None
    X: Tensor | None = None
    y: Tensor | None = None
    dtype: torch.dtype = torch.float64
    #: the Python-side flag: is F(w) cheap enough to record at every probe?
    objective_affordable: bool = True

    def __init__(self, params: ProblemParams, streams: Streams, dtype: torch.dtype) -> None:
        self.params = params
        self.streams = streams
        self.dtype = dtype

    # ----------------------------------------------------------- required parts
    @abstractmethod
    def per_sample_loss(
        self, W: Tensor, x: Tensor, y: Tensor, noise: dict[str, Tensor] | None = None
    ) -> Tensor:
        """f(W_k; ξ_{k,i}) for a batch: ``W [K,d]``, ``x [K,b,...]``, ``y [K,b]`` → ``[K,b]``.

        ``noise`` holds this step's per-chain draws declared by :meth:`step_noise`
        (e.g. dropout uniforms ``[K, b, width]``); ``None`` means deterministic evaluation
        (no dropout, no label flips), as used for the full objective F.
        """

    def step_noise(self, batch_size: int) -> dict[str, tuple[str, tuple[int, ...], str]]:
        """Per-step random draws the loss needs besides the batch.

        Returns ``{key: (stream, shape, kind)}``: the engine draws, for every chain and step,
        a tensor of ``shape`` from the named stream (``kind`` is ``"uniform"`` on [0, 1) or
        ``"normal"``) and passes ``noise={key: Tensor[K, *shape]}`` to
        :meth:`per_sample_loss`. A turned-off stream passes no entry for its keys.
        """
        return {}

    @abstractmethod
    def init_params(self, generator: torch.Generator | None) -> Tensor:
        """Initial point of one chain, ``[d]``; ``generator=None`` means the ``init`` source is
        off and a fixed deterministic point is returned."""

    @property
    def random_init(self) -> bool:
        """Whether :meth:`init_params` draws from its generator (the ``init`` source)."""
        return True

    @property
    def static_label_noise(self) -> bool:
        """Whether building the data flipped labels from the ``label_noise`` stream."""
        return False

    # ------------------------------------------------------------ data access
    @property
    def finite(self) -> bool:
        return self.n is not None

    def sample(self, generator: torch.Generator, count: int) -> tuple[Tensor, Tensor]:
        """Draw ``count`` fresh samples ``(x [count,...], y [count])`` from the population."""
        raise NotImplementedError(f"problem {self.name!r} has no population to sample from")

    def loss(
        self, W: Tensor, x: Tensor, y: Tensor, noise: dict[str, Tensor] | None = None
    ) -> Tensor:
        """Minibatch loss per chain, the mean of :meth:`per_sample_loss` over the batch: ``[K]``."""
        return self.per_sample_loss(W, x, y, noise).mean(dim=1)

    def loss_and_grad(
        self, W: Tensor, x: Tensor, y: Tensor, noise: dict[str, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Minibatch loss ``[K]`` and its gradient ``[K, d]`` for every chain.

        The reference is autograd of Σ_k loss_k (chains are independent, so the gradient of
        the sum is each chain's gradient). Problems override this with a closed-form
        gradient (a fast path), which ``tests/test_problems_fast_grad.py`` checks against
        this reference in float64.
        """
        return self.loss_and_grad_autograd(W, x, y, noise)

    def loss_and_grad_autograd(
        self, W: Tensor, x: Tensor, y: Tensor, noise: dict[str, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """The autograd reference of :meth:`loss_and_grad`."""
        with torch.enable_grad():
            Wg = W.detach().requires_grad_(True)
            loss = self.loss(Wg, x, y, noise)
            (grad,) = torch.autograd.grad(loss.sum(), Wg)
        return loss.detach(), grad

    def objective(self, W: Tensor, chunk: int = 4096) -> Tensor:
        """F(W_k) per chain ``[K]``: the closed form if there is one, else the full-data mean."""
        closed = self.closed_objective(W)
        if closed is not None:
            return closed
        if not self.finite or self.X is None or self.y is None:
            raise NotImplementedError(f"problem {self.name!r} has no computable objective")
        K = W.shape[0]
        total = torch.zeros(K, dtype=W.dtype, device=W.device)
        for start in range(0, self.n, chunk):
            xb = self.X[start : start + chunk]
            yb = self.y[start : start + chunk]
            xk = xb.unsqueeze(0).expand(K, *xb.shape)
            yk = yb.unsqueeze(0).expand(K, *yb.shape)
            total = total + self.per_sample_loss(W, xk, yk).sum(dim=1)
        return total / self.n

    # ------------------------------------------------------- closed forms (opt.)
    def closed_objective(self, W: Tensor) -> Tensor | None:
        """Exact F(W_k) ``[K]`` where known, else ``None``."""
        return None

    def grad_F(self, W: Tensor) -> Tensor | None:
        """Exact ∇F(W_k) ``[K,d]`` where known, else ``None``."""
        return None

    def hessian(self, w: Tensor) -> Tensor | None:
        """Exact Hessian ∇²F(w) ``[d,d]`` where known, else ``None``."""
        return None

    def grad_cov(self, w: Tensor) -> Tensor | None:
        """Exact per-sample gradient covariance Σ(w) ``[d,d]`` where known, else ``None``."""
        return None

    @property
    def f_star(self) -> float | None:
        """F* = min F where known, else ``None``."""
        return None

    @property
    def w_star(self) -> Tensor | None:
        """A minimiser w* ``[d]`` where known, else ``None``."""
        return None

    # ------------------------------------------------------------ module view
    def to_module(self, w: Tensor) -> tuple[torch.nn.Module, object]:
        """``(model, loss_fn)`` for one chain, for the PyTorch instruments of
        :mod:`sgdlab.measure` (``loss_fn(model(x), y)`` with ``reduction="mean"``)."""
        raise NotImplementedError(f"problem {self.name!r} has no nn.Module view")

    def to(self, device: torch.device | str) -> Problem:
        """Move every tensor attribute (data, closed-form matrices) to ``device`` in place."""
        device = torch.device(device)
        for key, value in list(vars(self).items()):
            if isinstance(value, Tensor) and value.device != device:
                setattr(self, key, value.to(device))
        return self

    def describe(self) -> dict:
        """JSON-able summary (name, d, N, which closed forms exist)."""
        return {
            "name": self.name,
            "dim": self.dim,
            "n": self.n,
            "f_star": self.f_star,
            "has_w_star": self.w_star is not None,
        }


def mean_of_outputs(out: Tensor, target: Tensor) -> Tensor:
    """Loss for modules that already return per-sample losses: their mean."""
    return out.mean()


class PerSampleLossModule(torch.nn.Module):
    """One chain of a problem whose data are the samples ξ themselves (quadratic,
    landscapes) as a module: ``forward(ξ [b, d]) -> f(w; ξ_i) [b]``; pair it with
    :func:`mean_of_outputs`."""

    def __init__(self, problem: Problem, w: Tensor) -> None:
        super().__init__()
        self.problem = problem
        self.w = torch.nn.Parameter(w.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        return self.problem.per_sample_loss(self.w.unsqueeze(0), x.unsqueeze(0), x[..., 0])[0]
