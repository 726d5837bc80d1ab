"""What the Monitor's extra pass measures: the user's batch as tensors, the module under the
user's wrappers, and the model's own dtype (outside ``autocast``).

* Inputs may be a tensor, a tuple/list of tensors (``model(*inputs)``) or a mapping
  (HF-style ``model(**batch)``; targets then usually ``None`` and ``loss_fn(output)`` reads
  ``output.loss``). A mapping's tensors whose dim 0 is the batch are the per-sample inputs;
  its other values are passed unchanged to every call.
* The measured module is :func:`sgdlab.distributed.unwrap`\\ (model): no DDP collective, no
  compiled graph, the user's parameter names.
* The extra pass runs with ``autocast`` off: it measures the model in its parameters' dtype
  (a measurement under ``autocast`` would differentiate through low-precision casts, and the
  per-sample machinery does not support them).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


class KwargsCall(nn.Module):
    """``model(**batch)`` as a module called with positional tensors (for the per-sample
    machinery): ``forward(*tensors)`` calls ``inner(**dict(zip(keys, tensors)), **constants)``."""

    def __init__(self, inner: nn.Module, keys: tuple[str, ...], constants: dict[str, Any]):
        super().__init__()
        self.inner = inner
        self.keys = keys
        self.constants = constants

    def forward(self, *tensors: Tensor) -> Any:
        return self.inner(**dict(zip(self.keys, tensors, strict=True)), **self.constants)


@dataclass(frozen=True)
class Batch:
    """The batch as the measurement sees it: ``model(*inputs)``, ``size`` samples."""

    model: nn.Module
    inputs: tuple[Tensor, ...]
    targets: Tensor | None
    size: int


def batch_size_of(inputs: Any) -> int:
    """Dim 0 of the first tensor of ``inputs`` (a tensor, a sequence or a mapping)."""
    for t in _tensors(inputs):
        if t.dim() > 0:
            return int(t.shape[0])
    raise ValueError("inputs hold no tensor with a batch dimension (dim 0)")


def _tensors(inputs: Any) -> Iterator[Tensor]:
    if isinstance(inputs, Tensor):
        yield inputs
    elif isinstance(inputs, Mapping):
        yield from (v for v in inputs.values() if isinstance(v, Tensor))
    elif isinstance(inputs, tuple | list):
        yield from (v for v in inputs if isinstance(v, Tensor))


def as_batch(module: nn.Module, inputs: Any, targets: Tensor | None) -> Batch:
    """The measurement's view of a batch for the (unwrapped) ``module``."""
    n = batch_size_of(inputs)
    if isinstance(inputs, Mapping):
        keys, tensors, constants = [], [], {}
        for k, v in inputs.items():
            if isinstance(v, Tensor) and v.dim() > 0 and v.shape[0] == n:
                keys.append(str(k))
                tensors.append(v)
            else:
                constants[str(k)] = v
        return Batch(KwargsCall(module, tuple(keys), constants), tuple(tensors), targets, n)
    x = tuple(inputs) if isinstance(inputs, tuple | list) else (inputs,)
    return Batch(module, x, targets, n)


@contextlib.contextmanager
def full_precision() -> Iterator[None]:
    """``autocast`` off on the CPU (and CUDA when present) inside the block."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.autocast("cpu", enabled=False))
        if torch.cuda.is_available():
            stack.enter_context(torch.autocast("cuda", enabled=False))
        yield
