"""Study ``escape``: SGD's noise kicks it out of poor minima and off saddles (article §3.1 B).

Article: "Deterministic methods like full Gradient Descent can get easily trapped in
suboptimal local minima or slow down drastically at saddle points ... The noise in SGD acts
like a 'kick', providing the necessary perturbation to escape these regions."

Every reference is exact for the process simulated: SGD on a 1-D landscape with additive
Gaussian noise is the chain w ↦ w − ηU'(w) + √(2ηT)ξ, T = ησ²/(2b), whose exit
probabilities and mean first-passage times are computed on a grid
(:mod:`sgdlab.theory.discrete_chain`; quadrature error: the change when the panels are
doubled). The engine records F and ‖w − w*‖, from which w is read exactly
(:func:`~sgdlab.lab.studies._benefits_common.positions`); a passage is seen at the first
record after it, so every exact reference is the first passage of the run's *recorded*
skeleton (every e steps). Asymptotic formulas are compared with the exact values, and their
own errors are reported.

1. **Escape probability within H steps vs η/b** (b = 1, η per chain) from the metastable
   minimum of ``tilted_double_well`` (c = 0.25) and from the sharp minimum of ``two_basin``
   (confine = 0.3, so that its law exists): engine checks against the exact chain at each η
   (Wilson intervals, τ = quadrature error); article: the probability rises with η/b (the
   smallest step between consecutive η, bootstrap over chains, rule ``positive``); GD
   (σ = 0) from jittered starts in the basin: it escapes with probability exactly 0.
   An escape is the first record past the exit point x halfway from the barrier top down to
   the other minimum (away from w*, where the sign of w − w* cannot be read from F).
2. **Mean escape time** from the metastable minimum over the barrier (to x) at η = 0.1
   (ηU''(a) = 0.72, η *not* small) and five temperatures ΔU/T = 1.5 … 4.5; runs last about
   2 exact mean escape times. Engine check: the restricted mean E min(N, H) against the
   chain's (τ = quadrature error). Article (the Langevin picture: SGD escapes like the SDE
   at T): τ̂ = Σ min(N, H)/#escaped (the censored-exponential estimate of E N, time units ηN)
   over the SDE's exact mean first-passage time by quadrature
   (:func:`sgdlab.theory.mean_first_passage_time`), rule ``contains`` with p = 1 and τ = the
   estimator's bias |ρ/E N − 1| computed on the chain (ρ = E min(N,H)/P(N ≤ H) of the
   recorded skeleton) — **it fails at η = 0.1**: the chain escapes ≈ 27% sooner than the SDE;
   at ΔU/T = 2.25 the same ratio at η = 0.05 and 0.025 shows it holding as η → 0. Kramers'
   formula's own error (over the exact SDE value) is in each quantity.
3. **Arrhenius slope** d ln τ/d(1/T) over the five temperatures (bootstrap over each run's
   chains): engine check against the chain's slope of ρ; article against the barrier ΔU
   (Kramers), τ = |the exact SDE's slope − ΔU| (the asymptotic law's finite-T error) + the
   estimator's slope bias |slope(ρ) − slope(E N)|.
4. **Strict saddle** (:mod:`sgdlab.lab.studies._escape_saddle`): GD on the stable manifold
   never leaves; GD from 1e-6 leaves after exactly the steps of its map; SGD's mean exit time
   at b = 1 … 256 against the exact chain, its slope in log b against the exact linearised
   chain (τ = the linearisation's model error) and the asymptotic 1/(2 log q).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from sgdlab.engine.result import RunResult
from sgdlab.errors import ConfigError
from sgdlab.lab.findings import Finding
from sgdlab.lab.stats import (
    BOOTSTRAP,
    T_INTERVAL,
    WILSON,
    bootstrap_ci,
    bootstrap_groups,
    mean_ci,
    probe_seed,
    wilson_ci,
)
from sgdlab.lab.studies._benefits_common import (
    first_exit,
    landscape_chain,
    lr_groups,
    numpy_fn,
    positions,
    temperature,
)
from sgdlab.lab.studies._common import build, errbar, figure, save
from sgdlab.lab.studies._escape_plots import lookup, plot_eta, plot_times
from sgdlab.lab.studies._escape_saddle import saddle_findings, saddle_grid
from sgdlab.lab.study import Context, Study, register
from sgdlab.problems import Problem, build_problem
from sgdlab.theory.basins import arrhenius_slope, kramers_escape_time
from sgdlab.theory.langevin import mean_first_passage_time

CLAIM = ("Deterministic GD can get trapped in suboptimal minima; the noise of SGD kicks it "
         "out (§3.1 B).")
CLAIM_LANGEVIN = ("SGD is the Euler–Maruyama scheme of Langevin dynamics at T = ησ²/(2b), so "
                  "it escapes over a barrier as that SDE does (§3.1 C, Analogy).")
CLAIM_SIM = "Engine check: SGD's escapes follow the exact discrete chain."
TDW = {"name": "tilted_double_well", "h": 1.0, "c": 0.25}
TWO = {"name": "two_basin", "confine": 0.3}
#: landscape, noise σ, step sizes, jitter of GD's starts, domain margins (left, right)
PROB = {
    "tilted_double_well": (TDW, 3.0, (0.03, 0.04, 0.05, 0.06, 0.08), 0.1, (3.0, 3.0)),
    "two_basin": (TWO, 5.0, (0.015, 0.02, 0.025, 0.03, 0.04), 0.05, (8.0, 4.0)),
}
P_EVERY, P_STEPS = 5, 600
ETA_T = 0.1
RATIO_ETA = 2.25
FIG = "escape.png"


def _settings(quick: bool) -> dict:
    if quick:
        return {"p_chains": 256, "gd_chains": 8, "t_chains": 384, "horizon": 2.0, "records": 400,
                "ratios": (1.5, 2.25, 3.0, 3.75, 4.5), "extra_etas": (0.05, 0.025),
                "s_chains": 256, "bs": (1, 4, 16, 64, 256), "s_every": 1}  # fmt: skip
    return {"p_chains": 512, "gd_chains": 16, "t_chains": 768, "horizon": 3.0, "records": 150,
            "ratios": (1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0), "extra_etas": (0.05, 0.025,
                                                                            0.0125),
            "s_chains": 512, "bs": (1, 2, 4, 8, 16, 32, 64, 128, 256), "s_every": 2}  # fmt: skip


@lru_cache(maxsize=8)
def _geometry(key: str) -> dict:
    """Start a (the start minimum), target g (the other minimum), barrier top s, ΔU and the
    curvatures, from the landscape's own critical points."""
    return _geometry_of(build_problem(PROB[key][0]["name"], {
        k: v for k, v in PROB[key][0].items() if k != "name"}))  # fmt: skip


