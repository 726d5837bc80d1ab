"""The Ray executor on a local Ray instance (``ray.init(num_cpus=2)``, no cluster):
bit-identical to the local executor (same findings.json, same metrics), only the driver
writes the store, failed and killed tasks are reported (or retried) while the other runs
land, and ``sgdlab sweep --executor ray`` / ``lab run --executor ray`` work.

Ray is a test dependency (the dev extras): missing, the tests skip — except in CI, where
they fail.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import _report_fixtures as fx
from sgdlab.cli import app
from sgdlab.lab.dispatch import dispatch
from sgdlab.lab.executor import LocalExecutor, RayExecutor, RunFailure, make_executor, run_config
from sgdlab.lab.session import run_studies
from sgdlab.store import Store

BASE = {"problem": {"name": "quadratic", "dim": 3}, "chains": 6, "steps": 40,
        "batch": {"size": 2, "sampling": "stream"}, "record": {"every": 5}, "seed": 1}  # fmt: skip
CONFIGS = [{**BASE, "optimizer": {"name": "sgd", "lr": [0.1, 0.2]}, "dtype": "float64"},
           {**BASE, "optimizer": {"name": "momentum", "lr": 0.05}, "seed": 2}]  # fmt: skip


@pytest.fixture(scope="module")
def ray():
    try:
        import ray
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("ray must be installed in CI (pip install -e '.[dev]')")
        pytest.skip("ray is not installed (pip install 'sgdlab[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=200 * 2**20)  # fmt: skip
    # the workers cannot import this test module: ship its functions (_die_on_marker) by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    fx.register()
    yield ray
    fx.unregister()
    ray.shutdown()


def _same(a, b) -> None:
    assert a.config_hash == b.config_hash and a.seed_entropy == b.seed_entropy
    assert np.array_equal(a.final_params.numpy(), b.final_params.numpy())
    assert np.array_equal(a.diverged_at, b.diverged_at)
    assert a.metric_names() == b.metric_names()
    for name in a.metrics:
        assert np.array_equal(a.metric(name)[0], b.metric(name)[0])
        assert np.array_equal(a.metric(name)[1], b.metric(name)[1], equal_nan=True)


def test_ray_results_are_bit_identical_to_local(ray):
    local = LocalExecutor().map(CONFIGS)
    done = []
    remote = RayExecutor().map(CONFIGS, done=lambda i, r: done.append(i))
    assert sorted(done) == [0, 1]
    for a, b in zip(local, remote, strict=True):
        _same(a, b)


@pytest.mark.slow
def test_lab_session_on_ray_matches_local(ray, tmp_path):
    """Same findings.json (every number), same stored metrics; the driver wrote the store."""
    studies = [fx.STUDY, "oscillation"]
    o_local = run_studies(studies, quick=True, store=tmp_path / "l.duckdb", out=tmp_path / "l")
    o_ray = run_studies(studies, quick=True, store=tmp_path / "r.duckdb", out=tmp_path / "r",
                        executor=RayExecutor())  # fmt: skip
    assert o_ray.runs_reused == 0 and o_ray.runs_total == o_local.runs_total
    fj = [json.loads((tmp_path / d / "findings.json").read_text()) for d in ("l", "r")]
    assert fj[0] == fj[1]
    with Store(tmp_path / "l.duckdb", read_only=True) as l, \
         Store(tmp_path / "r.duckdb", read_only=True) as r:  # fmt: skip
        runs_l = {x["name"]: x["run_id"] for x in l.runs(kind="lab")}
        runs_r = {x["name"]: x["run_id"] for x in r.runs(kind="lab")}
        assert sorted(runs_l) == sorted(runs_r) and len(runs_l) == o_local.runs_total
        for name, rid in runs_l.items():
            a, b = l.load_result(rid), r.load_result(runs_r[name])
            _same(a, b)


def _die_on_marker(config, threads):
    """A task whose worker process dies (as if killed) for configs named ``die``; with a
    ``once`` file, only on the first attempt."""
    name = config.get("name") or ""
    if name.startswith("die"):
        marker = Path(name.split(":", 1)[1]) if ":" in name else None
        if marker is None or not marker.exists():
            if marker is not None:
                marker.touch()
            os._exit(1)
    return run_config({k: v for k, v in config.items() if k != "name"}, threads)


def test_failed_and_killed_tasks_are_reported_and_the_others_land(ray, tmp_path):
    bad = {**CONFIGS[0], "problem": {"name": "quadratic", "dim": 0}}  # raises in the task
    killed = {**CONFIGS[0], "name": "die"}
    jobs = [("ok", CONFIGS[1]), ("killed", killed), ("ok2", CONFIGS[0])]
    ex = RayExecutor(task=_die_on_marker, max_retries=1)
    out = ex.map([CONFIGS[1], bad, killed])
    assert not isinstance(out[0], RunFailure)
    assert isinstance(out[1], RunFailure) and "dim" in out[1].error
    assert isinstance(out[2], RunFailure) and "died" in out[2].error.lower()
    db = tmp_path / "s.duckdb"
    with Store(db) as s:
        batch = dispatch(jobs, s, ex, kind="sweep")
        assert set(batch.results) == {"ok", "ok2"} and set(batch.failures) == {"killed"}
        rows = {r["name"]: r for r in s.runs(kind="sweep")}
        assert rows["killed"]["status"] == "failed" and rows["killed"]["error"]
        assert rows["ok"]["status"] == rows["ok2"]["status"] == "complete"


def test_a_killed_task_is_retried(ray, tmp_path):
    once = {**CONFIGS[1], "name": f"die:{tmp_path / 'died-once'}"}
    (res,) = RayExecutor(task=_die_on_marker, max_retries=1).map([once])
    assert not isinstance(res, RunFailure) and (tmp_path / "died-once").exists()
    _same(res, run_config(CONFIGS[1]))


def test_cli_sweep_and_lab_on_ray(ray, tmp_path):
    cfg = tmp_path / "base.yaml"
    cfg.write_text(json.dumps(CONFIGS[1]))  # JSON is YAML
    db = str(tmp_path / "s.duckdb")
    r = CliRunner().invoke(app, ["sweep", str(cfg), "--grid", "optimizer.lr=0.01,0.1",
                                 "--executor", "ray", "--store", db])  # fmt: skip
    assert r.exit_code == 0, r.output
    with Store(db, read_only=True) as s:
        assert sorted(x["name"] for x in s.runs(kind="sweep")) == [
            "base/optimizer.lr=0.01", "base/optimizer.lr=0.1"]  # fmt: skip
    r = CliRunner().invoke(app, ["lab", "run", fx.STUDY, "--executor", "ray", "--store", db,
                                 "--out", str(tmp_path / "rep")])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert r.output.strip().splitlines()[-1].endswith("index.html")


def test_executor_options():
    assert isinstance(make_executor(None, None), LocalExecutor)
    assert type(make_executor(None, 3)).__name__ == "ProcessExecutor"
    r = CliRunner().invoke(app, ["lab", "run", fx.STUDY, "--address", "1.2.3.4:6379"])
    assert r.exit_code == 2 and "--address" in r.output
    r = CliRunner().invoke(app, ["lab", "run", fx.STUDY, "--executor", "dask"])
    assert r.exit_code == 2 and "--executor" in r.output
