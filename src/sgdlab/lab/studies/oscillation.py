"""Study ``oscillation``: the SGD path zig-zags towards the minimum (article §3.2 A).

SGD on a noisy quadratic (population, isotropic Gaussian noise, deterministic start far from
w*), every step recorded, step sizes η (per-chain list) × batch sizes b (one run each).

Measurements, per chain then over chains:

* fraction of the first 200 steps (descent phase) on which the full objective F increases —
  0 for gradient descent with these step sizes (η < 2/L); direction-only claim (> 0);
* path length Σ η‖g_t‖ over net displacement ‖w_T − w_0‖, against the same ratio of the
  noiseless path (GD on the same problem); direction-only claim (SGD's is larger);
* the standard deviation of F(w_t) around its (stationary) mean in the stationary window,
  against η/b: slope predicted from the exact stationary law (Gaussian, covariance P from
  :func:`sgdlab.theory.noise_floor.sgd_stationary_covariance`): std F = √(½ tr((AP)²));
* the iterate spread √E‖w − w*‖² against η/b: slope predicted from √tr P (≈ 1/2, the
  √(η/b) scaling of the floor).

Slopes: OLS of log(mean over chains) on log(η/b), bootstrap over chains.
"""

from __future__ import annotations

import numpy as np

from sgdlab.engine.result import RunResult
from sgdlab.lab.stats import BOOTSTRAP, T_INTERVAL, mean_ci, probe_seed
from sgdlab.lab.studies._common import build, figure, ols_slope, save
from sgdlab.lab.study import Context, Study, register
from sgdlab.theory.noise_floor import sgd_stationary_covariance
from sgdlab.theory.rates import fit_loglog_slope

CLAIM = ("The SGD trajectory is noisy: instead of a smooth descent it zig-zags towards the "
         "minimum (§3.2 A).")
QUAD = {"name": "quadratic", "dim": 10, "mu": 0.2, "L": 1.0, "noise": "isotropic",
        "noise_std": 1.0, "init_scale": 3.0}
ETAS = (0.025, 0.05, 0.1, 0.2)
DESCENT = 200


def _settings(quick: bool) -> dict:
    if quick:
        return {"chains": 16, "steps": 2000, "burn": 1000, "bs": (1, 4)}
    return {"chains": 64, "steps": 6000, "burn": 2000, "bs": (1, 4, 16)}


