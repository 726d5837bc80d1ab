"""What the command-line modules share (private): error handling and plain tables.

Every command reports a bad argument or config as one line naming the field and the fix and
exits 2, and reports other expected failures (a run that failed, a busy or damaged store, a
file that cannot be read or written) as one line and exits 1 — never with a traceback. An
error line is at most :data:`MAX_ERROR_CHARS` characters, control characters flattened. Ctrl-C
exits 130 and SIGTERM 143, with one line (:mod:`sgdlab.interrupts` tells them apart even when
DuckDB reports the interruption).
"""

from __future__ import annotations

import functools
import math
import os
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sgdlab.errors import ConfigError, SgdlabError
from sgdlab.interrupts import Terminated, ignore_interrupts, interrupt_from, is_interrupt, tracking
from sgdlab.validation import clip

__all__ = [
    "MAX_ERROR_CHARS", "PlainTable", "Terminated", "err", "error_line", "fail", "guarded",
    "ignore_interrupts", "make_console", "params_table", "positive", "writable_dir",
]  # fmt: skip

#: the longest error line printed (a longer message is cut with …)
MAX_ERROR_CHARS = 400


def make_console(stderr: bool = False) -> Console:
    """A console that does not wrap long lines (paths, messages). When the output is not a
    terminal (a log, a pipe) and ``COLUMNS`` is unset, tables get 160 columns, not Rich's 80."""
    stream = sys.stderr if stderr else sys.stdout
    wide = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(stderr=stderr, soft_wrap=True, width=160 if wide else None)


err = make_console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def error_line(text: str) -> None:
    """Print ``error: text`` on stderr as one line of at most :data:`MAX_ERROR_CHARS`
    characters (``text`` is not read as markup)."""
    line = clip(text, MAX_ERROR_CHARS - len("error: "))
    err.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)


def fail(exc: Exception) -> NoReturn:
    """Print ``exc`` as one line; exit 2 for a :class:`ConfigError`, 1 otherwise."""
    if isinstance(exc, ConfigError):
        error_line(f"{exc.field}: {exc.message}")
        raise typer.Exit(2)
    if isinstance(exc, OSError) and exc.filename is not None:
        error_line(f"{exc.filename}: {exc.strerror or type(exc).__name__}")
        raise typer.Exit(1)
    error_line(str(exc))
    raise typer.Exit(1)


def _interrupted(exc: BaseException) -> NoReturn:
    ignore_interrupts()  # the command is ending: a second Ctrl-C must not cut the message
    term = isinstance(interrupt_from(exc), Terminated)
    error_line(
        ("terminated" if term else "interrupted")
        + "; a run in progress is marked failed in the store"
    )
    raise typer.Exit(143 if term else 130) from None


def guarded(fn: F) -> F:
    """Run a command, turning sgdlab errors, file-system errors, memory exhaustion and
    interrupts into one-line messages (exit 130 on Ctrl-C, 143 on SIGTERM)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with tracking():
            try:
                return fn(*args, **kwargs)
            except (SgdlabError, OSError) as exc:
                fail(exc)
            except KeyboardInterrupt as exc:
                _interrupted(exc)
            except MemoryError:
                error_line("out of memory; use fewer chains, a smaller batch or problem")
                raise typer.Exit(1) from None
            except RuntimeError as exc:
                if is_interrupt(exc):
                    _interrupted(exc)
                raise

    return wrapper  # type: ignore[return-value]


def writable_dir(path: Path | None, option: str) -> None:
    """Create ``path`` (when given) or raise a :class:`ConfigError` naming ``option``."""
    if path is None:
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            option, f"cannot create folder {path}: {exc.strerror}; choose another folder"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(option, f"folder {path} is not writable; choose another folder")


def positive(value: float, option: str) -> None:
    """Raise a :class:`ConfigError` unless ``value`` is finite and > 0."""
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(option, f"must be a finite number > 0, got {value}")


class PlainTable(Table):
    """A table whose cells are text, never Rich markup (values may hold brackets)."""

    def add_row(self, *cells: object, **kwargs: object) -> None:  # type: ignore[override]
        super().add_row(*(escape(str(c)) for c in cells), **kwargs)  # type: ignore[arg-type]


def _type_name(annotation: object) -> str:
    """``int``, ``float | None``, ``one of 'log', 'linear'`` … for the parameter tables."""
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    args = typing.get_args(annotation)
    if args and typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    name = getattr(annotation, "__name__", None)
    if name and not args:
        return "None" if annotation is type(None) else name
    return str(annotation).replace("typing.", "")


def params_table(title: str, params: type[BaseModel]) -> Table:
    """A table of a pydantic params model: key, type, default, description."""
    table = PlainTable(title=title, title_justify="left", show_edge=False)
    for col in ("key", "type", "default", "description"):
        table.add_column(col)
    for key, field in params.model_fields.items():
        ann = _type_name(field.annotation)
        required = field.is_required()
        default = "required" if required else repr(field.get_default(call_default_factory=True))
        table.add_row(key, ann, default, field.description or "")
    return table
