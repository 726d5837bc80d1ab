"""The Monitor-run dashboard of ``sgdlab show``: a panel per recorded quantity, only those
present, each panel's lines equal to the stored values."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

import _report_fixtures as fx
from sgdlab.report.monitor_dashboard import (
    PANELS,
    dashboard_figure,
    panels_for,
    plot_monitor_dashboard,
)
from sgdlab.store import Store

ALL = [p.title for p in PANELS]


def _series(n=6, k=1, scale=1.0):
    steps = np.arange(n) * 2
    return steps, scale * (1.0 + np.arange(k * n, dtype=float).reshape(k, n))


def test_a_monitor_run_gets_every_panel_and_the_stored_lines(tmp_path):
    store = tmp_path / "s.duckdb"
    rid = fx.monitor_run(store, steps=24)
    data = Store(store, read_only=True).metrics(rid)
    assert [p.title for p in panels_for(data)] == ALL  # SGD: temperature recorded too
    fig = dashboard_figure(data, title=f"run {rid}")
    try:
        axes = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
        assert list(axes) == ALL
        for title, name in (("loss", "loss"), ("gradient norm", "grad_norm"),
                            ("learning rate", "lr"), ("temperature", "temperature")):  # fmt: skip
            (line,) = axes[title].get_lines()
            np.testing.assert_array_equal(line.get_xdata(), data[name][0])
            np.testing.assert_array_equal(line.get_ydata(), data[name][1][0])
        labels = [ln.get_label() for ln in axes["noise scale B_simple"].get_lines()]
        lower = "noise_scale_lower" in data  # recorded where |G|² is not resolved
        assert labels == ["this batch alone", "two-batch estimate (smoothed)"] + (
            ["lower bound"] if lower else []
        )
        assert axes["loss"].get_yscale() == "log"  # positive values
    finally:
        plt.close(fig)
    path = plot_monitor_dashboard(data, tmp_path / "d.png", title="t")
    assert path.stat().st_size > 10_000


def test_only_the_panels_of_recorded_metrics():
    data = {"loss": _series(), "grad_norm": _series()}
    assert [p.title for p in panels_for(data)] == ["loss", "gradient norm"]
    # a metric with no finite value draws no panel (a noise scale never resolved)
    data["noise_scale"] = (np.arange(3), np.full((1, 3), np.nan))
    assert [p.title for p in panels_for(data)] == ["loss", "gradient norm"]
    data["noise_scale_lower"] = (np.arange(3), np.array([[5.0, 7.0, 9.0]]))
    assert [p.title for p in panels_for(data)] == ["loss", "gradient norm", "noise scale B_simple"]
    # learning rates of further parameter groups belong to the lr panel
    assert [p.title for p in panels_for({"lr/group1": _series()})] == ["learning rate"]
    assert panels_for({"batch_size": _series()}) == []
    assert dashboard_figure({"batch_size": _series()}) is None


def test_odd_panel_counts_and_several_chains(tmp_path):
    data = {"loss": _series(k=4), "lr": _series(), "lr/group1": _series(scale=0.1),
            "trace_cov": _series(scale=-1.0)}  # fmt: skip
    fig = dashboard_figure(data)
    try:
        visible = [ax for ax in fig.axes if ax.get_visible()]
        assert [ax.get_title() for ax in visible] == ["loss", "learning rate",
                                                      "gradient noise tr Σ"]  # fmt: skip
        loss_ax, lr_ax, tr_ax = visible
        (median,) = loss_ax.get_lines()
        np.testing.assert_array_equal(median.get_ydata(), np.median(data["loss"][1], axis=0))
        assert median.get_label() == "loss (median of 4)"
        assert [ln.get_label() for ln in lr_ax.get_lines()] == ["lr", "lr/group1"]
        assert tr_ax.get_yscale() == "linear"  # not all positive
    finally:
        plt.close(fig)
    assert plot_monitor_dashboard({}, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
