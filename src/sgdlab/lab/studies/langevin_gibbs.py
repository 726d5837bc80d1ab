"""Study ``langevin``: SGD as Langevin dynamics, and where its Gibbs picture holds (§3.1 C).

Article (Analogy): the SGD update "resembles the Euler–Maruyama discretization of the
Langevin SDE dw = −∇F dt + √(2T_eff) dW" with T_eff ∝ η·Cov(ζ), whose stationary law is the
Gibbs density p ∝ exp(−F/T_eff).

Landscapes with isotropic noise (U + ξᵀw, T = ησ²/(2b)) — the quadratic ½w², the quartic ¼w⁴
and the double well (w² − 1)² — each at four step sizes η with σ² = 2bT/η (one T per
landscape), chains started at 0, time averages over a window after a burn-in. References:
the Gibbs law (quadrature, :func:`sgdlab.theory.gibbs_density`) and the discrete chain's
exact law at the run's η, averaged over the run's recorded window, transient included
(:meth:`sgdlab.theory.SGDChain1D.window_law`). w* = 0 is a centre of symmetry of the first two,
so their laws are compared through |w| = ‖w − w*‖ (the folded law); the double well's w is
read exactly from F and ‖w − w*‖ (:func:`~sgdlab.lab.studies._benefits_common.positions`).

Per landscape:

* **Article** — E(w − w*)² over its Gibbs value, extrapolated to η → 0 at fixed T
  (:func:`sgdlab.lab.stats.zero_limit`, linear in η; τ = the fit's model error + the largest
  window-vs-stationary difference of the exact chain): SGD *is* Langevin as η → 0. On the
  quadratic at ηκ = 0.4 the variance against Gibbs's T/κ (rule ``contains``, τ = the window's
  transient): **disagrees** — the chain's variance is ησ²/(bκ(2 − ηκ)) = 1.25·T/κ.
* **Engine checks** — at the largest η: E(w − w*)² against the exact chain; the total-
  variation distance to Gibbs measured without its sampling bias as the mass excess on the
  bins where the chain's exact law exceeds Gibbs (a linear statistic, per-chain fractions,
  t-interval) against the exact chain's; SGLD (σ = 0, injected noise at T) against SGD with
  isotropic noise at the same (η, T): the same scheme, difference 0 (Welch interval).
* Reported (quadratic, smallest η): the integrated autocorrelation time of the records
  (Sokal's window; exactly (1 + r)/(1 − r), r = (1 − ηκ)^{2e}, for an AR(1)) and how much a
  naive SE over correlated steps would understate the honest SE over chains.

Anisotropic noise — population linear regression with S = diag(1, ½, ¼, 1/10), label noise
σ = 1, where Σ(w*) = σ²S: the exact second-moment recursion (:mod:`sgdlab.theory.linear_
regression`) is the engine check; the article's Gibbs law at the isotropic-equivalent T
predicts the shape tr P/tr(SP) = tr(S⁻¹)/d = 4.25 at any T, the Lyapunov (SDE) solution d/tr S
= 2.16: **the Gibbs picture fails** with anisotropic noise.
"""

from __future__ import annotations

import math

import numpy as np

from sgdlab.engine.result import RunResult
from sgdlab.lab.findings import Finding
from sgdlab.lab.stats import (
    BOOTSTRAP,
    T_INTERVAL,
    WELCH,
    integrated_autocorrelation_time,
    mean_ci,
    probe_seed,
    welch_diff_ci,
    zero_limit,
)
from sgdlab.lab.studies._benefits_common import (
    landscape_chain,
    lr_groups,
    numpy_fn,
    positions,
)
from sgdlab.lab.studies._common import build, figure, save
from sgdlab.lab.studies._langevin_linreg import LINREG_KEY, linreg_findings, linreg_grid
from sgdlab.lab.studies._langevin_plots import plot_histogram, plot_ratio
from sgdlab.lab.study import Context, Study, register
from sgdlab.theory.langevin import gibbs_density

CLAIM = ("SGD resembles Euler–Maruyama Langevin dynamics at T_eff ∝ η·Cov(ζ), whose stationary "
         "law is the Gibbs density exp(−F/T_eff) (§3.1 C, Analogy).")
