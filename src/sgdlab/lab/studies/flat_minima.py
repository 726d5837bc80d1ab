"""Study ``flat-minima``: SGD prefers flat basins (article §3.1 C, Hypothesis and Analogy).

Article: the Gibbs law p ∝ exp(−F/T_eff) "naturally gives higher probability to wider,
flatter minima, even if they are slightly higher in energy than a very sharp, deep minimum."

Landscape ``piecewise_two_basin``: two parabolas (curvatures κ_s > κ_f) meeting at a cusp at
w = 0, so each basin is a half-line with one parabola and its Gibbs mass is closed-form
(:func:`sgdlab.theory.piecewise_quadratic_gibbs_masses`). SGD with additive Gaussian noise,
T = ησ²/(2b) set by σ per run; the measurement is each chain's fraction of recorded steps
in the flat basin (w ≥ 0) over a window, then the mean over chains (t-interval). Three
references: the Gibbs mass (closed form, checked against quadrature in the tests), Laplace's
ratio √(κ_s/κ_f) e^{−ΔE/T}, and the exact law of the discrete chain at the run's η
(:mod:`sgdlab.theory.discrete_chain`), averaged over the run's window from its start
(:meth:`~sgdlab.theory.SGDChain1D.window_law`: the transient is in the reference, and its
distance from the stationary value says whether the run has converged).

A. **Equal depths** (κ = 16, 1; E = 0, 0; barrier level 1), η = 0.05 (ηκ_s = 0.8), four
   temperatures, chains started in the sharp minimum. With equal depths and one barrier
   level the Φ factors of the two masses cancel, so Gibbs = Laplace exactly: p_flat = 4/5 at
   every T. Article: the flat basin holds more than half (rule ``positive`` on the smallest
   fraction − ½). Article, per T: the fraction against Gibbs's 4/5 (τ = the exact chain's
   window-vs-stationary gap) — **disagrees at ηκ_s = 0.8**: finite-η SGD favours the flat
   basin *more* than Gibbs (the sharp basin is "hotter": its variance is inflated by
   1/(1 − ηκ_s/2)); at η = 0.005 it agrees. Engine checks against the exact chain.
B. **Sharp basin deeper** (κ = 4, 1; E = −0.15, 0; barrier level 0.4), η = 0.08
   (ηκ_s = 0.32), six temperatures, chains started at the cusp: the crossover temperature T*
   above which the higher, flat basin holds more mass. Measured T* by linear interpolation of
   the fractions at ½ (bootstrap over each run's chains). Engine check against the same
   interpolation of the exact chain's window fractions; article: against Gibbs's T*
   (τ = the interpolation's error on the exact chain + its window-vs-stationary shift) —
   **disagrees**: the crossover exists ("even if slightly higher in energy" holds) but at a
   lower T than Gibbs says. Laplace's T* = 2ΔE/ln(κ_s/κ_f) is reported against Gibbs's.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq

from sgdlab.engine.result import RunResult
from sgdlab.lab.findings import Finding
from sgdlab.lab.stats import BOOTSTRAP, T_INTERVAL, bootstrap_groups, mean_ci, probe_seed
from sgdlab.lab.studies._benefits_common import landscape_chain, positions
from sgdlab.lab.studies._common import build, figure, save
from sgdlab.lab.studies._flat_plots import plot_crossover, plot_fractions, plot_landscapes
from sgdlab.lab.study import Context, Study, register
from sgdlab.theory.basins import piecewise_quadratic_gibbs_masses
from sgdlab.theory.langevin import laplace_occupancy_ratio

CLAIM = ("SGD prefers flatter minima: the Gibbs law exp(−F/T_eff) gives wider minima more "
         "probability (§3.1 C).")
CLAIM_HIGHER = ("The Gibbs law favours wider minima 'even if they are slightly higher in "
                "energy than a very sharp, deep minimum' (§3.1 C).")
CLAIM_SIM = "Engine check: SGD's basin occupation follows the exact discrete chain."
EQUAL = {"name": "piecewise_two_basin", "curvatures": [16.0, 1.0], "minima_values": [0.0, 0.0],
         "barrier": 1.0}
DEEPER = {"name": "piecewise_two_basin", "curvatures": [4.0, 1.0],
          "minima_values": [-0.15, 0.0], "barrier": 0.4}
ETA_A, ETA_SMALL, T_SMALL, ETA_B = 0.05, 0.005, 0.5, 0.08
FIG = "flat-minima.png"


def _settings(quick: bool) -> dict:
    """Records: every 10 steps in quick mode, 30 in full (each stores six numbers per chain)."""
    if quick:
        return {"chains": 256, "temps_a": (0.2, 0.3, 0.45, 0.7), "steps_a": 3000,
                "temps_b": (0.13, 0.16, 0.19, 0.22, 0.25, 0.28), "steps_b": 2500,
                "steps_small": 6000, "every": 10}  # fmt: skip
    return {"chains": 512, "temps_a": (0.2, 0.25, 0.3, 0.4, 0.5, 0.7, 1.0), "steps_a": 6000,
            "temps_b": (0.12, 0.14, 0.16, 0.18, 0.2, 0.22, 0.24, 0.26, 0.28, 0.3),
            "steps_b": 5000, "steps_small": 12000, "every": 30}  # fmt: skip


def _config(prob: dict, eta: float, T: float, steps: int, s: dict, seed: int,
            start: float | None = None) -> dict:  # fmt: skip
    p = {**prob, "noise_std": math.sqrt(2 * T / eta)}
    if start is not None:
        p["start"] = [start]
    return {"problem": p, "optimizer": {"name": "sgd", "lr": eta},
            "batch": {"size": 1, "sampling": "stream"}, "chains": s["chains"], "steps": steps,
            "seed": seed, "record": {"every": s["every"]}, "dtype": "float64"}  # fmt: skip


def _chain(prob, eta: float, T: float):
    ks, kf = prob.kappa
    a_s, a_f = prob.centers
    lo = a_s - 9 * math.sqrt(T / ks) - 0.3
    hi = a_f + 9 * math.sqrt(T / kf) + 0.3
    return landscape_chain(prob, eta, T, lo, hi, breaks=(0.0,))


def _gibbs_flat(prob, T: float) -> float:
    return float(piecewise_quadratic_gibbs_masses(prob.kappa, prob.energies, prob.centers, T)[1])


@register
class FlatMinima(Study):
    name = "flat-minima"
    section = "3.1 C"
    claim = "flat basins win, and by more than Gibbs says at finite η (closed-form masses)"

    def grid(self, quick: bool) -> dict[str, dict]:
        s = _settings(quick)
        g = {f"equal/T{T:g}": _config(EQUAL, ETA_A, T, s["steps_a"], s, 101 + k)
             for k, T in enumerate(s["temps_a"])}  # fmt: skip
        g[f"equal/small-eta/T{T_SMALL:g}"] = _config(EQUAL, ETA_SMALL, T_SMALL, s["steps_small"],
                                                     s, 111)  # fmt: skip
        for k, T in enumerate(s["temps_b"]):
            g[f"deeper/T{T:g}"] = _config(DEEPER, ETA_B, T, s["steps_b"], s, 121 + k, start=0.0)
        return g

    def analyze(self, runs: dict[str, RunResult], ctx: Context) -> list[Finding]:
        s = _settings(ctx.quick)
        fig, axes = figure(2, 2, w=5.4, h=4.0)
        out = self._equal(runs, s, axes[0], axes[1])
        out += self._deeper(runs, s, axes[2])
        plot_landscapes(axes[3], build(runs[f"equal/T{s['temps_a'][0]:g}"]),
                        build(runs[f"deeper/T{s['temps_b'][0]:g}"]))  # fmt: skip
        save(fig, ctx.figure(FIG))
        return out

    # ---------------------------------------------------------------- measuring
    def _measure(self, run: RunResult, eta: float, T: float) -> dict:
        """Per-chain window fractions in the flat basin, and the exact chain's references."""
        prob = build(run)
        steps, w, other = positions(run, prob)
        burn = steps[-1] // 2
        win = steps >= burn
        if ((w[:, steps >= 1] >= 0) != (other[:, steps >= 1] >= 0)).any():
            raise ValueError("flat-minima: a record's basin is ambiguous")
        flat = (w[:, win] >= 0).mean(1)
        chain = _chain(prob, eta, T)
        start = float(prob.init_params(None)[0])
        hi = chain.hi
        window = chain.window_law(start, steps[win]).mass(0.0, hi)
        stationary = chain.stationary().mass(0.0, hi)
        coarse = chain.refined(2.0).stationary().mass(0.0, hi)
        return {"T": T, "eta": eta, "flat": flat, "window": window, "stationary": stationary,
                "quad": abs(coarse - stationary), "gibbs": _gibbs_flat(prob, T), "prob": prob,
                "steps": steps, "occupation": (w >= 0).mean(0), "chain": chain,
                "start": start, "burn": int(burn)}  # fmt: skip

    def _pair(self, m: dict, label: str, n_records: int) -> list[Finding]:
        mm, lo, hi = mean_ci(m["flat"])
        gap = abs(m["window"] - m["stationary"])
        converged = gap <= 0.1 * (hi - lo) / 2
        note = "" if converged else " — NOT converged in the run (see the relaxation panel)"
        return [
            self.finding(
                CLAIM_SIM, f"{label}: flat-basin fraction over the window (last half, "
                f"{n_records} records)", mm, (lo, hi), kind="engine-check",
                predicted=m["window"], rule="contains", tolerance=m["quad"],
                tolerance_derivation="quadrature error of the exact chain (the change of the "
                "stationary mass when the grid's panels are doubled)", figure=FIG,
                ci_method=T_INTERVAL, theory="theory.SGDChain1D.window_law (transient included)",
            ),
            self.finding(
                CLAIM, f"{label}: flat-basin fraction against the Gibbs mass "
                f"{m['gibbs']:.4f} (exact chain at this η: {m['stationary']:.4f}){note}", mm,
                (lo, hi), kind="article", predicted=m["gibbs"], rule="contains", tolerance=gap,
                tolerance_derivation="the exact chain's window average minus its stationary "
                "value (what the run has not relaxed)", figure=FIG, ci_method=T_INTERVAL,
                theory="theory.piecewise_quadratic_gibbs_masses (closed form)",
                converged=bool(converged), exact_chain_stationary=m["stationary"],
            ),
        ]

    # ---------------------------------------------------------------- A. equal depths
    def _equal(self, runs, s: dict, ax, ax_relax) -> list[Finding]:
        out: list[Finding] = []
        ms = []
        for T in s["temps_a"]:
            m = self._measure(runs[f"equal/T{T:g}"], ETA_A, T)
            ms.append(m)
            n = int((m["steps"] >= m["burn"]).sum())
            out += self._pair(m, f"equal depths, κ = 16 : 1, η = {ETA_A:g} "
                                 f"(ηκ_s = {ETA_A * 16:g}), T = {T:g}", n)  # fmt: skip
        small = self._measure(runs[f"equal/small-eta/T{T_SMALL:g}"], ETA_SMALL, T_SMALL)
        n = int((small["steps"] >= small["burn"]).sum())
        out += self._pair(small, f"equal depths, η = {ETA_SMALL:g} (ηκ_s = {ETA_SMALL * 16:g}), "
                                 f"T = {T_SMALL:g}", n)  # fmt: skip
        est, lo, hi = bootstrap_groups([m["flat"] for m in ms],
                                       lambda gs: min(g.mean() for g in gs) - 0.5,
                                       probe_seed(101))  # fmt: skip
        out.append(self.finding(
            CLAIM, f"equal depths, κ = 16 : 1: smallest flat-basin fraction over T = "
            f"{s['temps_a'][0]:g} … {s['temps_a'][-1]:g}, minus ½", est, (lo, hi),
            kind="article", predicted=None, rule="positive", figure=FIG,
            ci_method=BOOTSTRAP + " (each temperature's chains)",
            theory="Gibbs (= Laplace here): p_flat = √16/(1 + √16) = 0.8 at every T",
        ))  # fmt: skip
        plot_fractions(ax, ax_relax, ms, small, lambda T: _chain(ms[0]["prob"], ETA_A, T))
        return out

    # ---------------------------------------------------------------- B. sharp deeper
    def _deeper(self, runs, s: dict, ax) -> list[Finding]:
        temps = np.array(s["temps_b"])
        ms = [self._measure(runs[f"deeper/T{T:g}"], ETA_B, T) for T in temps]
        prob = ms[0]["prob"]
        window = np.array([m["window"] for m in ms])
        stationary = np.array([m["stationary"] for m in ms])

        def crossing(fr) -> float:
            return _crossing(temps, np.asarray(fr))

        est, lo, hi = bootstrap_groups([m["flat"] for m in ms],
                                       lambda gs: crossing([g.mean() for g in gs]),
                                       probe_seed(121))  # fmt: skip
        t_gibbs = _root(lambda T: _gibbs_flat(prob, T) - 0.5, temps[0] / 4, 4 * temps[-1])
        t_chain = _root(lambda T: _chain(prob, ETA_B, T).stationary().mass(0.0, 50.0) - 0.5,
                        temps[0] / 2, 2 * temps[-1])  # fmt: skip
        interp_err = abs(crossing(stationary) - t_chain)
        shift = abs(crossing(window) - crossing(stationary))
        ks, kf = prob.kappa
        dE = prob.energies[1] - prob.energies[0]
        t_laplace = 2 * dE / math.log(ks / kf)
        label = (f"sharp basin deeper by ΔE = {dE:g} (κ = {ks:g} : {kf:g}), η = {ETA_B:g} "
                 f"(ηκ_s = {ETA_B * ks:g})")  # fmt: skip
        common = dict(figure=FIG, ci_method=BOOTSTRAP + " (each temperature's chains)")
        mm, mlo, mhi = mean_ci(ms[-1]["flat"] - 0.5)
        out = [
            self.finding(
                CLAIM_SIM, f"{label}: crossover temperature (flat fraction = ½, interpolated)",
                est, (lo, hi), kind="engine-check", predicted=crossing(window),
                rule="contains", theory="the same interpolation of the exact chain's window "
                "fractions", exact_chain_crossover=t_chain, **common,
            ),
            self.finding(
                CLAIM_HIGHER, f"{label}: crossover temperature against the Gibbs law's "
                f"T* = {t_gibbs:.4f} (exact chain: {t_chain:.4f})", est, (lo, hi),
                kind="article", predicted=t_gibbs, rule="contains",
                tolerance=interp_err + shift,
                tolerance_derivation="the linear interpolation's error on the exact chain "
                "(|interpolated − true crossover| of its stationary fractions) + the shift of "
                "the interpolated crossover between the window and stationary fractions",
                theory="theory.piecewise_quadratic_gibbs_masses: p_flat(T*) = ½", **common,
            ),
            self.finding(
                CLAIM_HIGHER, f"{label}, T = {temps[-1]:g}: flat (higher) basin's fraction "
                "minus ½", mm, (mlo, mhi), kind="article", predicted=None, rule="positive",
                figure=FIG, ci_method=T_INTERVAL,
                theory="above T* the wider, higher basin holds more mass",
            ),
            self.finding(
                CLAIM_HIGHER, f"{label}: Laplace's crossover 2ΔE/ln(κ_s/κ_f) = "
                f"{t_laplace:.4f} against Gibbs's {t_gibbs:.4f}", t_laplace, None,
                kind="analytic", predicted=None, rule="report", figure=FIG,
                theory="theory.laplace_occupancy_ratio = 1 (T → 0 asymptotics)",
                gibbs_crossover=t_gibbs,
            ),
        ]
        plot_crossover(ax, ms, t_gibbs, t_chain, est, (lo, hi),
                       lambda T: _chain(prob, ETA_B, T).stationary().mass(0.0, 50.0),
                       lambda T: _gibbs_flat(prob, T),
                       lambda T: _laplace_flat(prob, T))  # fmt: skip
        return out


def _laplace_flat(prob, T: float) -> float:
    r = laplace_occupancy_ratio(prob.energies[1], prob.kappa[1], prob.energies[0],
                                prob.kappa[0], T)  # fmt: skip
    return r / (1 + r)


def _crossing(temps: np.ndarray, fr: np.ndarray) -> float:
    """The first T where the fraction crosses ½ upwards (linear interpolation); NaN if none."""
    above = fr >= 0.5
    for i in range(1, len(fr)):
        if above[i] and not above[i - 1]:
            t0, t1, f0, f1 = temps[i - 1], temps[i], fr[i - 1], fr[i]
            return float(t0 + (0.5 - f0) * (t1 - t0) / (f1 - f0))
    return float("nan")


def _root(fn, lo: float, hi: float) -> float:
    return float(brentq(fn, lo, hi, xtol=1e-10))
