"""The strict-saddle part of the ``escape`` study (see :mod:`sgdlab.lab.studies.escape`).

Landscape ``saddle``: U = ½λx² + γ(−½y² + y⁴/(4m²)), strict saddle at 0 with Hessian
diag(λ, −γ), minima (0, ±m). The unstable coordinate y evolves on its own (separable U,
isotropic independent noise): y ↦ y − ηγ(−y + y³/m²) + (ησ/√b)ξ, a 1-D chain whose exit from
(−r, r) is computed exactly (:mod:`sgdlab.theory.discrete_chain`); linearised, q = 1 + ηγ.

Reading y from the records: with w* = (0, m), F − ½λ‖w − w*‖² = g(y) with
g(y) = −½λ(y − m)² + γ(−½y² + y⁴/(4m²)), a function of y alone, increasing on an interval
around 0 that holds (−r, r) (g'(0) = λm > 0); so |y| ≥ r is read exactly at the first record
after the exit, unless one step jumps from inside (−r, r) beyond that interval (more than
0.5 here, ≫ 10 noise standard deviations).
"""

from __future__ import annotations

import math

import numpy as np

from sgdlab.engine.result import RunResult
from sgdlab.lab.findings import Finding
from sgdlab.lab.stats import BOOTSTRAP, T_INTERVAL, bootstrap_groups, mean_ci, probe_seed
from sgdlab.lab.studies._benefits_common import first_exit, log_ticks
from sgdlab.lab.studies._common import build, errbar
from sgdlab.lab.study import Study
from sgdlab.theory.discrete_chain import sgd_chain_1d
from sgdlab.theory.escape import gd_saddle_escape_steps, sgd_saddle_escape_steps

CLAIM = ("Deterministic GD can stall at saddle points; SGD's noise kicks it off them "
         "(§3.1 B).")
CLAIM_SIM = "Engine check: SGD's exit from the saddle follows the exact chain."
SADDLE = {"name": "saddle", "curvature_x": 4.0, "negative_curvature": 1.0, "minima_y": 1.0}
ETA = 0.1
RADIUS = 0.5
GD_OFFSET = 1e-6
STEPS = 200


def saddle_grid(chains: int, bs: tuple[int, ...], every: int) -> dict[str, dict]:
    """GD runs record every step; SGD runs every ``every`` steps (the exact references are
    the passages of that skeleton)."""
    base = {"optimizer": {"name": "sgd", "lr": ETA}, "steps": STEPS, "record": {"every": 1},
            "dtype": "float64"}  # fmt: skip
    g = {
        "saddle/gd-stable": {**base, "problem": {**SADDLE, "noise_std": 0.0,
                                                 "start": [0.3, 0.0]},
                             "batch": {"size": 1, "sampling": "stream"}, "chains": 1, "seed": 71},
        "saddle/gd-offset": {**base, "problem": {**SADDLE, "noise_std": 0.0,
                                                 "start": [0.3, GD_OFFSET]},
                             "batch": {"size": 1, "sampling": "stream"}, "chains": 1, "seed": 71},
    }  # fmt: skip
    for b in bs:
        g[f"saddle/b{b}"] = {**base, "problem": {**SADDLE, "noise_std": 1.0},
                             "batch": {"size": b, "sampling": "stream"}, "chains": chains,
                             "seed": 72 + b, "record": {"every": every}}  # fmt: skip
    return g


