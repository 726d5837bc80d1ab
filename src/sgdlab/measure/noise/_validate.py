"""First-use check of the per-sample fast path's layouts for a (model, loss) pair (private).

The exact kernels of :mod:`sgdlab.measure.noise.per_sample` assume that **dim 0 of every
supported layer's input is the sample**. A sequence-first layer (input ``[T, B, I]``) with
T = B, or samples merged with positions (``[B·T, I]``), would mix positions and samples
without any shape error. This is a property of the architecture, not of the data, so it is
checked once per model, loss function, mode and input signature (shapes past dim 0, dtypes,
devices) on a sub-batch of m = min(3, n − 1) samples, with the RNG state forked and dropout off
(a positional embedding called without the batch dim is recorded as shared here, and expanded
over the batch from then on, even when its length happens to equal n): for every parameter the
fast path handles, its per-sample squared norms must equal those of the loop reference
(:func:`~sgdlab.measure.noise._reference.per_sample_grads`) on the same sub-batch; a module that
fails, or a supported module that the sub-batch already sent to the fallback, is sent to the
fallback from then on.

The loss's reduction needs no check: the per-sample gradient is defined under the loss's own
normalization for the whole batch (class weights, ``ignore_index`` padding first seen after
any number of samples, ``reduction="sum"``), and the fast path, the fallback and the loop
reference all compute that same definition.

The result is cached per model and loss function, both held weakly where Python allows (at
most :data:`MAX_ENTRIES` per model). The check costs m + 2 small passes once; later calls
cost a dictionary lookup. A model that cannot run on the sub-batch is measured unchecked,
with a warning.
"""

from __future__ import annotations

import inspect
import warnings
import weakref
from collections.abc import Callable

import torch
from torch import Tensor, nn

from sgdlab.measure.noise._common import LossFn, call_loss, rows, trainable
from sgdlab.measure.noise._fast import fast_kind
from sgdlab.measure.noise._layers import _rtol
from sgdlab.measure.noise._reference import per_sample_grads
from sgdlab.rng import forked_global_rng

#: cached validations per model (the least recently used is dropped beyond this)
MAX_ENTRIES = 8

_CACHE: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()

#: measure(inputs, targets, found) → PerSampleStats of the fast path, without validation;
#: the names of shared positional embeddings it expanded are added to ``found``
Measure = Callable[[tuple[Tensor, ...], Tensor | None, set[str]], object]
Layout = tuple[frozenset[str], frozenset[str]]


def _signature(x: tuple[Tensor, ...], targets: Tensor | None) -> tuple:
    sig = tuple((tuple(t.shape[1:]), t.dtype, str(t.device)) for t in x)
    if targets is not None:
        sig += ((tuple(targets.shape[1:]), targets.dtype, str(targets.device)),)
    return sig


def modules_to_fall_back(
    model: nn.Module,
    loss_fn: LossFn,
    x: tuple[Tensor, ...],
    targets: Tensor | None,
    measure: Measure,
) -> Layout:
    """``(fall back, shared)``: the names of the fast-path modules whose per-sample layout
    failed the check (usually none), and of the positional embeddings called without the
    batch dim (expanded over the batch from then on)."""
    n = x[0].shape[0]
    if n < 2:
        return frozenset(), frozenset()  # one sample: the batch gradient is its gradient
    ident, ref = _loss_identity(loss_fn)
    key = (ident, _signature(x, targets), model.training)
    entries = _CACHE.setdefault(model, {})
    hit = entries.pop(key, None)
    if hit is not None and hit[0]() is not None:
        entries[key] = hit  # most recently used last
        return hit[1]
    m = min(3, n - 1)
    try:
        bad = _validate(model, loss_fn, x, targets, measure, m)
    except Exception as exc:  # the model cannot run on a sub-batch: measure unchecked
        warnings.warn(
            "per-sample statistics: the first-use check could not run on a sub-batch "
            f"({type(exc).__name__}: {exc}); the fast path is used unchecked. The check needs "
            "dim 0 of the batched inputs and targets to be the sample.",
            RuntimeWarning,
            stacklevel=4,
        )
        bad = frozenset(), frozenset()
    if m >= 2:  # a sub-batch of one cannot expose a layout: check again at a larger batch
        entries[key] = (ref, bad)
        while len(entries) > MAX_ENTRIES:
            entries.pop(next(iter(entries)))
    return bad


