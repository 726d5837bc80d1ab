"""The batch of one optimizer step from the micro-batches a framework ran (shared by the
callbacks; no framework imported here).

With gradient accumulation a step's gradient is the mean of its k micro-batches' gradients
(equal sizes), i.e. the gradient of the concatenated batch: the callbacks hand the Monitor
that batch, ``torch.cat`` along dimension 0 of every tensor. Micro-batches that cannot be
joined (sequences padded to different lengths, other shapes) give the last micro-batch
instead, with the step's whole batch still declared as ``batch_size``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor


def batch_len(batch: Any) -> int:
    """Samples in a batch: the first dimension of its first tensor (tensor, tuple/list,
    dict)."""
    if isinstance(batch, Tensor):
        return int(batch.shape[0])
    items = batch.values() if isinstance(batch, Mapping) else batch
    for item in items:
        if isinstance(item, Tensor) and item.dim() > 0:
            return int(item.shape[0])
    raise ValueError(f"no tensor with a batch dimension in a {type(batch).__name__} batch")


def _cat(parts: Sequence[Any]) -> Any:
    first = parts[0]
    if isinstance(first, Tensor):
        if first.dim() == 0 or any(
            not isinstance(p, Tensor) or p.shape[1:] != first.shape[1:] for p in parts
        ):
            raise ValueError("micro-batches of different shapes")
        return torch.cat(list(parts), dim=0)
    if isinstance(first, Mapping):
        if any(not isinstance(p, Mapping) or p.keys() != first.keys() for p in parts):
            raise ValueError("micro-batches with different keys")
        return {k: _cat([p[k] for p in parts]) for k in first}
    if isinstance(first, tuple | list):
        if any(not isinstance(p, tuple | list) or len(p) != len(first) for p in parts):
            raise ValueError("micro-batches of different structure")
        return type(first)(_cat([p[i] for p in parts]) for i in range(len(first)))
    if all(p is None for p in parts):
        return None
    raise ValueError(f"cannot join micro-batch parts of type {type(first).__name__}")


def join(micro: Sequence[Any]) -> tuple[Any, bool]:
    """``(the step's batch, joined?)``: the micro-batches concatenated along dimension 0, or
    the last one when they cannot be joined."""
    if len(micro) == 1:
        return micro[0], True
    try:
        return _cat(micro), True
    except ValueError:
        return micro[-1], False
