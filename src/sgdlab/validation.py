"""Validation of config sections: pydantic errors become one-line :class:`ConfigError` s.

Every component (problem, optimizer, schedule) validates its own section with
:func:`validate_section`; the messages name the dotted field (``optimizer.lr``), say what is
wrong and suggest the closest valid key or name (:func:`unknown_name`). A value echoed in a
message is shortened by :func:`shorten` (a config can hold a huge or self-referencing value;
the message stays one short line).
"""

from __future__ import annotations

import difflib
import reprlib
import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

from sgdlab.errors import ConfigError

__all__ = ["ECHO_CHARS", "clip", "shorten", "unknown_name", "validate_section"]

#: the most characters of a user's value an error message echoes
ECHO_CHARS = 60

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple, _REPR.maxset = 2, 4, 6, 6, 6
_REPR.maxstring, _REPR.maxlong, _REPR.maxother = ECHO_CHARS, 24, ECHO_CHARS


def shorten(value: object, limit: int = ECHO_CHARS) -> str:
    """``repr(value)`` cut to about ``limit`` characters, without ever building the full repr
    (nested and self-referencing containers are abbreviated level by level).

    Example:
        >>> shorten(list(range(1000)))
        '[0, 1, 2, 3, 4, 5, ...]'
        >>> shorten("x" * 500, 12)
        "'xxxxxxxxxx…"
    """
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clip(text: str, limit: int = 200) -> str:
    """``text`` on one line (line breaks and other control characters become spaces), cut
    to ``limit`` characters with ``…``.

    Example:
        >>> clip("IO Error: could not read the file", 16)
        'IO Error: could…'
    """
    flat = "".join(c if c.isprintable() else " " for c in text[: limit * 4]).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def unknown_name(kind: str, section: str, name: object, known: Iterable[str]) -> ConfigError:
    """A :class:`ConfigError` on ``<section>.name`` for an unknown component name, with the
    closest known name as a suggestion."""
    known = list(known)
    hint = difflib.get_close_matches(str(name)[:200], known, n=1)
    extra = f" (did you mean {hint[0]!r}?)" if hint else ""
    return ConfigError(
        f"{section}.name", f"unknown {kind} {shorten(name)}{extra}; built-in: {', '.join(known)}"
    )


def _format_loc(section: str, loc: tuple[Any, ...]) -> str:
    parts = ([section] if section else []) + [_key_text(p) for p in loc]
    return ".".join(parts) or "config"


def _key_text(key: object) -> str:
    """A key as it appears in a dotted field name (a long or odd key, or one with a colon, is
    quoted and shortened)."""
    text = str(key) if isinstance(key, str | int) else shorten(key, 24)
    plain = (text and len(text) <= 40 and text.isprintable() and text.strip() == text
             and ":" not in text)  # a colon would read as the end of the field name
    return text if plain else shorten(text, 40).replace("...", "…")  # dots separate keys


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
        raise ConfigError(
            section or "config", f"must be a mapping of keys to values, got {shorten(data)}"
        )
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
            key = loc[-1] if loc else "?"
            known = list(_model_at(model, loc[:-1]).model_fields)
            hint = difflib.get_close_matches(str(key)[:200], known, n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
            raise ConfigError(
                field, f"unknown key {shorten(key)}{suggestion} (valid keys: {', '.join(known)})"
            ) from None
        if err["type"] == "missing":
            raise ConfigError(
                field, "required, give a value (`sgdlab problems` and `sgdlab optimizers` list "
                "every component's parameters)"
            ) from None
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        got = shorten(err.get("input"))
        if loc and got not in msg and "got " not in msg:  # (unless it says already)
            msg = f"{msg} (got {got})"
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
            raise ConfigError(field, f"expected a number, got {shorten(value)}")
        sub = info.annotation
        if isinstance(value, dict) and isinstance(sub, type) and issubclass(sub, BaseModel):
            _reject_booleans_as_numbers(sub, value, field)
