"""The store's schema: its tables, its version, the check that a DuckDB file is an sgdlab
store, and the explicit migrations from older versions.

A file is accepted as a store when it is empty (a new store: the tables are created) or
holds ``schema_info`` and ``runs``; any other DuckDB database is refused rather than written
into. The stored version must not be newer than :data:`SCHEMA_VERSION`; an older store is
readable as it is and is migrated, step by step, the first time it is opened for writing.
Every table's columns are checked against the version's: a missing column is a damaged
store, reported in one line.

Versions:

1. the first schema;
2. ``findings.kind`` (article, engine-check, analytic, bound; older findings read back as
   ``article``);
3. ``runs.pid``, ``runs.host``, ``runs.process_start``, ``runs.updated_at``: the process
   writing a ``running`` run (so that a run whose process is gone shows as stale) and the
   time of its last write (a Monitor writes as it goes).
"""

from __future__ import annotations

from typing import Any

from sgdlab.errors import StoreError

__all__ = ["SCHEMA_VERSION", "TABLES", "check_schema", "create_or_migrate"]

SCHEMA_VERSION = 3

#: columns of every table, in their stored order (rows are inserted by position)
TABLES: dict[str, list[tuple[str, str]]] = {
    "runs": [
        ("run_id", "VARCHAR PRIMARY KEY"), ("kind", "VARCHAR"), ("name", "VARCHAR"),
        ("status", "VARCHAR"), ("config_json", "VARCHAR"), ("config_hash", "VARCHAR"),
        ("seed_entropy", "VARCHAR"), ("streams_json", "VARCHAR"), ("problem_json", "VARCHAR"),
        ("chains", "INTEGER"), ("steps", "BIGINT"), ("sgdlab_version", "VARCHAR"),
        ("torch_version", "VARCHAR"), ("python_version", "VARCHAR"), ("platform", "VARCHAR"),
        ("created_at", "TIMESTAMP"), ("finished_at", "TIMESTAMP"), ("wall_seconds", "DOUBLE"),
        ("n_diverged", "INTEGER"), ("error", "VARCHAR"), ("pid", "INTEGER"),
        ("host", "VARCHAR"), ("process_start", "VARCHAR"), ("updated_at", "TIMESTAMP"),
    ],
    "metrics": [
        ("run_id", "VARCHAR"), ("chain", "INTEGER"), ("step", "BIGINT"), ("name", "VARCHAR"),
        ("value", "DOUBLE"),
    ],
    "params": [
        ("run_id", "VARCHAR"), ("chain", "INTEGER"), ("kind", "VARCHAR"), ('"values"', "DOUBLE[]"),
    ],
    "divergence": [("run_id", "VARCHAR"), ("chain", "INTEGER"), ("step", "BIGINT")],
    "findings": [
        ("run_id", "VARCHAR"), ("study", "VARCHAR"), ("claim", "VARCHAR"), ("quantity", "VARCHAR"),
        ("measured", "DOUBLE"), ("ci_low", "DOUBLE"), ("ci_high", "DOUBLE"),
        ("predicted", "DOUBLE"), ("tolerance", "DOUBLE"), ("verdict", "VARCHAR"),
        ("figure", "VARCHAR"), ("details_json", "VARCHAR"), ("created_at", "TIMESTAMP"),
        ("kind", "VARCHAR"),
    ],
    "measurements": [
        ("run_id", "VARCHAR"), ("chain", "INTEGER"), ("name", "VARCHAR"), ("value", "DOUBLE"),
        ("details_json", "VARCHAR"), ("created_at", "TIMESTAMP"),
    ],
    "schema_info": [("version", "INTEGER")],
}  # fmt: skip

#: the version that added each column (columns not listed exist since version 1)
ADDED_IN = {
    ("findings", "kind"): 2,
    ("runs", "pid"): 3, ("runs", "host"): 3, ("runs", "process_start"): 3,
    ("runs", "updated_at"): 3,
}  # fmt: skip


def _name(column: str) -> str:
    return column.strip('"')


def _create_statements() -> list[str]:
    return [
        f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(f'{c} {t}' for c, t in cols)})"
        for table, cols in TABLES.items()
    ]


def _columns(con: Any) -> dict[str, set[str]]:
    rows = con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE schema_name = 'main' "
        "AND database_name = current_database()"
    ).fetchall()
    out: dict[str, set[str]] = {}
    for table, column in rows:
        out.setdefault(table, set()).add(column)
    return out


def check_schema(con: Any, path: object, writable: bool) -> int | None:
    """The version of the store behind ``con`` (``None`` for an empty database), after
    checking that it is an sgdlab store, not newer than this sgdlab, and not missing any
    column its version has. Raises :class:`StoreError` (one line naming the file)."""
    tables = _columns(con)
    if not tables:
        if not writable:
            raise StoreError(f"{path} holds no sgdlab results yet (an empty DuckDB database)")
        return None
    if "runs" not in tables or "schema_info" not in tables:
        names = ", ".join(sorted(tables)[:6]) + (", …" if len(tables) > 6 else "")
        raise StoreError(
            f"{path} is a DuckDB database but not an sgdlab results store (it has table(s) "
            f"{names}); give another --store"
        )
    (row,) = con.execute("SELECT max(version) FROM schema_info").fetchall()
    # no version row: a store whose creation was cut short by an older sgdlab (it created
    # the tables, then inserted the version): read as the oldest schema, migrated on write
    version = 1 if row is None or row[0] is None else row[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"results store {path} was written by a newer sgdlab (schema {version}; this one "
            f"reads up to {SCHEMA_VERSION}): upgrade sgdlab to use it"
        )
    for table, cols in TABLES.items():
        if table not in tables:
            continue  # created by the migration (writable) or read as empty
        missing = [
            _name(c) for c, _ in cols
            if _name(c) not in tables[table] and ADDED_IN.get((table, _name(c)), 1) <= version
        ]  # fmt: skip
        if missing:
            raise StoreError(
                f"results store {path} is damaged: table {table} lacks column(s) "
                f"{', '.join(missing)}; restore it from a backup or use another --store"
            )
    return int(version)


def create_or_migrate(con: Any, version: int | None) -> None:
    """Create the tables of a new store, or bring an older one to :data:`SCHEMA_VERSION`,
    in one transaction.

    * 1 → 2: ``findings.kind`` (older findings have none: read back as ``article``);
    * 2 → 3: ``runs.pid``, ``host``, ``process_start``, ``updated_at`` (older runs have none:
      a ``running`` one among them cannot be told stale).
    """
    if version == SCHEMA_VERSION:
        return
    con.begin()
    try:
        for stmt in _create_statements():
            con.execute(stmt)
        if version is None:
            con.execute("INSERT INTO schema_info VALUES (?)", [SCHEMA_VERSION])
        else:
            for (table, column), added in ADDED_IN.items():
                if version < added:
                    kind = dict((_name(c), t) for c, t in TABLES[table])[column]
                    con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {kind}")
            con.execute("UPDATE schema_info SET version = ?", [SCHEMA_VERSION])
        con.commit()
    except BaseException:
        con.rollback()
        raise
