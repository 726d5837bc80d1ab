"""Study ``oscillation``: the SGD path zig-zags towards the minimum (article §3.2 A).

SGD on a noisy quadratic (population, isotropic Gaussian noise, deterministic start far from
w*), every step recorded, step sizes η (per-chain list) × batch sizes b (one run each). The
article's statement is qualitative; the study puts exact numbers on it. On this model the
engine *is* the recursion its references solve, so the judged findings are engine checks:

* the **fraction of steps that increase F at stationarity** against its exact value under
  the stationary Gaussian law (:func:`sgdlab.theory.quadratic_forms.sgd_increase_probability`,
  Imhof's formula) — which is exactly ½ here: with noise commuting with the Hessian the
  stationary chain is time-reversible, (w_t, w_{t+1}) and (w_{t+1}, w_t) have one law, so a
  step is as likely to raise F as to lower it;
* the iterate spread √E‖w − w*‖² and the std of F around its stationary mean against η/b:
  slopes of the exact stationary law (√tr P; √(½ tr((AP)²)));
* reported without a verdict (any noise makes them positive): the fraction of increasing
  steps and the path length / net displacement (against noiseless GD's) during the descent
  phase, the steps until the exact E F − F* first falls to twice the floor.

Per-chain time averages over the stationary window, then over chains (t-interval); slopes
by OLS of log(mean over chains) on log(η/b) with a bootstrap over chains.
"""

from __future__ import annotations

import numpy as np

from sgdlab.engine.result import RunResult
from sgdlab.lab.findings import Finding
from sgdlab.lab.stats import BOOTSTRAP, T_INTERVAL, mean_ci, probe_seed
from sgdlab.lab.studies._common import build, figure, ols_slope, save
from sgdlab.lab.study import Context, Study, register
from sgdlab.theory.noise_floor import sgd_stationary_covariance
from sgdlab.theory.quadratic_forms import sgd_increase_probability
from sgdlab.theory.rates import expected_suboptimality_quadratic, fit_loglog_slope

CLAIM = ("The SGD trajectory is noisy: instead of a smooth descent it zig-zags towards the "
         "minimum (§3.2 A).")
CLAIM_SIM = "Engine check: the simulated path has the exact stationary law of the recursion."
QUAD = {"name": "quadratic", "dim": 10, "mu": 0.2, "L": 1.0, "noise": "isotropic",
        "noise_std": 1.0, "init_scale": 3.0}
ETAS = (0.025, 0.05, 0.1, 0.2)
ETA_REF = 0.1


def _settings(quick: bool) -> dict:
    if quick:
        return {"chains": 16, "steps": 2000, "burn": 1000, "bs": (1, 4)}
    return {"chains": 64, "steps": 6000, "burn": 2000, "bs": (1, 4, 16)}


