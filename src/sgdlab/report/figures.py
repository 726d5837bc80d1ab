"""Figures of runs: a metric across chains as a median line with a 10–90% band."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def nan_percentiles(values: np.ndarray, qs: tuple[float, ...]) -> list[np.ndarray]:
    """Per-column percentiles across chains (axis 0), ignoring NaN, NaN where a column has
    none: numpy's default "linear" method — with the n non-NaN entries sorted, the value at
    position g = (n − 1)·q/100, interpolated as numpy does (a + (b − a)·t for t < ½,
    b − (b − a)·(1 − t) otherwise; the median as the mean of the middle two). Equal to
    ``np.nanpercentile(values, q, axis=0)`` and ``np.nanmedian`` on finite data to the bit
    (tested), which loop over the columns in Python; this sorts once."""
    values = np.asarray(values, dtype=float)
    ordered = np.sort(values, axis=0)  # NaN sort last
    n = (~np.isnan(values)).sum(axis=0)
    last = np.maximum(n - 1, 0)
    out = []
    for q in qs:
        pos = last * (np.float64(q) / 100.0)
        below = np.floor(pos)
        t = pos - below
        lo = below.astype(np.int64)
        hi = np.minimum(lo + 1, last)
        a = np.take_along_axis(ordered, lo[None, :], axis=0)[0]
        b = np.take_along_axis(ordered, hi[None, :], axis=0)[0]
        with np.errstate(invalid="ignore"):
            diff = b - a
            value = np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)
            if q == 50:  # the median as np.nanmedian takes it: the mean of the middle two
                value = np.where(t == 0.5, (a + b) / 2, value)
        out.append(np.where(n > 0, value, np.nan))
    return out


def band(values: np.ndarray, low: float = 10, high: float = 90) -> tuple[np.ndarray, ...]:
    """Per-column (median, low-percentile, high-percentile) across chains, ignoring NaN
    (:func:`nan_percentiles`)."""
    med, lo, hi = nan_percentiles(np.atleast_2d(values), (50.0, low, high))
    return med, lo, hi


def plot_metric_band(
    steps: np.ndarray,
    values: np.ndarray,
    path: str | Path,
    *,
    ylabel: str,
    title: str = "",
    log: bool = True,
) -> Path:
    """Draw the median across chains and its 10–90% band; log y-axis when ``log`` and the
    values are positive. Writes ``path`` (PNG or SVG by suffix) and returns it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    med, lo, hi = band(values)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    ax.fill_between(steps, lo, hi, alpha=0.25, color="C0", label="10–90% of chains")
    ax.plot(steps, med, color="C0", lw=1.8, label=f"median of {values.shape[0]} chains")
    positive = np.all(np.nan_to_num(lo, nan=1.0) > 0)
    if log and positive:
        ax.set_yscale("log")
    ax.set_xlabel("step t")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
