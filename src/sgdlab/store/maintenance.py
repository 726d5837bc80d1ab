"""Cleaning a store: :meth:`Maintenance.prune` removes the runs that will never finish — the
``failed`` ones and the stale ``running`` ones (their process is gone:
:mod:`sgdlab.store.liveness`) — with every row they left (``sgdlab runs --prune``)."""

from __future__ import annotations

from typing import Any

from sgdlab.store.connection import StoreBase
from sgdlab.store.liveness import stale

__all__ = ["Maintenance"]

#: the tables holding rows of a run (``findings`` belong to lab sessions, not to runs)
RUN_TABLES = ("metrics", "params", "divergence", "measurements", "runs")


class Maintenance(StoreBase):
    """Pruning (see the module docstring)."""

    def prunable(self) -> list[dict[str, Any]]:
        """The ``runs`` rows :meth:`prune` would remove: failed runs and stale running runs
        (a running run whose liveness cannot be told — another host, an old store — stays)."""
        with self._read() as con:
            cur = con.execute(
                "SELECT * FROM runs WHERE status IN ('failed', 'running') ORDER BY created_at"
            )
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        return [r for r in rows if r["status"] == "failed" or stale(r) is True]

    def prune(self) -> list[dict[str, Any]]:
        """Remove the :meth:`prunable` runs and all their rows, in one transaction; returns
        the removed ``runs`` rows. A stale run is checked again inside the transaction (a
        run that finished meanwhile is kept)."""
        with self.session(write=True), self._transaction() as con:
            doomed = self.prunable()
            ids = [r["run_id"] for r in doomed]
            if ids:
                marks = ", ".join("?" * len(ids))
                for table in RUN_TABLES:
                    con.execute(f"DELETE FROM {table} WHERE run_id IN ({marks})", ids)
        return doomed
