"""Study ``schedules``: decaying steps are needed to converge to a point (article §3.2 B–C).

Runs SGD on a noisy quadratic (population, isotropic noise, b = 1, deterministic start) with
the same base step η₀ and each built-in schedule. Measurement: the trajectory of
E[F(w_t)] − F* (mean over chains) and its final value with a t-interval over chains.

Theory: the exact expected suboptimality of SGD under any schedule on the quadratic
(:func:`sgdlab.theory.rates.expected_suboptimality_quadratic`), the exact constant-step
floor (:func:`sgdlab.theory.noise_floor.sgd_stationary_excess_loss_eig`), and the analytic
Robbins–Monro test of each schedule (:func:`sgdlab.optim.robbins_monro`), reported one
condition per finding. The article names η₀/(1+kt) and η₀/√(t+1) as schedules that "aim to
satisfy" Robbins–Monro; the second does not (Σ 1/(t+1) diverges), and the study says so.
"""

from __future__ import annotations

import numpy as np

from sgdlab.engine.result import RunResult
from sgdlab.lab.stats import T_INTERVAL, mean_ci
from sgdlab.lab.studies._common import build, figure, save
from sgdlab.lab.study import Context, Study, register
from sgdlab.optim import build_schedule, robbins_monro
from sgdlab.theory.noise_floor import sgd_stationary_excess_loss_eig
from sgdlab.theory.rates import expected_suboptimality_quadratic

CLAIM_FINAL = (
    "Learning-rate schedules are essential: with a decaying step SGD keeps approaching the "
    "minimizer, with a fixed step it stalls at a noise floor (§3.2 B–C)."
)
CLAIM_RM = (
    "Common schedules η₀/(1+kt) and η₀/√(t+1) aim to satisfy the Robbins–Monro conditions "
    "Σ η_t = ∞ and Σ η_t² < ∞ (§3.2 C)."
)
QUAD = {"name": "quadratic", "dim": 10, "mu": 0.1, "L": 1.0, "noise": "isotropic",
        "noise_std": 1.0, "init_scale": 3.0}
ETA0 = 0.2
#: the article names these; value = what it implies for (Σ η = ∞, Σ η² < ∞)
ARTICLE_RM = {"inverse_time": (1.0, 1.0), "inverse_sqrt": (1.0, 1.0), "constant": (1.0, 0.0)}


def schedules(T: int) -> dict[str, dict]:
    return {
        "constant": {"name": "constant"},
        "inverse_time": {"name": "inverse_time", "k": 0.01},
        "inverse_sqrt": {"name": "inverse_sqrt"},
        "step": {"name": "step", "step_size": max(1, T // 4), "gamma": 0.3},
        "exponential": {"name": "exponential", "gamma": float(0.01 ** (1.0 / T))},
        "cosine": {"name": "cosine"},
        "polynomial": {"name": "polynomial", "power": 0.75},
    }


@register
class Schedules(Study):
    name = "schedules"
    section = "3.2 B–C"
    claim = "decaying schedules reach below the constant-step floor; Robbins–Monro per schedule"

    def _T(self, quick: bool) -> tuple[int, int]:
        return (3000, 256) if quick else (20000, 1024)

    def grid(self, quick: bool) -> dict[str, dict]:
        T, K = self._T(quick)
        return {
            name: {"problem": QUAD, "optimizer": {"name": "sgd", "lr": ETA0}, "schedule": sch,
                   "batch": {"size": 1, "sampling": "stream"}, "chains": K, "steps": T,
                   "seed": 21, "streams": {"off": ["init"]}, "record": {"every": max(1, T // 300)},
                   "dtype": "float64"}
            for name, sch in schedules(T).items()
        }

    def analyze(self, runs: dict[str, RunResult], ctx: Context) -> list:
        T, _ = self._T(ctx.quick)
        prob = build(next(iter(runs.values())))
        lam = prob.eigenvalues.numpy()
        c = np.diag(prob.Q.numpy().T @ prob.C.numpy() @ prob.Q.numpy())
        d = prob.dim
        e0 = prob.Q.numpy().T @ (QUAD["init_scale"] * np.ones(d) / np.sqrt(d))
        floor = sgd_stationary_excess_loss_eig(lam, c, ETA0, 1)
        fname = "schedules.png"
        fig, axes = figure(1, 2)
        out = []
        finals = {}
        for i, (name, sec) in enumerate(schedules(T).items()):
            run = runs[name]
            sched = build_schedule(sec, T)
            etas = ETA0 * np.asarray(sched(np.arange(T)), dtype=float)
            exact = expected_suboptimality_quadratic(lam, c, 1, e0, etas)
            steps, v = run.metric("suboptimality")
            m, lo, hi = mean_ci(v[:, -1])
            finals[name] = (m, lo, hi, v[:, -1])
            pred = float(exact[-1])
            out.append(self.finding(
                CLAIM_FINAL, f"final E F(w_T) − F* [{name}, T={T}]", m, (lo, hi),
                predicted=pred, tolerance=0.1 * pred, rule="band", figure=fname,
                ci_method=T_INTERVAL, theory="theory.rates.expected_suboptimality_quadratic",
                schedule=sched.formula(),
            ))
            rm = robbins_monro(sched)
            art = ARTICLE_RM.get(name)
            for j, (cond, ok) in enumerate(
                (("Σ η_t = ∞", rm.sum_diverges), ("Σ η_t² < ∞", rm.sum_sq_converges))
            ):
                val = 1.0 if ok else 0.0
                out.append(self.finding(
                    CLAIM_RM, f"Robbins–Monro {cond} holds [{name}: {sched.formula()}]",
                    val, (val, val), predicted=None if art is None else art[j], rule="exact",
                    ci_method="analytic series test (optim.robbins_monro)",
                    theory="optim.robbins_monro", explanation=rm.explanation,
                ))
            color = f"C{i}"
            axes[0].plot(steps, v.mean(0), color=color, lw=1.5, label=name)
            axes[0].plot(np.arange(T + 1), exact, color=color, lw=0.8, ls="--")
            axes[1].plot(np.arange(T), etas, color=color, label=name)
        m, lo, hi, _ = finals["constant"]
        out.append(self.finding(
            CLAIM_FINAL, "constant step: final level / exact stationary floor", m / floor,
            (lo / floor, hi / floor), predicted=1.0, tolerance=0.1, rule="band", figure=fname,
            ci_method=T_INTERVAL, theory="theory.noise_floor.sgd_stationary_excess_loss_eig",
            floor=floor,
        ))
        m, lo, hi, _ = finals["inverse_time"]
        out.append(self.finding(
            CLAIM_FINAL, "η₀/(1+kt): final level / constant-step floor (must be < 1)", m / floor,
            (lo / floor, hi / floor), predicted=1.0, tolerance=0.0, rule="upper_bound",
            figure=fname, ci_method=T_INTERVAL,
            theory="theory.noise_floor.sgd_stationary_excess_loss_eig", floor=floor,
        ))
        axes[0].axhline(floor, color="k", lw=0.8, ls=":", label="constant-step floor")
        axes[0].set(xscale="log", yscale="log", xlabel="step t", ylabel="E F(w_t) − F*",
                    title="schedules (solid: mean of chains, dashed: exact)")
        axes[0].legend(fontsize=7)
        axes[1].set(yscale="log", xlabel="step t", ylabel="η_t", title="step sizes")
        save(fig, ctx.figure(fname))
        return out
