"""Interrupts (Ctrl-C, SIGTERM) as exceptions that say which signal it was, and critical
sections that a second Ctrl-C cannot cut short.

* :class:`Terminated` is SIGTERM raised like Ctrl-C (a subclass of ``KeyboardInterrupt``),
  so that a run in progress is marked failed the same way and the command line can exit 143
  instead of 130.
* :func:`tracking` records which of the two signals arrived last. DuckDB turns either into
  its own "query interrupted" error; :func:`interrupt_from` turns that back into the
  interrupt the user sent.
* :func:`deferred` holds both signals back for a short critical section (marking a run
  failed after an interrupt): a signal sent meanwhile is recorded and raised when the
  section ends, or dropped. It acts in the main thread (Python delivers signals there
  only).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "Terminated", "deferred", "ignore_interrupts", "interrupt_from", "is_interrupt", "tracking",
]  # fmt: skip


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that a run in progress is marked failed."""


_last: list[int] = []  # the last signal seen while tracking (one element at most)
_SIGNALS = tuple(s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def tracking() -> Iterator[None]:
    """Record the signal behind each interrupt (SIGINT → ``KeyboardInterrupt``, SIGTERM →
    :class:`Terminated`) while the block runs; the previous handlers come back after it.
    A SIGTERM left at its default (killing the process) is raised as :class:`Terminated`."""
    if not _main_thread():
        yield
        return
    saved: dict[int, Any] = {}

    def handler_for(signum: int, previous: Any) -> Callable[[int, Any], None]:
        def handle(num: int, frame: Any) -> None:
            _last[:] = [num]
            if previous is not None:  # the caller's own handler decides what happens
                previous(num, frame)
                return
            if num == getattr(signal, "SIGTERM", None):
                raise Terminated("SIGTERM")
            raise KeyboardInterrupt

        return handle

    for signum in _SIGNALS:
        previous = signal.getsignal(signum)
        if previous is signal.SIG_IGN or previous is None:
            continue
        default = previous in (signal.SIG_DFL, signal.default_int_handler)
        saved[signum] = previous
        signal.signal(signum, handler_for(signum, None if default else previous))
    _last.clear()
    try:
        yield
    finally:
        for signum, previous in saved.items():
            signal.signal(signum, previous)


def ignore_interrupts() -> None:
    """From now on, record SIGINT and SIGTERM without raising (main thread): for a process
    that is already exiting because of an interrupt, so that another Ctrl-C does not print
    a traceback from the interpreter's shutdown. Inside :func:`tracking` the previous
    handlers come back when its block ends."""
    if not _main_thread():
        return
    for signum in _SIGNALS:
        if signal.getsignal(signum) is not None:
            signal.signal(signum, lambda num, frame: _last.__setitem__(slice(None), [num]))


def is_interrupt(exc: BaseException) -> bool:
    """True for ``KeyboardInterrupt`` and for DuckDB's error for an interrupted query."""
    if isinstance(exc, KeyboardInterrupt):
        return True
    name = type(exc).__name__
    return name == "InterruptException" or (
        type(exc) is RuntimeError and str(exc).strip().lower() == "query interrupted"
    )


def interrupt_from(exc: BaseException, where: str = "") -> KeyboardInterrupt:
    """The interrupt behind ``exc`` (itself when it is one): :class:`Terminated` when the last
    tracked signal was SIGTERM, else ``KeyboardInterrupt``; ``where`` says what it stopped."""
    if isinstance(exc, KeyboardInterrupt):
        return exc
    if _last and _last[0] == getattr(signal, "SIGTERM", None):
        return Terminated(f"SIGTERM{where}")
    return KeyboardInterrupt(f"Ctrl-C{where}")


@contextmanager
def deferred(reraise: bool = True) -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while the block runs: a signal that arrives meanwhile
    (or was already pending) is only recorded, and raised as its interrupt when the block
    ends (``reraise=False``: dropped — for a block that runs while an exception is already
    on its way out). Acts in the main thread only, where Python runs signal handlers."""
    if not _main_thread():
        yield
        return
    caught: list[int] = []
    saved = {}
    for signum in _SIGNALS:
        previous = signal.getsignal(signum)
        if previous is None or previous is signal.SIG_IGN:
            continue
        saved[signum] = previous
        signal.signal(signum, lambda num, frame: caught.append(num))
    try:
        yield
    finally:
        for signum, previous in saved.items():
            signal.signal(signum, previous)
    if caught and reraise:
        _last[:] = caught[-1:]
        if caught[-1] == getattr(signal, "SIGTERM", None):
            raise Terminated("SIGTERM")
        raise KeyboardInterrupt
