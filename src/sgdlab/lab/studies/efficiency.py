"""Study ``efficiency``: cheap iterations win on large data (§3.1 A); full batch can be
preferable on small data (§5).

Synthetic softmax logistic regression (p = 20 features scaled by 1/(j + 1), so the problem is
ill-conditioned like real data; 3 classes, L2 = 0.01, F* by the problem's Newton solver) for
several dataset sizes N. For each N, one SGD run (b = 10, with
replacement) and one GD run (full batch), each sweeping three step sizes across its chains,
record F; the step size of each method is **tuned** per (N, ε) as the one whose E F − F*
(mean over its chains) reaches ε first. Hitting times are interpolated in log F between
records. Costs to the target:

* **gradient evaluations** (machine-independent, the main measure): b·steps for SGD,
  N·steps for GD;
* **seconds** on this machine: steps × seconds per step, from five repeated timing runs of
  each method (nothing recorded but the endpoints).

Findings (all ``article``): log10(cost_GD / cost_SGD) at the smallest N (full batch
preferable: negative) and at the largest N (SGD wins: positive), and the N where the two
costs cross, which the article's two statements place inside the measured range — in
gradient evaluations, and (labelled with this machine) in wall-clock time. Intervals: a
bootstrap over the SGD chains of each step size (the tuning redone in every resample; GD is
deterministic) and, for seconds, over the five timing repeats. The crossing is reported for
ε ∈ {0.02, 0.01, 0.005}; the verdicts use ε = 0.01.
"""

from __future__ import annotations

import numpy as np

from sgdlab.engine.result import RunResult
from sgdlab.lab.findings import Finding
from sgdlab.lab.stats import groups, probe_seed
from sgdlab.lab.studies._common import figure, machine, save
from sgdlab.lab.study import Context, Study, register

CLAIM_A = ("Processing a small mini-batch is vastly cheaper than the entire dataset, so SGD "
           "wins on large datasets (§3.1 A).")
CLAIM_5 = "For smaller datasets, full-batch methods might be preferred (§5)."
EPS, EPS_SWEEP = 0.01, (0.02, 0.01, 0.005)
B = 10
SGD_LRS, GD_LRS = (0.1, 0.3, 1.0), (1.0, 3.0, 8.0)
REPEATS = 5
N_BOOT = 400
CI_EVALS = ("percentile bootstrap (400 resamples) over the SGD chains of every step size, "
            "the step size re-tuned in each resample; GD is deterministic")
CI_SECONDS = CI_EVALS + ", and over the 5 timing repeats of each method"


def _problem(n: int) -> dict:
    return {"name": "logistic_regression", "dataset": "synthetic", "n_samples": n,
            "n_features": 20, "n_classes": 3, "separation": 3.0, "l2": 0.01,
            "feature_decay": 1.0, "standardize": False}


def _settings(quick: bool) -> dict:
    if quick:
        return {"Ns": (100, 1000, 10000, 100000), "chains": 8, "sgd_steps": 2000,
                "gd_steps": 60}
    return {"Ns": (100, 1000, 10000, 100000, 1000000), "chains": 8, "sgd_steps": 4000,
            "gd_steps": 80}


