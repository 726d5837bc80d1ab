"""Figures of the ``langevin`` study: stationary histograms and variance ratios vs η."""

from __future__ import annotations

import numpy as np

from sgdlab.lab.stats import mean_ci
from sgdlab.lab.studies._common import errbar


def plot_histogram(ax, name, edges, hist, gibbs, chain, folded, eta, T) -> None:
    """Measured histogram (pooled window records) over the Gibbs and exact-chain bin masses,
    all as densities."""
    width = np.diff(edges)
    mid = 0.5 * (edges[:-1] + edges[1:])
    ax.bar(mid, hist / width, width=width, color="C0", alpha=0.35, label="SGD (window)")
    ax.plot(mid, gibbs / width, "k-", lw=1.4, label="Gibbs exp(−F/T)")
    ax.plot(mid, chain / width, "--", color="C3", lw=1.4, label=f"exact chain, η = {eta:g}")
    ax.set(xlabel="|w − w*|" if folded else "w", ylabel="density",
           title=f"{name}: T = {T:g}, η = {eta:g}")  # fmt: skip
    ax.legend(fontsize=7)


def plot_ratio(ax, ratios: dict) -> None:
    """E(w − w*)²/Gibbs vs η per landscape, with the exact chain and the zero-η fit."""
    for k, (name, r) in enumerate(ratios.items()):
        etas = np.asarray(r["etas"])
        ms = [mean_ci(v) for v in r["rows"]]
        errbar(ax, etas, *zip(*ms, strict=True), color=f"C{k}", label=f"{name} (SGD)")
        ax.plot(etas, r["exact"], "-", color=f"C{k}", lw=1)
        fit = r["fit"]
        xs = np.linspace(0, etas[-1], 20)
        ax.plot(xs, fit["estimate"] + fit["slope"] * xs, ":", color=f"C{k}", lw=1)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set(xscale="linear", xlabel="η", ylabel="E(w − w*)² / Gibbs",
           title="Gibbs only as η → 0 (lines: exact chain)")  # fmt: skip
    ax.legend(fontsize=7)

