"""Interrupts, the Monitor, threads and the instrument API under misuse (issue 16, defects 3,
4, 8 and 10)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import sgdlab
from sgdlab.cli import app
from sgdlab.measure.noise import gradient_noise, per_sample_stats
from sgdlab.store import Store

runner = CliRunner()
POSIX = pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")


# ------------------------------------------------------------------ defect 3: interrupts
def _interrupted_cli(tmp_path, sig: str, second: bool) -> tuple[subprocess.CompletedProcess, str]:
    """`sgdlab run` in a subprocess whose commit is interrupted by ``sig`` while DuckDB runs
    a query (a long query is slipped into the commit's transaction), optionally with a
    second signal while the run is being marked failed."""
    path = tmp_path / "s.duckdb"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("problem: {name: quadratic, dim: 2}\nbatch: {size: 2, sampling: stream}\n"
                   "chains: 4\nsteps: 20\n")  # fmt: skip
    code = textwrap.dedent(f"""
        import os, signal, threading
        from sgdlab.store import Store
        insert, fail = Store._insert_metrics, Store.fail_run
        def slow_insert(con, *a, **k):
            insert(con, *a, **k)
            threading.Timer(0.3, os.kill, (os.getpid(), signal.{sig})).start()
            con.execute("SELECT sum(i * i) FROM range(100000000000) t(i)").fetchall()
        def interrupted_fail(self, *a, **k):
            if {second!r}:
                os.kill(os.getpid(), signal.{sig})
            return fail(self, *a, **k)
        Store._insert_metrics = staticmethod(slow_insert)
        Store.fail_run = interrupted_fail
        from sgdlab.cli import main
        main()
    """)
    proc = subprocess.run(
        [sys.executable, "-c", code, "run", str(cfg), "--store", str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    with Store(path, read_only=True) as db:
        (row,) = db.runs()
    return proc, row


@POSIX
@pytest.mark.timeout(150)
@pytest.mark.parametrize(("sig", "code", "word", "stored"), [
    ("SIGINT", 130, "interrupted", "KeyboardInterrupt"),
    ("SIGTERM", 143, "terminated", "Terminated"),
])  # fmt: skip
def test_interrupt_during_the_commit(tmp_path, sig, code, word, stored):
    """Regression: Ctrl-C or SIGTERM while the run was committed exited 1 with a 94-line
    traceback and stored a DuckDB message as the error."""
    proc, row = _interrupted_cli(tmp_path, sig, second=False)
    assert proc.returncode == code, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and word in lines[0], proc.stderr
    assert row["status"] == "failed" and row["error"].startswith(stored), row["error"]
    assert "write to the results store" in row["error"]


@POSIX
@pytest.mark.timeout(150)
def test_second_interrupt_still_marks_the_run_failed(tmp_path):
    """Regression: a second Ctrl-C while the run was being marked failed left it `running`
    forever."""
    proc, row = _interrupted_cli(tmp_path, "SIGINT", second=True)
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr
    assert row["status"] == "failed", row


def test_api_interrupt_marks_failed_and_reraises(tmp_path, monkeypatch):
    import sgdlab.api as api

    def interrupted(plan, progress=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "execute", interrupted)
    path = tmp_path / "s.duckdb"
    with pytest.raises(KeyboardInterrupt):
        sgdlab.run({"problem": {"name": "quadratic", "dim": 2}, "steps": 3}, store=path)
    with Store(path, read_only=True) as db:
        (row,) = db.runs()
    assert row["status"] == "failed" and row["error"] == "KeyboardInterrupt: Ctrl-C"


# ------------------------------------------------------------------ defect 4: the Monitor
def _model():
    torch.manual_seed(0)  # test-side initialisation only
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))


def _steps(mon, model, n, sleep=0.0):
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(1)
    for _ in range(n):
        x, y = torch.randn(8, 3, generator=g), torch.randn(8, 1, generator=g)
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.step(x, y, loss)
        if sleep:
            time.sleep(sleep)


def test_monitor_without_with_warns_and_stores(tmp_path):
    """Regression: used without `with`, a Monitor wrote nothing and said nothing."""
    path = tmp_path / "m.duckdb"
    model = _model()
    mon = sgdlab.Monitor(model, nn.MSELoss(), store=path, every=1, noise_every=0)
    with pytest.warns(RuntimeWarning, match="outside `with"):
        _steps(mon, model, 5)
    with Store(path, read_only=True) as db:
        assert db.run(mon.run_id)["status"] == "running"
    mon.close()
    with Store(path, read_only=True) as db:
        assert db.run(mon.run_id)["status"] == "complete"
        assert db.metric(mon.run_id, "loss")[1].shape == (1, 5)


def test_reused_monitor_is_a_clear_error(tmp_path):
    """Regression: entering a Monitor twice raised a raw DuckDB constraint error."""
    model = _model()
    mon = sgdlab.Monitor(model, nn.MSELoss(), store=tmp_path / "m.duckdb", noise_every=0)
    with mon:
        _steps(mon, model, 2)
    with pytest.raises(RuntimeError, match="already recorded run"):
        with mon:
            pass
    with pytest.raises(RuntimeError, match="closed"):
        mon.step(torch.zeros(2, 3), torch.zeros(2, 1))
    with pytest.raises(ValueError, match="flush_every"):
        sgdlab.Monitor(model, nn.MSELoss(), flush_every=0)


def test_monitor_writes_as_it_goes_and_can_be_read_live(tmp_path):
    """Regression: a Monitor wrote everything at the end (a kill -9 after 30,000 steps left 0
    rows) and held the store locked meanwhile. Now metrics land every ``flush_every``
    seconds and `sgdlab show` reads the live run."""
    path = tmp_path / "m.duckdb"
    model = _model()
    with sgdlab.Monitor(model, nn.MSELoss(), store=path, every=1, noise_every=0,
                        flush_every=0.05) as mon:  # fmt: skip
        _steps(mon, model, 6, sleep=0.03)
        with Store(path, read_only=True) as db:
            steps, _ = db.metric(mon.run_id, "loss")
            assert db.run(mon.run_id)["status"] == "running"
        assert len(steps) >= 1  # flushed while the run goes on
        shown = runner.invoke(app, ["show", mon.run_id, "--store", str(path)])
        assert shown.exit_code == 0 and "still going" in shown.output, shown.output
        _steps(mon, model, 2)
    with Store(path, read_only=True) as db:
        steps, loss = db.metric(mon.run_id, "loss")
    assert steps.tolist() == list(range(8)) and np.array_equal(loss, mon.metrics["loss"][1])


def test_failed_monitor_run_keeps_the_flushed_metrics(tmp_path):
    path = tmp_path / "m.duckdb"
    model = _model()
    with pytest.raises(ZeroDivisionError):
        with sgdlab.Monitor(model, nn.MSELoss(), store=path, every=1, noise_every=0) as mon:
            _steps(mon, model, 3)
            1 / 0  # noqa: B018
    with Store(path, read_only=True) as db:
        row = db.run(mon.run_id)
        assert row["status"] == "failed" and "ZeroDivisionError" in row["error"]
        assert db.metric(mon.run_id, "loss")[1].shape == (1, 3)


# ------------------------------------------------------------------ defect 8: threads
def test_run_uses_the_threads_asked_for(monkeypatch, tmp_path):
    """Regression: `sgdlab run` used torch's default thread count (all cores), 4–55× slower
    on a loaded 2-core machine; now 1 by default, `--threads` to change, restored after."""
    import sgdlab.api as api

    seen = []
    real = api.execute

    def spy(plan, progress=None):
        seen.append(torch.get_num_threads())
        return real(plan, progress)

    monkeypatch.setattr(api, "execute", spy)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("problem: {name: quadratic, dim: 2}\nchains: 2\nsteps: 3\n"
                   "batch: {size: 2, sampling: stream}\n")  # fmt: skip
    before = torch.get_num_threads()
    store = str(tmp_path / "s.duckdb")
    assert runner.invoke(app, ["run", str(cfg), "--store", store]).exit_code == 0
    assert runner.invoke(app, ["run", str(cfg), "--store", store, "--threads", "2"]).exit_code == 0
    assert seen == [1, 2] and torch.get_num_threads() == before
    out = runner.invoke(app, ["run", str(cfg), "--threads", "0"])
    assert out.exit_code == 2 and "--threads" in out.output
    with pytest.raises(sgdlab.ConfigError, match="threads"):
        sgdlab.run({"problem": {"name": "quadratic"}, "steps": 2}, threads=0)


def test_check_validates_without_running_or_storing(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("problem: {name: quadratic, dim: 2}\nchains: 2\nsteps: 3\n")
    store = tmp_path / "s.duckdb"
    out = runner.invoke(app, ["run", str(cfg), "--check", "--store", str(store)])
    assert out.exit_code == 0 and "config OK" in out.output and "memory" in out.output
    assert not store.exists()


# ------------------------------------------------------------------ defect 10: the API
NET = nn.Linear(3, 1)
X, Y = torch.randn(8, 3, generator=torch.Generator().manual_seed(0)), torch.zeros(8, 1)


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: gradient_noise(nn.Linear(3, 1).requires_grad_(False), nn.MSELoss(), X, Y),
         "no trainable parameters"),
        (lambda: gradient_noise(NET, nn.MSELoss(), X, Y, batch_size=0), "batch_size"),
        (lambda: gradient_noise(NET, nn.MSELoss(), X, Y, batch_size=-3), "batch_size"),
        (lambda: gradient_noise(NET, nn.MSELoss(), X, Y, batch_size=2.5), "batch_size"),
        (lambda: gradient_noise(NET, nn.MSELoss(), X, Y[:5]), "targets has 5 rows"),
        (lambda: gradient_noise(NET, nn.MSELoss(), (), Y), "inputs is empty"),
        (lambda: gradient_noise(NET, nn.MSELoss(), torch.tensor(1.0), Y), "scalar"),
        (lambda: gradient_noise(NET, nn.MSELoss(), X, Y, population=3), "population"),
        (lambda: per_sample_stats(NET, nn.MSELoss(), X, Y[:5]), "targets has 5 rows"),
    ],
)  # fmt: skip
def test_noise_api_arguments_are_clear_value_errors(call, needle):
    """Regression: RuntimeError from autograd, AssertionError, IndexError, TypeError."""
    with pytest.raises(ValueError, match=needle):
        call()


def test_nan_inputs_give_nan_with_a_warning():
    """Regression: NaN inputs silently gave NaN statistics."""
    x = X.clone()
    x[0, 0] = float("nan")
    with pytest.warns(RuntimeWarning, match="not finite"):
        stats = gradient_noise(NET, nn.MSELoss(), x, Y)
    assert np.isnan(stats.trace_cov)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # finite inputs: no warning
        gradient_noise(NET, nn.MSELoss(), X, Y)


@POSIX
def test_cli_signal_tracking_restores_handlers():
    """The CLI's handlers are installed for a command and removed after it."""
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    assert runner.invoke(app, ["runs", "--store", "/nonexistent/x.duckdb"]).exit_code == 1
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
