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
are never touched by later writes.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from sgdlab.errors import StoreError

DEFAULT_STORE = Path("sgdlab-results") / "sgdlab.duckdb"
SCHEMA_VERSION = 1

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
        figure VARCHAR, details_json VARCHAR, created_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS measurements (
        run_id VARCHAR, chain INTEGER, name VARCHAR, value DOUBLE, details_json VARCHAR,
        created_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS schema_info (version INTEGER)""",
]


def default_store_path() -> Path:
    """``$SGDLAB_STORE`` if set, else ``./sgdlab-results/sgdlab.duckdb``."""
    env = os.environ.get("SGDLAB_STORE")
    return Path(env) if env else DEFAULT_STORE


def _versions() -> dict[str, str]:
    import torch

    from sgdlab._version import __version__

    return {
        "sgdlab_version": __version__,
        "torch_version": torch.__version__,
        "python_version": sys.version.split()[0],
        "platform": platform.platform(),
    }


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Store:
    """An open results store (a DuckDB file, created with its schema if missing).

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

    # ------------------------------------------------------------ lifecycle
    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --------------------------------------------------------------- writes
    def begin_run(
        self,
        run_id: str,
        *,
        kind: str,
        config: dict[str, Any],
        config_hash: str,
        streams: dict[str, Any] | None = None,
        chains: int = 1,
        steps: int | None = None,
        name: str | None = None,
        problem: dict[str, Any] | None = None,
    ) -> None:
        """Insert the run as ``running`` (committed at once)."""
        v = _versions()
        self.con.execute(
            """INSERT INTO runs (run_id, kind, name, status, config_json, config_hash,
               seed_entropy, streams_json, problem_json, chains, steps, sgdlab_version,
               torch_version, python_version, platform, created_at)
               VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                run_id,
                kind,
                name,
                json.dumps(config, sort_keys=True),
                config_hash,
                (streams or {}).get("entropy"),
                json.dumps(streams or {}),
                json.dumps(problem or {}, default=str),
                chains,
                steps,
                v["sgdlab_version"],
                v["torch_version"],
                v["python_version"],
                v["platform"],
                _now(),
            ],
        )

    def complete_run(self, result: Any) -> None:
        """Write a :class:`~sgdlab.engine.result.RunResult`'s data and mark it complete,
        all in one transaction."""
        params = {"final": result.final_params.numpy()}
        if result.average_params is not None:
            params["average"] = result.average_params.numpy()
        self.write_run_data(
            result.run_id,
            metrics=result.metrics,
            params=params,
            diverged_at=result.diverged_at,
            wall_seconds=result.wall_seconds,
        )

    def write_run_data(
        self,
        run_id: str,
        *,
        metrics: dict[str, tuple[np.ndarray, np.ndarray]],
        params: dict[str, np.ndarray] | None = None,
        diverged_at: np.ndarray | None = None,
        wall_seconds: float | None = None,
        status: str = "complete",
    ) -> None:
        """Insert metrics ``name -> (steps [n], values [K, n])`` and parameters
        ``kind -> [K, d]`` and set the status, atomically."""
        self.con.begin()
        try:
            self._insert_metrics(run_id, metrics)
            for kind, arr in (params or {}).items():
                rows = [[run_id, k, kind, arr[k].astype(float).tolist()] for k in range(len(arr))]
                if rows:
                    self.con.executemany("INSERT INTO params VALUES (?, ?, ?, ?)", rows)
            n_div = 0
            if diverged_at is not None:
                div = [[run_id, int(k), int(s)] for k, s in enumerate(diverged_at) if s >= 0]
                n_div = len(div)
                if div:
                    self.con.executemany("INSERT INTO divergence VALUES (?, ?, ?)", div)
            self.con.execute(
                """UPDATE runs SET status = ?, finished_at = ?, wall_seconds = ?,
                   n_diverged = ? WHERE run_id = ?""",
                [status, _now(), wall_seconds, n_div, run_id],
            )
            self.con.commit()
        except BaseException:
            self.con.rollback()
            raise

    def _insert_metrics(
        self, run_id: str, metrics: dict[str, tuple[np.ndarray, np.ndarray]]
    ) -> None:
        cols: dict[str, list[np.ndarray]] = {"chain": [], "step": [], "name": [], "value": []}
        for name, (steps, values) in metrics.items():
            values = np.asarray(values, dtype=np.float64)
            K, n = values.shape
            cols["chain"].append(np.repeat(np.arange(K, dtype=np.int32), n))
            cols["step"].append(np.tile(np.asarray(steps, dtype=np.int64), K))
            cols["name"].append(np.full(K * n, name, dtype=object))
            cols["value"].append(values.reshape(-1))
        if not cols["chain"]:
            return
        total = sum(len(c) for c in cols["chain"])
        frame = {
            "run_id": np.full(total, run_id, dtype=object),
            **{k: np.concatenate(v) for k, v in cols.items()},
        }
        self.con.register("_sgdlab_metrics", frame)
        try:
            self.con.execute(
                "INSERT INTO metrics SELECT run_id, chain, step, name, value FROM _sgdlab_metrics"
            )
        finally:
            self.con.unregister("_sgdlab_metrics")

    def fail_run(self, run_id: str, error: str) -> None:
        """Mark a run failed (its partial data was never written)."""
        self.con.execute(
            "UPDATE runs SET status = 'failed', finished_at = ?, error = ? WHERE run_id = ?",
            [_now(), error[:2000], run_id],
        )

    def add_measurements(
        self, run_id: str, rows: Iterable[tuple[int, str, float, dict[str, Any] | None]]
    ) -> None:
        """Add ``(chain, name, value, details)`` measurements of a run, in one transaction.

        A measurement of the same (chain, name) replaces the earlier one."""
        rid = self.resolve(run_id)
        rows = list(rows)
        now = _now()
        self.con.begin()
        try:
            for chain, name, value, details in rows:
                self.con.execute(
                    "DELETE FROM measurements WHERE run_id = ? AND chain = ? AND name = ?",
                    [rid, chain, name],
                )
                self.con.execute(
                    "INSERT INTO measurements VALUES (?, ?, ?, ?, ?, ?)",
                    [rid, chain, name, float(value), json.dumps(details or {}, default=str), now],
                )
            self.con.commit()
        except BaseException:
            self.con.rollback()
            raise

    # ---------------------------------------------------------------- reads
    def measurements(self, run_id: str) -> list[dict[str, Any]]:
        """Measurements of a run (``chain``, ``name``, ``value``, ``details``), by chain, name."""
        rid = self.resolve(run_id)
        cur = self.con.execute(
            """SELECT chain, name, value, details_json FROM measurements WHERE run_id = ?
               ORDER BY chain, name""",
            [rid],
        )
        return [
            {"chain": c, "name": n, "value": v, "details": json.loads(d or "{}")}
            for c, n, v, d in cur.fetchall()
        ]

    def runs(self, status: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        """All runs, newest first, as dicts (optionally filtered by status/kind)."""
        sql = "SELECT * FROM runs"
        where, args = [], []
        if status:
            where.append("status = ?")
            args.append(status)
        if kind:
            where.append("kind = ?")
            args.append(kind)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC"
        cur = self.con.execute(sql, args)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

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

    def run(self, run_id: str) -> dict[str, Any]:
        """The ``runs`` row of one run (prefix allowed), with ``config`` parsed."""
        rid = self.resolve(run_id)
        cur = self.con.execute("SELECT * FROM runs WHERE run_id = ?", [rid])
        names = [d[0] for d in cur.description]
        row = dict(zip(names, cur.fetchone(), strict=True))
        row["config"] = json.loads(row["config_json"])
        row["problem"] = json.loads(row["problem_json"] or "{}")
        return row

    def find_complete(self, config_hash: str, kind: str | None = None) -> str | None:
        """Id of the newest complete run with this config hash, or ``None``."""
        sql = "SELECT run_id FROM runs WHERE config_hash = ? AND status = 'complete'"
        args: list[Any] = [config_hash]
        if kind:
            sql += " AND kind = ?"
            args.append(kind)
        row = self.con.execute(sql + " ORDER BY created_at DESC LIMIT 1", args).fetchone()
        return None if row is None else row[0]

    def metric_names(self, run_id: str) -> list[str]:
        rid = self.resolve(run_id)
        rows = self.con.execute(
            "SELECT DISTINCT name FROM metrics WHERE run_id = ? ORDER BY name", [rid]
        ).fetchall()
        return [r[0] for r in rows]

    def metric(self, run_id: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps [n], values [K, n])`` of one metric of one run."""
        rid = self.resolve(run_id)
        res = self.con.execute(
            """SELECT chain, step, value FROM metrics WHERE run_id = ? AND name = ?
               ORDER BY chain, step""",
            [rid, name],
        ).fetchnumpy()
        if len(res["chain"]) == 0:
            raise StoreError(f"run {rid} has no metric {name!r}")
        steps = np.unique(res["step"])
        chains = np.unique(res["chain"])
        values = np.full((len(chains), len(steps)), np.nan)
        ci = np.searchsorted(chains, res["chain"])
        si = np.searchsorted(steps, res["step"])
        # NaN (e.g. after a chain diverged) is stored as NULL: read it back as NaN
        values[ci, si] = np.ma.filled(np.ma.asarray(res["value"], dtype=np.float64), np.nan)
        return steps, values

    def metrics(self, run_id: str, names: Iterable[str] | None = None) -> dict:
        return {n: self.metric(run_id, n) for n in (names or self.metric_names(run_id))}

    def params(self, run_id: str, kind: str = "final") -> np.ndarray:
        """``[K, d]`` parameters of a run (``kind``: final or average)."""
        rid = self.resolve(run_id)
        rows = self.con.execute(
            'SELECT chain, "values" FROM params WHERE run_id = ? AND kind = ? ORDER BY chain',
            [rid, kind],
        ).fetchall()
        if not rows:
            raise StoreError(f"run {rid} has no {kind!r} parameters")
        return np.asarray([r[1] for r in rows], dtype=np.float64)

    def diverged(self, run_id: str) -> dict[int, int]:
        rid = self.resolve(run_id)
        rows = self.con.execute(
            "SELECT chain, step FROM divergence WHERE run_id = ? ORDER BY chain", [rid]
        ).fetchall()
        return {int(c): int(s) for c, s in rows}


def open_store(store: Store | str | Path | None) -> Store:
    """An open :class:`Store` for a path (``None``: the default path) or the store itself."""
    if isinstance(store, Store):
        return store
    return Store(store)
