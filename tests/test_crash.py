"""Crash test: ``sgdlab run`` processes killed with SIGKILL at fixed points — after the run's
row is inserted, inside the step loop, halfway through the commit's inserts, with every
insert done but the transaction not committed, right after the commit, while a failed run
is being marked — and at moments drawn from a fixed seed; a Monitor killed mid-training.

After every kill the store opens (writable: schema check and migration run), every earlier
complete run reads back bit-identical, and the killed run is never ``complete`` — except
when it was killed after its commit, when it is complete with all of its data. Killed runs
show as stale; ``sgdlab runs --prune`` removes them and the store takes new runs.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sgdlab.cli import app
from sgdlab.store import Store

pytestmark = [
    pytest.mark.skipif(os.name != "posix", reason="needs SIGKILL"),
    pytest.mark.slow,
    pytest.mark.timeout(600),
]
runner = CliRunner()

CONFIG = """\
problem: {name: quadratic, dim: 5}
batch: {size: 4, sampling: stream}
chains: 64
steps: 3000
record: {every: 1}
dtype: float64
"""

#: where the run kills itself: code run in the subprocess before `sgdlab run` starts
POINTS = {
    "after_begin": """
        begin = Store.begin_run
        def dying(self, *a, **k):
            begin(self, *a, **k)
            die()
        Store.begin_run = dying""",
    "loop": """
        import sgdlab.api as api
        execute = api.execute
        def dying(plan, progress=None):
            def tick(step, total):
                if step >= 1000:
                    die()
            return execute(plan, tick)
        api.execute = dying""",
    "mid_insert": """
        insert = Store._insert_metrics
        def dying(con, run_id, metrics):
            first = dict([next(iter(metrics.items()))])
            insert(con, run_id, first)
            die()
        Store._insert_metrics = staticmethod(dying)""",
    "before_commit": """
        insert = Store._insert_metrics
        def dying(con, run_id, metrics):
            insert(con, run_id, metrics)
            die()
        Store._insert_metrics = staticmethod(dying)""",
    "after_commit": """
        write = Store.write_run_data
        def dying(self, *a, **k):
            write(self, *a, **k)
            die()
        Store.write_run_data = dying""",
    "marking_failed": """
        import sgdlab.api as api
        def broken(plan, progress=None):
            raise RuntimeError("boom")
        api.execute = broken
        fail = Store.fail_run
        def dying(self, *a, **k):
            die()
        Store.fail_run = dying""",
}


def _cli(store: Path, config: Path, point: str | None) -> subprocess.Popen:
    setup = textwrap.dedent(POINTS[point]) if point else ""
    code = "\n".join([
        "import os, signal",
        "from sgdlab.store import Store",
        "def die():",
        "    os.kill(os.getpid(), signal.SIGKILL)",
        setup,
        "from sgdlab.cli import main",
        "main()",
    ])  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-c", code, "run", str(config), "--store", str(store)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _snapshot(store: Path) -> dict[str, dict]:
    """Every complete run's metrics and parameters."""
    out = {}
    with Store(store, read_only=True) as db:
        for row in db.runs(status="complete"):
            res = db.load_result(row["run_id"])
            out[row["run_id"]] = {"metrics": res.metrics, "final": res.final_params.numpy()}
    return out


def _same(a: dict, b: dict) -> bool:
    if a["metrics"].keys() != b["metrics"].keys():
        return False
    for name, (steps, values) in a["metrics"].items():
        s2, v2 = b["metrics"][name]
        if not (np.array_equal(steps, s2) and np.array_equal(values, v2, equal_nan=True)):
            return False
    return np.array_equal(a["final"], b["final"])


def test_killed_runs_never_damage_the_store(tmp_path):
    store, config = tmp_path / "s.duckdb", tmp_path / "c.yaml"
    config.write_text(CONFIG)
    first = _cli(store, config, None)
    assert first.wait(timeout=300) == 0, first.stderr.read()
    reference = _snapshot(store)
    (ref_id,) = reference
    rng = random.Random(16)  # fixed seed: the same moments every time
    kills: list[tuple[str, float | None]] = [(p, None) for p in POINTS]
    kills += [("random", rng.uniform(2.0, 5.0)) for _ in range(3)]
    killed: dict[str, str] = {}
    for label, delay in kills:
        with Store(store, read_only=True) as db:
            before_ids = {r["run_id"] for r in db.runs()}
        proc = _cli(store, config, None if label == "random" else label)
        if delay is not None:
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
        code = proc.wait(timeout=300)
        stderr = proc.stderr.read()
        assert "Traceback" not in stderr, (label, stderr)
        Store(store).close()  # opens for writing: schema check (and migration) pass
        with Store(store, read_only=True) as db:
            rows = {r["run_id"]: r for r in db.runs()}
        new = set(rows) - before_ids
        assert len(new) <= 1, (label, new)
        now = _snapshot(store)
        for rid, data in reference.items():  # earlier complete runs are unchanged
            assert _same(now[rid], data), (label, rid)
        assert code in (0, -signal.SIGKILL), (label, code, stderr)
        for rid in new:
            row = rows[rid]
            # complete only if the commit was reached — then with all of its data
            expect_complete = {"after_commit": True, "random": None}.get(label, code == 0)
            if row["status"] == "complete":
                assert expect_complete in (True, None), label
                assert _same(now[rid], reference[ref_id]), label  # bit-identical to the first
                reference[rid] = now[rid]
            else:
                assert expect_complete in (False, None), (label, row["status"])
                assert row["status"] == "running" and row["stale"] is True, (label, row)
                killed[rid] = label
    assert {"after_begin", "loop", "mid_insert", "before_commit", "marking_failed"} <= set(
        killed.values()
    ), killed
    listed = runner.invoke(app, ["runs", "--store", str(store), "--limit", "50"])
    assert listed.exit_code == 0 and listed.output.count("stale") >= len(killed)
    pruned = runner.invoke(app, ["runs", "--prune", "--store", str(store)])
    assert pruned.exit_code == 0 and f"pruned {len(killed)} run" in pruned.output
    with Store(store, read_only=True) as db:
        assert {r["run_id"] for r in db.runs()} == set(reference)
    last = _cli(store, config, None)
    assert last.wait(timeout=300) == 0, last.stderr.read()
    assert len(_snapshot(store)) == len(reference) + 1


MONITOR = """
import time, torch, sgdlab
from torch import nn
torch.manual_seed(0)
model = nn.Linear(3, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
with sgdlab.Monitor(model, nn.MSELoss(), opt, store={store!r}, every=1, noise_every=0,
                    flush_every=0.2) as mon:
    print(mon.run_id, flush=True)
    for t in range(100000):
        x, y = torch.randn(8, 3), torch.randn(8, 1)
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
        mon.step(x, y, loss)
        time.sleep(0.005)
"""


def test_killed_monitor_keeps_what_it_flushed(tmp_path):
    """Regression: a Monitor killed after ~30,000 steps left 0 metric rows."""
    store = tmp_path / "m.duckdb"
    proc = subprocess.Popen([sys.executable, "-c", MONITOR.format(store=str(store))],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    run_id = proc.stdout.readline().strip()
    time.sleep(2.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    with Store(store, read_only=True) as db:
        row = db.run(run_id)
        steps, _ = db.metric(run_id, "loss")
    assert row["status"] == "running" and row["stale"] is True
    assert len(steps) > 20 and np.array_equal(steps, np.arange(len(steps)))
