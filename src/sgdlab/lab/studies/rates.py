"""Study ``rates``: convergence rates of SGD (article §3.2 D) and GD's linear rate.

Problems (closed forms known, F* = 0 for the quadratics):

* strongly convex — a finite quadratic (N = 2000 centred noise draws, λ ∈ [0.5, 1]), SGD
  with b = 1 sampled with replacement, deterministic start;
* convex, not strongly convex — a population quadratic with spectrum
  (1, 0.1, 0.01, 10⁻³, 10⁻⁴, 0, 0, 0);
* L2-regularised logistic regression on digits (for GD's linear rate on a non-quadratic).

Every reference is computed from the problem of the run it is compared with (``build(run)``).
Slopes are OLS fits of log(mean over chains) on log T over 25 log-spaced recorded steps in
[T/20, T], with a bootstrap over chains.

Findings (kinds as in :mod:`sgdlab.lab.findings`):

* η_t = β/(γ + t) for βμ ∈ {¼, 1, 2} — article: "η_t ∝ 1/t gives O(1/T)". The exact rate
  is T^(−min(1, 2βμ)), never faster than 1/T, so the claim is the slope −1 (rule
  ``contains``, τ = |exact window slope − its T → ∞ limit|, the finite-window model
  error); it **fails for βμ < ½**, where the rate is T^(−2βμ).
  Engine check: each slope against the exact recursion's. Bound: BCN (2018) Thm 4.7,
  where its condition β > 1/(cμ) holds, with its tightness.
* η_t = η₀/√(t + 1) — article: "O(1/√T)" over the T grid for the last iterate (the
  article's w_T) and the uniform average, on both problems. The last iterate cannot decay
  faster than T^(−½) (its noise term tracks η_T), so the claim is the exponent −½ (rule
  ``contains``); the average may be faster (exponent ≤ −½, rule ``upper_bound``). τ is the
  finite-window model error as for β/(γ+t): the exact recursion's window slope minus its
  T → ∞ exponent (−½ for the last iterate, −1 for the uniform average; for the average only
  the excess counts). Engine checks against the exact recursions; bound: the averaged iterate
  against the uniform-average bound.
* GD — engine check on the quadratic (the fitted factor of ‖w_t − w*‖ against the same fit of
  the exact noiseless iteration); bound on logistic regression: the fitted factor against
  the contraction theorem's max(|1 − ημ|, |1 − ηL|) (a theorem: it cannot fail, so it is a
  bound with its tightness, not evidence for the article).
"""

from __future__ import annotations

import numpy as np

from sgdlab.engine.result import RunResult
from sgdlab.lab.findings import Finding
from sgdlab.lab.stats import BOOTSTRAP, T_INTERVAL, groups, mean_ci, probe_seed
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
    quadratic_moments,
    uniform_average_bound,
)

CLAIM_SC = "For strongly convex F with η_t ∝ 1/t, E[F(w_T)] − F* = O(1/T) (§3.2 D)."
CLAIM_CVX = "For convex F with η_t ∝ 1/√t, E[F(w_T)] − F* = O(1/√T) (§3.2 D)."
CLAIM_GD = "Deterministic GD converges linearly, O(c^T), on strongly convex problems (§3.2 D)."
CLAIM_SIM = "Engine check: the simulated E F(w_t) − F* follows the exact recursion it implements."
N = 2000
SC = {"name": "quadratic", "dim": 5, "mu": 0.5, "L": 1.0, "noise": "isotropic",
      "noise_std": 1.0, "init_scale": 2.0, "n": N}
CVX = {"name": "quadratic", "eigenvalues": [1.0, 0.1, 0.01, 1e-3, 1e-4, 0.0, 0.0, 0.0],
       "noise": "isotropic", "noise_std": 1.0, "init_scale": 2.0}
LOGREG = {"name": "logistic_regression", "dataset": "digits", "l2": 0.5, "penalize_bias": True,
          "init_scale": 1.0}
BETAS, GAMMA = (0.5, 2.0, 4.0), 8.0  # βμ = ¼, 1, 2 with μ = 0.5; η₀ = β/γ ≤ 1/L
ETA_SQRT, ETA_GD = 0.5, 0.8
#: GD on logistic regression: η = 1/L with L = l2 + ½λ_max(X̃ᵀX̃/N) = 4.17 on digits
ETA_GD_LOG = 0.24