@register
class Efficiency(Study):
    name = "efficiency"
    section = "3.1 A, 5"
    claim = "cost to target of SGD vs GD across N: gradient evaluations and wall-clock time"

    def grid(self, quick: bool) -> dict[str, dict]:
        s = _settings(quick)
        g = {}
        for n in s["Ns"]:
            base = {"problem": _problem(n), "seed": 41, "dtype": "float32"}
            sgd = {**base, "batch": {"size": B, "sampling": "with_replacement"}}
            gd = {**base, "batch": {"sampling": "full", "size": None}}
            g[f"sgd/{n}"] = {**sgd, "chains": s["chains"] * len(SGD_LRS),
                             "optimizer": {"name": "sgd", "lr": list(SGD_LRS)},
                             "steps": s["sgd_steps"],
                             "record": {"every": s["sgd_steps"] // 50, "objective": True}}
            g[f"gd/{n}"] = {**gd, "chains": len(GD_LRS),
                            "optimizer": {"name": "sgd", "lr": list(GD_LRS)},
                            "steps": s["gd_steps"], "record": {"every": 1, "objective": True}}
            for r in range(REPEATS):  # distinct seeds: five separate timings, never reused
                timing = {"chains": 1, "seed": 41 + r, "optimizer": {"name": "sgd", "lr": 0.1}}
                g[f"time-sgd/{n}/{r}"] = {**sgd, **timing, "steps": 500,
                                          "record": {"every": 500, "objective": False}}
                g[f"time-gd/{n}/{r}"] = {**gd, **timing, "steps": 10,
                                         "record": {"every": 10, "objective": False}}
        return g

    def analyze(self, runs: dict[str, RunResult], ctx: Context) -> list[Finding]:
        s = _settings(ctx.quick)
        Ns = np.array(s["Ns"], float)
        rng = np.random.default_rng(probe_seed(41))
        sgd = {n: _curves(runs[f"sgd/{n}"], len(SGD_LRS)) for n in s["Ns"]}
        gd = {n: _curves(runs[f"gd/{n}"], len(GD_LRS)) for n in s["Ns"]}
        sec_sgd = np.array([[runs[f"time-sgd/{n}/{r}"].wall_seconds / 500
                             for r in range(REPEATS)] for n in s["Ns"]])  # fmt: skip
        sec_gd = np.array([[runs[f"time-gd/{n}/{r}"].wall_seconds / 10
                            for r in range(REPEATS)] for n in s["Ns"]])  # fmt: skip

        def costs(eps: float, sgd_c, gd_c) -> tuple[np.ndarray, np.ndarray]:
            """Tuned steps to ε of SGD and GD at every N."""
            k_sgd = np.array([_tuned_hit(*sgd_c[n], eps) for n in s["Ns"]])
            k_gd = np.array([_tuned_hit(*gd_c[n], eps) for n in s["Ns"]])
            return k_sgd, k_gd

        def resample() -> dict:
            return {n: (st, [g[rng.integers(0, len(g), len(g))] for g in gs])
                    for n, (st, gs) in sgd.items()}  # fmt: skip

        k_sgd, k_gd = costs(EPS, sgd, gd)
        ev_ratio = np.log10(k_gd * Ns / (k_sgd * B))
        t_ratio = np.log10(k_gd * sec_gd.mean(1) / (k_sgd * sec_sgd.mean(1)))
        boot_ev, boot_t = np.empty((N_BOOT, len(Ns))), np.empty((N_BOOT, len(Ns)))
        for i in range(N_BOOT):
            kb, _ = costs(EPS, resample(), gd)
            boot_ev[i] = np.log10(k_gd * Ns / (kb * B))
            ts = sec_sgd[:, rng.integers(0, REPEATS, REPEATS)].mean(1)
            tg = sec_gd[:, rng.integers(0, REPEATS, REPEATS)].mean(1)
            boot_t[i] = np.log10(k_gd * tg / (kb * ts))
        by_eps = {}
        for eps in EPS_SWEEP:
            ks, kg = costs(eps, sgd, gd)
            by_eps[eps] = _crossing(Ns, np.log10(kg * Ns / (ks * B)))
        out = []
        where = machine()
        for label, ratio, boots, ci, extra in (
            ("gradient evaluations", ev_ratio, boot_ev, CI_EVALS, {}),
            (f"seconds on this machine ({where})", t_ratio, boot_t, CI_SECONDS,
             {"machine": where}),
        ):
            for j, claim, rule in ((0, CLAIM_5, "negative"), (len(Ns) - 1, CLAIM_A, "positive")):
                lo, hi = _q(boots[:, j])
                out.append(self.finding(
                    claim, f"log10(GD / SGD {label} to E F − F* ≤ {EPS}) at N={int(Ns[j])}",
                    ratio[j], (lo, hi), kind="article", predicted=None, rule=rule,
                    figure="efficiency.png", ci_method=ci, theory="direction",
                    steps_sgd=k_sgd[j], steps_gd=k_gd[j], **extra,
                ))  # fmt: skip
            cross = _crossing(Ns, ratio)
            lo, hi = _q(np.array([_crossing(Ns, r) for r in boots]))
            out.append(self.finding(
                f"{CLAIM_A} {CLAIM_5}", f"N where GD's and SGD's {label} to E F − F* ≤ {EPS} "
                "cross", cross, (lo, hi), kind="article", predicted=None, rule="inside",
                range=(float(Ns[0]), float(Ns[-1])), figure="efficiency.png", ci_method=ci,
                theory="a crossing inside the measured N range",
                crossing_by_eps=by_eps if not extra else None,
                log10_ratio_by_N=ratio.tolist(), **extra,
            ))  # fmt: skip
        self._figure(ctx, Ns, sgd, gd, ev_ratio, t_ratio, by_eps, where)
        return out

    def _figure(self, ctx, Ns, sgd, gd, ev_ratio, t_ratio, by_eps, where) -> None:
        fig, axes = figure(1, 2)
        for j, n in enumerate(Ns.astype(int)):
            st, gs = sgd[n]
            best = int(np.nanargmin([_hit(st, g.mean(0), EPS) for g in gs]))
            sg, gg = gd[n]
            best_gd = int(np.nanargmin([_hit(sg, g.mean(0), EPS) for g in gg]))
            axes[0].plot(st * B, gs[best].mean(0), color=f"C{j}", label=f"SGD, N={n}")
            axes[0].plot(sg * n, gg[best_gd].mean(0), color=f"C{j}", ls="--")
        axes[0].axhline(EPS, color="k", lw=0.8, ls=":")
        axes[0].set(xscale="log", yscale="log", xlabel="per-sample gradient evaluations",
                    ylabel="E F − F* (tuned step)", title="SGD (solid) vs GD (dashed)")
        axes[0].legend(fontsize=6)
        axes[1].semilogx(Ns, ev_ratio, "o-", label="gradient evaluations")
        axes[1].semilogx(Ns, t_ratio, "s--", label=f"seconds ({where})")
        axes[1].axhline(0, color="k", lw=0.8)
        for eps, cross in by_eps.items():
            if np.isfinite(cross):
                axes[1].axvline(cross, color="0.6", lw=0.8, ls=":")
                axes[1].annotate(f"ε={eps:g}", (cross, 0), fontsize=6, rotation=90)
        axes[1].set(xlabel="dataset size N", ylabel="log10(cost GD / cost SGD)",
                    title="who reaches ε cheaper (> 0: SGD)")
        axes[1].legend(fontsize=7)
        save(fig, ctx.figure("efficiency.png"))


def _curves(run: RunResult, n_lrs: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """``(steps, [suboptimality of each step size's chains])``."""
    steps, v = run.metric("suboptimality")
    return steps, groups(v, n_lrs)


def _hit(steps: np.ndarray, mean: np.ndarray, eps: float) -> float:
    """The number of steps after which ``mean`` first reaches ε: interpolated in log between
    the two records around the crossing, then rounded up to a whole step (NaN if never)."""
    idx = np.nonzero(mean <= eps)[0]
    if idx.size == 0:
        return float("nan")
    i = int(idx[0])
    if i == 0:
        return float(steps[0])
    a, b = np.log(mean[i - 1]), np.log(max(mean[i], np.finfo(float).tiny))
    frac = (a - np.log(eps)) / (a - b) if a != b else 1.0
    return float(np.ceil(steps[i - 1] + frac * (steps[i] - steps[i - 1])))


def _tuned_hit(steps: np.ndarray, per_lr: list[np.ndarray], eps: float) -> float:
    """Steps to ε of the best step size (the first to reach it); NaN if none does."""
    hits = [_hit(steps, g.mean(0), eps) for g in per_lr]
    return float(np.nanmin(hits)) if np.isfinite(hits).any() else float("nan")


def _crossing(Ns: np.ndarray, ratio: np.ndarray) -> float:
    """N where log10(cost ratio) crosses 0 upwards (log-linear interpolation), else NaN."""
    x = np.log10(Ns)
    for j in range(len(x) - 1):
        a, b = ratio[j], ratio[j + 1]
        if np.isfinite(a) and np.isfinite(b) and a <= 0 < b:
            return float(10 ** (x[j] + (x[j + 1] - x[j]) * (-a) / (b - a)))
    return float("nan")


def _q(v: np.ndarray) -> tuple[float, float]:
    v = v[np.isfinite(v)]
    if v.size < 0.9 * N_BOOT:  # the statistic is undefined in too many resamples
        return float("nan"), float("nan")
    lo, hi = np.quantile(v, [0.025, 0.975])
    return float(lo), float(hi)
