"""Gradient noise of a model whose samples interact: BatchNorm with batch statistics (private
to :mod:`sgdlab.measure.noise.stats`).

In train mode a BatchNorm layer normalizes each sample by statistics of its whole batch, so
the loss is not a function of one sample at a time and a per-sample gradient is not defined.
What is defined is the gradient of a batch, as the training loop computes it. The n samples
are split into k micro-batches of m = ⌊n/k⌋ samples (the n − k·m left over are not used);
each micro-batch gradient h_j is the gradient of the function being trained at batch size m
(its own batch statistics). They are independent, with E h_j = G and Cov h_j = Σ/m to the
extent that BatchNorm at batch m differs little from BatchNorm at the training batch. So

    tr Σ̂ = m · (1/(k−1)) Σ_j |h_j − h̄|²,    per-coordinate variance m · Var_j(h_j),

and h̄ has covariance Σ/(k m): the McCandlish et al. (2018) two-batch estimator in its
micro-batch form (b_small = m, b_big = k m). The running statistics (and every other buffer)
are restored afterwards, and random layers draw from a forked RNG.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sgdlab.measure.noise._common import LossFn, call_loss, rows, trainable
from sgdlab.measure.noise._result import PerSampleStats
from sgdlab.measure.noise.per_sample import stats_from_grads
from sgdlab.rng import forked_global_rng

#: micro-batches by default: k − 1 = 7 degrees of freedom for the variance (SE of tr Σ̂ about
#: √(2/7) ≈ 53% relative for Gaussian gradients), micro-batches as large as that allows
DEFAULT_MICRO_BATCHES = 8


def count_micro_batches(n: int, k: int | None) -> int:
    """The number of micro-batches for n samples (each needs ≥ 2 for batch statistics)."""
    if k is None:
        k = min(DEFAULT_MICRO_BATCHES, n // 2)
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f"micro_batches must be an integer ≥ 2 or None, got {k!r}")
    if n // k < 2:
        raise ValueError(
            f"{n} samples make micro-batches of fewer than 2 samples with micro_batches={k}: "
            "BatchNorm in train mode needs at least 2 samples per micro-batch; pass more "
            "samples or fewer micro-batches"
        )
    return k


def microbatch_stats(
    model: nn.Module, loss_fn: LossFn, x: tuple[Tensor, ...], y: Tensor | None, k: int
) -> tuple[PerSampleStats, int]:
    """Statistics of the k micro-batch gradients h_j (``n = k`` "samples"), and m."""
    n = x[0].shape[0]
    m = n // k
    params = trainable(model)
    names = list(params)
    saved = {name: b.detach().clone() for name, b in model.named_buffers()}
    grads: dict[str, list[Tensor]] = {name: [] for name in names}
    loss = 0.0
    try:
        with forked_global_rng((*x, *params.values())), torch.enable_grad():
            for j in range(k):
                xs = tuple(rows(t, n, j * m, (j + 1) * m) for t in x)
                lj = call_loss(model, loss_fn, xs, rows(y, n, j * m, (j + 1) * m))
                gs = torch.autograd.grad(lj, [params[q] for q in names], allow_unused=True)
                loss += float(lj.detach()) / k
                for q, g in zip(names, gs, strict=True):
                    grads[q].append(torch.zeros_like(params[q]) if g is None else g.detach())
    finally:
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(saved[name])
    stacked = {q: torch.stack(v) for q, v in grads.items()}
    return stats_from_grads(stacked, reference="mean", loss=loss, method="microbatch"), m