CLAIM_SIM = "Engine check: SGD's stationary law is the exact law of the discrete chain."
#: landscape, its temperature, step sizes, domain half-width, folded (symmetric about w*)
LANDSCAPES = {
    "quadratic": ({"name": "anharmonic", "kappa": 1.0, "beta": 0.0}, 0.5,
                  (0.05, 0.1, 0.2, 0.4), 6.0, True),
    "quartic": ({"name": "anharmonic", "kappa": 0.0, "beta": 1.0}, 0.5,
                (0.0125, 0.025, 0.05, 0.1), 3.5, True),
    "double well": ({"name": "double_well", "h": 1.0}, 0.3,
                    (0.01, 0.02, 0.04, 0.08), 2.6, False),
}  # fmt: skip
FIG = "langevin.png"


def _settings(quick: bool) -> dict:
    """Records: 200–300 per chain (each record stores six numbers per chain)."""
    if quick:
        return {"chains": 256, "steps": 2400, "burn": 400, "every": 8, "lr_chains": 256,
                "lr_steps": 3000, "lr_burn": 1000}  # fmt: skip
    return {"chains": 384, "steps": 8000, "burn": 1000, "every": 40, "lr_chains": 512,
            "lr_steps": 10000, "lr_burn": 2000}  # fmt: skip


def _key(name: str) -> str:
    return name.replace(" ", "_")