def _settings(quick: bool) -> tuple[int, int]:
    return (4000, 256) if quick else (40000, 1024)


@register
class Rates(Study):
    name = "rates"
    section = "3.2 D"
    claim = "β/(γ+t): O(1/T) only for βμ > ½; η₀/√t: O(1/√T) over a T grid; GD linear"

    def grid(self, quick: bool) -> dict[str, dict]:
        T, K = _settings(quick)
        every = max(1, T // 400)
        base = {"chains": K, "steps": T, "dtype": "float64", "streams": {"off": ["init"]},
                "record": {"every": every, "average": True}}
        sgd = {"size": 1, "sampling": "with_replacement"}
        full = {"sampling": "full", "size": None}
        return {
            "sc/beta_gamma": {**base, "problem": SC, "seed": 31, "batch": sgd,
                              "chains": K * len(BETAS),
                              "optimizer": {"name": "sgd", "lr": [b / GAMMA for b in BETAS]},
                              "schedule": {"name": "beta_gamma", "gamma": GAMMA}},
            "sc/sqrt": {**base, "problem": SC, "seed": 32, "batch": sgd,
                        "optimizer": {"name": "sgd", "lr": ETA_SQRT},
                        "schedule": {"name": "inverse_sqrt"}},
            "cvx/sqrt": {**base, "problem": CVX, "seed": 33,
                         "batch": {"size": 1, "sampling": "stream"},
                         "optimizer": {"name": "sgd", "lr": ETA_SQRT},
                         "schedule": {"name": "inverse_sqrt"}},
            "sc/gd": {"problem": SC, "seed": 34, "chains": 4, "steps": 40, "dtype": "float64",
                      "batch": full, "streams": {"off": ["init"]},
                      "optimizer": {"name": "sgd", "lr": ETA_GD}, "record": {"every": 1}},
            "logreg/gd": {"problem": LOGREG, "seed": 35, "chains": 8, "steps": 150,
                          "dtype": "float64", "batch": full,
                          "optimizer": {"name": "sgd", "lr": ETA_GD_LOG}, "record": {"every": 1}},
        }

    def analyze(self, runs: dict[str, RunResult], ctx: Context) -> list[Finding]:
        T, _ = _settings(ctx.quick)
        fig, axes = figure(2, 2)
        seed = probe_seed(31)
        out = self._beta_gamma(runs["sc/beta_gamma"], T, axes[0], seed)
        for j, key in enumerate(("sc", "cvx")):
            out += self._sqrt(runs[f"{key}/sqrt"], key, T, axes[1 + j], seed + 10 + 4 * j)
        out += self._gd(runs["sc/gd"], runs["logreg/gd"], axes[3], seed + 30)
        save(fig, ctx.figure("rates.png"))
        return out

    # ------------------------------------------------------------------ β/(γ + t)
    def _beta_gamma(self, run: RunResult, T: int, ax, seed: int) -> list[Finding]:
        lam, c, e0 = _eigen(run)
        mu = float(lam.min())
        steps, v = subopt(run)
        idx = _log_idx(steps, T)
        Ts = steps[idx].astype(float)
        out = []
        for g, (beta, vg) in enumerate(zip(BETAS, groups(v, len(BETAS)), strict=True)):
            etas = (beta / GAMMA) * np.asarray(build_schedule(run.config["schedule"], T)(
                np.arange(T)), float)  # fmt: skip
            exact = expected_suboptimality_quadratic(lam, c, 1, e0, etas)
            fit = fit_loglog_slope(Ts, vg[:, idx], seed=seed + g)
            exact_slope = ols_slope(Ts, exact[steps[idx]])
            limit = -min(1.0, 2 * beta * mu)
            tag = f"β={beta:g} (βμ={beta * mu:g})"
            out.append(self.finding(
                CLAIM_SC, f"slope of log E F(w_T) − F* vs log T, η_t = β/(γ+t), {tag}",
                fit.slope, (fit.ci_low, fit.ci_high), kind="article", predicted=-1.0,
                tolerance=abs(exact_slope - limit), rule="contains", figure="rates.png",
                tolerance_derivation=(
                    f"finite-window model error |{exact_slope:.4f} − ({limit:g})|: the exact "
                    f"recursion's slope over T ∈ [{Ts[0]:.0f}, {Ts[-1]:.0f}] minus its T → ∞ "
                    "limit −min(1, 2βμ)"),
                ci_method=BOOTSTRAP, theory="article: O(1/T); exact limit −min(1, 2βμ)",
                asymptotic_slope=limit, exact_window_slope=exact_slope, trace_C=float(c.sum()),
                beta_mu=beta * mu,
            ))  # fmt: skip
            out.append(self.finding(
                CLAIM_SIM, f"β/(γ+t) slope against the exact recursion's, {tag}", fit.slope,
                (fit.ci_low, fit.ci_high), kind="engine-check", predicted=exact_slope,
                rule="contains", figure="rates.png", ci_method=BOOTSTRAP,
                theory="slope of theory.rates.expected_suboptimality_quadratic",
            ))  # fmt: skip
            if beta * mu > 1:  # BCN Thm 4.7 needs β > 1/(cμ) (c = 1 for plain SGD)
                k = bcn_constants_quadratic(lam, float(c.sum()), 1)
                # the engine's η_t = β/(γ+t) from t = 0 is BCN's β/(γ' + k) from k = 1, γ' = γ − 1
                bound = bcn_diminishing_bound(beta, GAMMA - 1, k, float(exact[0]), Ts)
                m, lo, hi = mean_ci(vg[:, -1])
                out.append(self.finding(
                    CLAIM_SC, f"E F(w_T) − F* at T={T} ≤ BCN Thm 4.7 bound ν/(γ+T), {tag}", m,
                    (lo, hi), kind="bound", predicted=float(bound[-1]), rule="upper_bound",
                    figure="rates.png", ci_method=T_INTERVAL,
                    theory="theory.rates.bcn_diminishing_bound", exact=float(exact[-1]),
                ))  # fmt: skip
            ax.plot(steps[1:], vg.mean(0)[1:], lw=1.5, label=f"β/(γ+t), {tag}")
            ax.plot(np.arange(1, T + 1), exact[1:], "k--", lw=0.8)
        ax.set(xscale="log", yscale="log", xlabel="step T", ylabel="E F(w_T) − F*",
               title="strongly convex, β/(γ+t) (dashed: exact)")  # fmt: skip
        ax.legend(fontsize=7)
        return out

    # ------------------------------------------------------------------ η₀/√(t+1)
    def _sqrt(self, run: RunResult, key: str, T: int, ax, seed: int) -> list[Finding]:
        lam, c, e0 = _eigen(run)
        sched = build_schedule(run.config["schedule"], T)
        etas = ETA_SQRT * np.asarray(sched(np.arange(T + 1)), float)
        exact = expected_suboptimality_quadratic(lam, c, 1, e0, etas[:T])
        steps, v = subopt(run)
        sa, va = subopt(run, "avg_suboptimality")
        idx, ia = _log_idx(steps, T), _log_idx(sa, T)
        Ts, Ta = steps[idx].astype(float), sa[ia].astype(float)
        dist2, grad2 = quadratic_moments(lam, c, 1, e0, etas[:T])
        ex_avg, bound = [], []
        for t in sa[ia]:
            n_pts = int(t) + 1  # the engine averages w_0..w_t
            ex_avg.append(expected_suboptimality_averaged_quadratic(
                lam, c, 1, e0, etas[:n_pts], weights=np.ones(n_pts)))  # fmt: skip
            bound.append(uniform_average_bound(etas[:n_pts], float(dist2[:n_pts].max()),
                                               grad2[:n_pts]))  # fmt: skip
        ex_avg, bound = np.array(ex_avg), np.array(bound)
        name = "strongly convex" if key == "sc" else "convex"
        # the T → ∞ exponents of the exact recursion: the last iterate's noise term tracks
        # η_T ∝ T^(−½); the uniform average of a quadratic decays like 1/T once every
        # direction with λ > 0 has relaxed (directions with λ = 0 do not enter F)
        limits = {"last": -0.5, "average": -1.0}
        out = []
        series = (("last", Ts, v[:, idx], exact[steps[idx]]), ("average", Ta, va[:, ia], ex_avg))
        for i, (which, x, vals, ref) in enumerate(series):
            fit = fit_loglog_slope(x, vals, seed=seed + i)
            exact_slope = ols_slope(x, ref)
            # the last iterate cannot beat T^(−½) (its noise term tracks η_T), so "O(1/√T)"
            # is the exponent −½ itself (``contains``); the average may be faster (``≤``)
            last = which == "last"
            tau = abs(exact_slope - limits[which]) if last else max(0.0, exact_slope + 1.0)
            out.append(self.finding(
                CLAIM_CVX, f"{name}: slope of log E F − F* vs log T, η₀/√(t+1), {which} iterate",
                fit.slope, (fit.ci_low, fit.ci_high), kind="article", predicted=-0.5,
                tolerance=tau, tolerance_derivation=(
                    f"finite-window model error: the exact recursion's slope over T ∈ "
                    f"[{x[0]:.0f}, {x[-1]:.0f}] ({exact_slope:.4f}) minus its T → ∞ exponent "
                    f"({limits[which]:g})" + ("" if last else ", if positive")),
                rule="contains" if last else "upper_bound", figure="rates.png",
                ci_method=BOOTSTRAP,
                theory="article: O(1/√T), an exponent ≤ −½", exact_window_slope=exact_slope,
                asymptotic_slope=limits[which], window=[x[0], x[-1]],
            ))  # fmt: skip
            out.append(self.finding(
                CLAIM_SIM, f"{name}: η₀/√(t+1) {which}-iterate slope against the exact "
                "recursion's", fit.slope, (fit.ci_low, fit.ci_high), kind="engine-check",
                predicted=exact_slope, rule="contains", figure="rates.png", ci_method=BOOTSTRAP,
                theory="slope of theory.rates.expected_suboptimality_"
                + ("quadratic" if which == "last" else "averaged_quadratic"),
            ))  # fmt: skip
        m, lo, hi = mean_ci(va[:, -1])
        out.append(self.finding(
            CLAIM_CVX, f"{name}: averaged iterate at T={T} ≤ the uniform-average bound", m,
            (lo, hi), kind="bound", predicted=float(bound[-1]), rule="upper_bound",
            figure="rates.png", ci_method=T_INTERVAL,
            theory="theory.rates.uniform_average_bound",
        ))  # fmt: skip
        ax.plot(steps[1:], v.mean(0)[1:], lw=1.5, label="last iterate")
        ax.plot(np.arange(1, T + 1), exact[1:], "k--", lw=0.8)
        ax.plot(sa[1:], va.mean(0)[1:], lw=1.5, label="uniform average")
        ax.plot(Ta, ex_avg, "k--", lw=0.8)
        ax.plot(Ta, bound, "r:", lw=1, label="uniform-average bound")
        ax.plot(Ts, exact[steps[idx]][-1] * np.sqrt(Ts[-1] / Ts), "g:", lw=1, label="∝ 1/√T")
        ax.set(xscale="log", yscale="log", xlabel="step T", ylabel="E F − F*",
               title=f"{name}, η₀/√(t+1) (dashed: exact)")  # fmt: skip
        ax.legend(fontsize=7)
        return out

    # ------------------------------------------------------------------ GD
    def _gd(self, quad: RunResult, logreg: RunResult, ax, seed: int) -> list[Finding]:
        prob = build(quad)
        A = prob.A.numpy()
        ws = prob.w_star.numpy()
        e0 = prob.init_params(None).numpy() - ws  # init off: one fixed start
        st, dist = quad.metric("dist_to_opt")
        win = (st >= 10) & (dist.min(0) > 1e-6)
        t_win = st[win].astype(float)
        M = np.eye(len(e0)) - ETA_GD * A
        exact = np.array([np.linalg.norm(np.linalg.matrix_power(M, int(t)) @ e0) for t in st])
        rfit = fit_geometric_rate(t_win, dist[:, win], seed=seed)
        ref = float(np.exp(np.polyfit(t_win, np.log(exact[win]), 1)[0]))  # same OLS, exact data
        # what the exact iteration leaves out, relative to each recorded distance d_t: the
        # float64 rounding of ‖w − w*‖ (≲ 4ε(‖w*‖ + d_t)) and the full-batch mean ξ̄ of the
        # N centred noise draws, zero only up to rounding (its effect ≤ η‖ξ̄‖/(1 − ρ));
        # a relative error δ_t moves the OLS slope by at most Σ|t − t̄|δ_t / Σ(t − t̄)²
        eps = np.finfo(np.float64).eps
        rho = float(np.max(np.abs(1 - ETA_GD * prob.eigenvalues.numpy())))
        xi_bar = float(np.linalg.norm(prob.X.double().mean(0).numpy()))
        d = exact[win]
        delta = (4 * eps * (np.linalg.norm(ws) + d) + ETA_GD * xi_bar / (1 - rho)) / d
        tc = t_win - t_win.mean()
        tol = ref * float(np.abs(tc) @ delta / (tc @ tc))
        out = [self.finding(
            CLAIM_SIM, f"GD on the quadratic (η={ETA_GD:g}): fitted factor of ‖w_t − w*‖ "
            "against the same fit of the exact iteration", rfit.rho,
            (rfit.ci_low, rfit.ci_high), kind="engine-check", predicted=ref, tolerance=tol,
            rule="contains", figure="rates.png", tolerance_derivation="float64 rounding of "
            f"the recorded distances (≲ 4ε(‖w*‖ + d_t)) and the rounding mean ‖ξ̄‖ = "
            f"{xi_bar:.2g} of the centred noise draws (effect ≤ η‖ξ̄‖/(1 − ρ)), propagated "
            "through the OLS fit", ci_method=BOOTSTRAP, theory="exact (I − ηA)^t e₀",
            asymptotic_factor=rho,
        )]  # fmt: skip
        # logistic regression: μ = l2 (the cross-entropy Hessian is PSD), and the softmax
        # Hessian diag(p) − ppᵀ ≼ ½I gives L ≤ l2 + ½ λ_max(X̃ᵀX̃/N) with X̃ = [X, 1]
        lp = build(logreg)
        X = lp.X.numpy()
        Xb = np.hstack([X, np.ones((X.shape[0], 1))])
        mu = LOGREG["l2"]
        L = mu + 0.5 * float(np.linalg.eigvalsh(Xb.T @ Xb / X.shape[0]).max())
        eta = float(logreg.config["optimizer"]["lr"])
        bound = max(abs(1 - eta * mu), abs(1 - eta * L))
        lam = np.linalg.eigvalsh(lp.hessian(lp.w_star).numpy())
        sl, dl = logreg.metric("dist_to_opt")
        ok = (sl >= 20) & (dl.min(0) > 1e-8)
        fit = fit_geometric_rate(sl[ok].astype(float), dl[:, ok], seed=seed + 1)
        out.append(self.finding(
            CLAIM_GD, f"GD on logistic regression (digits, l2={mu:g}, η=1/L={eta:.3g}): fitted "
            "factor of ‖w_t − w*‖ ≤ max(|1 − ημ|, |1 − ηL|)", fit.rho,
            (fit.ci_low, fit.ci_high), kind="bound", predicted=bound, rule="upper_bound",
            figure="rates.png", ci_method=BOOTSTRAP,
            theory="GD contraction for μ-strongly convex, L-smooth F (Nesterov 2004, Thm "
            "2.1.15), μ = l2, L = l2 + ½λ_max(X̃ᵀX̃/N)",
            local_factor=float(np.max(np.abs(1 - eta * lam))), mu=mu, L=L,
        ))  # fmt: skip
        ax.semilogy(st, dist.mean(0), "o-", ms=3, label=f"quadratic, η={ETA_GD:g}")
        ax.semilogy(st, exact, "k--", lw=0.8)
        ax.semilogy(sl, dl.mean(0), "s-", ms=2, label=f"logistic, η={eta:.3g}")
        ax.semilogy(sl, dl.mean(0)[0] * bound**sl, "r:", label=f"bound {bound:.3f}^t")
        ax.set(xlabel="step t", ylabel="‖w_t − w*‖", title="GD: linear convergence")
        ax.legend(fontsize=7)
        return out


def _eigen(run: RunResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The run's own problem in its eigenbasis: eigenvalues, noise variances, initial error."""
    prob = build(run)
    Q = prob.Q.numpy()
    lam = prob.eigenvalues.numpy()
    c = np.diag(Q.T @ prob.C.numpy() @ Q)
    e0 = Q.T @ (prob.init_params(None).numpy() - prob.w_star.numpy())  # init off: fixed start
    return lam, c, e0


def _log_idx(steps: np.ndarray, T: int, n: int = 25) -> np.ndarray:
    """Indices of recorded steps nearest to n log-spaced points in [T/20, T]."""
    targets = np.geomspace(max(1, T / 20), T, n)
    return np.unique(np.abs(steps[None, :] - targets[:, None]).argmin(1))
