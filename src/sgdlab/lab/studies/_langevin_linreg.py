"""The anisotropic-noise part of the ``langevin`` study: SGD on Gaussian linear regression.

Population linear regression, S = diag(1, ½, ¼, 1/10), label noise σ = 1, start at w*,
η = 0.05, b = 1: the per-sample noise Σ(w) = SδδᵀS + (δᵀSδ + σ²)S is state-dependent and, at
w*, aligned with the curvature (σ²S), not isotropic. The engine records ‖δ‖² (``dist_to_opt``)
and δᵀSδ = 2(F − F*), so the temperature-free shape tr P/tr(SP) = E‖δ‖²/E[δᵀSδ] is measured
(ratio of chain means, bootstrap over chains) and compared with
:mod:`sgdlab.theory.linear_regression`: the exact recursion (engine check), the Gibbs law's
tr(S⁻¹)/d (article: it fails) and the Lyapunov solution's d/tr S (reported).
"""

from __future__ import annotations

import numpy as np

from sgdlab.engine.result import RunResult
from sgdlab.lab.findings import Finding
from sgdlab.lab.stats import BOOTSTRAP, T_INTERVAL, bootstrap_ci, mean_ci, probe_seed
from sgdlab.lab.studies._common import build
from sgdlab.lab.study import Study
from sgdlab.theory.linear_regression import (
    linreg_gibbs,
    linreg_lyapunov,
    linreg_sgd_second_moments,
    linreg_sgd_stationary,
    shape_ratio,
)

CLAIM = ("SGD's stationary law is the Gibbs density exp(−F/T_eff), T_eff ∝ η·Cov(ζ) "
         "(§3.1 C, Analogy).")
CLAIM_SIM = "Engine check: SGD's second moments follow the exact recursion."
LINREG_KEY = "linreg/anisotropic"
EIGS = [1.0, 0.5, 0.25, 0.1]
ETA = 0.05


def linreg_grid(chains: int, steps: int) -> dict:
    return {"problem": {"name": "linear_regression", "eigenvalues": EIGS, "noise_std": 1.0,
                        "w_star": 0.5, "init_scale": 0.0},
            "optimizer": {"name": "sgd", "lr": ETA}, "batch": {"size": 1, "sampling": "stream"},
            "chains": chains, "steps": steps, "seed": 91, "record": {"every": steps // 300},
            "dtype": "float64"}  # fmt: skip


def linreg_findings(study: Study, run: RunResult, burn: int, ax, fig: str) -> list[Finding]:
    prob = build(run)
    lam = prob.eigenvalues.numpy()
    s2 = prob.sigma**2
    b = int(run.config["batch"]["size"])
    steps, d = run.metric("dist_to_opt")
    _, sub = run.metric("suboptimality")
    win = steps >= burn
    norm2 = (d[:, win] ** 2).mean(1)  # per chain: window mean of ‖δ‖²
    quad = (2 * sub[:, win]).mean(1)  # … of δᵀSδ = 2(F − F*)
    e0 = prob.init_params(None).numpy() - prob.w_star.numpy()
    P = linreg_sgd_second_moments(lam, s2, ETA, b, e0**2, int(steps[-1]))[steps[win]]
    ex_norm, ex_quad = float(P.sum(1).mean()), float((P @ lam).mean())
    stat = linreg_sgd_stationary(lam, s2, ETA, b)
    shapes = {
        "exact (window)": ex_norm / ex_quad,
        "exact (stationary)": shape_ratio(stat, lam),
        "Lyapunov (η → 0)": shape_ratio(linreg_lyapunov(lam, s2, ETA, b), lam),
        "Gibbs": shape_ratio(linreg_gibbs(lam, s2, ETA, b), lam),
    }
    m, lo, hi = mean_ci(norm2)
    est, blo, bhi = bootstrap_ci(np.stack([norm2, quad], 1),
                                 lambda v: v[:, 0].mean() / v[:, 1].mean(), probe_seed(91))
    common = dict(figure=fig)
    tol = abs(shapes["exact (stationary)"] - shapes["Lyapunov (η → 0)"]) + abs(
        shapes["exact (window)"] - shapes["exact (stationary)"])  # fmt: skip
    out = [
        study.finding(
            CLAIM_SIM, f"linear regression (S = diag{tuple(EIGS)}, η = {ETA:g}): E‖w − w*‖² over "
            "the window", m, (lo, hi), kind="engine-check", predicted=ex_norm, rule="contains",
            ci_method=T_INTERVAL, theory="theory.linear_regression.linreg_sgd_second_moments "
            "(exact, Isserlis)", **common,
        ),
        study.finding(
            CLAIM_SIM, "linear regression: shape tr P / tr(SP) = E‖δ‖² / E[δᵀSδ]", est,
            (blo, bhi), kind="engine-check", predicted=shapes["exact (window)"],
            rule="contains", ci_method=BOOTSTRAP, theory="the same ratio of the exact "
            "recursion's window averages", **common,
        ),
        study.finding(
            CLAIM, "linear regression (anisotropic noise Σ(w*) = σ²S): shape tr P / tr(SP) "
            f"against the Gibbs law's tr(S⁻¹)/d = {shapes['Gibbs']:.3f} (any T)", est,
            (blo, bhi), kind="article", predicted=shapes["Gibbs"], rule="contains",
            tolerance=tol, tolerance_derivation="the exact recursion's finite-η and transient "
            "departure from its η → 0 limit: |stationary − Lyapunov shape| + |window − "
            "stationary shape|", ci_method=BOOTSTRAP,
            theory="theory.linear_regression.linreg_gibbs: P = T S⁻¹", shapes=shapes, **common,
        ),
        study.finding(
            CLAIM_SIM, f"linear regression: the Lyapunov (SDE) shape d/tr S = "
            f"{shapes['Lyapunov (η → 0)']:.3f} against the exact stationary shape",
            shapes["Lyapunov (η → 0)"], None, kind="analytic", predicted=None, rule="report",
            theory="theory.linear_regression.linreg_lyapunov: SP + PS = (η/b)σ²S",
            exact_stationary=shapes["exact (stationary)"], **common,
        ),
    ]
    names = ["measured", *shapes]
    vals = [est, *shapes.values()]
    ax.bar(range(len(vals)), vals, color=["C0", "C1", "C1", "C2", "C3"])
    ax.errorbar([0], [est], yerr=[[est - blo], [bhi - est]], color="k", capsize=4)
    ax.set_xticks(range(len(vals)), names, rotation=25, ha="right", fontsize=7)
    ax.set(ylabel="tr P / tr(SP)", title="anisotropic noise: Lyapunov, not Gibbs")
    return out
