"""Gradient-noise statistics of a model on a set of samples: tr Σ, |ḡ|², B_simple, GSNR.

Conventions (see :mod:`sgdlab.measure.noise.per_sample` for the reduction): ``loss_fn`` is a
mean over the batch, g_i = ∇ℓ_i is the per-sample gradient at full (per-sample) scale,
ḡ = (1/n) Σ g_i, and Σ is the covariance of g under the distribution the n samples come
from. The minibatch gradient g_b (mean of b per-sample gradients) has noise ζ = g_b − ∇F
with covariance Σ/b (sampling with replacement) or Σ/b · (N − b)/(N − 1) (without
replacement from N samples).

Estimators (n samples):

* per-parameter variance v_j = Σ_i (g_ij − ḡ_j)² / (n − 1) (unbiased sample variance);
  ``trace_cov`` = Σ_j v_j = Σ_i |g_i − ḡ|² / (n − 1).
* ``trace_cov_se``: with u_i = |g_i − ḡ|², tr Σ̂ = n/(n−1) · mean(u), so to first order
  (delta method; the error of ḡ only enters at O(1/n)) SE = √n · sd(u) / (n − 1).
* ``grad_norm_sq`` = |ḡ|². It is biased: E|ḡ|² = |∇F|² + tr Var(ḡ), with tr Var(ḡ) = tr Σ/n
  for iid samples; ``grad_norm_sq_unbiased`` subtracts it. Its SE to first order is
  2 √(ḡᵀΣ̂ḡ / n), with ḡᵀΣ̂ḡ = Σ_i ((g_i − ḡ)·ḡ)² / (n − 1).
* ``b_simple`` = tr Σ / |ḡ|² (McCandlish et al. 2018, "An Empirical Model of Large-Batch
  Training", eq. 2.8), and ``b_simple_unbiased`` with the corrected denominator.
* GSNR_j = ḡ_j² / v_j (Liu et al. 2020, "Understanding Why Neural Networks Generalize Well
  Through GSNR of Parameters", ICLR), and its mean over the coordinates with v_j > 0.

Finite population: with ``population=N`` the n samples are taken to be *distinct* draws from
the N-sample dataset (a random subset or the whole of it). Σ is then the dataset's 1/N
covariance (as :meth:`sgdlab.problems.base.Problem.grad_cov`), estimated without bias by
``trace_sigma`` = ``trace_cov`` · (N − 1)/N; tr Var(ḡ) = tr Σ/n · (N − n)/(N − 1) (zero when
n = N, where every quantity is exact), and the SEs carry the factor √((N − n)/(N − 1)).
Without ``population`` (an infinite population), ``trace_sigma`` = ``trace_cov``.

**Which function is measured** (``mode``, default ``"auto"``): the function being trained —
every module in its own mode (a train-mode BatchNorm normalizes with batch statistics, as in
the training step) with dropout off (``nn.Dropout*``, ``nn.MultiheadAttention``'s attention
dropout; see :mod:`sgdlab.measure._modes`), so that only the sampling noise is measured and
the result is deterministic. ``"eval"`` measures the eval-mode network (BatchNorm with running
statistics: a different function while training), ``"train"`` includes dropout noise.
Per-sample gradients are not defined under batch statistics (samples interact); where a
BatchNorm uses them, one ``RuntimeWarning`` says so and the statistics come from the gradients
of k micro-batches instead (:mod:`sgdlab.measure.noise._microbatch`; ``method`` =
``"microbatch"``, :attr:`NoiseStats.micro_batch` = their size m).

**A NaN or infinite noise scale** means that |ḡ|² − tr Var(ḡ) ≤ 0: the signal is below the
noise at this n, B_simple exceeds what n samples can resolve. :meth:`NoiseStats.b_simple_lower`
gives a lower confidence bound that stays finite there (:func:`sgdlab.measure.noise.scale.
lower_bound`, with the variance of |ḡ|² bounded by 4ḡᵀΣ̂ḡ/n + 2 (tr Σ̂/n)², using
tr(Σ²) ≤ (tr Σ)²).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from sgdlab.measure._modes import apply_mode
from sgdlab.measure.noise._args import check_batch_size, check_samples, warn_non_finite
from sgdlab.measure.noise._common import check_method, train_batchnorms
from sgdlab.measure.noise._microbatch import count_micro_batches, microbatch_stats
from sgdlab.measure.noise.per_sample import (
    Inputs,
    LossFn,
    Method,
    PerSampleStats,
    per_sample_stats,
)
from sgdlab.measure.noise.scale import lower_bound


@dataclass(frozen=True)
class LayerNoise:
    """Noise statistics of one module's parameters (its direct parameters only)."""

    trace_cov: float
    grad_norm_sq: float
    b_simple: float
    mean_gsnr: float
    num_params: int


