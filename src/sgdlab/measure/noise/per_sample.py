"""Per-sample gradient statistics from one ordinary backward pass (plus references).

**What a per-sample gradient is here.** The batch loss L = loss_fn(model(x), y) may be any
function of the per-sample outputs o_i = model(x_i) (and of the parameters directly). With
δ_i = ∂L/∂o_i and r = ∂L/∂w at fixed outputs, ∇L = Σ_i J_iᵀ δ_i + r, and sample i's gradient
*under the loss's own normalization* is

    g_i = n J_iᵀ δ_i + r,       ḡ = (1/n) Σ_i g_i = ∇L exactly.

For the plain mean L = (1/n) Σ_i ℓ_i this is g_i = ∇ℓ_i, the gradient of a batch of one. For
losses that are not a plain mean it is n times the gradient of sample i's share of L, the
batch's normalizer held fixed: with class weights, g_i = n w_{y_i} ∇ℓ_i / Σ_j w_{y_j}; for a
token-level loss with ``ignore_index`` padding (the mean over the batch's real tokens),
g_i = n (T_i / T_batch) ∇ℓ̄_i with ℓ̄_i the mean over sample i's T_i real tokens — the
per-sequence gradient; for ``reduction="sum"``, g_i = n ∇ℓ_i. In every case Cov(g)/n is the
covariance of the gradient the optimizer uses (to the extent that the batch normalizer is
constant across batches), so tr Σ, B_simple and the temperature describe the training as run.
No sub-batch check of the reduction is needed: the definition holds for the whole batch.
The loop reference (``per_sample_grads(method="loop")``) computes it independently, sample by
sample, by re-evaluating the loss with only that sample's output live.

Fast path (BackPACK-style, Dangel et al. 2020, "BackPACK: Packing more into backprop"): for
``nn.Linear`` the per-sample weight gradient is an outer product g_i = δ_i a_iᵀ, so

    Σ_i g_i² = (δ²)ᵀ (a²),    |g_i|² = |δ_i|² |a_i|²,    g_i·R = δ_iᵀ R a_i,

computed from the layer inputs a (forward hook) and output gradients δ (tensor hook) captured
during the one backward pass; no per-sample gradient is formed. Inputs with positions (``[B, *,
in]``, HF ``Conv1D``, unfolded ``nn.Conv1d/2d`` inputs) sum outer products over positions; their
per-sample weight gradients are formed in bounded chunks. ``nn.Embedding`` scatters the
per-sample rows (a positional table called on ``arange(T)`` without the batch dim too: its output is
expanded over the batch inside the pass); ``nn.LayerNorm``, ``nn.RMSNorm``, ``nn.GroupNorm`` and
eval-mode ``nn.BatchNorm`` form Σ_p δ ⊙ x̂ per sample
(:mod:`sgdlab.measure.noise._norm_layers`); an embedding table tied to a linear head (GPT)
forms g_i = E_i + H_i in chunks (:mod:`sgdlab.measure.noise._tied`). Every other parameter
(attention's packed projections, custom modules, other shared weights, a weight used outside
its module's forward, grouped convolutions…) gets g_i from the output cotangents by
``torch.func.vmap``, and recurrent layers (``nn.RNN/LSTM/GRU``, packed sequences) by a
per-sample loop (:mod:`sgdlab.measure.noise._fallback`), so one call handles mixed models.

``method``: ``"auto"`` (the above), ``"fast"`` (exact kernels only: a ``ValueError`` names the
modules without one), ``"vmap"`` (every parameter by vmap; a clear ``ValueError`` where
``torch.func`` cannot differentiate the model — GRU, LSTM in float64, packed sequences), or
``"loop"`` (every parameter by the per-sample loop).

Assumptions: dim 0 of every input and of every model output the loss uses is the batch (an
input without it is shared by all samples); samples do not interact inside the model (no
BatchNorm with batch statistics: that raises — :func:`~sgdlab.measure.noise.stats.gradient_noise`
has a micro-batch estimator for it); in train mode stochastic layers (dropout) draw from
torch's global RNG in the batch pass as in the user's own step, while the fallback draws its
own masks from a forked RNG. The first time a model is measured with a loss and an input
signature, a sub-batch check (:mod:`sgdlab.measure.noise._validate`) sends to the fallback
any supported layer whose dim 0 is not the sample (a sequence-first ``[T, B, I]`` input,
samples merged with positions) — a property of the architecture, not of the data.

Precision: Σ_i g_i² and ḡ are kept in the model's dtype, so the variance (Σ g_i² − n ḡ²)/(n−1)
loses about log10(GSNR) digits to cancellation; in float32 that is ~1e-7·GSNR relative error
(a parameter with gradient signal-to-noise ratio 1e5 keeps about two digits). Measure in
float64 when the signal-to-noise ratio is that high.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from sgdlab.measure.noise._args import check_samples
from sgdlab.measure.noise._common import (
    Inputs,
    LossFn,
    as_tuple,
    check_method,
    check_no_train_batchnorm,
)
from sgdlab.measure.noise._fast import batch_stats, resolve_reference
from sgdlab.measure.noise._reference import per_sample_grads
from sgdlab.measure.noise._result import PerSampleStats
from sgdlab.measure.noise._validate import modules_to_fall_back

__all__ = [
    "Inputs",
    "LossFn",
    "Method",
    "PerSampleStats",
    "per_sample_grads",
    "per_sample_stats",
    "stats_from_grads",
]

Reference = Literal["mean"] | dict[str, Tensor] | None
Method = Literal["auto", "fast", "vmap", "loop"]


def per_sample_stats(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Inputs,
    targets: Tensor | None,
    *,
    reference: Reference = None,
    method: Method = "auto",
    backward: bool = False,
    chunk_size: int | None = None,
) -> PerSampleStats:
    """Σ g_i, Σ g_i², |g_i|² (and g_i·R) per parameter from one backward pass of the batch loss.

    Args:
        model: any ``nn.Module``; its mode (train/eval) is used as is.
        loss_fn: ``loss_fn(model(*inputs), targets)`` → scalar (``loss_fn(model(*inputs))``
            when ``targets`` is ``None``); any reduction — g_i is defined under its own
            normalization (module docstring).
        inputs: a tensor or tuple of tensors with the batch in dim 0.
        targets: tensor with the batch in dim 0, or ``None``.
        reference: ``"mean"`` (R = the batch gradient), a dict of tensors, or ``None``
            (no dot products).
        method: ``"auto"``, ``"fast"``, ``"vmap"`` or ``"loop"`` (module docstring).
        backward: also accumulate the batch gradient into ``.grad`` as ``loss.backward()``
            would (for use inside a training step); otherwise ``.grad`` is untouched.
        chunk_size: samples per chunk of the fallback (default: a memory budget).

    Returns:
        :class:`PerSampleStats` over the parameters with ``requires_grad``.

    Raises:
        ValueError: no trainable parameters; inputs/targets without the same number of
            samples in dim 0; an unknown ``method``; a BatchNorm using batch statistics;
            ``method="fast"`` with a module that has no exact kernel; ``method="vmap"`` on
            a model ``torch.func`` cannot differentiate.

    Example:
        >>> net = nn.Sequential(nn.Linear(3, 2))
        >>> x, y = torch.randn(5, 3), torch.randn(5, 2)
        >>> s = per_sample_stats(net, nn.MSELoss(), x, y)
        >>> s.norm_sq["0.weight"].shape, s.method["0.weight"]
        (torch.Size([5]), 'linear')
    """
    check_method(method)
    check_samples(model, inputs, targets)
    check_no_train_batchnorm(model)
    x = as_tuple(inputs)
    skip: frozenset[str] = frozenset()
    shared: frozenset[str] = frozenset()
    if method in ("auto", "fast"):

        def measure(xs: tuple[Tensor, ...], ys: Tensor | None, found: set[str]):
            return batch_stats(
                model, loss_fn, xs, ys, reference=None, backward=False,
                chunk_size=chunk_size, skip=frozenset(), method="auto", found=found,
            )  # fmt: skip

        skip, shared = modules_to_fall_back(model, loss_fn, x, targets, measure)
    return batch_stats(
        model, loss_fn, x, targets, reference=reference, backward=backward,
        chunk_size=chunk_size, skip=skip, method=method, shared=shared,
    )  # fmt: skip


# --------------------------------------------------------------------------- references
def stats_from_grads(
    grads: dict[str, Tensor],
    *,
    reference: Reference = None,
    loss: float = float("nan"),
    method: str = "loop",
) -> PerSampleStats:
    """:class:`PerSampleStats` from materialized per-sample gradients ``{name: [n, *shape]}``."""
    n = next(iter(grads.values())).shape[0]
    means = {k: g.mean(0) for k, g in grads.items()}
    ref = resolve_reference(reference, means)
    return PerSampleStats(
        n=n,
        loss=loss,
        grad_mean=means,
        sq_sum={k: (g * g).sum(0) for k, g in grads.items()},
        norm_sq={k: (g * g).flatten(1).sum(1) for k, g in grads.items()},
        dot=None
        if ref is None
        else {k: g.flatten(1) @ ref[k].reshape(-1).to(g) for k, g in grads.items()},
        method={k: method for k in grads},
    )
