"""Figures of the ``flat-minima`` study."""

from __future__ import annotations

import numpy as np

from sgdlab.lab.stats import mean_ci
from sgdlab.lab.studies._benefits_common import numpy_fn
from sgdlab.lab.studies._common import errbar


def plot_fractions(ax, ax_relax, ms: list[dict], small: dict, chain_at) -> None:
    """Flat-basin fraction vs T (equal depths) with Gibbs (= Laplace) and the exact chain; the
    relaxation of the occupation vs step against the exact transient."""
    temps = np.array([m["T"] for m in ms])
    errbar(ax, temps, *zip(*[mean_ci(m["flat"]) for m in ms], strict=True), color="C0",
           label=f"SGD, η = {ms[0]['eta']:g} (95% CI)")  # fmt: skip
    fine = np.linspace(temps[0], temps[-1], 7)
    ax.plot(fine, [chain_at(T).stationary().mass(0.0, 50.0) for T in fine], "-", color="C0",
            lw=1, label=f"exact chain, η = {ms[0]['eta']:g}")  # fmt: skip
    errbar(ax, [small["T"]], *zip(mean_ci(small["flat"]), strict=True), color="C2",
           label=f"SGD, η = {small['eta']:g}")  # fmt: skip
    ax.plot([small["T"]], [small["stationary"]], "_", color="C2", ms=14, mew=2,
            label=f"exact chain, η = {small['eta']:g}")  # fmt: skip
    ax.axhline(ms[0]["gibbs"], color="k", lw=1.4, label="Gibbs = Laplace (4/5)")
    ax.axhline(0.5, color="k", lw=0.6, ls=":")
    ax.set(xlabel="temperature T = ησ²/(2b)", ylabel="fraction in the flat basin",
           ylim=(0.45, 1.0), title="equal depths, κ = 16 : 1: flat wins, more than Gibbs")
    ax.legend(fontsize=7)
    for k, m in enumerate([*ms, small]):
        st = m["steps"]
        pos = st >= 1
        ax_relax.plot(st[pos], m["occupation"][pos], "-", color=f"C{k}", lw=0.8, alpha=0.7)
        laws = m["chain"].evolve(m["start"], st[pos])
        ax_relax.plot(st[pos], [law.mass(0.0, m["chain"].hi) for law in laws], "--",
                      color=f"C{k}", lw=1.2, label=f"T = {m['T']:g}, η = {m['eta']:g}")
        ax_relax.axvline(m["burn"], color=f"C{k}", lw=0.5, ls=":")
    ax_relax.set(xscale="log", xlabel="step (dotted: start of the window)",
                 ylabel="fraction in the flat basin",
                 title="relaxation from the sharp minimum (dashed: exact chain)")  # fmt: skip
    ax_relax.legend(fontsize=7)


def plot_crossover(ax, ms, t_gibbs, t_chain, est, ci, chain_fn, gibbs_fn, laplace_fn) -> None:
    temps = np.array([m["T"] for m in ms])
    errbar(ax, temps, *zip(*[mean_ci(m["flat"]) for m in ms], strict=True), color="C0",
           label="SGD (95% CI)")  # fmt: skip
    fine = np.linspace(temps[0] * 0.8, temps[-1] * 1.1, 9)
    ax.plot(fine, [chain_fn(T) for T in fine], "-", color="C0", lw=1,
            label=f"exact chain, η = {ms[0]['eta']:g}")  # fmt: skip
    dense = np.linspace(fine[0], fine[-1], 100)
    ax.plot(dense, [gibbs_fn(T) for T in dense], "k-", lw=1.4, label="Gibbs")
    ax.plot(dense, [laplace_fn(T) for T in dense], "k--", lw=1, label="Laplace")
    ax.axhline(0.5, color="k", lw=0.6, ls=":")
    ax.axvline(t_gibbs, color="k", lw=0.8, ls=":")
    ax.axvspan(*ci, color="C0", alpha=0.15, label=f"measured T* = {est:.3f}")
    ax.set(xlabel="temperature T", ylabel="fraction in the flat (higher) basin",
           title=f"sharp basin deeper: T*_Gibbs = {t_gibbs:.3f}, T*_chain = {t_chain:.3f}")
    ax.legend(fontsize=7)


def plot_landscapes(ax, equal, deeper) -> None:
    for prob, color, label in ((equal, "C0", "equal depths (κ 16 : 1)"),
                               (deeper, "C3", "sharp deeper (κ 4 : 1)")):  # fmt: skip
        lo, hi = prob.centers[0] - 0.6, prob.centers[1] + 1.2
        x = np.linspace(lo, hi, 400)
        ax.plot(x, numpy_fn(prob.u)(x), color=color, label=label)
    ax.axvline(0, color="k", lw=0.6, ls=":")
    ax.set(xlabel="w", ylabel="U(w)", ylim=(-0.3, 1.6),
           title="piecewise_two_basin: parabolas meeting at a cusp")
    ax.legend(fontsize=7)
