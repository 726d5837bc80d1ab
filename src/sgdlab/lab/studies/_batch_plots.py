"""Figures of the batch-size studies: S(b), E(b) with the McCandlish fit and its regimes, and
the noise scales along the noiseless path."""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from sgdlab.lab.studies._batch_common import CritFit, percentile_ci
from sgdlab.lab.studies._common import errbar


def _regimes(ax, b_crit: float, lo: float, hi: float) -> None:
    """Shade perfect scaling (b < B_crit/4), diminishing returns, maximal parallelism
    (b > 4 B_crit) over [lo, hi]."""
    if not np.isfinite(b_crit):
        return
    edges = [lo, max(lo, b_crit / 4), min(hi, 4 * b_crit), hi]
    for (a, z), color in zip(pairwise(edges), ("#d8f0d8", "#f5efcf", "#f5d8d8"), strict=True):
        if z > a:
            ax.axvspan(a, z, color=color, lw=0, zorder=0)


def plot_sweep(ax_s, ax_e, name: str, batch_sizes, steps: tuple[np.ndarray, np.ndarray],
               fit: CritFit, exact=None, greedy=None) -> None:  # fmt: skip
    """S(b) (``ax_s``) and E(b) = b·S(b) (``ax_e``) on log axes: measured points ``steps`` =
    (S [n_b], bootstrap resamples [R, n_b]) with their intervals, the fitted McCandlish curve,
    the exact reference where given, and the three regimes (green: perfect scaling, yellow:
    diminishing returns, red: maximal parallelism)."""
    S, Sb = steps
    bs = np.asarray(batch_sizes, float)
    ci = np.array([percentile_ci(Sb[:, i]) for i in range(bs.size)])
    grid = np.geomspace(bs[0], bs[-1], 100)
    for ax, scale, ylabel in ((ax_s, 1.0, "steps to target S(b)"),
                              (ax_e, None, "examples to target E(b) = b·S(b)")):  # fmt: skip
        f = bs if scale is None else np.ones_like(bs)
        fg = grid if scale is None else np.ones_like(grid)
        _regimes(ax, fit.b_crit, bs[0], bs[-1])
        lo, hi = np.fmin(ci[:, 0], S), np.fmax(ci[:, 1], S)  # a tuned minimum may sit at an end
        errbar(ax, bs, S * f, lo * f, hi * f, color="C0",
               label="measured, constant step tuned per b (95% CI)")  # fmt: skip
        ax.plot(grid, fit.steps(grid) * fg, "C0-", lw=1,
                label=f"fit: S_min(1 + B_crit/b), B_crit = {fit.b_crit:.0f}")  # fmt: skip
        if exact is not None:
            ax.plot(bs, exact * f, "k*", ms=7, label="exact recursion")
        if greedy is not None:
            g_sweep, g_fit, g_exact = greedy
            gS, _ = g_sweep.tuned()
            ax.plot(bs, gS * f, "s", color="C3", label="measured, greedy step")
            ax.plot(bs, g_exact * f, "x", color="k", label="exact, greedy step")
            ax.plot(grid, g_fit.steps(grid) * fg, "C3--", lw=1,
                    label=f"fit (greedy), B_crit = {g_fit.b_crit:.0f}")  # fmt: skip
        ax.axvline(fit.b_crit, color="C0", ls=":", lw=1)
        ax.set(xscale="log", yscale="log", xlabel="batch size b", ylabel=ylabel,
               title=f"{name}")  # fmt: skip
        ax.legend(fontsize=5)


def plot_noise_path(ax, name: str, scales, fit: CritFit) -> None:
    """B_simple and B_noise (± 2 SE of its probes) at the points of the noiseless path, with
    the measured B_crit and its interval."""
    ax.plot(scales.steps, scales.b_simple, "o-", color="C1", ms=3, label="B_simple (exact)")
    ax.errorbar(scales.noise_steps, scales.b_noise, yerr=2 * np.abs(scales.b_noise_se),
                fmt="s-", color="C0", capsize=2, label="B_noise (instrument, ±2 SE)")
    lo, hi = fit.b_crit_ci
    ax.axhspan(lo, hi, color="0.85", label="measured B_crit (95% CI)")
    ax.axhline(fit.b_crit, color="k", lw=1)
    ax.set(yscale="log", xlabel="step of the noiseless path (GD, η tuned at the largest b)",
           ylabel="noise scale", title=f"{name}: B_crit vs noise scales")  # fmt: skip
    ax.legend(fontsize=6)
