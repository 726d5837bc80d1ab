"""Validation of config sections: pydantic errors become one-line :class:`ConfigError` s.

Every component (problem, optimizer, schedule) validates its own section with
:func:`validate_section`; the messages name the dotted field (``optimizer.lr``), say what is
wrong and suggest the closest valid key or name (:func:`unknown_name`).
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

from sgdlab.errors import ConfigError

__all__ = ["unknown_name", "validate_section"]


def unknown_name(kind: str, section: str, name: object, known: Iterable[str]) -> ConfigError:
    """A :class:`ConfigError` on ``<section>.name`` for an unknown component name, with the
    closest known name as a suggestion."""
    known = list(known)
    hint = difflib.get_close_matches(str(name), known, n=1)
    extra = f" (did you mean {hint[0]!r}?)" if hint else ""
    return ConfigError(
        f"{section}.name", f"unknown {kind} {name!r}{extra}; built-in: {', '.join(known)}"
    )


def _format_loc(section: str, loc: tuple[Any, ...]) -> str:
    parts = ([section] if section else []) + [str(p) for p in loc]
    return ".".join(parts) or "config"


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel]:
    """The nested pydantic model reached by following ``loc`` through ``model``'s fields."""
    for part in loc:
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            break
        model = ann
    return model


def validate_section(model: type[BaseModel], data: Any, section: str) -> Any:
    """Validate ``data`` against ``model``; raise :class:`ConfigError` naming the first bad field.

    Unknown keys are reported with the closest valid key as a suggestion.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(section, f"must be a mapping of keys to values, got {data!r}")
    _reject_booleans_as_numbers(model, data, section)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # an unknown key explains a "missing field" better than the other way round
        err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        loc = tuple(err.get("loc", ()))
        field = _format_loc(section, loc)
        if err["type"] == "extra_forbidden":
            key = str(loc[-1]) if loc else "?"
            known = list(_model_at(model, loc[:-1]).model_fields)
            hint = difflib.get_close_matches(key, known, n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
            raise ConfigError(
                field, f"unknown key {key!r}{suggestion} (valid keys: {', '.join(known)})"
            ) from None
        if err["type"] == "missing":
            raise ConfigError(
                field, "required, give a value (`sgdlab problems` and `sgdlab optimizers` list "
                "every component's parameters)"
            ) from None
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        got = err.get("input")
        if err["type"] != "missing" and repr(got) not in msg:
            msg = f"{msg} (got {got!r})"
        raise ConfigError(field, msg) from None


def _numeric_only(annotation: Any) -> bool:
    """True when ``annotation`` admits int or float values but not booleans."""
    args = typing.get_args(annotation) or (annotation,)
    flat: list[Any] = []
    for a in args:
        inner = typing.get_args(a) if typing.get_origin(a) in (list, tuple) else (a,)
        flat += list(inner)
    return bool not in flat and any(a in (int, float) for a in flat)


def _reject_booleans_as_numbers(model: type[BaseModel], data: dict, section: str) -> None:
    """YAML's ``true``/``false`` would pass as 1/0 for numeric fields (``chains: true`` → 1
    chain): refuse them, in nested sections too."""
    for key, value in data.items():
        info = model.model_fields.get(key) if isinstance(key, str) else None
        if info is None:
            continue
        field = f"{section}.{key}" if section else key
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, bool) for v in values) and _numeric_only(info.annotation):
            raise ConfigError(field, f"expected a number, got {value!r}")
        sub = info.annotation
        if isinstance(value, dict) and isinstance(sub, type) and issubclass(sub, BaseModel):
            _reject_booleans_as_numbers(sub, value, field)
