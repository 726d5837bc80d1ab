"""The results store: one embedded DuckDB file.

Tables
------
``runs``       one row per run: id, kind (engine / monitor / lab), name, status
               (``running`` → ``complete`` | ``failed``), config JSON and hash, seed
               entropy and streams, problem summary, K, T, versions, timings, divergences.
``metrics``    long format ``(run_id, chain, step, name, value)``.
``params``     ``(run_id, chain, kind, values DOUBLE[])`` — final (and averaged) parameters.
``divergence`` ``(run_id, chain, step)`` for chains that diverged.
``findings``   lab findings (see :mod:`sgdlab.lab`).
``measurements`` instruments applied to a run's final parameters afterwards
               ``(run_id, chain, name, value, details_json)`` — e.g. ``sgdlab sharpness``;
               they are added next to a completed run and never change its own rows.

Transactions: a run is inserted as ``running`` when it starts; its metrics, parameters
and the switch to ``complete`` are written in **one** transaction at the end. A process
killed midway therefore leaves a ``running`` row and no partial data, and completed runs
are never touched by later writes. (A Monitor run appends its metrics in a transaction per
flush interval, so a killed one keeps what was flushed.) A ``running`` run whose process is
gone shows as stale (:mod:`sgdlab.store.liveness`); :meth:`Store.prune` removes stale and
failed runs.

Concurrency: no connection is held between operations; a write holds DuckDB's lock for its
transaction only, and readers open the file read-only, so runs can be watched and two runs
can share a store (:mod:`sgdlab.store.connection`). The schema is versioned and checked
on open; foreign and damaged databases are refused in one line (:mod:`sgdlab.store.schema`).
"""

from __future__ import annotations

from pathlib import Path

from sgdlab.defaults import DEFAULT_STORE, default_store_path
from sgdlab.store.analysis import AnalysisTables
from sgdlab.store.connection import SCHEMA_VERSION, StoreBase
from sgdlab.store.maintenance import Maintenance
from sgdlab.store.runs import RunTables

__all__ = ["DEFAULT_STORE", "SCHEMA_VERSION", "Store", "default_store_path", "open_store"]


class Store(RunTables, AnalysisTables, Maintenance, StoreBase):
    """A results store (a DuckDB file, created with its schema if missing): the run tables
    (:class:`~sgdlab.store.runs.RunTables`), the analysis tables
    (:class:`~sgdlab.store.analysis.AnalysisTables`) and pruning
    (:class:`~sgdlab.store.maintenance.Maintenance`). Each operation opens and closes the
    file (:meth:`session` keeps one connection for a group of them); use as a context
    manager or call :meth:`close`.

    Args:
        path: the DuckDB file (``None``: :func:`default_store_path`).
        read_only: never write (the file must be an sgdlab store).
        timeout: seconds to wait for another process's lock (``$SGDLAB_STORE_TIMEOUT``,
            default 30).
    """

    def __enter__(self) -> Store:
        return self


def open_store(store: Store | str | Path | None) -> Store:
    """An open :class:`Store` for a path (``None``: the default path) or the store itself."""
    if isinstance(store, Store):
        return store
    return Store(store)