@register
class Oscillation(Study):
    name = "oscillation"
    section = "3.2 A"
    claim = "the path zig-zags: F increases on many steps; spread ∝ √(η/b)"

    def grid(self, quick: bool) -> dict[str, dict]:
        s = _settings(quick)
        return {
            f"b{b}": {"problem": QUAD, "optimizer": {"name": "sgd", "lr": list(ETAS)},
                      "batch": {"size": b, "sampling": "stream"},
                      "chains": s["chains"] * len(ETAS), "steps": s["steps"], "seed": 51 + b,
                      "streams": {"off": ["init"]}, "record": {"every": 1}, "dtype": "float64"}
            for b in s["bs"]
        }

    def analyze(self, runs: dict[str, RunResult], ctx: Context) -> list:
        s = _settings(ctx.quick)
        prob = build(next(iter(runs.values())))
        A, C = prob.A.numpy(), prob.C.numpy()
        d = prob.dim
        w0 = prob.w_star.numpy() + QUAD["init_scale"] * np.ones(d) / np.sqrt(d)
        gd_ratio = {e: _gd_ratio(A, w0 - prob.w_star.numpy(), e, s["steps"]) for e in ETAS}
        out = []
        fname = "oscillation.png"
        fig, axes = figure(1, 3)
        x, spread_cols, std_cols, th_spread, th_std, frac, ratio = [], [], [], [], [], {}, {}
        for b in s["bs"]:
            run = runs[f"b{b}"]
            st, Fv = run.metric("objective")
            _, gn = run.metric("grad_norm")
            _, lr = run.metric("lr")
            path = np.nansum(lr * gn, axis=1)
            net = np.linalg.norm(run.final_params.numpy() - w0, axis=1)
            inc = np.diff(Fv[:, : DESCENT + 1], axis=1) > 0
            stat = st >= s["burn"]
            _, dist = run.metric("dist_to_opt")
            for g, e in enumerate(ETAS):
                sl = slice(g * s["chains"], (g + 1) * s["chains"])
                frac[(e, b)] = inc[sl].mean(1)
                ratio[(e, b)] = path[sl] / net[sl]
                x.append(e / b)
                spread_cols.append((dist[sl][:, stat] ** 2).mean(1))
                std_cols.append(Fv[sl][:, stat].std(1))
                P = sgd_stationary_covariance(A, C, e, b)
                th_spread.append(np.sqrt(np.trace(P)))
                th_std.append(np.sqrt(0.5 * np.trace(A @ P @ A @ P)))
            if b == s["bs"][0]:
                axes[0].plot(st[: 3 * DESCENT], Fv[0, : 3 * DESCENT], lw=0.8,
                             label=f"one chain, η={ETAS[0]:g}")
                axes[0].plot(st[: 3 * DESCENT], Fv[s["chains"] * 2, : 3 * DESCENT], lw=0.8,
                             label=f"one chain, η={ETAS[2]:g}")
        x = np.array(x)
        order = np.argsort(x)
        seed = probe_seed(52)
        e_ref, b_ref = 0.1, s["bs"][0]
        m, lo, hi = mean_ci(frac[(e_ref, b_ref)])
        out.append(self.finding(
            CLAIM,
            f"fraction of the first {DESCENT} steps that increase F (η={e_ref:g}, b={b_ref}); "
            "GD: 0",
            m, (lo, hi), predicted=None, rule="positive", figure=fname, ci_method=T_INTERVAL,
            theory="direction only (GD on a quadratic with η < 2/L never increases F)",
        ))
        m, lo, hi = mean_ci(ratio[(e_ref, b_ref)] - gd_ratio[e_ref])
        out.append(self.finding(
            CLAIM,
            f"path length / net displacement minus GD's ({gd_ratio[e_ref]:.3g}) "
            f"(η={e_ref:g}, b={b_ref})",
            m, (lo, hi), predicted=None, rule="positive", figure=fname, ci_method=T_INTERVAL,
            theory="direction only; GD's ratio from the noiseless linear iteration",
            sgd_ratio=float(np.mean(ratio[(e_ref, b_ref)])), gd_ratio=gd_ratio[e_ref],
        ))
        sp = _stack(spread_cols)
        fit = fit_loglog_slope(x, sp, seed=seed)
        out.append(self.finding(
            CLAIM, "slope of log iterate spread √E‖w−w*‖² vs log(η/b)", fit.slope / 2,
            (fit.ci_low / 2, fit.ci_high / 2), predicted=ols_slope(x, th_spread), tolerance=0.05,
            rule="band", figure=fname, ci_method=BOOTSTRAP + " (slope of E‖w−w*‖², halved)",
            theory="slope of √tr P, theory.noise_floor.sgd_stationary_covariance",
        ))
        sd = _stack(std_cols)
        fit2 = fit_loglog_slope(x, sd, seed=seed + 1)
        out.append(self.finding(
            CLAIM, "slope of log std of F around its stationary mean vs log(η/b)", fit2.slope,
            (fit2.ci_low, fit2.ci_high), predicted=ols_slope(x, th_std), tolerance=0.1,
            rule="band", figure=fname, ci_method=BOOTSTRAP,
            theory="slope of √(½ tr((AP)²)), theory.noise_floor.sgd_stationary_covariance",
        ))
        axes[0].set(yscale="log", xlabel="step t", ylabel="F(w_t) − F*",
                    title="single chains zig-zag (b=1)")
        axes[0].legend(fontsize=7)
        axes[1].loglog(x[order], np.sqrt(sp.mean(0))[order], "o", label="measured")
        axes[1].loglog(x[order], np.array(th_spread)[order], "k-", label="exact √tr P")
        axes[1].set(xlabel="η/b", ylabel="spread √E‖w − w*‖²", title="spread ∝ √(η/b)")
        axes[1].legend(fontsize=7)
        es = list(ETAS)
        for b in s["bs"]:
            axes[2].plot(es, [frac[(e, b)].mean() for e in es], "o-", label=f"b={b}")
        axes[2].set(xscale="log", xlabel="η",
                    ylabel=f"fraction of steps increasing F (t<{DESCENT})",
                    title="zig-zag frequency")
        axes[2].legend(fontsize=7)
        save(fig, ctx.figure(fname))
        return out


def _gd_ratio(A: np.ndarray, e0: np.ndarray, eta: float, T: int) -> float:
    """Path length / net displacement of noiseless GD e ← (I − ηA)e over T steps."""
    e, length = e0.copy(), 0.0
    M = np.eye(len(e0)) - eta * A
    for _ in range(T):
        new = M @ e
        length += float(np.linalg.norm(new - e))
        e = new
    return length / float(np.linalg.norm(e - e0))


def _stack(cols: list[np.ndarray]) -> np.ndarray:
    k = min(len(c) for c in cols)
    return np.stack([c[:k] for c in cols], 1)