@register
class Langevin(Study):
    name = "langevin"
    section = "3.1 C"
    claim = "SGD is Langevin/Gibbs only as η → 0 and with isotropic noise (exact chain laws)"

    def grid(self, quick: bool) -> dict[str, dict]:
        s = _settings(quick)
        g: dict[str, dict] = {}
        for name, (prob, T, etas, _, _) in LANDSCAPES.items():
            base = {"batch": {"size": 1, "sampling": "stream"}, "chains": s["chains"],
                    "steps": s["steps"], "record": {"every": s["every"]}, "dtype": "float64"}
            for k, eta in enumerate(etas):
                g[f"{_key(name)}/sgd/eta{eta:g}"] = {
                    **base, "problem": {**prob, "start": [0.0], "noise_std": math.sqrt(
                        2 * T / eta)}, "optimizer": {"name": "sgd", "lr": eta}, "seed": 80 + k}
            g[f"{_key(name)}/sgld"] = {
                **base, "problem": {**prob, "start": [0.0], "noise_std": 0.0},
                "optimizer": {"name": "sgld", "lr": list(etas), "temperature": T},
                "chains": s["chains"] * len(etas), "seed": 89}  # fmt: skip
        g[LINREG_KEY] = linreg_grid(s["lr_chains"], s["lr_steps"])
        return g

    def analyze(self, runs: dict[str, RunResult], ctx: Context) -> list[Finding]:
        s = _settings(ctx.quick)
        fig, axes = figure(2, 3, w=4.6, h=3.7)
        out: list[Finding] = []
        ratios = {}
        for k, name in enumerate(LANDSCAPES):
            found, ratios[name] = self._landscape(name, runs, s, axes[k], k)
            out += found
        plot_ratio(axes[3], ratios)
        out += linreg_findings(self, runs[LINREG_KEY], s["lr_burn"], axes[4], FIG)
        out += self._autocorrelation(runs, s, axes[5])
        save(fig, ctx.figure(FIG))
        return out

    # ------------------------------------------------------------------ one landscape
    def _landscape(self, name: str, runs, s: dict, ax, k: int):
        _, T, etas, half, folded = LANDSCAPES[name]
        burn = s["burn"]
        rows, exact, stat = [], [], []
        for eta in etas:
            run = runs[f"{_key(name)}/sgd/eta{eta:g}"]
            prob = build(run)
            steps, d = run.metric("dist_to_opt")
            window = steps >= burn
            rows.append((d[:, window] ** 2).mean(1))
            chain = landscape_chain(prob, eta, T, -half, half)
            ws = float(prob.w_star[0])
            law = chain.window_law(0.0, steps[window])
            exact.append(law.expect(lambda x, ws=ws: (x - ws) ** 2))
            stat.append(chain.stationary().expect(lambda x, ws=ws: (x - ws) ** 2))
        u = numpy_fn(prob.u)
        gib = gibbs_density(u, np.linspace(-half, half, 40001), T)
        ws = float(prob.w_star[0])
        g2 = float(np.sum(gib.density * gib.weights * (gib.grids[0] - ws) ** 2))
        out: list[Finding] = []
        transient = max(abs(e - st) for e, st in zip(exact, stat, strict=True)) / g2
        z = zero_limit(np.array(etas), rows, np.full(len(etas), g2), probe_seed(80 + 10 * k))
        out.append(self.finding(
            CLAIM, f"{name} (T = {T:g}): E(w − w*)² / Gibbs value, extrapolated to η → 0 "
            f"(η = {etas[0]:g} … {etas[-1]:g})", z["estimate"], z["ci"], kind="article",
            predicted=1.0, rule="contains", tolerance=z["model_error"] + transient,
            tolerance_derivation="model error of the extrapolation (the intercept's change when "
            "a term in η² is added) + the largest |window − stationary| of the exact chain over "
            "the Gibbs value (the burn-in's leftover transient)", figure=FIG,
            ci_method=BOOTSTRAP + " of the fitted intercept (every η's chains)",
            theory="theory.gibbs_density (quadrature); exact chain ratios "
            + ", ".join(f"{e / g2:.4f}" for e in stat), ratios=z["ratios"], settings=etas,
        ))  # fmt: skip
        eta = etas[-1]
        run = runs[f"{_key(name)}/sgd/eta{eta:g}"]
        m, lo, hi = mean_ci(rows[-1])
        out.append(self.finding(
            CLAIM_SIM, f"{name}, η = {eta:g}: E(w − w*)² over the window", m, (lo, hi),
            kind="engine-check", predicted=exact[-1], rule="contains", figure=FIG,
            ci_method=T_INTERVAL, theory="theory.SGDChain1D.window_law (transient included)",
            gibbs=g2, stationary=stat[-1],
        ))  # fmt: skip
        if name == "quadratic":
            kappa = 1.0
            out.append(self.finding(
                CLAIM, f"quadratic, ηκ = {eta * kappa:g}: E w² against Gibbs's T/κ (the chain's "
                f"is ησ²/(bκ(2 − ηκ)) = {2 * T / (kappa * (2 - eta * kappa)):.4g})", m, (lo, hi),
                kind="article", predicted=T / kappa, rule="contains",
                tolerance=abs(exact[-1] - stat[-1]),
                tolerance_derivation="the exact chain's window average minus its stationary value "
                "(the burn-in's leftover transient)", figure=FIG, ci_method=T_INTERVAL,
                theory="Gibbs: Var w = T/κ",
            ))  # fmt: skip
        out += self._tv(name, run, prob, eta, T, half, folded, gib, burn, ax)
        sgld = runs[f"{_key(name)}/sgld"]
        st2, d2 = sgld.metric("dist_to_opt")
        sl = lr_groups(sgld, len(etas))[-1]
        lang = (d2[sl][:, st2 >= burn] ** 2).mean(1)
        dm, dlo, dhi = welch_diff_ci(rows[-1], lang)
        out.append(self.finding(
            CLAIM_SIM, f"{name}, η = {eta:g}, T = {T:g}: E(w − w*)² of SGD (isotropic noise) "
            "minus SGLD's (σ = 0, injected noise)", dm, (dlo, dhi), kind="engine-check",
            predicted=0.0, rule="contains", figure=FIG, ci_method=WELCH,
            theory="the same chain w − ηU' + √(2ηT)ξ: equal in law",
        ))  # fmt: skip
        return out, {"etas": etas, "rows": [r / g2 for r in rows],
                     "exact": [e / g2 for e in stat], "fit": z}  # fmt: skip

    def _tv(self, name, run, prob, eta, T, half, folded, gib, burn, ax) -> list[Finding]:
        chain = landscape_chain(prob, eta, T, -half, half)
        steps, d = run.metric("dist_to_opt")
        window = steps >= burn
        ws = float(prob.w_star[0])
        if folded:
            z = d[:, window]
            edges = np.linspace(0.0, 0.8 * half, 41)
            mirror = ws - edges[::-1]
        else:
            _, w, other = positions(run, prob)
            z, z_other = w[:, window], other[:, window]
            edges = np.linspace(-0.8 * half, 0.8 * half, 41) + 1e-3  # no edge at w* itself
            if (np.digitize(z, edges) != np.digitize(z_other, edges)).any():
                raise ValueError(f"{name}: a record's bin is ambiguous")
        stationary = chain.stationary()
        law = chain.window_law(0.0, steps[window])

        def masses(x) -> np.ndarray:
            if not folded:
                return x.bin_masses(edges)
            return x.bin_masses(ws + edges) + x.bin_masses(mirror)[::-1]

        x = gib.grids[0]
        cdf = np.concatenate([[0.0], np.cumsum(0.5 * (gib.density[1:] + gib.density[:-1])
                                               * np.diff(x))])  # fmt: skip
        if folded:
            g = np.diff(np.interp(ws + edges, x, cdf)) + np.diff(np.interp(mirror, x, cdf))[::-1]
        else:
            g = np.diff(np.interp(edges, x, cdf))
        pi, win = masses(stationary), masses(law)
        excess = pi > g
        tv_exact = float(np.sum((pi - g)[excess]))
        frac = np.zeros(z.shape[0])
        for j in np.nonzero(excess)[0]:
            frac += ((z >= edges[j]) & (z < edges[j + 1])).mean(1)
        m, lo, hi = mean_ci(frac - g[excess].sum())
        hist = np.histogram(z.reshape(-1), edges)[0] / z.size
        plot_histogram(ax, name, edges, hist, g, pi, folded, eta, T)
        return [self.finding(
            CLAIM_SIM, f"{name}, η = {eta:g}: total-variation distance to Gibbs on 40 bins, "
            "measured as the mass excess where the exact chain's law exceeds Gibbs",
            m, (lo, hi), kind="engine-check", predicted=float(np.sum((win - g)[excess])),
            rule="contains", figure=FIG, ci_method=T_INTERVAL + " (per-chain fractions)",
            theory="theory.SGDChain1D.window_law bin masses vs theory.gibbs_density",
            tv_stationary=tv_exact, tv_plain_histogram=float(0.5 * np.abs(hist - g).sum()),
        )]

    def _autocorrelation(self, runs, s: dict, ax) -> list[Finding]:
        """Reported: τ_int of the records of w² on the quadratic (AR(1): exactly
        (1 + r)/(1 − r), r = (1 − ηκ)^{2e} for records every e steps) and how far a naive SE
        over correlated records falls below the honest SE over chains."""
        name = "quadratic"
        eta = LANDSCAPES[name][2][0]
        kappa = LANDSCAPES[name][0]["kappa"]
        run = runs[f"{_key(name)}/sgd/eta{eta:g}"]
        steps, d = run.metric("dist_to_opt")
        v = d[:, steps >= s["burn"]] ** 2
        tau = integrated_autocorrelation_time(v)
        r = (1 - eta * kappa) ** (2 * s["every"])
        exact = (1 + r) / (1 - r)
        K, n = v.shape
        honest = v.mean(1).std(ddof=1) / math.sqrt(K)
        naive = v.std(ddof=1) / math.sqrt(K * n)
        c = v - v.mean(1, keepdims=True)
        lags = np.arange(40)
        acf = np.array([np.mean(c[:, : n - k] * c[:, k:]) for k in lags])
        ax.plot(lags * s["every"], acf / acf[0], "o-", ms=2, lw=1, label="measured")
        ax.plot(lags * s["every"], r**lags, "k-", lw=1, label="exact r^k (AR(1))")
        ax.axhline(0, color="k", lw=0.6)
        ax.set(xlabel="lag (steps)", ylabel="autocorrelation of w²",
               title=f"quadratic, η = {eta:g}: τ_int = {tau:.1f} records")  # fmt: skip
        ax.legend(fontsize=7)
        return [self.finding(
            CLAIM_SIM, f"quadratic, η = {eta:g}: honest SE over chains / naive SE over the "
            f"correlated records of w² (τ_int = {tau:.2f} records of {s['every']} steps, "
            f"exact {exact:.2f}; √τ_int = {math.sqrt(tau):.2f})", honest / naive, None,
            kind="engine-check", predicted=None, rule="report", figure=FIG,
            theory="Sokal (1997): Var(time average) ≈ τ_int·s²/n, so a naive SE is √τ_int "
            "too small", tau_int=tau, tau_int_exact=exact,
        )]
