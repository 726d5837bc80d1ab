"""The gradient the optimizer step used, whatever the order of ``zero_grad()`` in the loop.

``grad_norm`` is ‖∇L‖₂ over the model's parameters, read from ``.grad`` at ``mon.step`` —
right whether the loop calls ``mon.step`` after ``optimizer.step()`` or just before it (HF's
``on_pre_optimizer_step``) — except in a loop that calls ``optimizer.zero_grad()`` right after
``optimizer.step()``, where ``.grad`` holds zeros or ``None``. For that case :class:`GradTap`
also reads it in an optimizer step *post*-hook, i.e. right after the step — after any gradient
clipping, every accumulated micro-batch and a closure's own backward (Lightning's
``optimizer.step(closure)``, which a pre-hook would precede) — on the steps the Monitor
records (``armed``); and
it counts the optimizer steps, so that a Monitor called several times per optimizer step (as
with gradient accumulation) can say so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

NO_GRAD_NOTE = (
    "grad_norm: the parameters have no gradient (or only zeros) at mon.step — the loop calls "
    "optimizer.zero_grad() before mon.step; pass the optimizer to the Monitor (it then reads "
    "the gradient at optimizer.step()) or call mon.step before zero_grad(). The "
    "recorded grad_norm is 0"
)
NO_STEP_NOTE = (
    "mon.step was called without an optimizer.step() since the previous call (gradient "
    "accumulation?): call it once per optimizer step and declare the effective batch with "
    "Monitor(accumulation_steps=k) or mon.step(..., batch_size=B); grad_norm is then the "
    "partially accumulated .grad"
)


def grad_norm(params: Iterable[nn.Parameter]) -> float:
    """‖(p.grad)_p‖₂ over the parameters that have a gradient (summed in float64);
    ``nan`` when none has one."""
    norms = [torch.linalg.vector_norm(p.grad.detach(), dtype=torch.float64)
             for p in params if p.grad is not None]  # fmt: skip
    if not norms:
        return math.nan
    return float(torch.stack(norms).pow(2).sum().sqrt())


class GradTap:
    """Optimizer step post-hook: the gradient norm at the last armed ``optimizer.step()``."""

    def __init__(self, optimizer: torch.optim.Optimizer, params: list[nn.Parameter]) -> None:
        self.params = params
        self.armed = True
        self.steps = 0  # optimizer steps seen
        self.value: float | None = None  # gradient norm at the last armed step
        self._handle: Any = optimizer.register_step_post_hook(self._hook)

    def _hook(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.steps += 1
        if self.armed:
            try:
                self.value = grad_norm(self.params)
            except Exception:  # inside the user's optimizer.step(): never raise there
                self.value = None

    def take(self) -> float | None:
        value, self.value = self.value, None
        return value

    def remove(self) -> None:
        self._handle.remove()