def _loss_identity(loss_fn: LossFn) -> tuple[tuple, Callable[[], object]]:
    """A cache key for ``loss_fn`` and a reference to it that is weak where possible: a loss
    closure that captures the model must not keep the model alive through the cache."""
    ident: tuple = (id(loss_fn),)
    ref: Callable[[], object]
    try:
        if inspect.ismethod(loss_fn):  # a fresh bound-method object on every access
            ident = (id(loss_fn.__self__), id(loss_fn.__func__))
            ref = weakref.WeakMethod(loss_fn)
        else:
            ref = weakref.ref(loss_fn)
    except TypeError:  # builtins and slotted objects: held strongly
        ref = lambda: loss_fn  # noqa: E731
    return ident, ref


def _validate(
    model: nn.Module,
    loss_fn: LossFn,
    x: tuple[Tensor, ...],
    targets: Tensor | None,
    measure: Measure,
    m: int,
) -> Layout:
    n = x[0].shape[0]
    params = trainable(model)
    names, tensors = list(params), list(params.values())
    if not tensors:
        return frozenset(), frozenset()
    sub = tuple(rows(t, n, 0, m) for t in x)
    y = rows(targets, n, 0, m)
    modes = {mod: mod.training for mod in model.modules()}

    def grads(xs: tuple, ys: Tensor | None) -> list[Tensor]:
        gs = torch.autograd.grad(call_loss(model, loss_fn, xs, ys), tensors, allow_unused=True)
        return [torch.zeros_like(p) if g is None else g for p, g in zip(tensors, gs, strict=True)]

    try:
        with forked_global_rng((*tensors, *x)), torch.enable_grad():
            # the caller's mode (train-only branches are seen), dropout off: masks drawn for
            # the reference and for the batch pass could never agree
            for mod in model.modules():
                if isinstance(mod, nn.modules.dropout._DropoutNd):
                    mod.eval()
            batch = grads(sub, y)
            again = grads(sub, y)  # differs if the model draws random numbers of its own
            found: set[str] = set()
            stats = measure(sub, y, found)
            rtol = _tolerance(tensors, x)
            pairs = zip(batch, again, strict=True)
            stochastic = not all(_close(a, b, a.abs(), rtol) for a, b in pairs)
            single = None if stochastic else per_sample_grads(model, loss_fn, sub, y)
    finally:
        for mod, training in modes.items():
            mod.training = training
    bad = set()
    holders = dict(model.named_modules())
    with torch.no_grad():
        for k in names:
            holder = k.rpartition(".")[0]
            if stats.method[k] in ("vmap", "loop"):  # type: ignore[attr-defined]
                # a supported layer the sub-batch sent to the fallback (dim 0 is not the
                # sample, or its weight is used elsewhere) must not take the fast path later,
                # when dim 0 may happen to equal the batch size
                if fast_kind(holders[holder]) is not None:
                    bad.add(holder)
                continue
            if single is None or stats.method[k] == "unused":  # type: ignore[attr-defined]
                continue  # a stochastic model: values cannot be compared, layouts only
            want = single[k].flatten(1).pow(2).sum(1)
            got = stats.norm_sq[k]  # type: ignore[attr-defined]
            if got.shape != want.shape or not _close(got, want, want, rtol):
                bad.add(holder)
    return frozenset(bad), frozenset(found - bad)


def _tolerance(tensors: list[Tensor], x: tuple[Tensor, ...]) -> float:
    """Relative rounding of the least precise floating dtype in play (a float64 layer feeding
    a float32 one has float32 gradients)."""
    floats = {t.dtype for t in (*tensors, *x) if t.is_floating_point()}
    return max(_rtol(d) for d in floats) if floats else _rtol(torch.float32)


def _close(a: Tensor, b: Tensor, scale: Tensor, rtol: float) -> bool:
    """|a − b| within rounding: relative to the terms (``scale``), with a floor at the largest
    scale (an element with cancellation inside it), while a wrong layout moves values by the
    order of the gradient itself."""
    floor = scale.max() if scale.numel() else scale.new_zeros(())
    return bool(((a - b).abs() <= rtol * (scale + floor) + torch.finfo(a.dtype).tiny).all())
