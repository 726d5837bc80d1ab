"""First-use validation of the per-sample fast path for a (model, loss) pair (private).

The fast path of :mod:`sgdlab.measure.noise.per_sample` rests on two assumptions that one batch's
backward pass cannot reveal:

1. **The loss is the plain mean of per-sample losses**, L = (1/B) Σ_i ℓ_i (no class weights,
   no ``ignore_index``, no ``reduction="sum"``). Only then is B·∂L/∂z_i sample i's own
   gradient; the fallback computes ∇ℓ_i from a batch of one, so a weighted mean would make
   the two paths disagree silently.
2. **Dim 0 of every supported layer's input is the sample.** A sequence-first layer (input
   ``[T, B, I]``) with T = B would mix positions and samples without any shape error.

The first time a model is measured with a given loss function and input signature (shapes
past dim 0, dtypes, devices), both are checked on a sub-batch of m = min(3, n − 1) samples,
in eval mode and with the RNG state forked:

* the gradient of the sub-batch loss must equal the mean of the m single-sample gradients
  (elementwise, within rounding of the sum of their magnitudes), else ``ValueError``;
* for every parameter the fast path handles, its per-sample squared norms on the sub-batch
  must equal those of the single-sample gradients; a module that fails, or a supported
  module that the sub-batch already sent to the fallback, is sent to the fallback from
  then on.

A sub-batch smaller than n also exposes a layer whose dim 0 is not the batch. The result is
cached per model and loss function, both held weakly where Python allows (at most
:data:`MAX_ENTRIES` per model). The check costs m + 1 small backward passes once; later calls
cost a dictionary lookup. It cannot catch an assumption broken only by samples outside the
sub-batch (e.g. an ``ignore_index`` label that first appears later): the requirement is
stated in the public docstrings.
"""

from __future__ import annotations

import inspect
import warnings
import weakref
from collections.abc import Callable

import torch
from torch import Tensor, nn

from sgdlab.measure.noise._layers import _rtol, fast_kind
from sgdlab.measure.noise._vmap import LossFn, call_loss, trainable
from sgdlab.rng import forked_global_rng

#: cached validations per model (the least recently used is dropped beyond this)
MAX_ENTRIES = 8

_CACHE: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()

#: measure(inputs, targets) → PerSampleStats of the fast path, without validation
Measure = Callable[[tuple[Tensor, ...], Tensor | None], object]


def _signature(x: tuple[Tensor, ...], targets: Tensor | None) -> tuple:
    sig = tuple((tuple(t.shape[1:]), t.dtype, str(t.device)) for t in x)
    if targets is not None:
        sig += ((tuple(targets.shape[1:]), targets.dtype, str(targets.device)),)
    return sig


class NotPlainMeanError(ValueError):
    """The loss is not the plain mean of per-sample losses."""


def modules_to_fall_back(
    model: nn.Module,
    loss_fn: LossFn,
    x: tuple[Tensor, ...],
    targets: Tensor | None,
    measure: Measure,
) -> frozenset[str]:
    """Names of the fast-path modules whose per-sample layout failed the check (usually none).

    Raises:
        ValueError: ``loss_fn`` is not the plain mean of per-sample losses.
    """
    n = x[0].shape[0]
    if n < 2:
        return frozenset()  # one sample: the batch gradient is its gradient
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
    except NotPlainMeanError:
        raise
    except Exception as exc:  # the model cannot run on a sub-batch: measure unchecked
        warnings.warn(
            "per-sample statistics: the first-use check could not run on a sub-batch "
            f"({type(exc).__name__}: {exc}); the fast path is used unchecked. The check needs "
            "dim 0 of the batched inputs and targets to be the sample.",
            RuntimeWarning,
            stacklevel=4,
        )
        bad = frozenset()
    if m >= 2:  # one sample cannot test the reduction: check again at a larger batch
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


def _batched(t: Tensor, n: int) -> bool:
    return t.dim() >= 1 and t.shape[0] == n


