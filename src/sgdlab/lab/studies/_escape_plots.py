"""Figures of the ``escape`` study: escape time vs 1/T, and the escape-time ratio vs η."""

from __future__ import annotations

import numpy as np

from sgdlab.lab.studies._benefits_common import log_ticks, numpy_fn
from sgdlab.lab.studies._common import errbar
from sgdlab.problems import Problem
from sgdlab.theory.basins import kramers_escape_time
from sgdlab.theory.langevin import mean_first_passage_time


def lookup(keys, values, key) -> float | None:
    for k, v in zip(keys, values, strict=True):
        if abs(k - key) <= 1e-12 * abs(k):
            return v
    return None


def plot_times(ax, sweep: list[dict], prob: Problem, geo: dict) -> None:
    inv = np.array([1 / x["T"] for x in sweep])
    eta = sweep[0]["eta"]
    errbar(ax, inv, [x["est"] * x["sde"] for x in sweep], [x["ci"][0] * x["sde"] for x in sweep],
           [x["ci"][1] * x["sde"] for x in sweep], color="C0",
           label=f"SGD, η = {eta:g} (95% CI)")  # fmt: skip
    ax.plot(inv, [x["n"] * eta for x in sweep], "s-", color="C1", ms=3, lw=1,
            label="exact chain (η = 0.1)")  # fmt: skip
    fine = np.linspace(inv[0], inv[-1], 30)
    u = numpy_fn(prob.u)
    reflect = geo["a"] + 2.5 * np.sign(geo["a"] - geo["g"])
    ax.plot(fine, [mean_first_passage_time(u, geo["a"], geo["x"], 1 / b, reflect=reflect)
                   for b in fine], "k-", lw=1.4, label="exact SDE (quadrature)")  # fmt: skip
    ax.plot(fine, [kramers_escape_time(geo["Ua"], geo["Us"], geo["dV"], 1 / b) for b in fine],
            "k--", lw=1, label="Kramers")  # fmt: skip
    ax.set(yscale="log", xlabel="1/T", ylabel="mean escape time (η · steps)",
           title="tilted double well: escape time vs 1/T")  # fmt: skip
    log_ticks(ax)
    ax.legend(fontsize=7)


def plot_eta(ax, ratio: float, pts: list[dict]) -> None:
    pts = sorted(pts, key=lambda x: x["eta"])
    x = [x_["eta"] * x_["Ua"] for x_ in pts]
    errbar(ax, x, [p["est"] for p in pts], [p["ci"][0] for p in pts],
           [p["ci"][1] for p in pts], color="C0", label="SGD / exact SDE (95% CI)")  # fmt: skip
    ax.plot(x, [p["n"] * p["eta"] / p["sde"] for p in pts], "s-", color="C1", ms=3, lw=1,
            label="exact chain / exact SDE")  # fmt: skip
    ax.axhline(1.0, color="k", lw=0.8, ls=":")
    ax.set(xlabel="ηU''(a)", ylabel="escape time / SDE's",
           title=f"Langevin picture holds as η → 0 (ΔU/T = {ratio:g})")  # fmt: skip
    ax.legend(fontsize=7)
