"""Concurrency test: two ``sgdlab run`` processes write into one store while this process
reads it (``sgdlab runs``, ``sgdlab show``) in a loop.

Both runs land complete, bit-identical to the same configs run alone — or a writer gives
up with one clear "busy" line (exit 1) when the other held the lock longer than
``SGDLAB_STORE_TIMEOUT``. Readers see every run as running or complete (a reader may also
get the one-line "busy"). Never a traceback, never a damaged store.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from typer.testing import CliRunner

import sgdlab
from sgdlab.cli import app
from sgdlab.config import load_config
from sgdlab.store import Store

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
runner = CliRunner()


def config(seed: int) -> str:
    # a loop of several seconds (a reader under a loaded machine must find the runs running)
    # and 3000 recorded rows per chain (a commit that holds the lock a while)
    return (
        "problem: {name: quadratic, dim: 5}\nbatch: {size: 4, sampling: stream}\n"
        f"chains: 64\nsteps: 30000\nrecord: {{every: 10}}\ndtype: float64\nseed: {seed}\n"
    )


def busy_or_ok(out) -> bool:
    if out.exit_code == 0:
        return True
    lines = [ln for ln in out.output.splitlines() if ln.strip()]
    return out.exit_code == 1 and len(lines) == 1 and "busy" in lines[0]


def test_two_writers_and_a_reader(tmp_path):
    store = tmp_path / "shared.duckdb"
    paths = []
    for seed in (1, 2):
        path = tmp_path / f"c{seed}.yaml"
        path.write_text(config(seed))
        paths.append(path)
    env = {**os.environ, "SGDLAB_STORE_TIMEOUT": "60"}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", "from sgdlab.cli import main; main()", "run", str(p),
             "--store", str(store)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for p in paths
    ]  # fmt: skip
    reads = seen_running = 0
    deadline = time.time() + 240
    while any(w.poll() is None for w in writers) and time.time() < deadline:
        if store.exists():
            out = runner.invoke(app, ["runs", "--store", str(store)])
            assert "Traceback" not in out.output and busy_or_ok(out), out.output
            reads += 1
            if out.exit_code == 0:
                with Store(store, read_only=True) as db:
                    for row in db.runs():
                        assert row["status"] in ("running", "complete"), row
                        seen_running += row["status"] == "running"
                        assert row["stale"] is False, row
                        shown = runner.invoke(app, ["show", row["run_id"], "--store", str(store)])
                        assert busy_or_ok(shown), shown.output
        time.sleep(0.05)
    results = [w.communicate(timeout=60) for w in writers]
    for w, (_, err) in zip(writers, results, strict=True):
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert "Traceback" not in err, err
        assert w.returncode == 0 or (w.returncode == 1 and len(lines) == 1 and "busy" in err)
    assert reads > 0 and seen_running > 0  # the store was readable while runs went on
    landed = [w.returncode == 0 for w in writers]
    with Store(store) as db:  # opens for writing: nothing damaged
        rows = db.runs()
        assert len(rows) == sum(landed) and all(r["status"] == "complete" for r in rows)
        for row in rows:
            stored = db.load_result(row["run_id"])
            seed = int(stored.config["seed"])
            alone = sgdlab.run(load_config(tmp_path / f"c{seed}.yaml"), threads=1)
            for name, (steps, values) in alone.metrics.items():
                s2, v2 = stored.metric(name)
                assert np.array_equal(steps, s2) and np.array_equal(values, v2), name
            assert np.array_equal(alone.final_params.numpy(), stored.final_params.numpy())
    assert all(landed), "with a 60 s timeout both runs land"
