"""The Monitor's noise measurement: which route measures the function being trained, and the
metrics it records (see :mod:`sgdlab.monitor` for their definitions).

Routes, chosen per measurement:

* **per-sample** (a model without BatchNorm in train mode): one extra forward/backward on the
  step's batch through :func:`sgdlab.measure.noise.gradient_noise` (fast path per layer,
  ``method=`` forwarded), dropout off unless ``noise_mode="train"``; the noise scale's
  two-batch pair is mean |g_i|² at b = 1 against |ḡ|² at b.
* **micro-batch** (BatchNorm in train mode, ``noise_mode`` ``"auto"``/``"train"``): per-sample
  gradients are not defined under batch statistics, so :mod:`sgdlab.monitor.microbatch`
  measures k micro-batches in train mode (running statistics restored); one warning says so.
* **data-parallel** (a DDP model whose communication hook could be registered): the noise
  scale's pair is this rank's local gradient against the all-reduced one, read by
  :class:`sgdlab.distributed.LocalNormHook` during the user's own backward — no extra pass;
  the per-sample statistics, where defined, come from the rank's local batch on the unwrapped
  module (no collective). The temperature uses the global batch W·b.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import nn

from sgdlab.distributed import DataParallelInfo, LocalNormHook
from sgdlab.measure.noise import gradient_noise, temperature
from sgdlab.monitor.batches import Batch, full_precision
from sgdlab.monitor.guard import Guard
from sgdlab.monitor.microbatch import has_train_batchnorm, micro_batch_noise
from sgdlab.monitor.scale import NAN_REASON, ScaleTracker
from sgdlab.rng import forked_global_rng

NoiseMode = Literal["auto", "eval", "train"]

BATCHNORM_NOTE = (
    "the model has BatchNorm in train mode: per-sample gradients are not defined under batch "
    "statistics (each sample's output depends on the whole batch), so the per-parameter "
    "variance and GSNR are not recorded; trace_cov, grad_norm_sq and the noise scale come "
    "from the two-batch estimator over {k} micro-batches of {m} samples in train mode "
    "(running statistics restored), i.e. of the network with BatchNorm over {m} samples"
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


class NoiseProbe:
    """Measures the noise statistics of one step and feeds the noise-scale tracker."""

    def __init__(
        self, module: nn.Module, loss_fn: Any, optimizer: Any, *, mode: NoiseMode,
        population: int | None, method: str, chunk_size: int | None, beta: float,
        guard: Guard, ddp: DataParallelInfo | None, hook: LocalNormHook | None,
        all_ranks: bool,
    ) -> None:  # fmt: skip
        self.module, self.loss_fn, self.optimizer = module, loss_fn, optimizer
        self.mode, self.population, self.method = mode, population, method
        self.chunk_size = chunk_size
        self.tracker = ScaleTracker(beta)
        self.guard, self.ddp, self.hook, self.all_ranks = guard, ddp, hook, all_ranks
        self.last: Any = None
        self.dim = sum(p.numel() for p in module.parameters() if p.requires_grad)

    # ----------------------------------------------------------------- routes
    def _modes(self, model: nn.Module) -> dict[nn.Module, bool]:
        """Put ``model`` in the measured modes; returns the saved ones."""
        saved = {m: m.training for m in model.modules()}
        if self.mode == "train":
            model.train()
        elif self.mode == "eval":
            model.eval()
        else:  # the function being trained: BatchNorm as it is, dropout and the rest off
            for m in model.modules():  # one module at a time (train() would recurse)
                if not isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.training = False
        return saved

    def measure(self, batch: Batch, effective_batch: int, step: int) -> dict[str, float]:
        """The metrics of this step's measurement (empty when nothing could be measured)."""
        pair = self.hook.take() if self.hook is not None else None
        bn = has_train_batchnorm(batch.model)
        if bn and self.mode == "eval":
            self.guard.note("batchnorm_eval", step, EVAL_BN_NOTE)
        out: dict[str, float] = {}
        saved = self._modes(batch.model)
        try:
            with forked_global_rng(batch.model.parameters()), full_precision():
                if bn and self.mode != "eval":
                    out = self._micro(batch, effective_batch, step, update=pair is None)
                else:
                    out = self._per_sample(batch, effective_batch, update=pair is None)
        finally:
            for m, flag in saved.items():
                m.training = flag
        if pair is not None:
            out.update(self._data_parallel(pair, batch.size, effective_batch, out))
        value = self.tracker.value
        out["noise_scale"] = value
        out["noise_scale_lower"] = self.tracker.lower
        if math.isnan(value) and self.tracker.estimator.steps:
            self.guard.note("noise_scale_nan", step, f"{NAN_REASON} (at step {step}: "
                            f"noise_scale_lower = {out['noise_scale_lower']:.4g})")  # fmt: skip
        return out

    def _per_sample(self, batch: Batch, b_eff: int, update: bool) -> dict[str, float]:
        b = batch.size
        extra = {} if self.method == "auto" else {"method": self.method}
        stats = gradient_noise(
            batch.model, self.loss_fn, batch.inputs, batch.targets, batch_size=self.chunk_size,
            population=self.population, mode=None, **extra,
        )  # fmt: skip
        self.last = stats
        tr, g2 = stats.trace_cov, stats.grad_norm_sq
        if update:
            # b = 1 against b: mean |g_i|² = |ḡ|² + tr Σ̂ (b−1)/b; |G|² estimate |ḡ|² − tr Σ̂/b.
            # SE of |ḡ|²: the delta-method term plus 2 (tr Σ/b)², a bound on the second-order
            # term 2 tr(Σ²)/b² that dominates when |G| ≈ 0 (tr Σ² ≤ (tr Σ)²).
            g2_se = math.sqrt(stats.grad_norm_sq_se**2 + 2 * (tr / b) ** 2
                              + (stats.trace_cov_se / b) ** 2)  # fmt: skip
            b_big = effective(b, self.population)
            self.tracker.update(g2 + tr * (b - 1) / b, g2, 1, b_big, g2_se, stats.trace_cov_se)
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

    def _micro(self, batch: Batch, b_eff: int, step: int, update: bool) -> dict[str, float]:
        res = micro_batch_noise(batch, self.loss_fn)
        if res is None:
            self.guard.note(
                "batchnorm_small",
                step,
                "batch too small (< 4 samples) for the "
                "micro-batch noise estimate of a BatchNorm model: not measured",
            )
            return {}
        self.guard.note("batchnorm_train", step, BATCHNORM_NOTE.format(k=res.k, m=res.m))
        self.last = res
        if update:
            pop = self.population
            self.tracker.update(res.small_norm_sq, res.big_norm_sq, effective(res.m, pop),
                                effective(res.k * res.m, pop), res.grad_norm_sq_se,
                                res.trace_cov_se)  # fmt: skip
        g2, tr = res.grad_norm_sq, res.trace_cov
        out = {"trace_cov": tr, "trace_cov_se": res.trace_cov_se,
               "grad_norm_sq": res.big_norm_sq,
               "b_simple": tr / g2 if g2 > 0 else math.nan}  # fmt: skip
        t = self._temperature(b_eff, tr)
        if t is not None:
            out["temperature"] = t
        return out

    def _data_parallel(
        self, pair: tuple[float, float], b_local: int, b_eff: int, measured: dict[str, float]
    ) -> dict[str, float]:
        local, glob = pair
        if self.all_ranks:
            local = self.hook.mean_over_ranks(local)  # type: ignore[union-attr]
        world = self.ddp.world_size  # type: ignore[union-attr]
        pop = self.population
        self.tracker.update(local, glob, effective(b_local, pop),
                            effective(world * b_local, pop), math.nan, math.nan)  # fmt: skip
        out: dict[str, float] = {"grad_norm_sq_global": glob}
        if "trace_cov" not in measured:
            small, big = effective(b_local, pop), effective(world * b_local, pop)
            tr = (local - glob) / (1 / small - 1 / big)
            out["trace_cov"] = tr
            t = self._temperature(b_eff, tr)
            if t is not None:
                out["temperature"] = t
        return out

    def _temperature(self, b_eff: int, noise: Any) -> float | None:
        """T = η/(1−m)·(tr Σ/d)/(2 B) with B the effective (global, accumulated) batch; for
        ``torch.optim.SGD`` only (the Langevin analogy is for SGD)."""
        if not isinstance(self.optimizer, torch.optim.SGD):
            return None
        group = self.optimizer.param_groups[0]
        lr, momentum = float(group["lr"]), float(group.get("momentum", 0.0) or 0.0)
        if not isinstance(noise, float):
            return temperature(lr, b_eff, noise, momentum=momentum,
                               replacement=self.population is None).value  # fmt: skip
        tr = noise
        if self.population is not None:  # Σ of the dataset (1/N), without replacement
            N = self.population
            tr = tr * (N - 1) / N * max(N - b_eff, 0) / (N - 1) if N > 1 else 0.0
        return float(temperature(lr, b_eff, tr, momentum=momentum, dim=self.dim))
