"""Damaged, foreign, newer, older and shared stores (issue 16, defects 3, 5, 6 and 7): every
store problem is one line naming the file; a store is never written into unless it is an
sgdlab store (or empty); older schemas migrate explicitly; the lock is held only while
writing; stale runs show and can be pruned."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import duckdb
import numpy as np
import pytest
from typer.testing import CliRunner

import sgdlab
from sgdlab.cli import app
from sgdlab.errors import StoreError
from sgdlab.store import SCHEMA_VERSION, Store
from sgdlab.store.schema import TABLES

runner = CliRunner()
CFG = {
    "problem": {"name": "quadratic", "dim": 3},
    "optimizer": {"name": "sgd", "lr": 0.1},
    "batch": {"size": 4, "sampling": "stream"},
    "chains": 3,
    "steps": 20,
    "dtype": "float64",
}


def one_line(out, code: int, *needles: str) -> str:
    assert out.exit_code == code, out.output
    lines = [ln for ln in out.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), out.output
    assert "Traceback" not in out.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def query(path, sql, args=()):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, list(args)).fetchall()
    finally:
        con.close()


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.duckdb"
    return path, sgdlab.run(CFG, store=path)


# ------------------------------------------------------------------ defect 5: damaged stores
def test_truncated_store_is_one_line(tmp_path, good):
    """Regression: a half-truncated file gave tracebacks from `runs` and `run`."""
    path, _ = good
    damaged = tmp_path / "cut.duckdb"
    shutil.copy(path, damaged)
    size = damaged.stat().st_size
    with open(damaged, "r+b") as fh:
        fh.truncate(size // 2)
    for args in (["runs"], ["run"]):
        out = runner.invoke(app, [*args, "--store", str(damaged)])
        one_line(out, 1, str(damaged))


def test_store_missing_a_column_is_damaged(tmp_path, good):
    """Regression: a missing column gave KeyError / BinderException tracebacks."""
    path, res = good
    con = duckdb.connect(str(path))
    con.execute("ALTER TABLE runs DROP COLUMN config_json")
    con.close()
    for args in (["runs"], ["show", res.run_id], ["run"]):
        out = runner.invoke(app, [*args, "--store", str(path)])
        one_line(out, 1, "damaged", "config_json", str(path))


@pytest.mark.parametrize("content", [b"", b"not a database at all" * 100])
def test_files_that_are_not_databases(tmp_path, content):
    path = tmp_path / "x.duckdb"
    path.write_bytes(content)
    for args in (["runs"], ["run"]):
        one_line(runner.invoke(app, [*args, "--store", str(path)]), 1, str(path))
    assert path.read_bytes() == content  # untouched


# ------------------------------------------------------------------ defect 6: foreign stores
def test_foreign_database_is_never_written(tmp_path):
    """Regression: `sgdlab run --store other.duckdb` added sgdlab's tables to any DuckDB
    database (and a foreign `runs` table gave a traceback)."""
    for tables in (["CREATE TABLE t (x INTEGER)"], ["CREATE TABLE runs (a INTEGER)"]):
        path = tmp_path / f"other{len(tables[0])}.duckdb"
        con = duckdb.connect(str(path))
        for stmt in tables:
            con.execute(stmt)
        con.close()
        before = query(path, "SELECT table_name FROM duckdb_tables() ORDER BY 1")
        for args in (["run"], ["runs"], ["show", "abc"]):
            out = runner.invoke(app, [*args, "--store", str(path)])
            one_line(out, 1, "not an sgdlab results store", str(path))
        assert query(path, "SELECT table_name FROM duckdb_tables() ORDER BY 1") == before


def test_empty_duckdb_database_becomes_a_store(tmp_path):
    path = tmp_path / "empty.duckdb"
    duckdb.connect(str(path)).close()
    res = sgdlab.run(CFG, store=path)
    with Store(path, read_only=True) as db:
        assert db.run(res.run_id)["status"] == "complete"


def test_newer_schema_is_refused(good):
    """Regression: a store of schema version 99 was accepted (and written)."""
    path, _ = good
    con = duckdb.connect(str(path))
    con.execute("UPDATE schema_info SET version = 99")
    con.close()
    for args in (["runs"], ["run"]):
        out = runner.invoke(app, [*args, "--store", str(path)])
        one_line(out, 1, "newer sgdlab", "schema 99")
    assert query(path, "SELECT count(*) FROM runs")[0][0] == 1


SCHEMA_2 = {  # the tables as sgdlab wrote them before the run's process was recorded
    table: [c for c in cols if c[0] not in ("pid", "host", "process_start", "updated_at")]
    for table, cols in TABLES.items()
}


def test_store_of_the_previous_schema_is_migrated(tmp_path, good):
    """A store written by schema 2 opens read-only as it is (its running runs' liveness is
    unknown) and is migrated to schema 3 on the first writable open; its runs read back
    unchanged."""
    _, ref = good
    path = tmp_path / "v2.duckdb"
    con = duckdb.connect(str(path))
    for table, cols in SCHEMA_2.items():
        con.execute(f"CREATE TABLE {table} ({', '.join(f'{c} {t}' for c, t in cols)})")
    con.execute("INSERT INTO schema_info VALUES (2)")
    con.execute("""INSERT INTO runs (run_id, kind, status, config_json, chains, steps,
        created_at) VALUES ('old1', 'engine', 'running', '{}', 1, 5, now())""")
    con.execute("""INSERT INTO runs (run_id, kind, status, config_json, config_hash,
        seed_entropy, chains, steps, created_at, wall_seconds)
        VALUES ('old2', 'engine', 'complete', ?, 'h', '0', 3, 20, now(), 1.0)""",
                [__import__("json").dumps(ref.config)])
    con.execute("INSERT INTO metrics VALUES ('old2', 0, 0, 'loss', 1.5)")
    con.close()
    with Store(path, read_only=True) as db:
        assert db.version == 2
        rows = {r["run_id"]: r for r in db.runs()}
        assert rows["old1"]["stale"] is None and rows["old2"]["status"] == "complete"
    assert query(path, "SELECT max(version) FROM schema_info")[0][0] == 2  # untouched
    with Store(path) as db:
        assert db.version == SCHEMA_VERSION == 3
        assert db.metric("old2", "loss")[1].tolist() == [[1.5]]
        res = sgdlab.run(CFG, store=db)
        assert db.run(res.run_id)["pid"] == os.getpid()
    cols = {r[0] for r in query(path, "SELECT column_name FROM duckdb_columns() "
                                      "WHERE table_name = 'runs'")}  # fmt: skip
    assert {"pid", "host", "process_start", "updated_at"} <= cols


# ------------------------------------------------------------------ defect 7: short locks
def test_no_connection_is_held_between_operations(tmp_path, good):
    """Regression: `sgdlab.run` held the store for the whole run, so no other process could
    read it. Now another process can open it for writing between any two operations, and
    while a read session is held other processes can still read."""
    path, res = good
    db = Store(path)
    db.runs()
    code = f"import duckdb; duckdb.connect({str(path)!r}).close()"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
    with db.session():
        db.run(res.run_id)
        ro = f"import duckdb; duckdb.connect({str(path)!r}, read_only=True).close()"
        assert subprocess.run([sys.executable, "-c", ro], timeout=60).returncode == 0


@pytest.mark.timeout(60)
def test_busy_store_is_a_clear_line_after_the_timeout(tmp_path, good):
    path, _ = good
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('held', flush=True); "
         "time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        os.environ["SGDLAB_STORE_TIMEOUT"] = "0.5"
        try:
            out = runner.invoke(app, ["runs", "--store", str(path)])
        finally:
            del os.environ["SGDLAB_STORE_TIMEOUT"]
        one_line(out, 1, "is busy", str(path))
        with pytest.raises(StoreError, match="busy"):
            Store(path, timeout=0.2)
    finally:
        holder.kill()
        holder.wait()


# ------------------------------------------------------------------ defect 3: stale runs
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # exited and reaped: no process has this pid (for a while)


def test_stale_run_is_shown_and_pruned(good):
    """Regression: a run whose process was killed stayed `running` forever, shown as such."""
    path, res = good
    db = Store(path)
    db.begin_run("deadbeef0001", kind="engine", config={}, config_hash="h", chains=1)
    db.begin_run("alive0000001", kind="engine", config={}, config_hash="h", chains=1)
    db.begin_run("failed000001", kind="engine", config={}, config_hash="h", chains=1)
    db.fail_run("failed000001", "RuntimeError: boom")
    con = duckdb.connect(str(path))
    con.execute("UPDATE runs SET pid = ? WHERE run_id = 'deadbeef0001'", [_dead_pid()])
    con.close()
    rows = {r["run_id"]: r for r in db.runs()}
    assert rows["deadbeef0001"]["stale"] is True
    assert rows["alive0000001"]["stale"] is False  # this very process
    assert rows[res.run_id]["stale"] is False
    out = runner.invoke(app, ["runs", "--store", str(path)])
    assert out.exit_code == 0 and "stale" in out.output and "--prune" in out.output
    out = runner.invoke(app, ["runs", "--status", "stale", "--store", str(path)])
    assert "deadbeef0001" in out.output and "alive0000001" not in out.output
    shown = runner.invoke(app, ["show", "deadbeef0001", "--store", str(path)])
    assert shown.exit_code == 0 and "process writing it is gone" in shown.output
    out = runner.invoke(app, ["runs", "--prune", "--store", str(path)])
    assert out.exit_code == 0 and "pruned 2 runs" in out.output, out.output
    left = {r["run_id"] for r in db.runs()}
    assert left == {res.run_id, "alive0000001"}
    np.testing.assert_array_equal(db.metric(res.run_id, "loss")[1], res.metric("loss")[1])


def test_completed_run_is_never_marked_failed(good):
    """An interrupt that arrives after the commit must not turn a complete run failed."""
    path, res = good
    assert Store(path).fail_run(res.run_id, "KeyboardInterrupt: late") is False
    with Store(path, read_only=True) as db:
        assert db.run(res.run_id)["status"] == "complete"
