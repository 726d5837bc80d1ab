"""The connection to a results store: opening, schema, run-id resolution."""


from __future__ import annotations

import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from sgdlab._version import __version__
from sgdlab.defaults import default_store_path
from sgdlab.errors import StoreError

SCHEMA_VERSION = 2

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS runs (
        run_id VARCHAR PRIMARY KEY, kind VARCHAR, name VARCHAR, status VARCHAR,
        config_json VARCHAR, config_hash VARCHAR, seed_entropy VARCHAR, streams_json VARCHAR,
        problem_json VARCHAR, chains INTEGER, steps BIGINT, sgdlab_version VARCHAR,
        torch_version VARCHAR, python_version VARCHAR, platform VARCHAR,
        created_at TIMESTAMP, finished_at TIMESTAMP, wall_seconds DOUBLE,
        n_diverged INTEGER, error VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS metrics (
        run_id VARCHAR, chain INTEGER, step BIGINT, name VARCHAR, value DOUBLE)""",
    """CREATE TABLE IF NOT EXISTS params (
        run_id VARCHAR, chain INTEGER, kind VARCHAR, "values" DOUBLE[])""",
    """CREATE TABLE IF NOT EXISTS divergence (run_id VARCHAR, chain INTEGER, step BIGINT)""",
    """CREATE TABLE IF NOT EXISTS findings (
        run_id VARCHAR, study VARCHAR, claim VARCHAR, quantity VARCHAR, measured DOUBLE,
        ci_low DOUBLE, ci_high DOUBLE, predicted DOUBLE, tolerance DOUBLE, verdict VARCHAR,
        figure VARCHAR, details_json VARCHAR, created_at TIMESTAMP, kind VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS measurements (
        run_id VARCHAR, chain INTEGER, name VARCHAR, value DOUBLE, details_json VARCHAR,
        created_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS schema_info (version INTEGER)""",
]


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


class StoreBase:
    """The connection to a results store (a DuckDB file, created with its schema if missing);
    :class:`sgdlab.store.Store` adds the tables' reads and writes.

    Use as a context manager or call :meth:`close`.
    """

    def __init__(self, path: str | Path | None = None, read_only: bool = False) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        if read_only and not self.path.exists():
            raise StoreError(f"no results store at {self.path}: run something first")
        if self.path.is_dir():
            raise StoreError(f"results store {self.path} is a folder; give a .duckdb file path")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the folder of results store {self.path}: {exc.strerror}"
            ) from None
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            if "could not set lock" in str(exc).lower() or "conflicting lock" in str(exc).lower():
                raise StoreError(
                    f"results store {self.path} is in use by another process (a run still "
                    "going?); wait for it to finish or use another --store"
                ) from None
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreError(f"cannot open results store {self.path}: {first}") from None
        if read_only:
            tables = {
                r[0] for r in self.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
            }
            if "runs" not in tables or "schema_info" not in tables:
                self.con.close()
                raise StoreError(f"{self.path} is a DuckDB file but not an sgdlab results store")
        if not read_only:
            for stmt in _SCHEMA:
                self.con.execute(stmt)
            if not self.con.execute("SELECT count(*) FROM schema_info").fetchone()[0]:
                self.con.execute("INSERT INTO schema_info VALUES (?)", [SCHEMA_VERSION])
            self._migrate()

    def _migrate(self) -> None:
        """Bring a store written by an older schema up to :data:`SCHEMA_VERSION`.

        * 1 → 2: findings get a ``kind`` column (article, engine-check, analytic, bound);
          findings stored before have none (read back as ``article``).
        """
        (version,) = self.con.execute("SELECT max(version) FROM schema_info").fetchone()
        if version < 2:
            self.con.execute("ALTER TABLE findings ADD COLUMN IF NOT EXISTS kind VARCHAR")
        if version < SCHEMA_VERSION:
            self.con.execute("UPDATE schema_info SET version = ?", [SCHEMA_VERSION])

    # ------------------------------------------------------------ lifecycle
    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> StoreBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def resolve(self, run_id: str) -> str:
        """The full id of the run whose id starts with ``run_id`` (must be unique)."""
        rows = self.con.execute(
            "SELECT run_id FROM runs WHERE starts_with(run_id, ?)", [run_id]
        ).fetchall()
        if not rows:
            raise StoreError(f"no run {run_id!r} in {self.path}; `sgdlab runs` lists them")
        if len(rows) > 1:
            raise StoreError(f"run id {run_id!r} is ambiguous: give more characters")
        return rows[0][0]