def _geometry_of(prob: Problem) -> dict:
    a = float(prob.start[0])
    mins = [float(c.w[0]) for c in prob.minima()]
    others = [m for m in mins if abs(m - a) > 1e-9]
    if not others:
        raise ConfigError("problem", f"{prob.name} has a single minimum at {a:g}: there is no "
                          "barrier to escape over (lower the tilt c)")  # fmt: skip
    g = min(others, key=lambda m: abs(m - a))
    tops = [c for c in prob.critical_points() if c.kind == "maximum"
            and min(a, g) < float(c.w[0]) < max(a, g)]  # fmt: skip
    if not tops:
        raise ConfigError("problem", f"{prob.name}: no barrier top between the minima {a:g} "
                          f"and {g:g}")  # fmt: skip
    top = tops[0]
    u, d2u = numpy_fn(prob.u), numpy_fn(prob.d2u)
    x = 0.5 * (float(top.w[0]) + g)  # the exit: halfway down into the other basin
    return {"a": a, "g": g, "s": float(top.w[0]), "x": x,
            "dV": float(top.value - u(np.array(a))), "Ua": float(d2u(np.array(a))),
            "Us": float(top.hessian[0, 0]),
            "exit": {"exit_below": x} if g < a else {"exit_above": x},
            "side": {"below": x} if g < a else {"above": x}}  # fmt: skip


@lru_cache(maxsize=4)
def _time_plan(quick: bool) -> tuple[tuple[float, float, float, int, int], ...]:
    """(ratio ΔU/T, T, η, horizon H, record cadence e) of each escape-time run: H ≈
    ``horizon``·E N of the exact chain, about ``records`` records (each record stores six
    numbers per chain)."""
    s = _settings(quick)
    geo = _geometry("tilted_double_well")
    prob = build_problem("tilted_double_well", {k: v for k, v in TDW.items() if k != "name"})
    plan = [(r, ETA_T) for r in s["ratios"]] + [(RATIO_ETA, e) for e in s["extra_etas"]]
    out = []
    for r, eta in plan:
        T = geo["dV"] / r
        mean = _chain(prob, geo, eta, T, "tilted_double_well").first_passage(
            geo["a"], **geo["exit"]).mean  # fmt: skip
        e = max(1, int(s["horizon"] * mean / s["records"]))
        out.append((r, T, eta, e * math.ceil(s["horizon"] * mean / e), e))
    return tuple(out)