@register
class Oscillation(Study):
    name = "oscillation"
    section = "3.2 A"
    claim = "the path zig-zags: half the stationary steps raise F; spread ∝ √(η/b)"

    def grid(self, quick: bool) -> dict[str, dict]:
        s = _settings(quick)
        return {
            f"b{b}": {"problem": QUAD, "optimizer": {"name": "sgd", "lr": list(ETAS)},
                      "batch": {"size": b, "sampling": "stream"},
                      "chains": s["chains"] * len(ETAS), "steps": s["steps"], "seed": 51 + b,
                      "streams": {"off": ["init"]}, "record": {"every": 1}, "dtype": "float64"}
            for b in s["bs"]
        }

    def analyze(self, runs: dict[str, RunResult], ctx: Context) -> list[Finding]:
        s = _settings(ctx.quick)
        out = []
        fig, axes = figure(1, 3)
        x, spread, std, th_spread, th_std = [], [], [], [], []
        for b in s["bs"]:
            run = runs[f"b{b}"]
            prob = build(run)
            A, C = prob.A.numpy(), prob.C.numpy()
            w0 = prob.init_params(None).numpy()
            st, Fv = run.metric("objective")
            _, dist = run.metric("dist_to_opt")
            stat = st >= s["burn"]
            up = np.diff(Fv, axis=1) > 0  # step t raised F: F(w_{t+1}) > F(w_t)
            for g, eta in enumerate(ETAS):
                sl = slice(g * s["chains"], (g + 1) * s["chains"])
                P = sgd_stationary_covariance(A, C, eta, b)
                x.append(eta / b)
                spread.append((dist[sl][:, stat] ** 2).mean(1))
                std.append(Fv[sl][:, stat].std(1))
                th_spread.append(np.sqrt(np.trace(P)))
                th_std.append(np.sqrt(0.5 * np.trace(A @ P @ A @ P)))
                if eta != ETA_REF:
                    continue
                exact = sgd_increase_probability(A, C, eta, b)
                m, lo, hi = mean_ci(up[sl][:, stat[:-1]].mean(1))
                out.append(self.finding(
                    CLAIM_SIM, f"stationary fraction of steps that increase F (η={eta:g}, b={b})",
                    m, (lo, hi), kind="engine-check", predicted=exact, rule="contains",
                    figure="oscillation.png", ci_method=T_INTERVAL,
                    theory="theory.quadratic_forms.sgd_increase_probability (Imhof; ½ by "
                    "time-reversibility for noise commuting with A)",
                ))  # fmt: skip
                out += self._descent(run, prob, w0, eta, b, sl, up, Fv, axes[0])
        x = np.array(x)
        seed = probe_seed(52)
        for k, (label, cols, theory, th, half) in enumerate((
            ("iterate spread √E‖w−w*‖²", spread, "√tr P", th_spread, True),
            ("std of F around its stationary mean", std, "√(½ tr((AP)²))", th_std, False),
        )):  # fmt: skip
            fit = fit_loglog_slope(x, _stack(cols), seed=seed + k)
            scale = 0.5 if half else 1.0  # E‖w − w*‖² is fitted: the spread's slope is half
            out.append(self.finding(
                CLAIM_SIM, f"slope of log {label} vs log(η/b)", fit.slope * scale,
                (fit.ci_low * scale, fit.ci_high * scale), kind="engine-check",
                predicted=ols_slope(x, th), rule="contains", figure="oscillation.png",
                ci_method=BOOTSTRAP, theory=f"slope of {theory}, "
                "theory.noise_floor.sgd_stationary_covariance",
            ))  # fmt: skip
        order = np.argsort(x)
        axes[1].loglog(x[order], np.sqrt(_stack(spread).mean(0))[order], "o", label="measured")
        axes[1].loglog(x[order], np.array(th_spread)[order], "k-", label="exact √tr P")
        axes[1].set(xlabel="η/b", ylabel="spread √E‖w − w*‖²", title="spread ∝ √(η/b)")
        axes[1].legend(fontsize=7)
        axes[2].loglog(x[order], _stack(std).mean(0)[order], "o", label="measured")
        axes[2].loglog(x[order], np.array(th_std)[order], "k-", label="exact")
        axes[2].set(xlabel="η/b", ylabel="std of F at stationarity", title="F fluctuates ∝ η/b")
        axes[2].legend(fontsize=7)
        save(fig, ctx.figure("oscillation.png"))
        return out

    def _descent(self, run, prob, w0, eta, b, sl, up, Fv, ax) -> list[Finding]:
        """Descent-phase fraction of increasing steps and path ratio (reported)."""
        A = prob.A.numpy()
        ws = prob.w_star.numpy()
        Q = prob.Q.numpy()
        lam, c = prob.eigenvalues.numpy(), np.diag(Q.T @ prob.C.numpy() @ Q)
        T = Fv.shape[1] - 1
        exact = expected_suboptimality_quadratic(lam, c, b, Q.T @ (w0 - ws), np.full(T, eta))
        t_d = int(np.argmax(exact <= 2 * exact[-1]))  # steps until 2 × the floor
        frac = up[sl][:, :t_d].mean(1)
        m, lo, hi = mean_ci(frac)
        _, gn = run.metric("grad_norm")
        path = eta * gn[sl][:, :t_d].sum(1)
        gd_path, gd_net, e = 0.0, 0.0, w0 - ws
        M = np.eye(len(e)) - eta * A
        for _ in range(t_d):
            new = M @ e
            gd_path += float(np.linalg.norm(new - e))
            e = new
        gd_net = float(np.linalg.norm(e - (w0 - ws)))
        _, dist = run.metric("dist_to_opt")
        net = np.abs(dist[sl][:, 0] - dist[sl][:, t_d])  # progress towards w* ≤ displacement
        m2, lo2, hi2 = mean_ci(path / np.maximum(net, 1e-12))
        common = dict(figure="oscillation.png", ci_method=T_INTERVAL, descent_steps=t_d)
        if b == 1:
            ax.plot(Fv[sl.start, : 3 * t_d], lw=0.8, label=f"one chain, η={eta:g}")
            ax.axvline(t_d, color="k", lw=0.6, ls=":")
            ax.set(yscale="log", xlabel="step t", ylabel="F(w_t) − F*",
                   title="a chain zig-zags (dotted: end of descent)")  # fmt: skip
            ax.legend(fontsize=7)
        return [
            self.finding(
                CLAIM, f"descent phase (t < {t_d}): fraction of steps that increase F "
                f"(η={eta:g}, b={b}); GD: 0", m, (lo, hi), kind="article", predicted=None,
                rule="report", theory="reported: positive for any noise", **common,
            ),
            self.finding(
                CLAIM, f"descent phase: path length / progress towards w* (η={eta:g}, b={b}); "
                f"GD: {gd_path / gd_net:.3g}", m2, (lo2, hi2), kind="article", predicted=None,
                rule="report", theory="reported: larger than GD's for any noise",
                gd_ratio=gd_path / gd_net, **common,
            ),
        ]


def _stack(cols: list[np.ndarray]) -> np.ndarray:
    k = min(len(c) for c in cols)
    return np.stack([c[:k] for c in cols], 1)