def _validate(
    model: nn.Module,
    loss_fn: LossFn,
    x: tuple[Tensor, ...],
    targets: Tensor | None,
    measure: Measure,
    m: int,
) -> frozenset[str]:
    n = x[0].shape[0]
    params = trainable(model)
    names, tensors = list(params), list(params.values())
    if not tensors:
        return frozenset()

    def rows(t: Tensor | None, size: int, a: int, b: int) -> Tensor | None:
        """Rows a:b of a tensor batched over ``size`` samples; shared inputs stay whole."""
        return t[a:b] if t is not None and _batched(t, size) else t

    sub = tuple(rows(t, n, 0, m) for t in x)
    y = rows(targets, n, 0, m)
    modes = {mod: mod.training for mod in model.modules()}

    def grads(xs: tuple, ys: Tensor | None) -> list[Tensor]:
        gs = torch.autograd.grad(call_loss(model, loss_fn, xs, ys), tensors, allow_unused=True)
        return [torch.zeros_like(p) if g is None else g for p, g in zip(tensors, gs, strict=True)]

    try:
        with forked_global_rng((*tensors, *x)):
            # the caller's mode (train-only branches are seen), dropout off: masks drawn for a
            # batch of one and for the sub-batch could never agree
            for mod in model.modules():
                if isinstance(mod, nn.modules.dropout._DropoutNd):
                    mod.eval()
            single = [
                grads(tuple(rows(t, m, i, i + 1) for t in sub), rows(y, m, i, i + 1))
                for i in range(m)
            ]
            batch = grads(sub, y)
            again = grads(sub, y)  # differs if the model draws random numbers of its own
            stats = measure(sub, y)
    finally:
        for mod, training in modes.items():
            mod.training = training
    # rounding is set by the least precise floating dtype in play (a float64 layer feeding a
    # float32 one has float32 gradients)
    floats = {t.dtype for t in (*tensors, *x) if t.is_floating_point()}
    rtol = max(_rtol(d) for d in floats) if floats else _rtol(torch.float32)

    def close(a: Tensor, b: Tensor, scale: Tensor) -> bool:
        # rounding of an element with cancellation inside it is relative to its terms, not to
        # itself: a floor at the largest scale covers it, while a wrong reduction or layout
        # moves values by the order of the gradient itself
        floor = scale.max() if scale.numel() else scale.new_zeros(())
        return bool(((a - b).abs() <= rtol * (scale + floor) + torch.finfo(a.dtype).tiny).all())

    with torch.no_grad():
        stochastic = not all(
            close(a, b, a.abs()) for a, b in zip(batch, again, strict=True)
        )  # values cannot be compared: only the layouts are checked
        for j, k in enumerate(names):
            g = torch.stack([s[j] for s in single])  # [m, *shape]
            if not stochastic and not close(batch[j], g.mean(0), g.abs().mean(0)):
                raise NotPlainMeanError(
                    f"loss_fn is not the plain mean of per-sample losses: on the first {m} "
                    f"samples the gradient of the batch loss differs from the mean of the "
                    f"single-sample gradients (parameter {k!r}). Per-sample statistics need "
                    "L = (1/B) Σ_i ℓ_i: use reduction='mean' without class weights or "
                    "ignore_index"
                )
        bad = set()
        holders = dict(model.named_modules())
        for j, k in enumerate(names):
            holder = k.rpartition(".")[0]
            if stats.method[k] == "vmap":  # type: ignore[attr-defined]
                # a supported layer the sub-batch sent to the fallback (dim 0 is not the
                # sample, or its weight is used elsewhere) must not take the fast path later,
                # when dim 0 may happen to equal the batch size
                if fast_kind(holders[holder]) is not None:
                    bad.add(holder)
                continue
            if stochastic or stats.method[k] not in ("linear", "conv", "embedding"):  # type: ignore[attr-defined]
                continue
            want = torch.stack([s[j].pow(2).sum() for s in single])
            got = stats.norm_sq[k]  # type: ignore[attr-defined]
            if got.shape != want.shape or not close(got, want, want):
                bad.add(holder)
    return frozenset(bad)