@dataclass(frozen=True)
class NoiseStats:
    """Gradient-noise statistics at the current parameters (see the module docstring).

    Attributes:
        n: number of samples measured.
        population: dataset size N for the finite-population formulas (``None``: infinite).
        mode: ``"train"``, ``"eval"`` or ``"mixed"``: the module modes during the measurement.
        loss: mean loss over the n samples.
        mean: ḡ per parameter.
        variance: per-coordinate unbiased variance v per parameter (1/(n−1)).
        trace_cov: tr Σ̂ = Σ v (1/(n−1) sample covariance of the per-sample gradients).
        trace_cov_se: its standard error (delta method, finite-population corrected).
        grad_norm_sq: |ḡ|².
        grad_norm_sq_se: its first-order standard error 2 √(ḡᵀΣ̂ḡ/n).
        method: how each parameter's per-sample statistics were computed.
        micro_batch: 1 for per-sample gradients; m > 1 when a BatchNorm with batch
            statistics made them undefined and micro-batches of m samples were used.
        layers: per-module breakdown, module name → :class:`LayerNoise` (computed on
            first access).
    """

    n: int
    population: int | None
    mode: str
    loss: float
    mean: dict[str, Tensor]
    variance: dict[str, Tensor]
    trace_cov: float
    trace_cov_se: float
    grad_norm_sq: float
    grad_norm_sq_se: float
    method: dict[str, str]
    micro_batch: int = 1

    @functools.cached_property
    def layers(self) -> dict[str, LayerNoise]:
        """Per-module breakdown (its direct parameters), module name → :class:`LayerNoise`."""
        out: dict[str, LayerNoise] = {}
        mean, var = self.mean, self.variance
        for lname, keys in _group_by_module(list(mean)).items():
            t = float(sum(var[k].sum() for k in keys))
            g2 = float(sum((mean[k] ** 2).sum() for k in keys))
            gs = torch.cat([_gsnr(mean[k], var[k]).reshape(-1) for k in keys])
            out[lname] = LayerNoise(
                trace_cov=t,
                grad_norm_sq=g2,
                b_simple=_ratio(t * self._fpc, g2),
                mean_gsnr=_mean_finite(gs),
                num_params=sum(mean[k].numel() for k in keys),
            )
        return out

    @property
    def num_params(self) -> int:
        """d, the number of trainable scalars measured."""
        return sum(v.numel() for v in self.mean.values())

    @property
    def _fpc(self) -> float:
        N = self.population
        return 1.0 if N is None else (N - 1) / N

    @property
    def trace_sigma(self) -> float:
        """Unbiased estimate of tr Σ (the 1/N dataset covariance when ``population`` is set)."""
        return self.trace_cov * self._fpc

    def minibatch_variance(self, b: int, replacement: bool = True) -> float:
        """tr Cov(g_b) = tr Σ/b with replacement, tr Σ/b · (N − b)/(N − 1) without."""
        if replacement:
            return self.trace_sigma / b
        N = self.population
        if N is None:
            raise ValueError("sampling without replacement needs population=N")
        if not 1 <= b <= N:
            raise ValueError(f"batch size {b} must be in [1, N={N}]")
        return self.trace_sigma / b * (N - b) / (N - 1)

    @property
    def mean_variance(self) -> float:
        """tr Var(ḡ): the sampling variance of the measured mean gradient itself."""
        if self.population is None:
            return self.trace_cov / self.n
        return self.minibatch_variance(self.n, replacement=False)

    @property
    def grad_norm_sq_unbiased(self) -> float:
        """|ḡ|² − tr Var(ḡ): an unbiased estimate of |∇F|² (may be negative)."""
        return self.grad_norm_sq - self.mean_variance

    @property
    def b_simple(self) -> float:
        """B_simple = tr Σ / |ḡ|² (biased low by the bias of |ḡ|²)."""
        return _ratio(self.trace_sigma, self.grad_norm_sq)

    @property
    def b_simple_unbiased(self) -> float:
        """tr Σ / (|ḡ|² − tr Var(ḡ)); ``inf`` when the corrected denominator is ≤ 0."""
        den = self.grad_norm_sq_unbiased
        return math.inf if den <= 0 else self.trace_sigma / den

    def b_simple_lower(self, confidence: float = 0.95) -> float:
        """A lower confidence bound of B_simple (:func:`~sgdlab.measure.noise.scale.
        lower_bound`): tr Σ's lower limit over |∇F|²'s upper limit, the latter from
        |ḡ|² − tr Var(ḡ) with variance 4ḡᵀΣ̂ḡ/n + 2 (tr Var ḡ)² (the second term bounds the
        O(1/n²) part 2 tr(Σ²)/n², which dominates where |∇F|² is near 0). Finite where
        :attr:`b_simple_unbiased` is ``inf``."""
        fpc = self._fpc
        g2_var = self.grad_norm_sq_se**2 + 2 * self.mean_variance**2
        return lower_bound(
            self.trace_sigma, self.trace_cov_se * fpc, self.grad_norm_sq_unbiased,
            math.sqrt(g2_var), confidence,
        )  # fmt: skip

    @property
    def gsnr(self) -> dict[str, Tensor]:
        """GSNR_j = ḡ_j² / v_j per coordinate (``nan`` where v_j = 0)."""
        return {k: _gsnr(self.mean[k], self.variance[k]) for k in self.mean}

    @property
    def mean_gsnr(self) -> float:
        """Mean GSNR over all coordinates with positive variance."""
        return _mean_finite(torch.cat([g.reshape(-1) for g in self.gsnr.values()]))


