"""Study ``rates``: convergence rates of SGD (article §3.2 D) and GD's linear rate.

Problems (closed forms known, F* = 0):

* strongly convex — a finite quadratic (N = 2000 centred noise draws, λ ∈ [0.5, 1]),
  SGD with b = 1 sampled with replacement, deterministic start;
* convex, not strongly convex — a population quadratic with spectrum
  (1, 0.1, 0.01, 10⁻³, 10⁻⁴, 0, 0, 0) (zero eigenvalues: no strong convexity).

Measurements (mean over chains; slopes by OLS of log mean on log T over 25 log-spaced
recorded steps in [T/20, T], CI by a bootstrap over chains):

* η_t = β/(γ + t), β > 1/μ: slope of E F(w_T) − F* (BCN 2018 Thm 4.7: O(1/T)); the
  level at T against the exact recursion; the Thm 4.7 bound must hold;
* η_t = η₀/√(t + 1), on both problems (strongly convex is convex: the convex claim): the
  article's O(1/√T) bound (:func:`sgdlab.theory.rates.uniform_average_bound`) as an
  upper bound on the averaged iterate's level — on the strongly convex problem the average
  is faster (≈ 1/T), which is reported. The last-iterate and averaged slopes are compared
  with the exact recursions' slopes under a separate claim: an engine check, not the
  article's (at these horizons the convex slopes are shallower than −1/2 while the level
  stays far below the bound);
* GD (full batch) on the strongly convex problem: the fitted contraction factor of
  ‖w_t − w*‖ against max|1 − ηλ| (:func:`sgdlab.theory.rates.gd_contraction_factor`).

The figure also draws suboptimality against per-sample gradient evaluations (b·t for SGD,
N·t for GD).
"""

from __future__ import annotations

import numpy as np

from sgdlab.engine.result import RunResult
from sgdlab.lab.stats import BOOTSTRAP, T_INTERVAL, mean_ci, probe_seed
from sgdlab.lab.studies._common import build, figure, ols_slope, save, subopt
from sgdlab.lab.study import Context, Study, register
from sgdlab.optim import build_schedule
from sgdlab.theory.noise_floor import bcn_constants_quadratic
from sgdlab.theory.rates import (
    bcn_diminishing_bound,
    expected_suboptimality_averaged_quadratic,
    expected_suboptimality_quadratic,
    fit_geometric_rate,
    fit_loglog_slope,
    gd_contraction_factor,
    quadratic_moments,
    uniform_average_bound,
)

CLAIM_SC = "For strongly convex F with η_t ∝ 1/t, E[F(w_T)] − F* = O(1/T) (§3.2 D)."
CLAIM_CVX = "For convex F with η_t ∝ 1/√t, E[F(w_T)] − F* = O(1/√T) (§3.2 D)."
CLAIM_GD = "Deterministic GD converges linearly, O(c^T), on strongly convex problems (§3.2 D)."
CLAIM_SIM = (
    "Engine check, not an article claim: the simulated E F(w_T) − F* follows the exact "
    "expected recursion of SGD on the quadratic."
)
N = 2000
SC = {"name": "quadratic", "dim": 5, "mu": 0.5, "L": 1.0, "noise": "isotropic",
      "noise_std": 1.0, "init_scale": 2.0, "n": N}
CVX = {"name": "quadratic", "eigenvalues": [1.0, 0.1, 0.01, 1e-3, 1e-4, 0.0, 0.0, 0.0],
       "noise": "isotropic", "noise_std": 1.0, "init_scale": 2.0}
BETA, GAMMA = 4.0, 8.0  # β > 1/μ = 2, η_0 = β/γ = 0.5 ≤ 1/L
ETA_SQRT = 0.5
ETA_GD = 0.8


def _settings(quick: bool) -> tuple[int, int]:
    return (4000, 256) if quick else (40000, 1024)


