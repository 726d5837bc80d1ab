"""Argument checks at the entry of the per-sample instruments (private): a clear
``ValueError`` naming the argument instead of an error from deep inside autograd."""

from __future__ import annotations

import math
import warnings

from torch import Tensor, nn

from sgdlab.measure.noise._common import Inputs, trainable

__all__ = ["check_batch_size", "check_samples", "warn_non_finite"]


def check_samples(model: nn.Module, inputs: Inputs, targets: Tensor | None) -> int:
    """The number of samples n; raises ``ValueError`` unless ``model`` has trainable
    parameters, ``inputs`` is a tensor (or a non-empty tuple of tensors; the first holds the
    n samples in dim 0) and ``targets`` is ``None`` or a tensor of n rows."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not trainable(model):
        raise ValueError(
            "model has no trainable parameters (requires_grad=True): there is no gradient "
            "to measure"
        )
    x = tuple(inputs) if isinstance(inputs, tuple | list) else (inputs,)
    if not x:
        raise ValueError("inputs is empty: give a tensor (or tuple of tensors), samples in dim 0")
    for i, t in enumerate(x):
        if not isinstance(t, Tensor):
            raise ValueError(f"inputs[{i}] must be a tensor, got {type(t).__name__}")
        if t.dim() == 0:
            raise ValueError(f"inputs[{i}] is a scalar: the samples must be in dim 0")
    n = x[0].shape[0]  # further inputs may be shared by all samples (no sample dim)
    if targets is not None:
        if not isinstance(targets, Tensor):
            raise ValueError(f"targets must be a tensor or None, got {type(targets).__name__}")
        if targets.dim() == 0 or targets.shape[0] != n:
            rows = "a scalar" if targets.dim() == 0 else f"{targets.shape[0]} rows"
            raise ValueError(
                f"targets has {rows} but inputs have {n} samples: give one target per sample "
                "(dim 0)"
            )
    return int(n)


def check_batch_size(batch_size: int | None) -> None:
    """``None`` or an integer ≥ 1."""
    if batch_size is None:
        return
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer ≥ 1 or None, got {batch_size!r}")


def warn_non_finite(trace: float, grad_norm_sq: float) -> None:
    """Warn (once per call site) when the statistics are not finite: NaN or inf in the
    inputs, targets, parameters or loss propagate to them; they are returned as computed."""
    if not (math.isfinite(trace) and math.isfinite(grad_norm_sq)):
        warnings.warn(
            "gradient noise statistics are not finite (NaN or inf in the inputs, targets, "
            "parameters or loss); they are returned as computed",
            RuntimeWarning,
            stacklevel=3,
        )