def _ratio(a: float, b: float) -> float:
    return math.inf if b == 0 else a / b


def _gsnr(m: Tensor, v: Tensor) -> Tensor:
    return torch.where(v > 0, m * m / v.clamp_min(torch.finfo(v.dtype).tiny), torch.nan)


def _mean_finite(x: Tensor) -> float:
    x = x[torch.isfinite(x)]
    return float(x.mean()) if x.numel() else math.nan


def _mode_name(model: nn.Module) -> str:
    flags = {m.training for m in model.modules()}
    return "mixed" if len(flags) > 1 else ("train" if flags.pop() else "eval")


def _measure(model, loss_fn, x, y, n, batch_size, reference, method) -> PerSampleStats:
    chunk = n if batch_size is None else batch_size
    total: PerSampleStats | None = None
    for s in range(0, n, chunk):
        xs = tuple(t[s : s + chunk] for t in x)
        ys = None if y is None else y[s : s + chunk]
        st = per_sample_stats(model, loss_fn, xs, ys, reference=reference, method=method)
        total = st if total is None else total.merge(st)
    assert total is not None
    return total


def gradient_noise(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Inputs,
    targets: Tensor | None,
    batch_size: int | None = None,
    population: int | None = None,
    mode: Literal["auto", "eval", "train"] | None = "auto",
    method: Method = "auto",
    micro_batches: int | None = None,
) -> NoiseStats:
    """Measure gradient noise (tr Σ, per-parameter variance, |ḡ|², B_simple, GSNR) on n samples.

    Per-sample gradients come from :func:`sgdlab.measure.noise.per_sample.per_sample_stats`
    (exact kernels for Linear/Conv/Embedding/normalization layers, vmap or a per-sample loop
    for the rest), under the loss's own normalization (any reduction, padding included; see
    :mod:`sgdlab.measure.noise.per_sample`). The model's modes, buffers and ``.grad`` are
    restored and no hook is left behind.

    Args:
        model: the model at the parameters to measure.
        loss_fn: the loss, ``loss_fn(model(*inputs), targets)``.
        inputs: tensor or tuple of tensors, n samples in dim 0.
        targets: n targets in dim 0, or ``None``.
        batch_size: samples per forward/backward pass (memory bound); ``None``: all at once.
            With several passes a second pass computes the deviations from the final mean
            needed by the standard errors. Results do not depend on it for a plain mean
            (for other reductions each pass's normalization is its own).
        population: dataset size N for the finite-population formulas (module docstring).
        mode: ``"auto"`` (default: the function being trained, dropout off), ``"eval"``,
            ``"train"``, or ``None`` (the modes as they are); see the module docstring.
        method: ``"auto"``, ``"fast"``, ``"vmap"`` or ``"loop"`` (per-sample paths, see
            :func:`~sgdlab.measure.noise.per_sample.per_sample_stats`).
        micro_batches: k for the micro-batch estimator used under BatchNorm with batch
            statistics (default ``min(8, n // 2)``).

    Returns:
        :class:`NoiseStats`. Non-finite values (NaN or inf in the inputs, targets,
        parameters or loss) give non-finite statistics, returned with a ``RuntimeWarning``.

    Raises:
        ValueError: no trainable parameters; ``inputs`` not tensors with the samples in
            dim 0, or ``targets`` with another number of rows; fewer than 2 samples;
            ``batch_size`` not an integer ≥ 1; ``population`` smaller than n; an unknown
            ``mode`` or ``method``; micro-batches of fewer than 2 samples.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1))
        >>> x, y = torch.randn(64, 4), torch.randn(64, 1)
        >>> s = gradient_noise(net, nn.MSELoss(), x, y)
        >>> s.trace_cov > 0, s.minibatch_variance(8) == s.trace_cov / 8
        (True, True)
    """
    n = check_samples(model, inputs, targets)
    check_batch_size(batch_size)
    check_method(method)
    x = tuple(inputs) if isinstance(inputs, tuple | list) else (inputs,)
    if n < 2:
        raise ValueError("need at least 2 samples for a covariance")
    if population is not None and (
        isinstance(population, bool) or not isinstance(population, int) or population < n
    ):
        raise ValueError(f"population must be an integer N ≥ n={n} or None, got {population!r}")
    saved = {m: m.training for m in model.modules()}
    try:
        apply_mode(model, mode)
        used = _mode_name(model)
        batchnorms = train_batchnorms(model)
        if batchnorms:
            k = count_micro_batches(n, micro_batches)
            _warn_batchnorm(batchnorms, k, n // k)
            st, scale = microbatch_stats(model, loss_fn, x, targets, k)
        elif batch_size is None or batch_size >= n:
            st, scale = _measure(model, loss_fn, x, targets, n, None, "mean", method), 1
        else:
            first = _measure(model, loss_fn, x, targets, n, batch_size, None, method)
            st = _measure(model, loss_fn, x, targets, n, batch_size, first.mean(), method)
            scale = 1
    finally:
        for m, flag in saved.items():
            m.training = flag
    out = _summarize(st, population, used, scale)
    warn_non_finite(out.trace_cov, out.grad_norm_sq)
    return out


def _warn_batchnorm(names: list[str], k: int, m: int) -> None:
    warnings.warn(
        f"gradient_noise: {names[0]!r}{f' and {len(names) - 1} more' if len(names) > 1 else ''} "
        "normalize with batch statistics (BatchNorm in train mode): samples interact, so "
        "per-sample gradients are undefined. The noise is estimated from the gradients of "
        f"{k} micro-batches of {m} samples (each with its own batch statistics; running "
        "statistics restored): tr Σ and the per-parameter variance from their spread, "
        "method 'microbatch'. Use mode='eval' to measure the eval-mode network instead.",
        RuntimeWarning,
        stacklevel=3,
    )


def _summarize(st: PerSampleStats, population: int | None, mode: str, scale: int) -> NoiseStats:
    """NoiseStats from the statistics of ``st.n`` units of ``scale`` samples each (per-sample
    gradients: scale 1; micro-batch gradients h_j with Cov h = Σ/m: scale m)."""
    k = st.n
    n = k * scale
    mean = st.mean()
    var = st.variance()
    if scale != 1:
        var = {q: v.mul_(scale) for q, v in var.items()}
    gn2 = float(sum((m * m).sum() for m in mean.values()))
    trace = float(sum(v.sum() for v in var.values()))
    fpc_se = 1.0 if population is None else math.sqrt((population - n) / (population - 1))
    dots = st.total_dot()
    assert dots is not None
    u = st.total_norm_sq() - 2 * dots + gn2  # |g_i − ḡ|²
    trace_se = scale * math.sqrt(k) * float(u.std()) / (k - 1) * fpc_se
    proj = dots - gn2  # (g_i − ḡ)·ḡ
    gsg = float((proj * proj).sum()) / (k - 1)
    gn2_se = 2 * math.sqrt(max(gsg, 0.0) / k) * fpc_se
    return NoiseStats(
        n=n,
        population=population,
        mode=mode,
        loss=st.loss,
        mean=mean,
        variance=var,
        trace_cov=trace,
        trace_cov_se=trace_se,
        grad_norm_sq=gn2,
        grad_norm_sq_se=gn2_se,
        method=dict(st.method),
        micro_batch=scale,
    )


def _group_by_module(names: list[str]) -> dict[str, list[str]]:
    """Parameter names grouped by the module that holds them (``""`` is the root)."""
    groups: dict[str, list[str]] = {}
    for k in names:
        groups.setdefault(k.rpartition(".")[0], []).append(k)
    return groups
