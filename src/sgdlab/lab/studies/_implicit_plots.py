"""Figures of the ``implicit-regularization`` study."""

from __future__ import annotations

import numpy as np

from sgdlab.lab.stats import mean_ci

COLORS = {"small": "C0", "large": "C1", "full": "C3", "large-scaled": "C2"}


def plot_scatter(ax, m: dict, settings, key: str, label: str) -> None:
    """Sharpness vs test error, one point per chain, coloured by setting."""
    for name in settings:
        ax.scatter(m[name][key], 100 * m[name]["test_error"], s=18, color=COLORS[name],
                   alpha=0.8, label=name)  # fmt: skip
    ax.set(xscale="log", xlabel=label, ylabel="test error (%)",
           title=f"{label.split(' (')[0]} vs test error, per chain")  # fmt: skip
    ax.legend(fontsize=7)


def plot_gaps(ax, m: dict, settings) -> None:
    """Paired test-error differences to the small batch (percentage points, t-intervals)."""
    others = [s for s in settings if s != "small"]
    for i, name in enumerate(others):
        mm, lo, hi = (100 * v for v in mean_ci(m[name]["test_error"] - m["small"]["test_error"]))
        ax.bar(i, mm, color=COLORS[name], alpha=0.8)
        ax.errorbar([i], [mm], yerr=[[mm - lo], [hi - mm]], color="k", capsize=4)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(others)), [f"{o} − small" for o in others], fontsize=8)
    ax.set(ylabel="test error difference (points)", title="generalization gap, paired by chain")


def plot_flatness(ax, m: dict, labels: dict) -> None:
    """Paired log-ratios small/large of each flatness measure (below 0: small is flatter)."""
    for i, key in enumerate(labels):
        mm, lo, hi = mean_ci(np.log(m["small"][key] / m["large"][key]))
        ax.bar(i, mm, color="C0", alpha=0.8)
        if np.isfinite(lo):
            ax.errorbar([i], [mm], yerr=[[mm - lo], [hi - mm]], color="k", capsize=4)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(labels)), list(labels.values()), fontsize=8)
    ax.set(ylabel="mean log(small / large)", title="is the small batch flatter? (< 0: yes)")
