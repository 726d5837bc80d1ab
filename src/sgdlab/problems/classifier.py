"""Shared parts of the finite classification problems (logistic regression, MLP).

Data comes from :func:`sgdlab.problems.datasets.load_data`: ``X [N, p]`` in the problem's
dtype and integer labels ``y [N]`` (``torch.int64``, values ``0..C−1``); batches are
``x [K, b, p]``, ``y [K, b]`` (labels are cast with ``.long()``, so float labels work too).
With ``holdout > 0`` the held-out part is kept as ``X_test``/``y_test`` for
:meth:`ClassifierProblem.evaluate`.

Per-step data noise (:mod:`sgdlab.problems.data_noise`), declared in
:meth:`ClassifierProblem.step_noise` and applied to each drawn batch by
:meth:`ClassifierProblem.noisy_batch` before the loss:

* dynamic label noise (``label_noise_mode: dynamic``): uniforms ``label_flip``,
  ``label_class`` ``[b]`` per chain from the ``label_noise`` stream;
* augmentation: ``augment_shift`` ``[b, 2]`` and ``augment_flip`` ``[b]`` uniforms,
  ``augment_noise`` ``[b, p]`` normals from the ``augment`` stream.

A turned-off stream passes none of its keys: the batch is the clean one. The full objective
F, ∇F and Σ stay those of the clean data (the expected loss under the noise differs: dynamic
label noise smooths the targets, augmentation averages over the augmented images).
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor

from sgdlab.errors import ConfigError
from sgdlab.problems.base import Problem
from sgdlab.problems.data_noise import augment_images, redraw_labels
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
        self.pixel_mean, self.pixel_std = data.mean, data.std
        if (params.augment_shift > 0 or params.augment_flip) and len(self.feature_shape) != 2:
            field = "problem.augment_shift" if params.augment_shift else "problem.augment_flip"
            raise ConfigError(
                field, f"shifts and flips need images; dataset {params.dataset!r} has samples "
                f"of shape {self.feature_shape}: use digits or mnist, or only augment_noise",
            )  # fmt: skip

    @property
    def static_label_noise(self) -> bool:
        p = self.params
        return p.label_noise > 0 and p.label_noise_mode == "static"  # type: ignore[attr-defined]

    def step_noise(self, batch_size: int) -> dict[str, tuple[str, tuple[int, ...], str]]:
        """Dynamic label noise and augmentation draws (module docstring)."""
        p, b = self.params, batch_size
        out: dict[str, tuple[str, tuple[int, ...], str]] = {}
        if p.label_noise > 0 and p.label_noise_mode == "dynamic":  # type: ignore[attr-defined]
            out["label_flip"] = ("label_noise", (b,), "uniform")
            out["label_class"] = ("label_noise", (b,), "uniform")
        if p.augment_shift > 0:  # type: ignore[attr-defined]
            out["augment_shift"] = ("augment", (b, 2), "uniform")
        if p.augment_flip:  # type: ignore[attr-defined]
            out["augment_flip"] = ("augment", (b,), "uniform")
        if p.augment_noise > 0:  # type: ignore[attr-defined]
            out["augment_noise"] = ("augment", (b, self.n_features), "normal")
        return out

    def noisy_batch(
        self, x: Tensor, y: Tensor, noise: dict[str, Tensor] | None
    ) -> tuple[Tensor, Tensor]:
        """The batch ``(x [K,b,p], y [K,b])`` with this step's augmentation and dynamic label
        noise applied (unchanged without the draws)."""
        if not noise:
            return x, y
        p = self.params
        if "label_flip" in noise:
            y = redraw_labels(y, self.n_classes, p.label_noise,  # type: ignore[attr-defined]
                              noise["label_flip"], noise["label_class"])  # fmt: skip
        if any(k.startswith("augment_") for k in noise):
            x = augment_images(
                x, self.feature_shape if len(self.feature_shape) == 2 else (1, x.shape[-1]),
                shift=p.augment_shift, flip=p.augment_flip,  # type: ignore[attr-defined]
                noise_std=p.augment_noise,  # type: ignore[attr-defined]
                u_shift=noise.get("augment_shift"), u_flip=noise.get("augment_flip"),
                z_noise=noise.get("augment_noise"), mean=self.pixel_mean, std=self.pixel_std,
            )  # fmt: skip
        return x, y

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
