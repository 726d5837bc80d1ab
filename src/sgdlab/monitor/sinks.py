"""Live consumers of the Monitor's rows: ``sink(step, scalars)`` for every recorded row
(after the row is recorded). A sink that raises is warned about once and dropped: a
dashboard must never break training."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sgdlab.monitor.guard import warn

Sink = Callable[[int, dict[str, float]], object]


class SinkSet:
    """The Monitor's sinks; :meth:`emit` calls each and drops any that raises."""

    def __init__(self, sinks: Iterable[Sink]) -> None:
        self.sinks = list(sinks)
        for s in self.sinks:
            if not callable(s):
                raise ValueError(f"sinks must be callables sink(step, scalars), got {s!r}")
        self.dropped: list[tuple[Sink, str]] = []

    def emit(self, step: int, scalars: dict[str, float]) -> None:
        for sink in list(self.sinks):
            try:
                sink(step, dict(scalars))
            except Exception as exc:  # a sink must never break training
                self.sinks.remove(sink)
                text = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
                self.dropped.append((sink, text))
                warn(
                    f"Monitor: sink {sink!r} raised at step {step} and is dropped ({text}); "
                    "training goes on"
                )
