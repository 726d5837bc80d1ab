"""TensorBoard: ``sgdlab export RUN_ID --tensorboard DIR`` and the live ``TensorBoardSink``.

The event files are read back with TensorBoard's own reader (``EventAccumulator``) and every
scalar compared with the store: TensorBoard keeps float32, so each value must equal the
stored float64 rounded to float32 — exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import _report_fixtures as fx
from _optional import need, needs_monitor_interface
from sgdlab.cli import app
from sgdlab.monitor import Monitor
from sgdlab.store import Store

runner = CliRunner()


def _read(folder):
    """``{tag: (steps, values)}`` of the event files in one folder."""
    acc = need("tensorboard.backend.event_processing.event_accumulator", "tensorboard")
    ea = acc.EventAccumulator(str(folder), size_guidance={acc.SCALARS: 0, acc.TENSORS: 0})
    ea.Reload()
    out = {}
    for tag in ea.Tags()["scalars"]:
        events = ea.Scalars(tag)
        out[tag] = (np.array([e.step for e in events]), np.array([e.value for e in events]))
    return out, ea


def _as_float32(values):
    return np.asarray(values, dtype=np.float64).astype(np.float32).astype(np.float64)


@pytest.fixture(scope="module")
def monitor_store(tmp_path_factory):
    need("torch.utils.tensorboard", "tensorboard")
    store = tmp_path_factory.mktemp("tb") / "s.duckdb"
    return store, fx.monitor_run(store, steps=24)


def test_export_a_monitor_run_reads_back_equal(monitor_store, tmp_path):
    store, rid = monitor_store
    res = runner.invoke(app, ["export", rid[:6], "--tensorboard", str(tmp_path / "tb"),
                              "--store", str(store)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "tensorboard --logdir" in res.output
    scalars, ea = _read(tmp_path / "tb" / rid)
    stored = Store(store, read_only=True).metrics(rid)
    assert {"loss", "grad_norm", "lr", "trace_cov"} <= set(scalars)
    n_points = 0
    for name, (steps, values) in stored.items():
        keep = np.isfinite(values[0])
        if not keep.any():
            assert name not in scalars  # nothing finite to draw
            continue
        tb_steps, tb_values = scalars[name]
        np.testing.assert_array_equal(tb_steps, steps[keep])
        np.testing.assert_array_equal(tb_values, _as_float32(values[0][keep]))
        n_points += int(keep.sum())
    assert f"{n_points} points" in res.output
    text = ea.Tensors("sgdlab/config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert text.startswith(f"run {rid} (monitor, complete)") and '"kind": "monitor"' in text


def test_export_an_engine_run_writes_median_and_band(tmp_path):
    need("torch.utils.tensorboard", "tensorboard")
    store = tmp_path / "s.duckdb"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("problem: {name: quadratic, dim: 3}\noptimizer: {name: sgd, lr: 0.1}\n"
                   "chains: 5\nsteps: 20\nrecord: {every: 5}\nseed: 1\n")  # fmt: skip
    res = runner.invoke(app, ["run", str(cfg), "--store", str(store)])
    assert res.exit_code == 0, res.output
    rid = Store(store, read_only=True).runs()[0]["run_id"]
    res = runner.invoke(app, ["export", rid, "--tensorboard", str(tmp_path / "tb"),
                              "--store", str(store)])  # fmt: skip
    assert res.exit_code == 0, res.output
    steps, values = Store(store, read_only=True).metric(rid, "suboptimality")
    for sub, expected in (("median", np.median(values, axis=0)),
                          ("p10", np.percentile(values, 10, axis=0)),
                          ("p90", np.percentile(values, 90, axis=0))):  # fmt: skip
        scalars, _ = _read(tmp_path / "tb" / rid / sub)
        np.testing.assert_array_equal(scalars["suboptimality"][0], steps)
        np.testing.assert_array_equal(scalars["suboptimality"][1], _as_float32(expected))
    res = runner.invoke(app, ["export", rid, "--tensorboard", str(tmp_path / "all"),
                              "--store", str(store), "--all-chains"])  # fmt: skip
    assert res.exit_code == 0, res.output
    for k in range(5):
        scalars, _ = _read(tmp_path / "all" / rid / f"chain{k:03d}")
        np.testing.assert_array_equal(scalars["suboptimality"][1], _as_float32(values[k]))


def test_unknown_run_is_one_line_and_writes_nothing(monitor_store, tmp_path):
    store, _ = monitor_store
    out = tmp_path / "tb"
    res = runner.invoke(app, ["export", "nope", "--tensorboard", str(out), "--store", str(store)])
    assert res.exit_code == 1
    assert "no run 'nope'" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not out.exists()


def test_unwritable_folder_is_one_line_exit_2(monitor_store, tmp_path):
    store, rid = monitor_store
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    res = runner.invoke(app, ["export", rid, "--tensorboard", str(blocker / "tb"),
                              "--store", str(store)])  # fmt: skip
    assert res.exit_code == 2
    assert "--tensorboard" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_missing_tensorboard_option_is_a_usage_error(monitor_store):
    store, rid = monitor_store
    res = runner.invoke(app, ["export", rid, "--store", str(store)])
    assert res.exit_code == 2 and "--tensorboard" in res.output


def test_sink_writes_what_it_is_given(tmp_path):
    need("torch.utils.tensorboard", "tensorboard")
    from sgdlab.integrations.tensorboard import TensorBoardSink

    with TensorBoardSink(tmp_path, prefix="sgdlab/") as sink:
        sink(0, {"loss": 1.5, "noise_scale": float("nan")})
        sink(3, {"loss": 0.25, "noise_scale": 12.0, "lr/group1": 0.1})
    scalars, _ = _read(tmp_path)
    assert set(scalars) == {"sgdlab/loss", "sgdlab/noise_scale", "sgdlab/lr/group1"}
    np.testing.assert_array_equal(scalars["sgdlab/loss"][0], [0, 3])
    np.testing.assert_array_equal(scalars["sgdlab/loss"][1], [1.5, 0.25])
    np.testing.assert_array_equal(scalars["sgdlab/noise_scale"][0], [3])  # NaN left out
    assert scalars["sgdlab/lr/group1"][1][0] == np.float32(0.1)


@needs_monitor_interface
def test_live_sink_on_a_monitor_matches_its_metrics(tmp_path):
    """``Monitor(sinks=[TensorBoardSink(...)])``: every finite recorded value reaches the
    event file at its step, while the run trains (read back before the Monitor closes)."""
    need("torch.utils.tensorboard", "tensorboard")
    from sgdlab.integrations.tensorboard import TensorBoardSink

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=gen)
    y = x @ torch.randn(5, 1, generator=gen) + 0.3 * torch.randn(64, 1, generator=gen)
    model = nn.Linear(5, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    sink = TensorBoardSink(tmp_path / "live")
    mon = Monitor(model, nn.MSELoss(), opt, every=1, noise_every=3, sinks=[sink])
    with mon:
        for t in range(12):
            idx = torch.arange(8) + 8 * (t % 8)
            loss = nn.functional.mse_loss(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(x[idx], y[idx], loss)
        sink.flush()
        scalars, _ = _read(tmp_path / "live")
    sink.close()
    for name, (steps, values) in mon.metrics.items():
        keep = np.isfinite(values[0])
        np.testing.assert_array_equal(scalars[name][0], steps[keep])
        np.testing.assert_array_equal(scalars[name][1], _as_float32(values[0][keep]))
    assert math.isfinite(float(scalars["trace_cov"][1][-1]))
