"""Learning-rate scaling rules for a change of batch size.

With ``k = batch_size / base_batch_size``:

* ``"linear"``: η ← k η (Goyal et al. 2017, *Accurate, large minibatch SGD*, section 2.1;
  keeps the SGD temperature ησ²/(2b) fixed, valid below the critical batch size);
* ``"sqrt"``: η ← √k η (Krizhevsky 2014, *One weird trick*; Hoffer et al. 2017, *Train
  longer, generalize better*: keeps the update covariance η²Σ/b fixed);
* ``"none"``: η unchanged.
"""

from __future__ import annotations

import math
from typing import Literal, TypeVar

from torch import Tensor

from sgdlab.errors import ConfigError

__all__ = ["SCALING_RULES", "scale_lr"]

SCALING_RULES: tuple[str, ...] = ("linear", "sqrt", "none")

LR = TypeVar("LR", float, Tensor)


def scale_lr(
    lr: LR,
    batch_size: int,
    base_batch_size: int,
    rule: Literal["linear", "sqrt", "none"] = "linear",
) -> LR:
    """The learning rate for ``batch_size``, given ``lr`` tuned at ``base_batch_size``.

    Args:
        lr: η at the base batch size (float or per-chain ``Tensor[K]``).
        batch_size: the new batch size b (> 0).
        base_batch_size: the batch size b₀ at which ``lr`` was tuned (> 0).
        rule: ``"linear"`` (η·b/b₀), ``"sqrt"`` (η·√(b/b₀)) or ``"none"``.

    Returns:
        The scaled learning rate, same kind as ``lr``.

    Raises:
        ConfigError: a non-positive batch size or an unknown rule.

    Example:
        >>> scale_lr(0.1, 256, 32, "linear"), scale_lr(0.1, 128, 32, "sqrt")
        (0.8, 0.2)
    """
    if batch_size <= 0:
        raise ConfigError("batch_size", f"must be > 0, got {batch_size}")
    if base_batch_size <= 0:
        raise ConfigError("base_batch_size", f"must be > 0, got {base_batch_size}")
    k = batch_size / base_batch_size
    if rule == "linear":
        return lr * k
    if rule == "sqrt":
        return lr * math.sqrt(k)
    if rule == "none":
        return lr
    raise ConfigError("rule", f"unknown scaling rule {rule!r}; use one of {SCALING_RULES}")
