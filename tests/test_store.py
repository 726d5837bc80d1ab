"""DuckDB store: round trip, prefixes, transactions (a killed run is never complete)."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import sgdlab
from sgdlab.store import Store


def cfg(**over):
    c = {
        "problem": {"name": "quadratic", "dim": 3},
        "optimizer": {"name": "sgd", "lr": 0.1},
        "batch": {"size": 4, "sampling": "stream"},
        "chains": 5,
        "steps": 40,
        "record": {"every": 10, "average": True},
        "dtype": "float64",
    }
    c.update(over)
    return c


def test_round_trip(tmp_path):
    path = tmp_path / "s.duckdb"
    res = sgdlab.run(cfg(), store=path, name="hello")
    with Store(path, read_only=True) as db:
        info = db.run(res.run_id[:6])
        assert info["status"] == "complete" and info["name"] == "hello"
        assert info["config_hash"] == res.config_hash
        assert info["seed_entropy"] == res.seed_entropy
        assert info["torch_version"] == torch.__version__
        for name in res.metric_names():
            steps, values = db.metric(res.run_id, name)
            np.testing.assert_array_equal(steps, res.metric(name)[0])
            np.testing.assert_array_equal(values, res.metric(name)[1])
        np.testing.assert_array_equal(db.params(res.run_id), res.final_params.numpy())
        np.testing.assert_array_equal(db.params(res.run_id, "average"),
                                      res.average_params.numpy())
        assert db.find_complete(res.config_hash) == res.run_id


def test_unknown_run_and_ambiguous(tmp_path):
    path = tmp_path / "s.duckdb"
    sgdlab.run(cfg(steps=2), store=path)
    sgdlab.run(cfg(steps=2), store=path)
    with Store(path, read_only=True) as db:
        with pytest.raises(sgdlab.StoreError, match="no run"):
            db.run("zzzz")
        with pytest.raises(sgdlab.StoreError, match="ambiguous"):
            db.resolve("")
        for wildcard in ("%", "_"):  # prefixes are literal, not SQL LIKE patterns
            with pytest.raises(sgdlab.StoreError, match="no run"):
                db.resolve(wildcard)


def test_missing_store_read_only(tmp_path):
    with pytest.raises(sgdlab.StoreError, match="no results store"):
        Store(tmp_path / "none.duckdb", read_only=True)


def _count(path, sql, args=()):
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, list(args)).fetchall()[0][0]
    finally:
        con.close()


def _run_and_die(path, where):
    """Run in a subprocess that kills itself with SIGKILL at ``where``."""
    code = textwrap.dedent(f"""
        import os, signal, sgdlab
        from sgdlab.store import Store
        where = {where!r}
        if where == "commit":
            orig = Store._insert_metrics
            def dying(*a, **k):
                orig(*a, **k)
                os.kill(os.getpid(), signal.SIGKILL)
            Store._insert_metrics = staticmethod(dying)
        def progress(step, total):
            if where == "loop" and step >= 20:
                os.kill(os.getpid(), signal.SIGKILL)
        sgdlab.run({cfg()!r}, store={str(path)!r}, progress=progress)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()


@pytest.mark.parametrize("where", ["loop", "commit"])
def test_killed_run_is_never_complete_and_others_intact(tmp_path, where):
    path = tmp_path / "s.duckdb"
    done = sgdlab.run(cfg(), store=path)
    _run_and_die(path, where)
    with Store(path) as db:
        rows = {r["run_id"]: r for r in db.runs()}
        assert rows[done.run_id]["status"] == "complete"
        killed = [rid for rid in rows if rid != done.run_id]
        assert len(killed) == 1 and rows[killed[0]]["status"] == "running"
        assert rows[killed[0]]["stale"] is True  # its process is gone
        np.testing.assert_array_equal(db.metric(done.run_id, "loss")[1],
                                      done.metric("loss")[1])
    assert _count(path, "SELECT count(*) FROM metrics WHERE run_id = ?", killed) == 0


def test_failed_run_marked(tmp_path, monkeypatch):
    path = tmp_path / "s.duckdb"
    import sgdlab.api as api

    def boom(plan, progress=None):
        raise RuntimeError("boom")

    monkeypatch.setattr(api, "execute", boom)
    with pytest.raises(RuntimeError):
        sgdlab.run(cfg(), store=path)
    with Store(path, read_only=True) as db:
        (row,) = db.runs()
        assert row["status"] == "failed" and "boom" in row["error"]


def test_nan_metrics_round_trip(tmp_path):
    """A diverged chain's metrics are NaN after its divergence step, in the store too."""
    path = tmp_path / "s.duckdb"
    res = sgdlab.run(cfg(optimizer={"name": "sgd", "lr": [0.1, 50.0]}, chains=2, steps=200,
                         problem={"name": "quadratic", "dim": 3, "L": 2.0}), store=path)
    assert res.diverged.tolist() == [False, True]
    _, sub = res.metric("suboptimality")
    assert np.isnan(sub[1, -1])
    with Store(path, read_only=True) as db:
        _, stored = db.metric(res.run_id, "suboptimality")
    np.testing.assert_array_equal(stored, sub)  # NaN positions included


def test_store_of_schema_1_is_migrated(tmp_path):
    """A store written before findings had a kind (schema 1) opens read-only as it is and is
    migrated on the first writable open; its old findings read back as article findings."""
    import duckdb

    from sgdlab.store.connection import SCHEMA_VERSION

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("""CREATE TABLE runs (run_id VARCHAR PRIMARY KEY, kind VARCHAR, name VARCHAR,
        status VARCHAR, config_json VARCHAR, config_hash VARCHAR, seed_entropy VARCHAR,
        streams_json VARCHAR, problem_json VARCHAR, chains INTEGER, steps BIGINT,
        sgdlab_version VARCHAR, torch_version VARCHAR, python_version VARCHAR, platform VARCHAR,
        created_at TIMESTAMP, finished_at TIMESTAMP, wall_seconds DOUBLE, n_diverged INTEGER,
        error VARCHAR)""")
    con.execute("""CREATE TABLE findings (run_id VARCHAR, study VARCHAR, claim VARCHAR,
        quantity VARCHAR, measured DOUBLE, ci_low DOUBLE, ci_high DOUBLE, predicted DOUBLE,
        tolerance DOUBLE, verdict VARCHAR, figure VARCHAR, details_json VARCHAR,
        created_at TIMESTAMP)""")
    con.execute("CREATE TABLE schema_info (version INTEGER)")
    con.execute("INSERT INTO schema_info VALUES (1)")
    con.execute("""INSERT INTO findings VALUES ('s', 'old', 'c', 'q', 1, 0.5, 1.5, 1, 0,
        'agrees', '', '{"rule": "band"}', now())""")
    con.close()
    with Store(path, read_only=True) as db:
        (old,) = db.findings()
    assert old["kind"] is None and old["verdict"] == "agrees"
    with Store(path) as db:
        (migrated,) = db.findings()
    version = _count(path, "SELECT max(version) FROM schema_info")
    assert version == SCHEMA_VERSION == 3
    from sgdlab.lab.findings import Finding

    assert Finding.from_dict(migrated).kind == "article"
