"""The dashboard of a Monitor run: one figure, a panel per recorded quantity.

Panels, in this order, each drawn only when the run recorded it (with at least one finite
value): the loss; the gradient norm ‖∇L‖₂ the step used; the learning rate (every parameter
group); the gradient-noise trace tr Σ (per-sample gradient covariance, loss with
``reduction="mean"``) with its ±1 SE band; the noise scale — the smoothed two-batch estimate
B_simple (McCandlish et al. 2018, appendix A) as a line, the single-batch estimate as points,
and ``noise_scale_lower`` (its lower confidence bound, the number to read when |G|² is not
resolved and the estimate is NaN) dashed; the temperature
T = η/(1−m)·(tr Σ/d)/(2b) (convention dw = −∇F dt + √(2T) dW). A run of several chains is
drawn as its median and 10–90% band, as :func:`sgdlab.report.figures.plot_metric_band`
does. A panel's y-axis is logarithmic when all its finite values are positive.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from sgdlab.report.figures import band

#: a run's metrics: ``name -> (steps [n], values [K, n])``
Metrics = Mapping[str, tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Panel:
    """One panel: its title, y-label, and the metrics it draws (the first is the main line)."""

    title: str
    ylabel: str
    metrics: tuple[str, ...]


#: every panel the dashboard can draw, in order
PANELS = (
    Panel("loss", "loss", ("loss",)),
    Panel("gradient norm", "‖∇L‖₂", ("grad_norm",)),
    Panel("learning rate", "η", ("lr",)),
    Panel("gradient noise tr Σ", "tr Σ", ("trace_cov",)),
    Panel("noise scale B_simple", "examples", ("noise_scale", "b_simple", "noise_scale_lower")),
    Panel("temperature", "T", ("temperature",)),
)


def _finite(values: np.ndarray) -> bool:
    return bool(np.isfinite(values).any())


def panels_for(data: Metrics) -> list[Panel]:
    """The panels of :data:`PANELS` for which ``data`` holds a metric with a finite value
    (learning rates of further parameter groups, ``lr/group<i>``, count for the lr panel)."""
    present = {name for name, (_, values) in data.items() if _finite(np.asarray(values))}
    out = []
    for panel in PANELS:
        names = set(panel.metrics)
        if panel.metrics == ("lr",):
            names |= {n for n in present if n.startswith("lr/group")}
        if names & present:
            out.append(panel)
    return out


def _line(ax, steps: np.ndarray, values: np.ndarray, label: str, color: str, **kw) -> None:
    values = np.asarray(values, dtype=np.float64)
    if values.shape[0] == 1:
        ax.plot(steps, values[0], color=color, label=label, **kw)
        return
    med, lo, hi = band(values)
    ax.fill_between(steps, lo, hi, color=color, alpha=0.2, lw=0)
    ax.plot(steps, med, color=color, label=f"{label} (median of {values.shape[0]})", **kw)


def _draw(ax, panel: Panel, data: Metrics) -> None:
    drawn: list[np.ndarray] = []
    if panel.metrics == ("lr",):
        names = [n for n in ("lr", *sorted(n for n in data if n.startswith("lr/group")))
                 if n in data]  # fmt: skip
        for i, name in enumerate(names):
            steps, values = data[name]
            _line(ax, steps, values, name, f"C{i}", lw=1.5)
            drawn.append(np.asarray(values))
    elif panel.metrics[0] == "noise_scale":
        if "b_simple" in data:
            steps, values = data["b_simple"]
            ax.plot(steps, band(values)[0], ".", color="0.55", ms=3,
                    label="this batch alone")  # fmt: skip
            drawn.append(np.asarray(values))
        if "noise_scale" in data:
            steps, values = data["noise_scale"]
            _line(ax, steps, values, "two-batch estimate (smoothed)", "C0", lw=1.8)
            drawn.append(np.asarray(values))
        if "noise_scale_lower" in data:
            steps, values = data["noise_scale_lower"]
            _line(ax, steps, values, "lower bound", "C3", lw=1.2, ls="--")
            drawn.append(np.asarray(values))
    else:
        name = panel.metrics[0]
        steps, values = data[name]
        values = np.asarray(values, dtype=np.float64)
        if name == "trace_cov" and "trace_cov_se" in data and values.shape[0] == 1:
            se_steps, se = data["trace_cov_se"]
            if np.array_equal(se_steps, steps):
                lo, hi = values[0] - se[0], values[0] + se[0]
                ax.fill_between(steps, lo, hi, color="C0", alpha=0.2, lw=0, label="±1 SE")
        _line(ax, steps, values, name, "C0", lw=1.5)
        drawn.append(values)
    finite = np.concatenate([v[np.isfinite(v)] for v in drawn]) if drawn else np.array([])
    if finite.size and np.all(finite > 0) and finite.max() > finite.min():
        ax.set_yscale("log")
    ax.set_title(panel.title, fontsize=9)
    ax.set_ylabel(panel.ylabel, fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ax.tick_params(labelsize=7)
    if len(ax.get_legend_handles_labels()[0]) > 1:
        ax.legend(frameon=False, fontsize=6)


def dashboard_figure(data: Metrics, title: str = "") -> Figure | None:
    """The dashboard as a matplotlib figure (two columns), or ``None`` when the run recorded
    none of the panels' metrics. Close it with ``plt.close(fig)``."""
    panels = panels_for(data)
    if not panels:
        return None
    ncols = 1 if len(panels) == 1 else 2
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 2.6 * nrows), dpi=110,
                             squeeze=False, sharex=True)  # fmt: skip
    for ax, panel in zip(axes.flat, panels, strict=False):
        _draw(ax, panel, data)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("step t", fontsize=8)
    if len(panels) % 2 and ncols == 2:  # the last row's hidden axis: label the one above
        axes[-2, 1].xaxis.set_tick_params(labelbottom=True)
        axes[-2, 1].set_xlabel("step t", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_monitor_dashboard(data: Metrics, path: str | Path, title: str = "") -> Path | None:
    """Write the dashboard (PNG or SVG by suffix) and return its path; ``None`` (nothing
    written) when the run recorded none of the panels' metrics."""
    fig = dashboard_figure(data, title)
    if fig is None:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
