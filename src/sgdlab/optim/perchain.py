"""Per-chain hyperparameters: one value, or one value per group of chains.

Every numeric hyperparameter of an update rule (and the learning rate) may differ between
the ``K`` chains of an ensemble, so a single run can sweep it. A config gives either

* a scalar, used by every chain, or
* a list of ``L`` values with ``L`` dividing ``K``: the chains are split into ``L``
  contiguous groups of ``K / L``; chains ``0 .. K/L - 1`` get ``value[0]``, the next
  ``K/L`` get ``value[1]``, and so on (``torch.repeat_interleave(values, K // L)``).

Example:
    >>> per_chain([0.1, 0.2], 4, "optimizer.lr", dtype=torch.float64, device="cpu")
    tensor([0.1000, 0.1000, 0.2000, 0.2000], dtype=torch.float64)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any

import torch
from pydantic import PlainValidator, WithJsonSchema
from torch import Tensor

from sgdlab.errors import ConfigError
from sgdlab.validation import shorten

__all__ = ["FloatOrList", "divisors", "per_chain"]


def divisors(n: int) -> list[int]:
    """The positive divisors of ``n`` in increasing order."""
    return [d for d in range(1, n + 1) if n % d == 0]


def _divisor_hint(chains: int) -> str:
    divs = divisors(chains)
    if len(divs) > 8:
        return ", ".join(str(d) for d in divs[:6]) + f", ... or {chains}"
    if len(divs) == 1:
        return "1"
    return ", ".join(str(d) for d in divs[:-1]) + f" or {divs[-1]}"


def _as_floats(value: Any) -> list[float]:
    if isinstance(value, Tensor):
        return [float(v) for v in value.detach().reshape(-1).tolist()]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [float(value)]
    return [float(v) for v in value]


def per_chain(
    value: float | Sequence[float] | Tensor,
    chains: int,
    field: str,
    *,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    positive: bool = False,
    nonneg: bool = False,
    below: float | None = None,
) -> Tensor:
    """Expand a scalar or a list of values to one value per chain, ``Tensor[K]``.

    Args:
        value: a scalar (every chain), or ``L`` values with ``L`` dividing ``chains``
            (group ``i`` of ``chains // L`` contiguous chains gets ``value[i]``).
        chains: the number of chains ``K``.
        field: dotted config path named in errors, e.g. ``"optimizer.lr"``.
        dtype: dtype of the result.
        device: device of the result.
        positive: require every value ``> 0``.
        nonneg: require every value ``>= 0``.
        below: if given, require every value ``< below`` (e.g. ``1`` for a momentum).

    Returns:
        ``Tensor[K]`` of per-chain values.

    Raises:
        ConfigError: ``field`` names the offending key; the message says how to fix it.
    """
    if chains < 1:
        raise ConfigError("chains", f"must be >= 1, got {chains}")
    try:
        values = _as_floats(value)
    except (TypeError, ValueError):
        raise ConfigError(
            field, f"must be a number or a list of numbers, got {shorten(value)}"
        ) from None
    if not values:
        raise ConfigError(field, "empty list: give one value, or one value per group of chains")
    if chains % len(values) != 0:
        raise ConfigError(
            field,
            f"{len(values)} values do not divide {chains} chains: give "
            f"{_divisor_hint(chains)} values (chains are split into equal contiguous groups)",
        )
    for v in values:
        if not math.isfinite(v):
            raise ConfigError(field, f"must be finite, got {v}")
        if positive and not v > 0:
            raise ConfigError(field, f"must be > 0, got {v}")
        if nonneg and not v >= 0:
            raise ConfigError(field, f"must be >= 0, got {v}")
        if below is not None and not v < below:
            raise ConfigError(field, f"must be < {below:g}, got {v}")
    t = torch.tensor(values, dtype=dtype, device=device)
    return t.repeat_interleave(chains // len(values))


def _validate_float_or_list(value: Any) -> float | list[float]:
    def one(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float | str):
            raise ValueError(f"must be a number or a list of numbers, got {shorten(v)}")
        try:
            x = float(v)
        except ValueError:
            raise ValueError(f"must be a number or a list of numbers, got {shorten(v)}") from None
        if not math.isfinite(x):
            raise ValueError(f"must be a finite number, got {shorten(v)}")
        return x

    if isinstance(value, list | tuple):
        if not value:
            raise ValueError("empty list: give one value, or one value per group of chains")
        return [one(v) for v in value]
    return one(value)


#: Pydantic field type of a per-chain hyperparameter: a number, or a list of numbers
#: (one per contiguous group of chains, see :func:`per_chain`). Numeric strings such as
#: ``"1e-3"`` (how YAML 1.1 reads exponents without a dot) are accepted.
FloatOrList = Annotated[
    float | list[float],
    PlainValidator(_validate_float_or_list),
    WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "array", "items": {"type": "number"}}]}),
]
