"""Gradient noise of a model with BatchNorm in train mode: the two-batch estimator over
micro-batches, measured on the function being trained.

Per-sample gradients are not defined under batch statistics (each sample's output depends on
the whole batch), so the per-sample route does not apply. What is defined: the gradients of k
disjoint micro-batches of m samples, each a forward/backward *in train mode* (BatchNorm over
the micro-batch, as data-parallel training does on each device), with their mean standing for
the k·m batch. With G_j the micro-batch gradients and Ḡ their mean, E|G_j|² = |G|² + tr Σ/m
and E|Ḡ|² = |G|² + tr Σ/(k m), so (McCandlish et al. 2018, appendix A.1, B_small = m,
B_big = k m)

    |G|² ≈ (k m |Ḡ|² − m S̄) / (k m − m),   tr Σ ≈ (S̄ − |Ḡ|²) / (1/m − 1/(k m)),

with S̄ = mean_j |G_j|². Standard errors are the jackknife over micro-batches (leave one out,
k recomputations of the same formulas from the k×k Gram matrix M_ij = G_i·G_j, accumulated in
float64). Σ here is the per-sample covariance of the network with BatchNorm over m samples.
The running statistics (and ``num_batches_tracked``) are restored afterwards; the RNG is the
caller's to fork.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from sgdlab.measure.noise import two_batch_estimates
from sgdlab.monitor.batches import Batch

#: micro-batches per measurement (fewer when the batch is small: m ≥ 2 samples each)
MICRO_BATCHES = 4


def has_train_batchnorm(model: nn.Module) -> bool:
    """Whether a BatchNorm layer of ``model`` is in train mode (normalizes by batch statistics)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training
               for m in model.modules())  # fmt: skip


@dataclass(frozen=True)
class MicroBatchNoise:
    """Two-batch estimates from k micro-batches of m samples (module docstring)."""

    k: int
    m: int
    loss: float
    small_norm_sq: float  # S̄
    big_norm_sq: float  # |Ḡ|²
    grad_norm_sq: float  # |G|² estimate
    trace_cov: float  # tr Σ estimate
    grad_norm_sq_se: float
    trace_cov_se: float


def _estimates(gram: torch.Tensor, m: int) -> tuple[float, float, float, float]:
    k = gram.shape[0]
    small = float(gram.diagonal().mean())
    big = float(gram.sum()) / k**2
    g2, tr = two_batch_estimates(small, big, m, k * m)
    return g2, tr, small, big


def _jackknife_se(gram: torch.Tensor, m: int) -> tuple[float, float]:
    k = gram.shape[0]
    if k < 3:
        return math.nan, math.nan
    outs = []
    for j in range(k):
        keep = [i for i in range(k) if i != j]
        outs.append(_estimates(gram[keep][:, keep], m)[:2])
    est = torch.tensor(outs, dtype=torch.float64)
    se = ((k - 1) / k * (est - est.mean(0)).pow(2).sum(0)).sqrt()
    return float(se[0]), float(se[1])


def micro_batch_noise(batch: Batch, loss_fn: object, micro_batches: int = MICRO_BATCHES
                      ) -> MicroBatchNoise | None:  # fmt: skip
    """The estimates on ``batch`` in the model's current modes (``None`` when the batch has
    fewer than 4 samples). The model's buffers are restored afterwards."""
    n = batch.size
    k = min(micro_batches, n // 2)
    if k < 2:
        return None
    m = n // k
    model = batch.model
    params = [p for p in model.parameters() if p.requires_grad]
    saved = {name: buf.detach().clone() for name, buf in model.named_buffers()}
    grams = torch.zeros(k, k, dtype=torch.float64)
    grads: list[list[torch.Tensor]] = []
    total = 0.0
    try:
        for j in range(k):
            sl = slice(j * m, (j + 1) * m)
            xs = tuple(t[sl] for t in batch.inputs)
            ys = None if batch.targets is None else batch.targets[sl]
            out = model(*xs)
            loss = loss_fn(out) if ys is None else loss_fn(out, ys)  # type: ignore[operator]
            total += float(loss.detach())
            gs = torch.autograd.grad(loss, params, allow_unused=True)
            grads.append([torch.zeros_like(p) if g is None else g.detach()
                          for p, g in zip(params, gs, strict=True)])  # fmt: skip
    finally:
        with torch.no_grad():
            for name, buf in model.named_buffers():
                if name in saved:
                    buf.copy_(saved[name])
    for i in range(len(params)):
        flat = torch.stack([g[i].reshape(-1) for g in grads]).double()
        grams += flat @ flat.T
    g2, tr, small, big = _estimates(grams, m)
    g2_se, tr_se = _jackknife_se(grams, m)
    return MicroBatchNoise(k, m, total / k, small, big, g2, tr, g2_se, tr_se)
