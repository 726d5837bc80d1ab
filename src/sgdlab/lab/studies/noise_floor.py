"""Study ``noise-floor``: constant-step SGD converges to a neighbourhood of size ∝ η/b.

Article §3.2 B: "With a fixed learning rate η, SGD ... converges to a neighborhood around a
minimizer ... The size of this neighborhood depends on η and the noise variance σ²."

Measurement: the stationary level E[F(w)] − F*, estimated per chain as the time average of
F(w_t) − F* over the last part of the run (after a burn-in of many relaxation times), then
over chains (t-interval); log-log slopes against η (at b = 1) and against b (at fixed η),
with a bootstrap over chains.

Theory:

* quadratic — the exact stationary level of the linear iteration (discrete Lyapunov,
  :func:`sgdlab.theory.noise_floor.sgd_stationary_excess_loss`), must match within 5%;
  the slopes of that exact curve over the same grid; and the Bottou–Curtis–Nocedal (2018)
  Theorem 4.6 limit ηLM/(2cμ) (:func:`~sgdlab.theory.noise_floor.bcn_fixed_step_limit`),
  which must be an upper bound.
* logistic regression (digits, L2) — the same exact level for the linearisation at w*
  (Hessian H and per-sample gradient covariance Σ at w*, evaluated in H's eigenbasis with
  :func:`~sgdlab.theory.noise_floor.sgd_stationary_excess_loss_eig`, which is exact for
  the loss because only diag(QᵀΣQ) enters ½ tr(HP)); its slopes are the predictions
  (≈ 1 in η, −1 in b with replacement).
"""

from __future__ import annotations

import numpy as np

from sgdlab.engine.result import RunResult
from sgdlab.lab.stats import BOOTSTRAP, T_INTERVAL, groups, mean_ci, probe_seed, window_mean
from sgdlab.lab.studies._common import build, errbar, figure, ols_slope, save
from sgdlab.lab.study import Context, Study, register
from sgdlab.theory.noise_floor import (
    bcn_constants_quadratic,
    bcn_fixed_step_limit,
    sgd_stationary_excess_loss,
    sgd_stationary_excess_loss_eig,
)
from sgdlab.theory.rates import fit_loglog_slope

CLAIM = (
    "With a fixed step η, SGD converges only to a neighbourhood of the minimizer whose size "
    "depends on η and the noise variance (§3.2 B)."
)
QUAD = {"name": "quadratic", "dim": 8, "mu": 0.2, "L": 1.0, "noise": "isotropic",
        "noise_std": 1.0, "init_scale": 0.0}
LOGREG = {"name": "logistic_regression", "dataset": "digits", "l2": 0.5, "penalize_bias": True}


def _settings(quick: bool) -> dict:
    if quick:
        return {"q_chains": 96, "q_steps": 3000, "q_burn": 1000,
                "l_chains": 16, "l_steps": 4000, "l_burn": 2000, "l_every": 50}
    return {"q_chains": 256, "q_steps": 12000, "q_burn": 2000,
            "l_chains": 64, "l_steps": 12000, "l_burn": 3000, "l_every": 50}


