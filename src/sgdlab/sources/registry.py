"""The registry of noise sources, and the check of a run's ``streams`` section against it."""

from __future__ import annotations

from collections.abc import Iterable

from sgdlab.errors import ConfigError
from sgdlab.rng import STREAM_NAMES
from sgdlab.sources.base import Place, RunSetup, Source

__all__ = ["SOURCES", "active_sources", "check_streams", "register"]

#: stream name → the source bound to it
SOURCES: dict[str, Source] = {}

#: streams that no source of the engine draws, and why (``streams.off`` refuses them)
NOT_ENGINE_SOURCES = {
    "probe": "it feeds the instruments and the lab's bootstraps, not the run",
}


def register(cls: type[Source]) -> type[Source]:
    """Class decorator: register a :class:`Source` under its stream's name."""
    if cls.stream not in STREAM_NAMES:
        raise ValueError(f"source {cls.__name__}: stream {cls.stream!r} has no id in rng")
    SOURCES[cls.stream] = cls()
    return cls


def active_sources(run: RunSetup) -> list[Source]:
    """The sources this run draws from, in the order of :data:`SOURCES`."""
    return [s for s in SOURCES.values() if s.applies(run)]


def check_streams(off: Iterable[str], run: RunSetup) -> list[Source]:
    """Refuse turning off a stream this run never draws (naming those it does) or one that
    cannot be turned off; returns the active sources.

    Raises:
        ConfigError: on ``streams.off``.
    """
    order = list(Place)
    active = sorted(active_sources(run), key=lambda s: (order.index(s.place), s.stream))
    names = [s.stream for s in active]
    can = [s.stream for s in active if s.off]
    for name in sorted(off):
        if name in names and name in can:
            continue
        if name in names:
            why = f"{name!r} cannot be turned off: {SOURCES[name].summary}; re-seed it instead"
        elif name in NOT_ENGINE_SOURCES:
            why = f"{name!r} is not a noise source of the run: {NOT_ENGINE_SOURCES[name]}"
        else:
            why = f"{name!r} is never drawn by {run.describe()}"
        raise ConfigError(
            "streams.off",
            f"{why}; sources this run draws that can be turned off: {', '.join(can) or 'none'}",
        )
    return active
