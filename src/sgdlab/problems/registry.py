"""Registry of built-in problems: ``@register`` a :class:`Problem` subclass by its ``name``."""

from __future__ import annotations

from typing import Any

import torch

from sgdlab.problems.base import Problem
from sgdlab.rng import Streams
from sgdlab.validation import unknown_name, validate_section

PROBLEMS: dict[str, type[Problem]] = {}


def register(cls: type[Problem]) -> type[Problem]:
    """Class decorator adding ``cls`` to :data:`PROBLEMS` under ``cls.name``."""
    PROBLEMS[cls.name] = cls
    return cls


def problem_class(name: str) -> type[Problem]:
    """The class registered as ``name``; a :class:`ConfigError` with a suggestion otherwise."""
    if name not in PROBLEMS:
        raise unknown_name("problem", "problem", name, PROBLEMS)
    return PROBLEMS[name]


def build_problem(
    name: str,
    params: dict[str, Any] | None = None,
    streams: Streams | None = None,
    dtype: torch.dtype = torch.float64,
) -> Problem:
    """Validate ``params`` against the problem's ``Params`` and build it.

    Example:
        >>> p = build_problem("quadratic", {"dim": 4})
        >>> p.dim
        4
    """
    cls = problem_class(name)
    validated = validate_section(cls.Params, params or {}, "problem")
    return cls(validated, streams or Streams(0), dtype)
