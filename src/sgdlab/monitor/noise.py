"""The Monitor's noise measurement: the function being trained, the metrics it records (see
:mod:`sgdlab.monitor` for their definitions) and the smoothed noise scale.

Routes, chosen per measurement:

* **one extra pass** on the step's batch through :func:`sgdlab.measure.noise.gradient_noise`
  (``mode`` and ``method`` forwarded): per-sample gradients (fast path per layer), or — with
  BatchNorm in train mode, where per-sample gradients are not defined — the gradients of k
  micro-batches of m samples in train mode (``NoiseStats.micro_batch`` = m; running
  statistics restored; ``gradient_noise`` warns once). The noise scale's two-batch pair is
  then the mean squared norm of the k units (b = m) against the batch's (b = k m):
  mean_j |h_j|² = |ḡ|² + tr Σ̂ (k − 1)/(k m), read from the statistics with no further pass.
* **data-parallel** (a DDP model whose communication hook could be registered): the pair is
  this rank's local gradient (b) against the all-reduced one (W b), read by
  :class:`sgdlab.distributed.LocalNormHook` during the user's own backward — no extra pass —
  and averaged over the ranks with ``all_ranks=True``; the other statistics come from the
  rank's local batch on the unwrapped module (no collective). The temperature uses W b.

The pairs feed :class:`~sgdlab.measure.noise.NoiseScaleEstimator` (bias-corrected EMAs);
``noise_scale`` is its B_simple and ``noise_scale_lower`` its lower confidence bound
(:meth:`~sgdlab.measure.noise.NoiseScaleEstimator.b_simple_lower`, 95%; NaN before three
measurements, where no standard error exists).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch

from sgdlab.distributed import DataParallelInfo, LocalNormHook
from sgdlab.measure.noise import NoiseScaleEstimator, NoiseStats, gradient_noise, temperature
from sgdlab.monitor.batches import Batch, full_precision
from sgdlab.monitor.guard import Guard
from sgdlab.rng import forked_global_rng

NoiseMode = Literal["auto", "eval", "train"]

#: the reason recorded with a NaN noise scale
NAN_REASON = (
    "noise_scale is NaN while the bias-corrected |G|² estimate is ≤ 0: the gradient signal is "
    "below the noise at this batch, i.e. the noise scale exceeds what this batch can resolve "
    "(not that the batch is near it); noise_scale_lower is a 95% lower bound where one "
    "follows (from the third measurement). Measure more steps or larger batches to resolve it"
)
B_SIMPLE_NAN = (
    "b_simple (this batch alone) is NaN where |ḡ|² − tr Σ̂/b ≤ 0: the batch's gradient signal "
    "is below its noise, the noise scale exceeds this batch; noise_scale pools the measurements"
)
EVAL_BN_NOTE = (
    "noise_mode='eval' on a model with BatchNorm in train mode measures the eval-mode "
    "(running-statistics) network, not the function being trained; use noise_mode='auto'"
)


def effective(b: float, population: int | None) -> float:
    """Batch size for which E|G_b|² = |G|² + tr Σ/b without replacement from N samples."""
    if population is None:
        return b
    return math.inf if b >= population else b * (population - 1) / (population - b)


def has_train_batchnorm(model: torch.nn.Module) -> bool:
    """Whether a BatchNorm layer of ``model`` normalizes by batch statistics (train mode)."""
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.training
               for m in model.modules())  # fmt: skip


class NoiseProbe:
    """Measures the noise statistics of one step and feeds the noise-scale estimator."""

    def __init__(
        self, loss_fn: Any, optimizer: Any, *, mode: NoiseMode, population: int | None,
        method: str, chunk_size: int | None, beta: float, guard: Guard, dim: int,
        ddp: DataParallelInfo | None, all_ranks: bool,
    ) -> None:  # fmt: skip
        self.loss_fn, self.optimizer = loss_fn, optimizer
        self.mode, self.population, self.method = mode, population, method
        self.chunk_size, self.dim = chunk_size, dim
        self.estimator = NoiseScaleEstimator(beta=beta)
        self.guard, self.ddp, self.all_ranks = guard, ddp, all_ranks
        self.hook: LocalNormHook | None = None
        self.last: NoiseStats | None = None

    def measure(self, batch: Batch, effective_batch: int, step: int) -> dict[str, float]:
        """The metrics of this step's measurement."""
        pair = self.hook.take() if self.hook is not None else None
        if self.mode == "eval" and has_train_batchnorm(batch.model):
            self.guard.note("batchnorm_eval", step, EVAL_BN_NOTE)
        with forked_global_rng(batch.model.parameters()), full_precision():
            stats = gradient_noise(
                batch.model, self.loss_fn, batch.inputs, batch.targets,
                batch_size=self.chunk_size, population=self.population, mode=self.mode,
                method=self.method,
            )  # fmt: skip
        self.last = stats
        if stats.micro_batch > 1:
            self.guard.note("batchnorm_train", step, "BatchNorm in train mode: the noise "
                            f"statistics come from micro-batches of {stats.micro_batch} "
                            "samples (per-sample gradients are undefined)", loud=False)  # fmt: skip
        out = self._from_stats(stats, effective_batch, update=pair is None)
        if pair is not None:
            world = self.ddp.world_size if self.ddp is not None else 1
            # this rank's gradient covers its share of the effective batch (all its
            # accumulated micro-batches under no_sync), the all-reduced one the whole of it
            out.update(self._data_parallel(pair, max(effective_batch // world, 1)))
        est = self.estimator
        out["noise_scale"] = est.b_simple if math.isfinite(est.b_simple) else math.nan
        out["noise_scale_lower"] = est.b_simple_lower()
        if math.isnan(out["noise_scale"]) and est.steps:
            self.guard.note("noise_scale_nan", step, f"{NAN_REASON} (at step {step}: "
                            f"noise_scale_lower = {out['noise_scale_lower']:.4g})")  # fmt: skip
        if math.isnan(out.get("b_simple", 0.0)):
            self.guard.note("b_simple_nan", step, B_SIMPLE_NAN, loud=False)
        return out

    def _from_stats(self, stats: NoiseStats, b_eff: int, update: bool) -> dict[str, float]:
        n, m = stats.n, stats.micro_batch
        tr, g2 = stats.trace_cov, stats.grad_norm_sq
        if update:  # units of m samples (m = 1: per-sample), k = n/m of them
            k = n // m
            small = g2 + tr * (k - 1) / (k * m)
            pop = self.population
            self.estimator.update(small, g2, effective(m, pop), effective(n, pop))
        b_simple = stats.b_simple_unbiased
        out = {
            "trace_cov": tr, "trace_cov_se": stats.trace_cov_se, "grad_norm_sq": g2,
            "b_simple": b_simple if math.isfinite(b_simple) else math.nan,
            "mean_gsnr": stats.mean_gsnr,
        }  # fmt: skip
        t = self._temperature(b_eff, stats)
        if t is not None:
            out["temperature"] = t
        return out

    def _data_parallel(self, pair: tuple[float, float], b_local: int) -> dict[str, float]:
        local, glob = pair
        if self.all_ranks and self.hook is not None:
            local = self.hook.mean_over_ranks(local)
        world = self.ddp.world_size if self.ddp is not None else 1
        pop = self.population
        self.estimator.update(local, glob, effective(b_local, pop), effective(world * b_local, pop))
        return {"grad_norm_sq_local": local, "grad_norm_sq_global": glob}

    def _temperature(self, b_eff: int, stats: NoiseStats) -> float | None:
        """T = η/(1−m)·(tr Σ/d)/(2 B) with B the effective (global, accumulated) batch; for
        ``torch.optim.SGD`` only (the Langevin analogy is for SGD)."""
        if not isinstance(self.optimizer, torch.optim.SGD):
            return None
        group = self.optimizer.param_groups[0]
        lr, momentum = float(group["lr"]), float(group.get("momentum", 0.0) or 0.0)
        result = temperature(lr, b_eff, stats, momentum=momentum,
                             replacement=self.population is None)  # fmt: skip
        return float(result.value)
