"""Never break the user's training: each of the Monitor's measurements runs under a guard
that turns an exception into one warning, an event recorded with the run, and that
measurement switched off for the rest of the run — the others go on."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: longest error text kept in a warning or an event
MAX_MESSAGE = 400


_PACKAGE = str(Path(__file__).resolve().parents[1])


def warn(message: str) -> None:
    """A ``RuntimeWarning`` attributed to the first caller outside sgdlab (the user's loop)."""
    level, frame = 2, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        level += 1
        frame = frame.f_back  # type: ignore[assignment]
    warnings.warn(message, RuntimeWarning, stacklevel=level)


@dataclass
class Event:
    """Something the run's reader must know: ``kind`` ``"off"`` (a measurement failed and was
    turned off) or ``"note"`` (a measurement was changed or limited, and why)."""

    kind: str
    name: str
    step: int
    message: str


@dataclass
class Guard:
    """Runs measurements by name; remembers which are off and every event, once per name."""

    events: list[Event] = field(default_factory=list)
    off: dict[str, str] = field(default_factory=dict)
    _noted: set[str] = field(default_factory=set)
    _new: list[Event] = field(default_factory=list)

    def run(self, name: str, step: int, fn: Callable[..., T], *args: Any) -> T | None:
        """``fn(*args)``, or ``None`` when ``name`` is off or ``fn`` raises an ``Exception``
        (which turns ``name`` off, with one warning and an ``off`` event). ``KeyboardInterrupt``
        and ``SystemExit`` pass through."""
        if name in self.off:
            return None
        try:
            return fn(*args)
        except Exception as exc:  # an instrument must never break training
            text = " ".join(f"{type(exc).__name__}: {exc}".split())[:MAX_MESSAGE]
            self.off[name] = text
            self._record(Event("off", name, step, text))
            warn(
                f"Monitor: measurement '{name}' failed at step {step} and is off for the rest "
                f"of this run ({text}); training and the other measurements go on"
            )
            return None

    def note(self, name: str, step: int, message: str, loud: bool = True) -> None:
        """Record (and warn, once per ``name``) a limitation of a measurement and its reason."""
        if name in self._noted:
            return
        self._noted.add(name)
        self._record(Event("note", name, step, message))
        if loud:
            warn(f"Monitor: {message}")

    def _record(self, event: Event) -> None:
        self.events.append(event)
        self._new.append(event)

    def take_new(self) -> list[Event]:
        """Events not yet handed out (for the store), oldest first."""
        new, self._new = self._new, []
        return new

    def give_back(self, events: list[Event]) -> None:
        """Events that could not be written: they go out with the next write."""
        self._new = events + self._new
