"""Figures of runs: a metric across chains as a median line with a 10–90% band."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def band(values: np.ndarray, low: float = 10, high: float = 90) -> tuple[np.ndarray, ...]:
    """Per-column (median, low-percentile, high-percentile) across chains, ignoring NaN."""
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return (
                np.nanmedian(values, axis=0),
                np.nanpercentile(values, low, axis=0),
                np.nanpercentile(values, high, axis=0),
            )


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
