"""What the store's short connections cost (issue 16): a run's total store time.

The store opens the DuckDB file for each operation and closes it after (so that no lock is
held while a run computes, readers can watch it and two runs can share a store). Measured
here, each the median of ``--repeats``:

* ``open_close_ms``: one read-only and one writing open + close of an existing store;
* for a small run (16 chains × 200 steps) and a large one (2048 × 2000, every step
  recorded: 24.6M values): the run's total store time with short connections
  (``Store(path)`` check + ``begin_run`` + ``complete_run``, three opens) against the same
  writes on one connection held throughout (the former design, emulated with
  ``Store.session(write=True)``), and the loop's own time for scale;
* ``lab_per_run_ms``: the lab's pattern per run — ``find_complete`` then ``save_result``;
* ``monitor_flush_ms``: one incremental Monitor write (10 metrics × 100 steps).

Writes ``benchmarks/results/store.json``. Numbers depend on the disk; run on a quiet
machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

import sgdlab
from sgdlab.engine import execute, prepare
from sgdlab.store import Store

RESULTS = Path(__file__).resolve().parent / "results"

SMALL = {"problem": {"name": "quadratic", "dim": 10}, "batch": {"size": 8, "sampling": "stream"},
         "chains": 16, "steps": 200, "record": {"every": 10}}  # fmt: skip
LARGE = {"problem": {"name": "quadratic", "dim": 2}, "batch": {"size": 2, "sampling": "stream"},
         "chains": 2048, "steps": 2000, "record": {"every": 1}}  # fmt: skip


def _result(cfg: dict):
    plan = prepare(cfg)
    start = time.perf_counter()
    loop = execute(plan)
    loop_s = time.perf_counter() - start
    res = sgdlab.RunResult(
        run_id="", config=plan.config.canonical(), config_hash=plan.config.hash(),
        metrics=loop.recorder.result(), final_params=loop.W, diverged_at=loop.diverged_at.numpy(),
        seed_entropy=str(plan.streams.entropy), wall_seconds=loop_s,
    )  # fmt: skip
    return plan, res, loop_s


def _store_time(path: Path, plan, res, held: bool) -> float:
    res.run_id = uuid.uuid4().hex[:12]
    start = time.perf_counter()
    db = Store(path)
    if held:
        with db.session(write=True):
            _write(db, plan, res)
    else:
        _write(db, plan, res)
    return time.perf_counter() - start


def _write(db: Store, plan, res) -> None:
    cfg = plan.config
    db.begin_run(res.run_id, kind="engine", config=res.config, config_hash=res.config_hash,
                 streams=plan.streams.describe(), chains=cfg.chains, steps=cfg.steps)  # fmt: skip
    db.complete_run(res)


def _median(fn, repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-large", action="store_true")
    args = parser.parse_args()
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.duckdb"
        Store(path)

        def open_close() -> float:
            start = time.perf_counter()
            with Store(path, read_only=True) as db, db.session():
                pass
            with Store(path) as db, db.session(write=True):
                pass
            return (time.perf_counter() - start) / 2 * 1000

        out["open_close_ms"] = _median(open_close, args.repeats * 4)
        sizes = {"small": SMALL} if args.skip_large else {"small": SMALL, "large": LARGE}
        for label, cfg in sizes.items():
            plan, res, loop_s = _result(cfg)
            reps = args.repeats if label == "small" else max(1, args.repeats // 2)
            short = statistics.median(
                _store_time(path, plan, res, held=False) for _ in range(reps)
            )
            held = statistics.median(_store_time(path, plan, res, held=True) for _ in range(reps))
            out[label] = {"loop_s": loop_s, "store_s_short_connections": short,
                          "store_s_held_connection": held, "extra_s": short - held}  # fmt: skip
        plan, res, _ = _result(SMALL)

        def lab_run() -> float:
            db = Store(path)
            start = time.perf_counter()
            db.find_complete("no-such-hash")
            res.run_id = uuid.uuid4().hex[:12]
            db.save_result(res, kind="lab")
            return (time.perf_counter() - start) * 1000

        out["lab_per_run_ms"] = _median(lab_run, args.repeats)
        db = Store(path)
        rid = uuid.uuid4().hex[:12]
        db.begin_run(rid, kind="monitor", config={}, config_hash="h", chains=1)
        steps = np.arange(100)

        def flush() -> float:
            metrics = {f"m{i}": (steps, np.ones((1, 100))) for i in range(10)}
            start = time.perf_counter()
            db.finish_run(rid, metrics=metrics, steps=100, wall_seconds=1.0, status=None)
            return (time.perf_counter() - start) * 1000

        out["monitor_flush_ms"] = _median(flush, args.repeats)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "store.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
