"""Instruments: gradient noise, noise scale, temperature, curvature, sharpness, landscapes.

Names are resolved lazily from the submodules listed in ``_EXPORTS`` so that importing
``sgdlab.measure`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> submodule of sgdlab.measure that defines it
_EXPORTS: dict[str, str] = {}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sgdlab.measure' has no attribute {name!r}")
    return getattr(importlib.import_module(f"sgdlab.measure.{module}"), name)


def __dir__() -> list[str]:
    return sorted(_EXPORTS)


__all__ = sorted(_EXPORTS)
