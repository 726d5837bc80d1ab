"""The connection to a results store: short connections, the lock, and one-line errors.

**Single writer, short locks.** DuckDB lets one process write a database file at a time,
and a writer's lock keeps every other process out, readers included. A :class:`StoreBase`
therefore holds no connection between operations: each read opens the file read-only (any
number of processes may read at once), each write opens it for writing, runs one
transaction and closes it. A run holds the lock only while its row is inserted and while
its data are committed, so ``sgdlab runs`` / ``show`` work while it runs and two runs can
share a store. An open that finds the file locked waits and tries again (backing off from
10 ms to 0.5 s) for up to ``timeout`` seconds (``$SGDLAB_STORE_TIMEOUT``, default 30), then
raises a :class:`~sgdlab.errors.StoreError` saying the store is busy.

Every DuckDB error becomes a one-line :class:`StoreError` naming the file (a damaged or
truncated file, a foreign database, a schema newer than this sgdlab: see
:mod:`sgdlab.store.schema`); an interrupted query becomes the interrupt the user sent
(:mod:`sgdlab.interrupts`). Opening and closing costs about 25 ms per operation
(``docs/reliability.md`` has the measured costs).
"""

from __future__ import annotations

import os
import platform
import random
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from sgdlab._version import __version__
from sgdlab.defaults import default_store_path
from sgdlab.errors import StoreError
from sgdlab.interrupts import interrupt_from, is_interrupt
from sgdlab.store.schema import SCHEMA_VERSION, check_schema, create_or_migrate
from sgdlab.validation import clip

__all__ = ["SCHEMA_VERSION", "StoreBase", "now", "store_timeout", "versions"]

#: seconds an open waits for another process's lock unless ``$SGDLAB_STORE_TIMEOUT`` says
DEFAULT_TIMEOUT = 30.0

#: one DuckDB worker thread: with several, an interrupted query (Ctrl-C during a commit)
#: went on for up to 17 s before it stopped (0.3 s with one), and a 24.6M-value commit was
#: no faster (6.8 s with one thread, 7.8 s with two, on 2 cores)
_CONFIG = {"threads": 1}


def versions() -> dict[str, str]:
    """The versions stamped on every run."""
    import torch  # only when a run is written: `sgdlab --help` does not load torch

    return {
        "sgdlab_version": __version__,
        "torch_version": torch.__version__,
        "python_version": sys.version.split()[0],
        "platform": platform.platform(),
    }


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def store_timeout() -> float:
    """``$SGDLAB_STORE_TIMEOUT`` (seconds ≥ 0) or :data:`DEFAULT_TIMEOUT`."""
    env = os.environ.get("SGDLAB_STORE_TIMEOUT", "").strip()
    if not env:
        return DEFAULT_TIMEOUT
    try:
        value = float(env)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise StoreError(f"SGDLAB_STORE_TIMEOUT must be seconds ≥ 0, got {clip(env, 40)!r}")
    return value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return clip(text.splitlines()[0] if text else type(exc).__name__, 160)


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return (
        "could not set lock" in text
        or "conflicting lock" in text
        or "different configuration" in text  # this process holds it in the other mode
    )


def _translate(path: Path, exc: BaseException) -> BaseException:
    """A DuckDB error as a one-line :class:`StoreError` (or the interrupt behind it)."""
    if is_interrupt(exc):
        return interrupt_from(exc, " during a write to the results store")
    line = _first_line(exc)
    damaged = (duckdb.IOException, duckdb.SerializationException, duckdb.InternalException,
               duckdb.FatalException)  # fmt: skip
    if isinstance(exc, damaged):
        return StoreError(
            f"results store {path} cannot be read (damaged or truncated?): {line}; restore it "
            "from a backup or use another --store"
        )
    if isinstance(exc, duckdb.BinderException | duckdb.CatalogException):
        return StoreError(f"results store {path} is damaged or not an sgdlab store: {line}")
    return StoreError(f"results store {path}: {line}")