@register
class NoiseFloor(Study):
    name = "noise-floor"
    section = "3.2 B"
    claim = "constant η: SGD stalls at a floor ∝ η/b (exact Lyapunov level, BCN Thm 4.6 bound)"

    q_etas = (0.025, 0.05, 0.1, 0.2, 0.4)
    q_eta_b = 0.1
    l_etas = (0.005, 0.01, 0.02, 0.04)
    l_eta_b = 0.01
    bs = (1, 2, 4, 8, 16)

    def grid(self, quick: bool) -> dict[str, dict]:
        s = _settings(quick)
        bs = self.bs if not quick else (1, 4, 16)
        g: dict[str, dict] = {}
        base_q = {"problem": QUAD, "chains": s["q_chains"], "steps": s["q_steps"], "seed": 11,
                  "record": {"every": 5}, "dtype": "float64"}
        g["quad/eta"] = {**base_q, "optimizer": {"name": "sgd", "lr": list(self.q_etas)},
                         "chains": s["q_chains"] * len(self.q_etas),
                         "batch": {"size": 1, "sampling": "stream"}}
        for b in bs[1:]:
            g[f"quad/b{b}"] = {**base_q, "optimizer": {"name": "sgd", "lr": self.q_eta_b},
                               "batch": {"size": b, "sampling": "stream"}}
        base_l = {"problem": LOGREG, "chains": s["l_chains"], "steps": s["l_steps"], "seed": 12,
                  "record": {"every": s["l_every"]}, "dtype": "float64"}
        g["logreg/eta"] = {**base_l, "optimizer": {"name": "sgd", "lr": list(self.l_etas)},
                           "chains": s["l_chains"] * len(self.l_etas),
                           "batch": {"size": 1, "sampling": "with_replacement"}}
        for b in bs[1:]:
            g[f"logreg/b{b}"] = {**base_l, "optimizer": {"name": "sgd", "lr": self.l_eta_b},
                                 "batch": {"size": b, "sampling": "with_replacement"}}
        return g

    # ------------------------------------------------------------------ analysis
    def analyze(self, runs: dict[str, RunResult], ctx: Context) -> list:
        s = _settings(ctx.quick)
        bs = self.bs if not ctx.quick else (1, 4, 16)
        fig, axes = figure(1, 3)
        fname = "noise-floor.png"
        out = []
        # ---------------- quadratic
        rq = runs["quad/eta"]
        prob = build(rq)
        A = prob.A.numpy()
        C = prob.C.numpy()
        steps, sub = rq.metric("suboptimality")
        lvl = groups(window_mean(steps, sub, s["q_burn"]), len(self.q_etas))  # per η: [Kη]
        exact_eta = np.array([sgd_stationary_excess_loss(A, C, e, 1) for e in self.q_etas])
        lvl_b = [None] * len(bs)
        for i, b in enumerate(bs):
            if b == 1:
                lvl_b[i] = lvl[self.q_etas.index(self.q_eta_b)]
            else:
                st, sb = runs[f"quad/b{b}"].metric("suboptimality")
                lvl_b[i] = window_mean(st, sb, s["q_burn"])
        exact_b = np.array([sgd_stationary_excess_loss(A, C, self.q_eta_b, b) for b in bs])
        seed = probe_seed(11)
        # level vs exact, every η
        ratio_all = []
        for e, v, ex in zip(self.q_etas, lvl, exact_eta, strict=True):
            m, lo, hi = mean_ci(v / ex)
            ratio_all.append((m, lo, hi))
            out.append(self.finding(
                CLAIM, f"quadratic: stationary level / exact Lyapunov level (η={e:g}, b=1)",
                m, (lo, hi), predicted=1.0, tolerance=0.05, rule="band", figure=fname,
                ci_method=T_INTERVAL, theory="theory.noise_floor.sgd_stationary_excess_loss",
                exact_level=float(ex), measured_level=float(np.mean(v)),
            ))
        # BCN Thm 4.6 upper bound (η ≤ 1/L holds for every η of the grid)
        k1 = bcn_constants_quadratic(prob.eigenvalues.numpy(), float(np.trace(C)), 1)
        bcn = np.array([bcn_fixed_step_limit(e, k1) for e in self.q_etas])
        e_top = self.q_etas[-1]
        m, lo, hi = mean_ci(lvl[-1])
        out.append(self.finding(
            CLAIM, f"quadratic: stationary level ≤ BCN Thm 4.6 limit ηLM/(2cμ) (η={e_top:g})",
            m, (lo, hi), predicted=float(bcn[-1]), tolerance=0.0, rule="upper_bound",
            figure=fname, ci_method=T_INTERVAL, theory="theory.noise_floor.bcn_fixed_step_limit",
            all_eta_hold=bool(all(np.mean(v) <= bb for v, bb in zip(lvl, bcn, strict=True))),
        ))
        # slopes
        q_eta_fit = fit_loglog_slope(np.array(self.q_etas), np.stack(lvl, 1), seed=seed)
        out.append(self.finding(
            CLAIM, "quadratic: slope of log level vs log η (b=1)", q_eta_fit.slope,
            (q_eta_fit.ci_low, q_eta_fit.ci_high), predicted=ols_slope(self.q_etas, exact_eta),
            tolerance=0.05, rule="band", figure=fname, ci_method=BOOTSTRAP,
            theory="slope of theory.noise_floor.sgd_stationary_excess_loss over the η grid",
        ))
        q_b_fit = fit_loglog_slope(np.array(bs, float), _stack(lvl_b), seed=seed + 1)
        out.append(self.finding(
            CLAIM, f"quadratic: slope of log level vs log b (η={self.q_eta_b:g})", q_b_fit.slope,
            (q_b_fit.ci_low, q_b_fit.ci_high), predicted=ols_slope(bs, exact_b), tolerance=0.05,
            rule="band", figure=fname, ci_method=BOOTSTRAP,
            theory="slope of theory.noise_floor.sgd_stationary_excess_loss over the b grid",
        ))
        ax = axes[0]
        ms = [mean_ci(v) for v in lvl]
        errbar(ax, self.q_etas, *zip(*ms, strict=True), label="measured (b=1)")
        ax.plot(self.q_etas, exact_eta, "k-", label="exact (Lyapunov)")
        ax.plot(self.q_etas, bcn, "r--", label="BCN Thm 4.6 bound")
        ax.set(xscale="log", yscale="log", xlabel="step size η", ylabel="E F(w) − F*",
               title="quadratic: floor vs η")
        ax.legend(fontsize=8)
        ax = axes[1]
        ms = [mean_ci(v) for v in lvl_b]
        errbar(ax, bs, *zip(*ms, strict=True), label=f"quadratic (η={self.q_eta_b:g})")
        ax.plot(bs, exact_b, "k-", label="exact (Lyapunov)")
        # ---------------- logistic regression
        rl = runs["logreg/eta"]
        lp = build(rl)
        ws = lp.w_star
        H = lp.hessian(ws).numpy()
        S = lp.grad_cov(ws).numpy()
        lam, Q = np.linalg.eigh(H)
        c_eig = np.einsum("ij,ik,kj->j", Q, S, Q)  # diag(QᵀSQ)
        lin_eta = np.array([sgd_stationary_excess_loss_eig(lam, c_eig, e, 1) for e in self.l_etas])
        lin_b = np.array([sgd_stationary_excess_loss_eig(lam, c_eig, self.l_eta_b, b) for b in bs])
        st, sb = rl.metric("suboptimality")
        llvl = groups(window_mean(st, sb, s["l_burn"]), len(self.l_etas))
        llvl_b = []
        for b in bs:
            if b == 1:
                llvl_b.append(llvl[self.l_etas.index(self.l_eta_b)])
            else:
                st2, sb2 = runs[f"logreg/b{b}"].metric("suboptimality")
                llvl_b.append(window_mean(st2, sb2, s["l_burn"]))
        l_eta_fit = fit_loglog_slope(np.array(self.l_etas), np.stack(llvl, 1), seed=seed + 2)
        out.append(self.finding(
            CLAIM, "logistic (digits, l2=0.5): slope of log level vs log η (b=1)",
            l_eta_fit.slope, (l_eta_fit.ci_low, l_eta_fit.ci_high),
            predicted=ols_slope(self.l_etas, lin_eta), tolerance=0.15, rule="band",
            figure=fname, ci_method=BOOTSTRAP,
            theory="slope of theory.noise_floor.sgd_stationary_excess_loss_eig at (H(w*), Σ(w*))",
        ))
        l_b_fit = fit_loglog_slope(np.array(bs, float), _stack(llvl_b), seed=seed + 3)
        out.append(self.finding(
            CLAIM, f"logistic (digits, l2=0.5): slope of log level vs log b (η={self.l_eta_b:g})",
            l_b_fit.slope, (l_b_fit.ci_low, l_b_fit.ci_high),
            predicted=ols_slope(bs, lin_b), tolerance=0.15, rule="band", figure=fname,
            ci_method=BOOTSTRAP,
            theory="slope of theory.noise_floor.sgd_stationary_excess_loss_eig at (H(w*), Σ(w*))",
        ))
        m, lo, hi = mean_ci(llvl[0] / lin_eta[0])
        out.append(self.finding(
            CLAIM, f"logistic: level / linearised Lyapunov level (η={self.l_etas[0]:g}, b=1)",
            m, (lo, hi), predicted=1.0, tolerance=0.1, rule="band", figure=fname,
            ci_method=T_INTERVAL,
            theory="theory.noise_floor.sgd_stationary_excess_loss_eig at (H(w*), Σ(w*))",
        ))
        ms = [mean_ci(v) for v in llvl_b]
        errbar(ax, bs, *zip(*ms, strict=True), label=f"logistic (η={self.l_eta_b:g})")
        ax.plot(bs, lin_b, "k:", label="linearised Lyapunov")
        ax.set(xscale="log", yscale="log", xlabel="batch size b", ylabel="E F(w) − F*",
               title="floor vs batch size")
        ax.legend(fontsize=8)
        ax = axes[2]
        ms = [mean_ci(v) for v in llvl]
        errbar(ax, self.l_etas, *zip(*ms, strict=True), label="measured (b=1)")
        ax.plot(self.l_etas, lin_eta, "k:", label="linearised Lyapunov")
        ax.set(xscale="log", yscale="log", xlabel="step size η", ylabel="E F(w) − F*",
               title="logistic regression (digits): floor vs η")
        ax.legend(fontsize=8)
        save(fig, ctx.figure(fname))
        return out


def _stack(cols: list[np.ndarray]) -> np.ndarray:
    """Columns of possibly different chain counts → ``[K_min, n]`` (first K_min chains)."""
    k = min(len(c) for c in cols)
    return np.stack([c[:k] for c in cols], 1)
