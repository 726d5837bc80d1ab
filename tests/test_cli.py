"""The command line: run / runs / show / problems / optimizers and bad-config handling."""

import re

import pytest
import yaml
from typer.testing import CliRunner

from sgdlab.cli import app
from sgdlab.store import Store

runner = CliRunner()


def write(tmp_path, **over):
    c = {
        "problem": {"name": "quadratic", "dim": 3, "n": 40},
        "optimizer": {"name": "sgd", "lr": 0.1},
        "batch": {"size": 8, "sampling": "without_replacement"},
        "chains": 4,
        "steps": 30,
        "record": {"every": 10},
    }
    c.update(over)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(c))
    return path


def test_run_runs_show(tmp_path):
    store = tmp_path / "r.duckdb"
    res = runner.invoke(app, ["run", str(write(tmp_path)), "--store", str(store)])
    assert res.exit_code == 0, res.output
    run_id = re.search(r"run (\w+) complete", res.output).group(1)
    assert str(store) in res.output
    res = runner.invoke(app, ["runs", "--store", str(store)])
    assert res.exit_code == 0 and run_id in res.output
    res = runner.invoke(app, ["show", run_id[:6], "--store", str(store), "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / f"{run_id}-suboptimality.png").exists()


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"optimizer": {"name": "sgd", "lr": -0.1}}, "optimizer.lr"),
        ({"optimizer": {"name": "sgd", "lr": 0.0}}, "optimizer.lr"),
        ({"batch": {"size": 41, "sampling": "without_replacement"}}, "batch.size"),
        ({"chians": 3}, "chians"),
        ({"problem": {"name": "quadratik"}}, "problem.name"),
        ({"optimizer": {"name": "sgd", "lr": 0.1, "momentun": 0.9}}, "optimizer.momentun"),
    ],
)
def test_bad_config_exit_2_and_nothing_written(tmp_path, over, field):
    store = tmp_path / "r.duckdb"
    res = runner.invoke(app, ["run", str(write(tmp_path, **over)), "--store", str(store)])
    assert res.exit_code == 2, res.output
    assert field in res.output
    assert len(res.output.strip().splitlines()) == 1
    if store.exists():
        with Store(store, read_only=True) as db:
            assert db.runs() == []


def test_unknown_dataset_exit_2(tmp_path):
    store = tmp_path / "r.duckdb"
    path = write(tmp_path, problem={"name": "logistic_regression", "dataset": "mnist_typo"})
    res = runner.invoke(app, ["run", str(path), "--store", str(store)])
    assert res.exit_code == 2 and "problem.dataset" in res.output


def test_problems_and_optimizers_list():
    res = runner.invoke(app, ["problems"])
    assert res.exit_code == 0 and "quadratic" in res.output and "noise_std" in res.output
    res = runner.invoke(app, ["optimizers"])
    assert res.exit_code == 0 and "adam" in res.output and "inverse_time" in res.output


def test_show_unknown_run(tmp_path):
    store = tmp_path / "r.duckdb"
    runner.invoke(app, ["run", str(write(tmp_path)), "--store", str(store)])
    res = runner.invoke(app, ["show", "nope", "--store", str(store)])
    assert res.exit_code == 1 and "no run" in res.output


def test_show_lists_only_the_settings_of_the_chosen_dataset(tmp_path):
    store = tmp_path / "r.duckdb"
    cfg = write(tmp_path, problem={"name": "logistic_regression", "dataset": "iris"}, steps=5)
    res = runner.invoke(app, ["run", str(cfg), "--store", str(store)])
    run_id = re.search(r"run (\w+) complete", res.output).group(1)
    res = runner.invoke(app, ["show", run_id, "--store", str(store), "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "dataset=iris" in res.output
    assert "n_features" not in res.output and "separation" not in res.output  # synthetic only


def test_show_draws_the_dashboard_of_a_monitor_run(tmp_path):
    import _report_fixtures as fx

    store = tmp_path / "s.duckdb"
    rid = fx.monitor_run(store, steps=12)
    res = runner.invoke(app, ["show", rid, "--store", str(store), "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / f"{rid}-dashboard.png").stat().st_size > 10_000
    assert "dashboard:" in res.output and f"{rid}-dashboard.png" in res.output.replace("\n", "")


def test_show_draws_no_dashboard_for_an_engine_run(tmp_path):
    store = tmp_path / "r.duckdb"
    assert runner.invoke(app, ["run", str(write(tmp_path)), "--store", str(store)]).exit_code == 0
    rid = Store(store, read_only=True).runs()[0]["run_id"]
    res = runner.invoke(app, ["show", rid, "--store", str(store), "--out", str(tmp_path)])
    assert res.exit_code == 0 and "dashboard:" not in res.output


def test_show_lists_what_a_monitor_switched_off(tmp_path):
    import warnings

    import torch

    import sgdlab

    def broken_loss(out, y):
        raise RuntimeError("boom: this loss cannot be measured")

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    store = tmp_path / "s.duckdb"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with sgdlab.Monitor(model, broken_loss, opt, store=store, noise_every=2) as mon:
            for _ in range(4):
                x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
                loss = torch.nn.functional.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                mon.step(x, y, loss)
    rid = Store(store, read_only=True).runs()[0]["run_id"]
    res = runner.invoke(app, ["show", rid, "--store", str(store), "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "switched off" in text and "noise (step 0)" in text and "boom" in text