def unstable_coordinate(run: RunResult) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(steps, y [K, n], geometry)`` of a ``saddle`` run (module docstring)."""
    prob = build(run)
    lam, gam, m = prob.lam, prob.gamma, prob.m
    steps, F = run.metric("objective")
    _, d = run.metric("dist_to_opt")
    target = F - 0.5 * lam * d * d

    def g(y: np.ndarray) -> np.ndarray:
        return -0.5 * lam * (y - m) ** 2 + gam * (-0.5 * y * y + y**4 / (4 * m * m))

    roots = np.roots([gam / m**2, 0.0, -(gam + lam), lam * m])  # g'(y) = 0
    real = np.sort(roots[np.abs(roots.imag) < 1e-12].real)
    lo_edge = max([r for r in real if r < 0], default=-10 * m)
    hi_edge = min([r for r in real if r > 0], default=10 * m)
    if not lo_edge < -RADIUS and RADIUS < hi_edge:
        raise ValueError("saddle: g is not monotone on (−r, r); lower the radius")
    lo = np.full(target.shape, lo_edge)
    hi = np.full(target.shape, hi_edge)
    for _ in range(56):  # bisection to 2⁻⁵⁶ of the interval: g increases on it
        mid = 0.5 * (lo + hi)
        up = g(mid) < target
        lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
    y = np.clip(0.5 * (lo + hi), lo_edge, hi_edge)  # clipped: beyond the interval, |y| ≥ r
    geo = {"gamma": gam, "m": m, "sigma": prob.sigma, "edges": (lo_edge, hi_edge)}
    return steps, y, geo


def _chain_mean(gam: float, m: float, T: float, H: int, linear: bool, every: int) -> float:
    """Exact E min(N, H) of the y-chain's exit from (−r, r) (or its linearisation), observed
    every ``every`` steps."""
    def grad(y):
        return -gam * y if linear else gam * (-y + y**3 / m**2)

    chain = sgd_chain_1d(grad, ETA, T, -RADIUS, RADIUS)
    return chain.first_passage(0.0, exit_below=-RADIUS, exit_above=RADIUS,
                               every=every).restricted_mean(H)


def saddle_findings(study: Study, runs: dict[str, RunResult], bs: tuple[int, ...], ax
                    ) -> list[Finding]:  # fmt: skip
    out: list[Finding] = []
    fig_name = "escape.png"
    # GD on the stable manifold (y = 0 exactly) and 1e-6 off it
    st, y, geo = unstable_coordinate(runs["saddle/gd-stable"])
    _, esc = first_exit(st, y, below=-RADIUS, above=RADIUS)
    gam, m = geo["gamma"], geo["m"]
    out.append(study.finding(
        CLAIM, f"GD started on the stable manifold (y = 0): escapes |y| ≥ {RADIUS:g} within "
        f"{STEPS} steps (1 = yes)", float(esc[0]), (float(esc[0]), float(esc[0])),
        kind="article", predicted=0.0, rule="exact", figure=fig_name,
        ci_method="deterministic (one GD chain)",
        theory="GD keeps y = 0 exactly (∂U/∂y = 0 there): it converges to the saddle",
        final_y=float(y[0, -1]),
    ))  # fmt: skip
    st, y, _ = unstable_coordinate(runs["saddle/gd-offset"])
    t_gd, esc = first_exit(st, y, below=-RADIUS, above=RADIUS)
    yy, n_exact = GD_OFFSET, 0
    while abs(yy) < RADIUS and n_exact < 100 * STEPS:
        yy, n_exact = yy - ETA * gam * (-yy + yy**3 / m**2), n_exact + 1
    lin = gd_saddle_escape_steps(GD_OFFSET, RADIUS, ETA, gam)
    out.append(study.finding(
        CLAIM_SIM, f"GD from y = {GD_OFFSET:g}: steps to |y| ≥ {RADIUS:g} (linearised count "
        f"⌈log(r/y₀)/log q⌉ = {lin:g})", float(t_gd[0]), (float(t_gd[0]), float(t_gd[0])),
        kind="engine-check", predicted=float(n_exact), rule="exact", figure=fig_name,
        ci_method="deterministic (one GD chain)",
        theory="the exact GD map y ↦ y − ηγ(−y + y³/m²) iterated in float64",
        linearised_steps=lin,
    ))  # fmt: skip
    # SGD from the saddle at each batch size
    H = STEPS
    times, exact, linear = [], [], []
    for b in bs:
        run = runs[f"saddle/b{b}"]
        every = int(run.config["record"]["every"])
        st, y, geo = unstable_coordinate(run)
        c, _ = first_exit(st, y, below=-RADIUS, above=RADIUS)
        T = ETA * geo["sigma"] ** 2 / (2 * b)
        ex = _chain_mean(gam, m, T, H, linear=False, every=every)
        times.append(c)
        exact.append(ex)
        linear.append(_chain_mean(gam, m, T, H, linear=True, every=every))
        mm, lo, hi = mean_ci(c)
        out.append(study.finding(
            CLAIM_SIM, f"SGD from the saddle, b={b}: mean steps to |y| ≥ {RADIUS:g} (records "
            f"every {every})", mm,
            (lo, hi), kind="engine-check", predicted=ex, rule="contains", figure=fig_name,
            ci_method=T_INTERVAL,
            theory="theory.discrete_chain: exact E min(N, H) of the y-chain's exit from (−r, r)",
        ))  # fmt: skip
    logb = np.log(np.asarray(bs, float))

    def slope(means) -> float:
        x = logb - logb.mean()
        return float(x @ (np.asarray(means) - np.mean(means)) / (x @ x))

    est, lo, hi = bootstrap_groups(times, lambda gs: slope([g.mean() for g in gs]),
                                   probe_seed(72))  # fmt: skip
    s_exact, s_lin = slope(exact), slope(linear)
    q = 1 + ETA * gam
    asym = 1 / (2 * math.log(q))
    tol = abs(s_exact - s_lin)
    out.append(study.finding(
        CLAIM_SIM, "slope of SGD's mean escape steps vs log b (the noise's log-law)", est,
        (lo, hi), kind="engine-check", predicted=s_lin, rule="contains", tolerance=tol,
        tolerance_derivation="the linearisation's model error: |slope of the exact nonlinear "
        "y-chain − slope of the exact linearised chain| over the same b", figure=fig_name,
        ci_method=BOOTSTRAP + " (each b's chains resampled)",
        theory="exact E N of the linearised chain y ↦ qy + noise (theory.discrete_chain)",
        nonlinear_slope=s_exact, asymptotic_slope=asym,
    ))  # fmt: skip
    out.append(study.finding(
        CLAIM_SIM, f"asymptotic slope 1/(2 log q) = {asym:.3f} vs the exact linearised chain's",
        asym, None, kind="analytic", predicted=None, rule="report", figure=fig_name,
        theory="theory.escape.sgd_saddle_escape_steps (r ≫ σ_Y, ηγ ≪ 1)", exact_slope=s_lin,
        relative_error=asym / s_lin - 1,
    ))  # fmt: skip
    ratio = [np.log(c / t_gd[0]) for c in times]  # per chain: log(SGD steps / GD steps)
    mm, lo, hi = mean_ci(ratio[-1])
    out.append(study.finding(
        CLAIM, f"log(SGD steps from the saddle at b={bs[-1]} / GD steps from y = {GD_OFFSET:g})",
        mm, (lo, hi), kind="article", predicted=None, rule="negative", figure=fig_name,
        ci_method=T_INTERVAL, theory="SGD's weakest noise still kicks it off sooner than GD "
        "leaves from 1e-6 (GD from y = 0: never)",
    ))  # fmt: skip
    _plot(ax, bs, times, exact, linear, t_gd[0], gam, geo["sigma"])
    return out


def _plot(ax, bs, times, exact, linear, gd_steps, gam, sigma) -> None:
    ms = [mean_ci(c) for c in times]
    errbar(ax, bs, *zip(*ms, strict=True), color="C0", label="SGD measured (95% CI)")
    ax.plot(bs, exact, "k-", lw=1.2, label="exact chain")
    ax.plot(bs, linear, "k--", lw=1, label="exact linearised chain")
    bb = np.geomspace(bs[0], bs[-1], 50)
    asym = [sgd_saddle_escape_steps(RADIUS, ETA, gam, sigma**2, round(b)) for b in bb]
    ax.plot(bb, asym, ":", color="C3", label="asymptotic (Jin et al.)")
    ax.axhline(gd_steps, color="C2", lw=1.2, label=f"GD from y₀ = {GD_OFFSET:g}")
    ax.set(xscale="log", xlabel="batch size b", ylabel="steps to leave |y| < r",
           title="strict saddle: GD from y=0 never leaves")  # fmt: skip
    log_ticks(ax, "x")
    ax.legend(fontsize=7)
