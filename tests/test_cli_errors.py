"""Bad input and interruptions on the command line: one line naming the field, a non-zero exit,
no traceback, nothing half-written.

Covers: ``sgdlab.cli._util`` (util), the option checks of ``sgdlab.cli.runs`` and
``sgdlab.cli.lab``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from rich.console import Console
from typer.testing import CliRunner

import sgdlab
from sgdlab.cli import app
from sgdlab.cli.lab import findings_table
from sgdlab.lab.findings import Finding
from sgdlab.store import Store

runner = CliRunner()
QUAD = {
    "problem": {"name": "quadratic", "dim": 3},
    "optimizer": {"name": "sgd", "lr": 0.1},
    "batch": {"size": 4, "sampling": "stream"},
    "chains": 2,
    "steps": 20,
}


def one_error_line(out, code: int, *needles: str) -> None:
    assert out.exit_code == code, out.output
    assert "Traceback" not in out.output
    lines = [ln for ln in out.output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, out.output
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.fixture
def stored(tmp_path):
    path = tmp_path / "s.duckdb"
    return path, sgdlab.run(QUAD, store=path).run_id


def test_config_that_is_a_folder_or_not_text(tmp_path):
    one_error_line(runner.invoke(app, ["run", str(tmp_path)]), 2, "config", "folder")
    binary = tmp_path / "c.yaml"
    binary.write_bytes(b"\xff\xfe\x00problem")
    one_error_line(runner.invoke(app, ["run", str(binary)]), 2, "config", "UTF-8")


@pytest.mark.parametrize(
    ("yaml_text", "needles"),
    [
        ("problem: {name: quadratic}\nchains: true\n", ("chains", "number")),
        ("problem: {name: quadratic, dim: false}\n", ("problem.dim", "number")),
        ("problem: {name: quadratic, mu: 2, L: 1}\n", ("problem", "mu")),
        ("problem: {name: quadratic}\nschedule: {name: step}\n", ("step_size", "required")),
    ],
)
def test_bad_config_values(tmp_path, yaml_text, needles):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text)
    store = tmp_path / "s.duckdb"
    one_error_line(runner.invoke(app, ["run", str(cfg), "--store", str(store)]), 2, *needles)
    assert not store.exists()  # nothing written


def test_store_and_output_folders_that_cannot_be_made(tmp_path, stored):
    path, rid = stored
    blocker = tmp_path / "afile"
    blocker.write_text("")
    out = runner.invoke(app, ["run", "--store", str(blocker / "x.duckdb")])
    one_error_line(out, 1, "results store")
    for cmd in ("show", "landscape"):
        out = runner.invoke(app, [cmd, rid, "--store", str(path), "--out", str(blocker / "f")])
        one_error_line(out, 2, "--out")
        assert "median" not in out.output  # refused before anything is printed


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["sharpness", "{rid}", "--rho", "-1"], "--rho"),
        (["sharpness", "{rid}", "--epsilon", "0"], "--epsilon"),
        (["sharpness", "{rid}", "--tol", "2"], "--tol"),
        (["landscape", "{rid}", "--span", "0"], "--span"),
        (["landscape", "{rid}", "--span", "inf"], "--span"),
        (["runs", "--status", "done"], "--status"),
        (["runs", "--limit", "0"], "--limit"),
        (["lab", "run", "rates", "--all"], "--all"),
        (["lab", "run", "rates", "--workers", "0"], "--workers"),
    ],
)
def test_bad_option_values(stored, args, option):
    path, rid = stored
    with Store(path, read_only=True) as db:
        before = len(db.measurements(rid))
    argv = [a.replace("{rid}", rid) for a in args] + ["--store", str(path)]
    one_error_line(runner.invoke(app, argv), 2, option)
    with Store(path, read_only=True) as db:
        assert len(db.measurements(rid)) == before


def test_all_chains_diverged(tmp_path):
    path = tmp_path / "s.duckdb"
    rid = sgdlab.run({**QUAD, "optimizer": {"name": "sgd", "lr": 50.0}, "steps": 200},
                     store=path).run_id  # fmt: skip
    for cmd in ("sharpness", "landscape"):
        out = runner.invoke(app, [cmd, rid, "--store", str(path)])
        one_error_line(out, 1, "diverged")
    out = runner.invoke(app, ["advise", rid, "--store", str(path)])
    assert out.exit_code == 0 and "instability" in out.output
    assert "no noise statistics" in out.output and "Warning" not in out.output


def test_findings_table_keeps_bracketed_labels():
    f = Finding(
        study="schedules", claim="c", quantity="final E F(w_T) − F* [inverse_sqrt: 1/√(t + 1)]",
        measured=1.0, ci_low=0.5, ci_high=1.5, predicted=None, tolerance=0.0,
        verdict="disagrees", kind="article", figure=None, details={},
    )  # fmt: skip
    console = Console(record=True, width=200)
    console.print(findings_table([f]))
    assert "[inverse_sqrt: 1/√(t + 1)]" in console.export_text()


def _cli(*args: str, **kw):
    return subprocess.Popen(
        [sys.executable, "-c", "from sgdlab.cli import main; main()", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw,
    )  # fmt: skip


@pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
def test_running_run_is_visible_and_sigterm_marks_it_failed(tmp_path):
    """A long run is stopped with SIGTERM: exit 143, one line, the run marked failed with the
    reason. While it runs, the store is not locked: `sgdlab runs` lists it as running and
    `sgdlab show` reads it (regression: both were refused until the run ended)."""
    cfg = tmp_path / "long.yaml"
    cfg.write_text(
        "problem: {name: quadratic, dim: 200}\nchains: 64\nsteps: 10000000\n"
        "batch: {size: 64, sampling: stream}\nrecord: {every: 100000}\n"
    )
    path = tmp_path / "s.duckdb"
    proc = _cli("run", str(cfg), "--store", str(path))
    listed = None
    try:
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            if path.exists():
                listed = runner.invoke(app, ["runs", "--store", str(path)])
                if listed.exit_code == 0 and "running" in listed.output:
                    break
            time.sleep(0.5)
        assert listed is not None and listed.exit_code == 0, listed and listed.output
        assert "running" in listed.output and "stale" not in listed.output
        with Store(path, read_only=True) as db:
            (row,) = db.runs()
        shown = runner.invoke(app, ["show", row["run_id"], "--store", str(path)])
        assert shown.exit_code == 0 and "still going" in shown.output, shown.output
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr
    assert "terminated" in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    with Store(path, read_only=True) as db:
        (row,) = db.runs()
        assert row["status"] == "failed"
        assert "Terminated" in db.run(row["run_id"])["error"]
    out = runner.invoke(app, ["show", row["run_id"], "--store", str(path)])
    assert out.exit_code == 0 and "Terminated" in out.output and "no metrics" in out.output


def test_version_and_short_help():
    out = runner.invoke(app, ["--version"])
    assert out.exit_code == 0 and out.output.strip() == f"sgdlab {sgdlab.__version__}"
    out = runner.invoke(app, ["-h"])
    assert out.exit_code == 0 and "Usage" in out.output


def test_a_duckdb_file_that_is_not_a_store(tmp_path):
    import duckdb

    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t (x INTEGER)")
    con.close()
    for args in (["runs"], ["show", "abc"], ["advise", "abc"]):
        out = runner.invoke(app, [*args, "--store", str(path)])
        one_error_line(out, 1, "not an sgdlab results store")
