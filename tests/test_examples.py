"""Each example runs in its short form (``--quick``) and leaves a complete Monitor run with
its noise statistics in the store. The examples are run in this process (their ``main``),
as ``python examples/X.py --quick --store S`` would run them."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from _optional import need, needs_monitor_interface
from sgdlab.store import Store

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_stored(store, out, capsys, noise=True):
    run = Store(store, read_only=True).run(out["run_id"])
    assert run["status"] == "complete" and run["kind"] == "monitor"
    metrics = Store(store, read_only=True).metric_names(run["run_id"])
    assert {"loss", "grad_norm", "lr"} <= set(metrics)
    if noise:
        assert {"trace_cov", "noise_scale"} <= set(metrics)
        assert math.isfinite(out["summary"]["trace_cov"])
    printed = capsys.readouterr().out
    assert f"run {out['run_id']}" in printed and f"sgdlab show {out['run_id']}" in printed
    return printed


@pytest.mark.slow
def test_char_gpt(tmp_path, capsys):
    store = tmp_path / "s.duckdb"
    out = _load("char_gpt").main(["--quick", "--store", str(store)])
    printed = _check_stored(store, out, capsys)
    assert out["summary"]["loss"] < math.log(53)  # learned something in 30 steps
    assert "sample: " in printed and "MENENIUS:" in printed


def test_groupnorm_cnn_digits(tmp_path, capsys):
    store = tmp_path / "s.duckdb"
    out = _load("groupnorm_cnn_digits").main(["--quick", "--store", str(store)])
    _check_stored(store, out, capsys)
    assert out["accuracy"] > 0.8  # one epoch
    assert math.isfinite(out["summary"]["temperature"])


@pytest.mark.slow
@needs_monitor_interface
def test_lightning_callback(tmp_path, capsys):
    need("lightning.pytorch", "lightning")
    store = tmp_path / "s.duckdb"
    out = _load("lightning_callback").main(["--quick", "--store", str(store),
                                            "--logs", str(tmp_path / "logs")])  # fmt: skip
    _check_stored(store, out, capsys)
    assert "sgdlab/loss" in Path(out["metrics_file"]).read_text().splitlines()[0]


@pytest.mark.slow
@needs_monitor_interface
def test_hf_trainer_callback(tmp_path, capsys):
    need("accelerate")
    need("transformers", "transformers accelerate")
    store = tmp_path / "s.duckdb"
    out = _load("hf_trainer_callback").main(["--quick", "--store", str(store)])
    _check_stored(store, out, capsys)