def _chain(prob: Problem, geo: dict, eta: float, T: float, key: str):
    left, right = PROB[key][4]
    lo, hi = min(geo["a"], geo["g"]) - left, max(geo["a"], geo["g"]) + right
    return landscape_chain(prob, eta, T, lo, hi, breaks=(geo["x"],))


@register
class Escape(Study):
    name = "escape"
    section = "3.1 B"
    claim = "GD stays trapped, SGD's noise kicks it out of minima and saddles (exact chains)"

    def grid(self, quick: bool) -> dict[str, dict]:
        s = _settings(quick)
        g: dict[str, dict] = {}
        for key, (prob, sigma, etas, jitter, _) in PROB.items():
            base = {"optimizer": {"name": "sgd", "lr": list(etas)}, "steps": P_STEPS,
                    "batch": {"size": 1, "sampling": "stream"}, "dtype": "float64",
                    "record": {"every": P_EVERY}}  # fmt: skip
            g[f"prob/{key}"] = {**base, "problem": {**prob, "noise_std": sigma},
                                "chains": s["p_chains"] * len(etas), "seed": 61}
            g[f"prob/{key}/gd"] = {**base, "problem": {**prob, "noise_std": 0.0,
                                                       "init_scale": jitter},
                                   "chains": s["gd_chains"] * len(etas), "seed": 62}
        for r, T, eta, H, e in _time_plan(quick):
            g[f"time/r{r:g}/eta{eta:g}"] = {
                "problem": {**TDW, "noise_std": math.sqrt(2 * T / eta)},
                "optimizer": {"name": "sgd", "lr": eta}, "batch": {"size": 1, "sampling":
                                                                   "stream"},
                "chains": s["t_chains"], "steps": H, "seed": 63, "record": {"every": e},
                "dtype": "float64"}  # fmt: skip
        g.update(saddle_grid(s["s_chains"], s["bs"], s["s_every"]))
        return g

    def analyze(self, runs: dict[str, RunResult], ctx: Context) -> list[Finding]:
        s = _settings(ctx.quick)
        fig, axes = figure(2, 2, w=5.4, h=4.0)
        out: list[Finding] = []
        for k, key in enumerate(PROB):
            out += self._probability(key, runs[f"prob/{key}"], runs[f"prob/{key}/gd"],
                                     axes[0], f"C{k}")  # fmt: skip
        out += self._times(runs, ctx.quick, axes[1], axes[2])
        out += saddle_findings(self, runs, s["bs"], axes[3])
        save(fig, ctx.figure(FIG))
        return out

    # ------------------------------------------------------------ 1. probability
    def _probability(self, key: str, run: RunResult, gd: RunResult, ax, color: str
                     ) -> list[Finding]:  # fmt: skip
        etas = PROB[key][2]
        prob = build(run)
        geo = _geometry_of(prob)
        steps, w, other = positions(run, prob)
        H = int(steps[-1])
        _, esc = first_exit(steps, w, other=other, **geo["side"])
        gsteps, gw, gother = positions(gd, build(gd))
        _, gesc = first_exit(gsteps, gw, other=gother, **geo["side"])
        name = key.replace("_", " ")
        p_gd, lo, hi = wilson_ci(int(gesc.sum()), gesc.size)
        out = [self.finding(
            CLAIM, f"{name}: fraction of GD chains (σ = 0, starts jittered in the basin) that "
            f"escape within {H} steps", p_gd, (lo, hi), kind="article",
            predicted=0.0, rule="exact", figure=FIG, ci_method=WILSON,
            theory="GD descends to the minimum of the basin it starts in",
            final_distance_to_start_minimum=float(np.max(np.abs(gw[:, -1] - geo["a"]))),
        )]  # fmt: skip
        groups_esc = []
        measured, exact = [], []
        for eta, sl in zip(etas, lr_groups(run, len(etas)), strict=True):
            T = temperature(run, prob, eta)
            chain = _chain(prob, geo, eta, T, key)
            fp = chain.first_passage(geo["a"], **geo["exit"], every=P_EVERY)
            p = fp.escape_probability(H)
            coarse = chain.refined(2.0).first_passage(geo["a"], **geo["exit"], every=P_EVERY)
            err = abs(coarse.escape_probability(H) - p) + fp.unobserved_leak
            e = esc[sl]
            groups_esc.append(e.astype(float))
            m, lo, hi = wilson_ci(int(e.sum()), e.size)
            measured.append((m, lo, hi))
            exact.append(p)
            out.append(self.finding(
                CLAIM_SIM, f"{name}: P(escape within {H} steps), η/b = {eta:g} "
                f"(T = {T:.3g}, ΔU/T = {geo['dV'] / T:.2f})", m, (lo, hi), kind="engine-check",
                predicted=p, rule="contains", tolerance=err,
                tolerance_derivation="quadrature error of the exact chain (the change of P "
                "when the grid's panels are doubled) + the mass the grid drops between records",
                figure=FIG, ci_method=WILSON,
                theory=f"theory.discrete_chain: exit of the {P_EVERY}-step skeleton",
            ))  # fmt: skip
        est, lo, hi = bootstrap_groups(groups_esc, lambda gs: float(np.min(np.diff(
            [g.mean() for g in gs]))), probe_seed(61))  # fmt: skip
        out.append(self.finding(
            CLAIM, f"{name}: smallest rise of the escape probability between consecutive η/b "
            f"({etas[0]:g} … {etas[-1]:g})", est, (lo, hi), kind="article", predicted=None,
            rule="positive", figure=FIG, ci_method=BOOTSTRAP + " (within each η)",
            theory="monotone in the noise: every step up in η/b raises the probability",
        ))  # fmt: skip
        x = np.array(etas)
        fine = np.linspace(etas[0], etas[-1], 7)
        curve = [
            p if (p := lookup(etas, exact, e)) is not None
            else _chain(prob, geo, e, temperature(run, prob, e), key).first_passage(
                geo["a"], **geo["exit"], every=P_EVERY).escape_probability(H)
            for e in fine
        ]  # fmt: skip
        errbar(ax, x, *zip(*measured, strict=True), color=color, label=f"{name}: SGD")
        ax.plot(fine, curve, "-", color=color, lw=1, label=f"{name}: exact chain")
        ax.plot(x, [p_gd] * len(x), "x", color=color, ms=8, label=f"{name}: GD")
        ax.set(xlabel="η/b (b = 1)", ylabel=f"P(escape within {H} steps)", ylim=(-0.03, 1.03),
               title="escape from a poor minimum: GD 0, SGD rises with η/b")  # fmt: skip
        ax.legend(fontsize=7)
        return out

    # ------------------------------------------------------------ 2–3. times
    def _times(self, runs, quick: bool, ax, ax_eta) -> list[Finding]:
        out: list[Finding] = []
        sweep: list[dict] = []
        extra: list[dict] = []
        for r, _, eta, _, _ in _time_plan(quick):
            res = self._escape_time(runs[f"time/r{r:g}/eta{eta:g}"], r, eta)
            out += res.pop("findings")
            (sweep if eta == ETA_T else extra).append(res)
        out += self._arrhenius(sweep)
        run = runs[f"time/r{sweep[0]['ratio']:g}/eta{ETA_T:g}"]
        prob = build(run)
        plot_times(ax, sweep, prob, _geometry_of(prob))
        plot_eta(ax_eta, RATIO_ETA, [x for x in sweep if x["ratio"] == RATIO_ETA] + extra)
        return out

    def _escape_time(self, run: RunResult, ratio: float, eta: float) -> dict:
        prob = build(run)
        geo = _geometry_of(prob)
        T = temperature(run, prob, eta)
        steps, w, other = positions(run, prob)
        H, e = int(steps[-1]), int(run.config["record"]["every"])
        c, esc = first_exit(steps, w, other=other, **geo["side"])
        chain = _chain(prob, geo, eta, T, "tilted_double_well")
        fe = chain.first_passage(geo["a"], **geo["exit"], every=e)
        rm = fe.restricted_mean(H)
        coarse = chain.refined(2.0).first_passage(geo["a"], **geo["exit"], every=e)
        err = abs(coarse.restricted_mean(H) - rm) + fe.unobserved_leak * H
        n_exact = chain.first_passage(geo["a"], **geo["exit"]).mean
        rho = fe.restricted_mean(H) / fe.escape_probability(H)
        u = numpy_fn(prob.u)
        reflect = geo["a"] + 2.5 * np.sign(geo["a"] - geo["g"])
        sde = mean_first_passage_time(u, geo["a"], geo["x"], T, reflect=reflect, n_grid=40001)
        sde_err = abs(mean_first_passage_time(u, geo["a"], geo["x"], T, reflect=reflect,
                                              n_grid=20001) - sde)  # fmt: skip
        kr = kramers_escape_time(geo["Ua"], geo["Us"], geo["dV"], T)
        label = f"ΔU/T = {ratio:g} (T = {T:.3g}), η = {eta:g} (ηU''(a) = {eta * geo['Ua']:.2f})"
        m, lo, hi = mean_ci(c)
        findings = [self.finding(
            CLAIM_SIM, f"tilted double well, {label}: E min(N, H) steps, H = {H}", m, (lo, hi),
            kind="engine-check", predicted=rm, rule="contains", tolerance=err,
            tolerance_derivation="quadrature error of the exact chain (panels doubled) + H × "
            "the mass the grid drops between records", figure=FIG, ci_method=T_INTERVAL,
            theory=f"theory.discrete_chain: restricted mean of the {e}-step skeleton's passage",
        )]  # fmt: skip
        data = np.stack([c, esc.astype(float)], 1)
        seed = probe_seed(63) + int(100 * ratio) + int(1e4 * eta)
        est, lo, hi = bootstrap_ci(data, lambda v: v[:, 0].sum() / v[:, 1].sum() * eta / sde,
                                   seed)  # fmt: skip
        bias = abs(rho / n_exact - 1)
        tol = bias + sde_err / sde
        findings.append(self.finding(
            CLAIM_LANGEVIN, f"tilted double well, {label}: mean escape time (η·steps) / exact "
            f"SDE mean first-passage time (Kramers / exact SDE = {kr / sde:.3f}; exact chain / "
            f"SDE = {n_exact * eta / sde:.3f})", est, (lo, hi), kind="article", predicted=1.0,
            rule="contains", tolerance=tol, tolerance_derivation="bias of the censored-"
            "exponential estimate Σmin(N,H)/#escaped as an estimate of E N, computed on the "
            "exact chain: |ρ/E N − 1|, ρ = E min(N,H)/P(N ≤ H) of the recorded skeleton; plus "
            "the SDE quadrature's change from 20001 to 40001 points", figure=FIG,
            ci_method=BOOTSTRAP, theory="theory.mean_first_passage_time (exact SDE, quadrature);"
            " theory.basins.kramers_escape_time", chain_over_sde=n_exact * eta / sde,
            kramers_over_sde=kr / sde, escaped_fraction=float(esc.mean()),
        ))  # fmt: skip
        return {"ratio": ratio, "eta": eta, "T": T, "data": data, "rho": rho, "n": n_exact,
                "sde": sde, "kramers": kr, "dV": geo["dV"], "est": est, "ci": (lo, hi),
                "Ua": geo["Ua"], "findings": findings}  # fmt: skip

    def _arrhenius(self, sweep: list[dict]) -> list[Finding]:
        Ts = np.array([x["T"] for x in sweep])
        dV = sweep[0]["dV"]

        def stat(gs: list[np.ndarray]) -> float:
            return arrhenius_slope(Ts, [g[:, 0].sum() / g[:, 1].sum() for g in gs])

        est, lo, hi = bootstrap_groups([x["data"] for x in sweep], stat, probe_seed(64))
        s_rho = arrhenius_slope(Ts, [x["rho"] for x in sweep])
        s_n = arrhenius_slope(Ts, [x["n"] for x in sweep])
        s_sde = arrhenius_slope(Ts, [x["sde"] for x in sweep])
        span = f"ΔU/T = {sweep[0]['ratio']:g} … {sweep[-1]['ratio']:g}, η = {ETA_T:g}"
        common = dict(figure=FIG, ci_method=BOOTSTRAP + " (each temperature's chains)")
        return [
            self.finding(
                CLAIM_SIM, f"Arrhenius slope d ln τ/d(1/T) of the escape-time estimate ({span})",
                est, (lo, hi), kind="engine-check", predicted=s_rho, rule="contains",
                theory="the same slope of the exact chain's ρ = E min(N,H)/P(N ≤ H)",
                **common,
            ),
            self.finding(
                CLAIM_LANGEVIN, f"Arrhenius slope vs the barrier ΔU = {dV:.4f} (Kramers; {span})",
                est, (lo, hi), kind="article", predicted=dV, rule="contains",
                tolerance=abs(s_sde - dV) + abs(s_rho - s_n),
                tolerance_derivation=f"the exact SDE's slope over these T is {s_sde:.4f}, "
                f"|{s_sde:.4f} − ΔU| = {abs(s_sde - dV):.4f} (Kramers' law is the T → 0 limit); "
                f"plus the estimator's slope bias |slope(ρ) − slope(E N)| = "
                f"{abs(s_rho - s_n):.4f} on the exact chain",
                theory="theory.basins.kramers_escape_time: τ ∝ exp(ΔU/T)",
                exact_sde_slope=s_sde, exact_chain_slope=s_n, **common,
            ),
        ]
