"""The Monitor's store writes: the run inserted ``running`` at start, its metric rows and
events appended in short transactions every ``flush_every`` seconds, and the final status.

Events (:class:`~sgdlab.monitor.guard.Event`) go to the store's ``measurements`` table of the
run (chain 0): name ``monitor.off/<measurement>`` (a measurement that failed and was turned
off) or ``monitor.note/<topic>`` (a measurement changed or limited), value the step, details
``{"message": …}`` — the existing schema, no migration."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from sgdlab.errors import SgdlabError
from sgdlab.interrupts import deferred
from sgdlab.monitor.guard import Event, warn
from sgdlab.store import Store, open_store

#: seconds an intermediate flush waits for the store's lock (it then keeps its rows for the
#: next flush rather than stall the training loop)
FLUSH_TIMEOUT = 2.0

Rows = dict[str, tuple[np.ndarray, np.ndarray]]


def event_rows(events: list[Event]) -> list[tuple[int, str, float, dict[str, Any]]]:
    """``measurements`` rows of events (see the module docstring)."""
    return [(0, f"monitor.{e.kind}/{e.name}", float(e.step), {"message": e.message})
            for e in events]  # fmt: skip


class RunWriter:
    """One Monitor run in a store: begin, append (rows and events), finish."""

    def __init__(self, store: str | Path | Store, run_id: str) -> None:
        self.store_arg, self.run_id = store, run_id
        self._store: Store | None = None
        self._flusher: Store | None = None
        self._pending: list[tuple[str, int, float]] = []
        self._warned = False

    def begin(self, config: dict[str, Any], name: str | None) -> None:
        store = open_store(self.store_arg)
        blob = json.dumps(config, sort_keys=True, default=str).encode()
        store.begin_run(
            self.run_id, kind="monitor", name=name, config=config,
            config_hash=hashlib.sha256(blob).hexdigest()[:16], chains=1,
        )  # fmt: skip
        self._store = store
        self._flusher = Store(store.path, timeout=FLUSH_TIMEOUT)

    def add(self, name: str, step: int, value: float) -> None:
        self._pending.append((name, step, value))

    def _take_rows(self) -> Rows:
        rows, self._pending = self._pending, []
        grouped: dict[str, list[tuple[int, float]]] = {}
        for name, step, value in rows:
            grouped.setdefault(name, []).append((step, value))
        return {
            name: (np.array([s for s, _ in pts], dtype=np.int64),
                   np.array([[v for _, v in pts]], dtype=np.float64))
            for name, pts in grouped.items()
        }  # fmt: skip

    def flush(self, steps: int, wall: float, events: list[Event]) -> list[Event]:
        """Append the pending rows and ``events``; returns the events not written (the store
        was busy for :data:`FLUSH_TIMEOUT` s: rows and events wait for the next flush)."""
        if self._flusher is None or not (self._pending or events):
            return events
        kept = list(self._pending)
        try:
            if self._pending:
                self._flusher.finish_run(
                    self.run_id, metrics=self._take_rows(), steps=steps, wall_seconds=wall,
                    status=None,
                )  # fmt: skip
            kept = []
            if events:
                self._flusher.add_measurements(self.run_id, event_rows(events))
            return []
        except SgdlabError as exc:
            self._pending = kept + self._pending
            if not self._warned:
                warn(f"Monitor: metrics not written yet ({exc}); they are kept for the next write")
                self._warned = True
            return events

    def finish(
        self, steps: int, wall: float, events: list[Event], status: str, error: str | None
    ) -> None:
        """Write what is left and set the run's status (once)."""
        if self._store is None:
            return
        store, self._store, self._flusher = self._store, None, None
        failing = status != "complete"  # the loop's exception is already on its way out
        with deferred(reraise=not failing):
            try:
                if events:
                    store.add_measurements(self.run_id, event_rows(events))
                store.finish_run(
                    self.run_id, metrics=self._take_rows(), steps=steps, wall_seconds=wall,
                    status=status, error=error,
                )  # fmt: skip
            except SgdlabError as exc:
                if not failing:
                    raise
                warn(f"Monitor: the failed run could not be marked ({exc}); it stays "
                     "'running' (stale once this process ends)")  # fmt: skip

    @property
    def active(self) -> bool:
        return self._store is not None