@register
class Rates(Study):
    name = "rates"
    section = "3.2 D"
    claim = "β/(γ+t): O(1/T); 1/√t: O(1/√T), averaged iterate under its bound; GD linear"

    def grid(self, quick: bool) -> dict[str, dict]:
        T, K = _settings(quick)
        every = max(1, T // 400)
        base = {"chains": K, "steps": T, "dtype": "float64", "streams": {"off": ["init"]},
                "record": {"every": every, "average": True}}
        sgd = {"size": 1, "sampling": "with_replacement"}
        return {
            "sc/beta_gamma": {**base, "problem": SC, "seed": 31, "batch": sgd,
                              "optimizer": {"name": "sgd", "lr": BETA / GAMMA},
                              "schedule": {"name": "beta_gamma", "gamma": GAMMA}},
            "sc/sqrt": {**base, "problem": SC, "seed": 32, "batch": sgd,
                        "optimizer": {"name": "sgd", "lr": ETA_SQRT},
                        "schedule": {"name": "inverse_sqrt"}},
            "cvx/sqrt": {**base, "problem": CVX, "seed": 33,
                         "batch": {"size": 1, "sampling": "stream"},
                         "optimizer": {"name": "sgd", "lr": ETA_SQRT},
                         "schedule": {"name": "inverse_sqrt"}},
            "sc/gd": {"problem": SC, "seed": 34, "chains": 8, "steps": 40, "dtype": "float64",
                      "batch": {"sampling": "full", "size": None},
                      "optimizer": {"name": "sgd", "lr": ETA_GD}, "record": {"every": 1}},
        }

    def analyze(self, runs: dict[str, RunResult], ctx: Context) -> list:
        T, _ = _settings(ctx.quick)
        out = []
        fname = "rates.png"
        fig, axes = figure(1, 3)
        seed = probe_seed(31)
        # η ∝ 1/√t belongs to the convex claim on both problems (strongly convex is convex)
        for key, prob_cfg in (("sc", SC), ("cvx", CVX)):
            run0 = runs[f"{key}/sqrt"]
            prob = build(run0)
            Q = prob.Q.numpy()
            lam = prob.eigenvalues.numpy()
            c = np.diag(Q.T @ prob.C.numpy() @ Q)
            d = prob.dim
            e0 = Q.T @ (prob_cfg["init_scale"] * np.ones(d) / np.sqrt(d))
            names = ["sqrt"] + (["beta_gamma"] if key == "sc" else [])
            for sname in names:
                run = runs[f"{key}/{sname}"]
                cfg = run.config
                sched = build_schedule(cfg["schedule"], T)
                etas = cfg["optimizer"]["lr"] * np.asarray(sched(np.arange(T)), float)
                exact = expected_suboptimality_quadratic(lam, c, 1, e0, etas)
                steps, v = subopt(run)
                idx = _log_idx(steps, T)
                Ts = steps[idx].astype(float)
                fit = fit_loglog_slope(Ts, v[:, idx], seed=seed)
                seed += 1
                label = f"{key}: η_t = {cfg['optimizer']['lr']:g}·{sched.formula()}"
                claim = CLAIM_SC if sname == "beta_gamma" else CLAIM_CVX
                if sname == "beta_gamma":
                    k = bcn_constants_quadratic(lam, float(c.sum()), 1)
                    # the engine's η_t = β/(γ+t) from t = 0 is BCN's α_k = β/(γ' + k) from
                    # k = 1 with γ' = γ − 1 (the bound function takes BCN's γ)
                    bound = bcn_diminishing_bound(BETA, GAMMA - 1, k, float(exact[0]), Ts)
                    out.append(self.finding(
                        claim, "slope of log E[F(w_T)]−F* vs log T, η_t = β/(γ+t) (last iterate)",
                        fit.slope, (fit.ci_low, fit.ci_high), predicted=ols_slope(Ts, bound),
                        tolerance=0.1, rule="band", figure=fname, ci_method=BOOTSTRAP,
                        theory="slope of theory.rates.bcn_diminishing_bound (ν/(γ+T))",
                        exact_recursion_slope=ols_slope(Ts, exact[steps[idx]]),
                        window=[Ts[0], Ts[-1]],
                    ))
                    m, lo, hi = mean_ci(v[:, -1])
                    out.append(self.finding(
                        claim, f"E[F(w_T)]−F* at T={T} ≤ BCN Thm 4.7 bound ν/(γ+T)", m, (lo, hi),
                        predicted=float(bound[-1]), rule="upper_bound", figure=fname,
                        ci_method=T_INTERVAL, theory="theory.rates.bcn_diminishing_bound",
                        exact=float(exact[-1]),
                    ))
                    axes[0].plot(Ts, bound, "k:", lw=1, label="BCN Thm 4.7 bound")
                else:
                    pred = ols_slope(Ts, exact[steps[idx]])
                    out.append(self.finding(
                        CLAIM_SIM,
                        f"{key}: slope vs log T, η_t = η₀/√(t+1) (last iterate) against the exact "
                        "recursion's",
                        fit.slope, (fit.ci_low, fit.ci_high), predicted=pred, tolerance=0.1,
                        rule="band", figure=fname, ci_method=BOOTSTRAP,
                        theory="slope of theory.rates.expected_suboptimality_quadratic",
                        window=[Ts[0], Ts[-1]],
                    ))
                    # averaged iterate
                    sa, va = subopt(run, "avg_suboptimality")
                    ia = _log_idx(sa, T)
                    Ta = sa[ia].astype(float)
                    afit = fit_loglog_slope(Ta, va[:, ia], seed=seed)
                    seed += 1
                    dist2, grad2 = quadratic_moments(lam, c, 1, e0, etas)
                    ex_avg, bnd = [], []
                    for t in sa[ia]:
                        n_pts = int(t) + 1  # the engine averages w_0..w_t
                        et = ETA_SQRT * np.asarray(sched(np.arange(n_pts)), float)
                        ex_avg.append(expected_suboptimality_averaged_quadratic(
                            lam, c, 1, e0, et, weights=np.ones(n_pts)))
                        bnd.append(uniform_average_bound(
                            et, float(dist2[:n_pts].max()), grad2[:n_pts]))
                    ex_avg, bnd = np.array(ex_avg), np.array(bnd)
                    out.append(self.finding(
                        CLAIM_SIM,
                        f"{key}: slope vs log T of the Polyak–Ruppert average, η₀/√(t+1), against "
                        "the exact averaged recursion's",
                        afit.slope, (afit.ci_low, afit.ci_high), predicted=ols_slope(Ta, ex_avg),
                        tolerance=0.1, rule="band", figure=fname, ci_method=BOOTSTRAP,
                        theory="slope of theory.rates.expected_suboptimality_averaged_quadratic",
                        bound_slope=ols_slope(Ta, bnd),
                        faster_than_bound=bool(afit.ci_high < ols_slope(Ta, bnd)),
                    ))
                    m, lo, hi = mean_ci(va[:, -1])
                    out.append(self.finding(
                        claim, f"{key}: averaged iterate at T={T} ≤ O(1/√T) bound", m, (lo, hi),
                        predicted=float(bnd[-1]), rule="upper_bound", figure=fname,
                        ci_method=T_INTERVAL, theory="theory.rates.uniform_average_bound",
                        measured_slope=afit.slope, bound_slope=ols_slope(Ta, bnd),
                    ))
                    ax = axes[0] if key == "sc" else axes[1]
                    ax.plot(sa[1:], va.mean(0)[1:], lw=1.5, label=f"{key}: averaged iterate")
                    ax.plot(Ta, ex_avg, "k--", lw=0.8)
                    ax.plot(Ta, bnd, "r:", lw=1, label="O(1/√T) bound (averaged)")
                ax = axes[0] if key == "sc" else axes[1]
                ax.plot(steps[1:], v.mean(0)[1:], lw=1.5, label=label)
                ax.plot(np.arange(1, T + 1), exact[1:], "k--", lw=0.8)
                if key == "sc":
                    axes[2].plot(steps[1:], v.mean(0)[1:], lw=1.2, label=f"SGD b=1, {sname}")
            ax = axes[0] if key == "sc" else axes[1]
            ax.set(xscale="log", yscale="log", xlabel="step T", ylabel="E F(w_T) − F*",
                   title=("strongly convex" if key == "sc" else "convex (zero eigenvalues)")
                   + " (dashed: exact)")
            ax.legend(fontsize=7)
        # ---------------- GD linear rate
        gd = runs["sc/gd"]
        prob = build(gd)
        rho = gd_contraction_factor(prob.eigenvalues.numpy(), ETA_GD)
        st, dist = gd.metric("dist_to_opt")
        win = (st >= 10) & (dist.min(0) > 1e-12)
        rfit = fit_geometric_rate(st[win].astype(float), dist[:, win], seed=seed)
        out.append(self.finding(
            CLAIM_GD, f"GD (full batch, η={ETA_GD:g}): contraction factor of ‖w_t − w*‖",
            rfit.rho, (rfit.ci_low, rfit.ci_high), predicted=rho, tolerance=0.01, rule="band",
            figure=fname, ci_method=BOOTSTRAP, theory="theory.rates.gd_contraction_factor",
        ))
        sg, vg = subopt(gd)
        axes[2].plot(sg[1:] * N, vg.mean(0)[1:], "k-", lw=1.5, label=f"GD (N={N} per step)")
        axes[2].set(xscale="log", yscale="log", xlabel="per-sample gradient evaluations",
                    ylabel="E F − F*", title="strongly convex: cost in gradient evaluations")
        axes[2].legend(fontsize=7)
        save(fig, ctx.figure(fname))
        return out


def _log_idx(steps: np.ndarray, T: int, n: int = 25) -> np.ndarray:
    """Indices of recorded steps nearest to n log-spaced points in [T/20, T]."""
    targets = np.geomspace(max(1, T / 20), T, n)
    idx = np.unique(np.abs(steps[None, :] - targets[:, None]).argmin(1))
    return idx