class StoreBase:
    """A results store (a DuckDB file, created with its schema if missing): short
    connections per operation (module docstring); :class:`sgdlab.store.Store` adds the
    tables' reads and writes.

    Args:
        path: the DuckDB file (``None``: :func:`~sgdlab.defaults.default_store_path`).
        read_only: never write (the file must exist and be an sgdlab store).
        timeout: seconds to wait for another process's lock (default :func:`store_timeout`).

    Use as a context manager or call :meth:`close`; :meth:`session` keeps one connection
    for a group of operations.
    """

    def __init__(
        self, path: str | Path | None = None, read_only: bool = False,
        timeout: float | None = None,
    ) -> None:  # fmt: skip
        self.path = Path(path) if path is not None else default_store_path()
        self.read_only = read_only
        self.timeout = store_timeout() if timeout is None else float(timeout)
        self._local = threading.local()
        if self.path.is_dir():
            raise StoreError(f"results store {self.path} is a folder; give a .duckdb file path")
        if read_only and not self.path.exists():
            raise StoreError(f"no results store at {self.path}: run something first")
        if self.path.exists() and not self.path.is_file():
            raise StoreError(f"results store {self.path} is not a regular file")
        if self.path.exists() and self.path.stat().st_size == 0:
            raise StoreError(
                f"results store {self.path} is an empty file, not a DuckDB database; delete it "
                "or give another --store"
            )
        if not read_only:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the folder of results store {self.path}: {exc.strerror}"
                ) from None
        with self._connect(write=not read_only) as con:
            try:
                self.version = check_schema(con, self.path, writable=not read_only)
                if not read_only:
                    create_or_migrate(con, self.version)
                    self.version = SCHEMA_VERSION
            except duckdb.Error as exc:
                raise _translate(self.path, exc) from None

    # ------------------------------------------------------------ connections
    def _open(self, write: bool) -> duckdb.DuckDBPyConnection:
        """A new connection, waiting for another process's lock up to :attr:`timeout`."""
        deadline = time.monotonic() + self.timeout
        delay = 0.01
        jitter = random.Random(os.getpid())  # spreads waiting processes apart; no result uses it
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=not write, config=_CONFIG)
            except duckdb.Error as exc:
                if is_interrupt(exc):
                    raise _translate(self.path, exc) from None
                if not _is_lock_error(exc):
                    raise StoreError(
                        f"cannot open results store {self.path}: {_first_line(exc)}"
                    ) from None
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StoreError(
                        f"results store {self.path} is busy: another process kept it locked for "
                        f"{self.timeout:.0f}s (a long write?); try again, or raise "
                        "SGDLAB_STORE_TIMEOUT"
                    ) from None
                time.sleep(min(left, delay * (0.5 + jitter.random())))
                delay = min(0.5, delay * 2)

    @contextmanager
    def _connect(self, write: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one operation: the held one inside :meth:`session`, else a new
        one, closed afterwards. DuckDB errors come out as :class:`StoreError`."""
        held = getattr(self._local, "con", None)
        if held is not None:
            if write and not self._local.write:
                raise StoreError("internal: a write inside a read-only store session")
            con, owned = held, False
        else:
            if write and self.read_only:
                raise StoreError(f"results store {self.path} was opened read-only")
            con, owned = self._open(write), True
        try:
            yield con
        except duckdb.Error as exc:
            raise _translate(self.path, exc) from None
        except RuntimeError as exc:
            if is_interrupt(exc):
                raise _translate(self.path, exc) from None
            raise
        finally:
            if owned:
                with suppress(duckdb.Error):
                    con.close()

    @contextmanager
    def _read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for reads (read-only unless a writing session is held)."""
        with self._connect(write=False) as con:
            yield con

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction on a writing connection: committed when the block ends, rolled
        back (and the error raised) if it raises or is interrupted."""
        with self._connect(write=True) as con:
            con.begin()
            try:
                yield con
                con.commit()
            except BaseException:
                with suppress(duckdb.Error, RuntimeError):
                    con.rollback()
                raise

    @contextmanager
    def session(self, write: bool = False) -> Iterator[StoreBase]:
        """Keep one connection for the operations inside the block — one consistent view,
        one open instead of many. A read session (the default) opens the file read-only and
        lets other readers in; a writing session (``write=True``) holds the lock for the
        whole block, so keep it short."""
        held = getattr(self._local, "con", None)
        if held is not None:
            if write and not self._local.write:
                raise StoreError("internal: a writing session inside a read session")
            yield self  # already in a session
            return
        if write and self.read_only:
            raise StoreError(f"results store {self.path} was opened read-only")
        self._local.con, self._local.write = self._open(write), write
        try:
            yield self
        finally:
            con, self._local.con = self._local.con, None
            with suppress(duckdb.Error):
                con.close()

    # ------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Nothing stays open between operations; kept for the context-manager protocol."""

    def __enter__(self) -> StoreBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run_query(self, run_id: str, sql: str, *args: Any, numpy: bool = False) -> tuple[str, Any]:
        """``(full run id, result)`` of ``sql`` whose first parameter is the run's full id
        (``run_id`` may be a prefix); rows, or columns as arrays with ``numpy``."""
        with self.session():
            rid = self.resolve(run_id)
            with self._read() as con:
                cur = con.execute(sql, [rid, *args])
                return rid, cur.fetchnumpy() if numpy else cur.fetchall()

    def resolve(self, run_id: str) -> str:
        """The full id of the run whose id starts with ``run_id`` (must be unique)."""
        with self._read() as con:
            rows = con.execute(
                "SELECT run_id FROM runs WHERE starts_with(run_id, ?) LIMIT 2", [run_id]
            ).fetchall()
        if not rows:
            raise StoreError(
                f"no run {clip(repr(run_id), 60)} in {self.path}; `sgdlab runs` lists them"
            )
        if len(rows) > 1:
            raise StoreError(f"run id {clip(repr(run_id), 60)} is ambiguous: give more characters")
        return rows[0][0]
