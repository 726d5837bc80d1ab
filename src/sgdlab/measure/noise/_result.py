"""The result type of the per-sample instruments (private; re-exported by
:mod:`sgdlab.measure.noise.per_sample`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class PerSampleStats:
    """Sums over the n samples of per-sample gradient quantities, per parameter name.

    Attributes:
        n: number of samples.
        loss: mean loss over the samples.
        grad_mean: ḡ = (1/n) Σ_i g_i, the batch gradient (``grad_sum`` is n ḡ).
        sq_sum: Σ_i g_i² (elementwise).
        norm_sq: |g_i|² restricted to the parameter, shape ``[n]``.
        dot: g_i·R restricted to the parameter, ``[n]``, for the requested reference R
            (``None`` when no reference was asked for).
        method: how each parameter was computed: an exact fast-path kernel (``linear``,
            ``conv``, ``hf_conv1d``, ``embedding``, ``tied`` (an embedding table shared with a
            linear head), ``layernorm``, ``rmsnorm``, ``groupnorm``, ``batchnorm``), ``vmap``
            or ``loop``; ``unused`` when it is not in
            the loss's graph.
    """

    n: int
    loss: float
    grad_mean: dict[str, Tensor]
    sq_sum: dict[str, Tensor]
    norm_sq: dict[str, Tensor]
    dot: dict[str, Tensor] | None
    method: dict[str, str]

    def mean(self) -> dict[str, Tensor]:
        """The batch gradient ḡ = (1/n) Σ_i g_i per parameter."""
        return dict(self.grad_mean)

    @property
    def grad_sum(self) -> dict[str, Tensor]:
        """Σ_i g_i per parameter."""
        return {k: v * self.n for k, v in self.grad_mean.items()}

    def variance(self) -> dict[str, Tensor]:
        """Unbiased per-coordinate variance (Σ_i g_i² − n ḡ²) / (n − 1) of the g_i."""
        n = self.n
        return {
            k: torch.addcmul(self.sq_sum[k], m, m, value=-n).div_(n - 1).clamp_min_(0)
            for k, m in self.grad_mean.items()
        }

    def total_norm_sq(self) -> Tensor:
        """|g_i|² over all parameters, ``[n]``."""
        return torch.stack(list(self.norm_sq.values())).sum(0)

    def total_dot(self) -> Tensor | None:
        """g_i·R over all parameters, ``[n]`` (``None`` without a reference)."""
        return None if self.dot is None else torch.stack(list(self.dot.values())).sum(0)

    def merge(self, other: PerSampleStats) -> PerSampleStats:
        """Statistics of the union of two disjoint sets of samples (same reference)."""
        n = self.n + other.n
        cat = lambda a, b: {k: torch.cat([a[k], b[k]]) for k in a}  # noqa: E731
        add = lambda a, b: {k: a[k] + b[k] for k in a}  # noqa: E731
        dot = None if self.dot is None or other.dot is None else cat(self.dot, other.dot)
        return PerSampleStats(
            n=n,
            loss=(self.loss * self.n + other.loss * other.n) / n,
            grad_mean={k: v / n for k, v in add(self.grad_sum, other.grad_sum).items()},
            sq_sum=add(self.sq_sum, other.sq_sum),
            norm_sq=cat(self.norm_sq, other.norm_sq),
            dot=dot,
            method={**self.method, **other.method},
        )
