"""``sgdlab sweep``: grid parsing and expansion, one-line errors naming the grid key (exit 2,
nothing stored), runs stored as <name>/<point> and reused by config hash, failures reported.

Covers: ``sgdlab.lab.sweep``, ``sgdlab.lab.dispatch``, ``sgdlab.cli.sweep``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from sgdlab.cli import app
from sgdlab.errors import ConfigError
from sgdlab.lab.dispatch import dispatch
from sgdlab.lab.executor import LocalExecutor
from sgdlab.lab.sweep import grid_points, parse_grid, set_key
from sgdlab.store import Store

BASE = {"problem": {"name": "quadratic", "dim": 3}, "optimizer": {"name": "sgd", "lr": 0.05},
        "batch": {"size": 2, "sampling": "stream"}, "chains": 4, "steps": 30,
        "record": {"every": 5}, "seed": 3, "dtype": "float64"}  # fmt: skip


@pytest.fixture
def base(tmp_path):
    path = tmp_path / "base.yaml"
    path.write_text(json.dumps(BASE))  # JSON is YAML
    return path


def test_parse_grid_reads_yaml_scalars():
    axes = parse_grid(["optimizer.lr=0.01, 0.1", "batch.size=8,64", "record.average=true,false",
                       "optimizer.name=sgd,momentum"])  # fmt: skip
    assert axes == [("optimizer.lr", [0.01, 0.1]), ("batch.size", [8, 64]),
                    ("record.average", [True, False]),
                    ("optimizer.name", ["sgd", "momentum"])]  # fmt: skip


def test_grid_points_are_the_cartesian_product_in_option_order():
    points = grid_points(BASE, parse_grid(["optimizer.lr=0.01,0.1", "batch.size=1,2"]))
    assert [p.name for p in points] == [
        "optimizer.lr=0.01,batch.size=1", "optimizer.lr=0.01,batch.size=2",
        "optimizer.lr=0.1,batch.size=1", "optimizer.lr=0.1,batch.size=2",
    ]  # fmt: skip
    assert points[3].config["optimizer"] == {"name": "sgd", "lr": 0.1}
    assert points[3].config["batch"]["size"] == 2 and BASE["batch"]["size"] == 2
    assert points[0].values == (0.01, 1)
    # a section written as a bare name becomes a mapping; new sections are created
    assert set_key({"schedule": "constant"}, "schedule.k", 1)["schedule"] == {
        "name": "constant", "k": 1}  # fmt: skip
    assert set_key({}, "clip.norm", 1.0) == {"clip": {"norm": 1.0}}


@pytest.mark.parametrize(
    ("spec", "field", "text"),
    [
        ("optimizer.lrr=0.1", "--grid optimizer.lrr", "unknown key 'lrr'; did you mean 'lr'"),
        ("optimiser.lr=0.1", "--grid optimiser.lr", "did you mean 'optimizer'"),
        ("optimizer.lr=", "--grid optimizer.lr", "empty list of values"),
        ("optimizer.lr= , ", "--grid optimizer.lr", "empty list of values"),
        ("optimizer.lr=0.1,,0.2", "--grid optimizer.lr", "empty value"),
        ("batch.size=abc", "--grid batch.size", "value 'abc'"),
        ("batch.size=8,0", "--grid batch.size", "value 0"),
        ("optimizer.lr=0.1,fast", "--grid optimizer.lr", "value 'fast'"),
        ("seed=1,1", "--grid seed", "listed twice"),
        ("chains.x=1", "--grid chains.x", "chains is a value, not a section"),
        ("optimizer.lr", "--grid", "is not KEY=V1,V2"),
        ("=1,2", "--grid", "is not KEY=V1,V2"),
        ("optimizer..lr=1", "--grid optimizer..lr", "dotted config key"),
    ],
)
def test_bad_grid_specs_name_the_key(spec, field, text):
    with pytest.raises(ConfigError) as exc:
        grid_points(BASE, parse_grid([spec]))
    assert exc.value.field == field and text in exc.value.message


def test_a_key_given_twice_and_no_grid_are_errors():
    with pytest.raises(ConfigError, match="given twice"):
        parse_grid(["seed=1", "seed=2"])
    with pytest.raises(ConfigError, match="at least one"):
        grid_points(BASE, [])
    # a point whose config fails on a key outside the grid names the point
    base = {**BASE, "optimizer": {"name": "momentum", "lr": 0.1, "momentum": 0.9}}
    with pytest.raises(ConfigError) as exc:
        grid_points(base, parse_grid(["optimizer.name=momentum,sgd"]))
    assert exc.value.field == "--grid optimizer.name=sgd"
    assert "optimizer.momentum: unknown key" in exc.value.message
    with pytest.raises(ConfigError) as exc:
        parse_grid(["optimizer.lr=[0.1"])
    assert exc.value.field == "--grid optimizer.lr" and "not valid YAML" in exc.value.message


@pytest.mark.parametrize("spec", ["optimizer.lrr=0.1", "optimizer.lr=", "batch.size=abc"])
def test_cli_bad_grid_exit_2_one_line_nothing_stored(base, tmp_path, spec):
    db = tmp_path / "s.duckdb"
    r = CliRunner().invoke(app, ["sweep", str(base), "--grid", spec, "--store", str(db)])
    assert r.exit_code == 2
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --grid ")
    assert not db.exists()


def test_cli_sweep_stores_and_reuses_runs(base, tmp_path):
    db = str(tmp_path / "s.duckdb")
    args = ["sweep", str(base), "--grid", "optimizer.lr=0.01,0.1", "--grid", "batch.size=1,2",
            "--store", db, "--name", "sw"]  # fmt: skip
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "4 runs (0 reused" in r.output and "next: sgdlab report" in r.output
    with Store(db, read_only=True) as s:
        rows = s.runs(kind="sweep")
        assert sorted(x["name"] for x in rows)[0] == "sw/optimizer.lr=0.01,batch.size=1"
        first = {x["name"]: s.load_result(x["run_id"]) for x in rows}
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0 and "4 runs (4 reused" in r.output
    with Store(db, read_only=True) as s:
        assert len(s.runs(kind="sweep")) == 4  # reused, not stored again
    # a point's run is the base config with its values: the same as running it directly
    from sgdlab.lab.executor import run_config

    direct = run_config({**BASE, "optimizer": {"name": "sgd", "lr": 0.1},
                         "batch": {"size": 2, "sampling": "stream"}})  # fmt: skip
    got = first["sw/optimizer.lr=0.1,batch.size=2"]
    assert np.array_equal(got.final_params.numpy(), direct.final_params.numpy())


def test_dispatch_counts_every_run_and_stores_failures(tmp_path):
    events = []
    jobs = [("a", BASE), ("b", {**BASE, "seed": 4})]
    with Store(tmp_path / "s.duckdb") as s:
        first = dispatch(jobs, s, LocalExecutor(), kind="sweep",
                         progress=lambda *e: events.append(e))  # fmt: skip
        assert events[0] == ("reused", "", 0, 2) and events[-1][2:] == (2, 2)
        events.clear()
        again = dispatch(jobs, s, LocalExecutor(), kind="sweep",
                         progress=lambda *e: events.append(e))  # fmt: skip
        assert again.reused == 2 and events == [("reused", "", 2, 2)]
        assert list(again.results) == ["a", "b"] and first.total == again.total == 2

    class Flaky(LocalExecutor):  # the second run fails inside the executor
        def map(self, configs, done=None):
            from sgdlab.lab.executor import RunFailure

            out = super().map(configs[:1], done)
            if done:
                done(1, RunFailure("RuntimeError: worker lost"))
            return [*out, RunFailure("RuntimeError: worker lost")]

    with Store(tmp_path / "f.duckdb") as s:
        res = dispatch(jobs, s, Flaky(), kind="sweep")
        assert set(res.results) == {"a"} and res.failures == {"b": "RuntimeError: worker lost"}
        rows = {x["name"]: x for x in s.runs(kind="sweep")}
        assert rows["a"]["status"] == "complete" and rows["b"]["status"] == "failed"
        assert rows["b"]["error"] == "RuntimeError: worker lost"
