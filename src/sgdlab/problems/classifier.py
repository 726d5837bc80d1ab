"""Shared parts of the finite classification problems (logistic regression, MLP).

Data comes from :func:`sgdlab.problems.datasets.load_data`: ``X [N, p]`` in the problem's
dtype and integer labels ``y [N]`` (``torch.int64``, values ``0..C−1``); batches are
``x [K, b, p]``, ``y [K, b]`` (labels are cast with ``.long()``, so float labels work too).
With ``holdout > 0`` the held-out part is kept as ``X_test``/``y_test`` for
:meth:`ClassifierProblem.evaluate`.
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor

from sgdlab.problems.base import Problem
from sgdlab.problems.datasets import DataParams, load_data
from sgdlab.rng import Streams


class ClassifierProblem(Problem):
    """A finite problem with per-sample loss cross-entropy(logits(w, x), y) (+ penalty)."""

    n_classes: int
    n_features: int
    X_test: Tensor | None = None
    y_test: Tensor | None = None
    #: N·d above which the full objective is not recorded at every probe
    affordable_limit: float = 5e7

    def _load(self, params: DataParams, streams: Streams, dtype: torch.dtype) -> None:
        data = load_data(params, streams, dtype)
        self.X, self.y = data.X, data.y
        self.X_test, self.y_test = data.X_test, data.y_test
        self.n = int(data.X.shape[0])
        self.n_classes = data.n_classes
        self.n_features = int(data.X.shape[1])
        self.feature_shape = data.feature_shape

    @property
    def static_label_noise(self) -> bool:
        p = self.params
        return p.dataset == "synthetic" and p.label_noise > 0  # type: ignore[attr-defined]

    def _finish(self) -> None:
        self.objective_affordable = self.n * self.dim <= self.affordable_limit

    def objective(self, W: Tensor, chunk: int | None = None) -> Tensor:
        """F(W_k) ``[K]``: the full-data mean of f, in chunks of samples.

        The chunk size depends on the layer widths only, never on K, so that chain k's sum
        (and its rounding) is the same alone or among any number of chains; 64 chains hold
        about 4M logits/activations per chunk.
        """
        if chunk is None:
            width = max([self.n_classes, self.n_features, *getattr(self, "sizes", [])])
            chunk = min(8192, max(256, (1 << 22) // (64 * width)))
        return super().objective(W, chunk=chunk)

    @abstractmethod
    def logits(self, W: Tensor, x: Tensor, noise: dict[str, Tensor] | None = None) -> Tensor:
        """Class scores ``[K, b, C]`` for ``W [K, d]``, ``x [K, b, p]``."""

    def evaluate(self, W: Tensor, split: str = "train", chunk: int = 8192) -> dict[str, Tensor]:
        """Mean cross-entropy (no penalty) and error rate per chain on a split: ``[K]`` each."""
        X, y = (self.X, self.y) if split == "train" else (self.X_test, self.y_test)
        if X is None or y is None:
            raise ValueError(f"problem {self.name!r} has no {split!r} split (set holdout > 0)")
        K = W.shape[0]
        ce = torch.zeros(K, dtype=W.dtype, device=W.device)
        wrong = torch.zeros(K, dtype=W.dtype, device=W.device)
        for start in range(0, X.shape[0], chunk):
            xb = X[start : start + chunk].to(W)
            yb = y[start : start + chunk].to(W.device).long()
            z = self.logits(W, xb.unsqueeze(0).expand(K, *xb.shape))
            yk = yb.unsqueeze(0).expand(K, -1)
            ce += _cross_entropy(z, yk).sum(dim=1)
            wrong += (z.argmax(dim=-1) != yk).to(W.dtype).sum(dim=1)
        n = X.shape[0]
        return {"loss": ce / n, "error": wrong / n}


def _cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    """Per-sample −log softmax(logits)[y]: ``[K, b, C]``, ``[K, b]`` → ``[K, b]``."""
    picked = logits.gather(-1, y.long().unsqueeze(-1)).squeeze(-1)
    return torch.logsumexp(logits, dim=-1) - picked


def batched_affine(b: Tensor, x: Tensor, A: Tensor) -> Tensor:
    """``b + x @ A`` per chain: ``b [K,1,out]``, ``x [K,n,in]``, ``A [K,in,out]`` → ``[K,n,out]``.

    One ``baddbmm``, whose per-chain products do not depend on K (a single ``[n,in] @
    [in,K·out]`` product for a broadcast batch would be faster, but its rounding changes
    with K, and chain k must give the same numbers alone or among others).
    """
    return torch.baddbmm(b, x, A)
