"""Study ``critical-batch``: steps and examples to a target vs the batch size, and B_crit (§4).

Article §4: "there might be a 'critical batch size' beyond which increasing the batch size
yields diminishing returns in terms of convergence speed". Measurement (Shallue et al. 2019;
McCandlish et al. 2018): for each b of a log grid, the steps S(b) to a target with the step
**tuned per b** over a lattice η_j = 2^{j/2} (one run per b, a chain group per step, hitting
time of the chain mean interpolated between records), E(b) = b·S(b), and McCandlish's
S = S_min(1 + B_crit/b) fitted to the tuned S(b) (:func:`sgdlab.theory.batch_size.
fit_critical_batch`); intervals by a bootstrap over chains that re-tunes in every resample
(:mod:`sgdlab.lab.studies._batch_common`). Sweeps: :mod:`sgdlab.lab.studies._batch_sweeps`.

* **Engine checks** — the noisy quadratic, where the whole curve has an exact reference
  (:mod:`sgdlab.theory.target_steps`): the measured tuned S(b) against the exact tuned
  S(b) over the same lattice steps and records, at every b (rule ``contains``, τ = 0), and
  the fitted B_crit against the fit to the exact S(b); the same fit for McCandlish's greedy
  step (schedule from the exact moments; :mod:`sgdlab.lab.studies._batch_greedy`).
* **Analytic** — on the quadratic, B_crit of each protocol over the noise scales averaged
  along its noiseless path (exact; McCandlish's B_crit ≈ B_noise), reported.
* **Article** — logistic regression and the digits MLP: B_crit lies inside the measured b
  range (``inside``); beyond it returns diminish: the scaling exponent
  −Δlog S/Δlog b between the two largest b is below 1 (``upper_bound``); below it the
  scaling is perfect: the exponent between the two smallest b is 1 (``contains``, τ = the
  deviation from 1 of the fitted McCandlish curve itself at that pair, the part of the
  measured deviation that a finite B_crit explains). Reported: B_crit over the instrument's
  B_simple and B_noise averaged along the noiseless path (:mod:`sgdlab.lab.studies.
  _batch_noise`; start and target values in the details).
"""

from __future__ import annotations

import numpy as np

from sgdlab.engine.result import RunResult
from sgdlab.lab.findings import Finding
from sgdlab.lab.stats import probe_seed
from sgdlab.lab.studies._batch_common import (
    CI_SWEEP,
    CritFit,
    Sweep,
    eta,
    lattice_index,
    percentile_ci,
)
from sgdlab.lab.studies._batch_greedy import greedy_runs
from sgdlab.lab.studies._batch_noise import path_scales, ratio_ci
from sgdlab.lab.studies._batch_plots import plot_noise_path, plot_sweep
from sgdlab.lab.studies._batch_sweeps import (
    LOGREG_SPEC,
    MLP_SPEC,
    SPECS,
    SweepSpec,
    quad_moments,
    sweep_grid,
)
from sgdlab.lab.studies._common import build, figure, save
from sgdlab.lab.study import Context, Study, register
from sgdlab.theory.batch_size import fit_critical_batch
from sgdlab.theory.target_steps import (
    first_passage,
    greedy_schedule,
    path_noise_scales,
    tuned_steps_to_target,
)

CLAIM = ("There might be a critical batch size beyond which increasing the batch size yields "
         "diminishing returns in convergence speed (§4).")
CLAIM_SIM = "Engine check: the tuned steps to target follow the exact recursion they simulate."
CLAIM_NS = ("McCandlish et al. (2018): B_crit ≈ the gradient noise scale (B_noise; B_simple when "
            "the Hessian is isotropic).")
FIG = "critical-batch.png"
GREEDY_CHAINS = 64
CI_FIXED = ("percentile bootstrap over the chains of the step's group (1000 resamples); the "
            "step is fixed by the exact recursion")
#: a noiseless path: a batch so large that the noise term κc/b is below float64 resolution
NOISELESS_B = 10**15


@register
class CriticalBatch(Study):
    name = "critical-batch"
    section = "4"
    claim = "tuned steps to target vs b: S = S_min(1 + B_crit/b), B_crit vs the noise scales"

    def grid(self, quick: bool) -> dict[str, dict]:
        g: dict[str, dict] = {}
        for spec in SPECS:
            g.update(sweep_grid(spec, quick))
        return g

    def analyze(self, runs: dict[str, RunResult], ctx: Context) -> list[Finding]:
        fig, axes = figure(3, 3, w=4.6, h=3.6)
        out = self._quadratic(SPECS[0], runs, ctx, axes[0::3])
        for k, spec in enumerate((LOGREG_SPEC, MLP_SPEC)):
            out += self._measured(spec, runs, ctx, axes[1 + k :: 3])
        save(fig, ctx.figure(FIG))
        return out

    # ------------------------------------------------------------------ quadratic
    def _quadratic(self, spec: SweepSpec, runs: dict[str, RunResult], ctx: Context,
                   axes) -> list[Finding]:  # fmt: skip
        bs = spec.batch_sizes(ctx.quick)
        rs = [runs[f"{spec.key}/b{b}"] for b in bs]
        seed = probe_seed(spec.seed)
        sweep = Sweep.from_runs(rs, spec.target, spec.metric, seed)
        lam, c, e0 = quad_moments(rs[0])
        exact = [tuned_steps_to_target(lam, c, b, e0, [eta(j) for j in js], spec.target,
                                       r.metric(spec.metric)[0])
                 for b, js, r in zip(bs, sweep.js, rs, strict=True)]  # fmt: skip
        S_ex = np.array([e.steps for e in exact])
        # the steps at the exactly tuned η: a minimum over noisy hitting times is biased low
        # (selection), which the exact recursion cannot reproduce, so the check reads the
        # measured hitting time at the step the exact recursion tunes to
        cols = [int(np.nonzero(js == lattice_index(e.eta))[0][0])
                for js, e in zip(sweep.js, exact, strict=True)]  # fmt: skip
        S = np.array([sweep.hits[i][k] for i, k in enumerate(cols)])
        Sb = np.stack([sweep.boot[i][:, k] for i, k in enumerate(cols)], axis=1)
        S_tuned, J = sweep.tuned()
        out = []
        for i, b in enumerate(bs):
            lo, hi = percentile_ci(Sb[:, i])
            out.append(self.finding(
                CLAIM_SIM, f"quadratic: steps to F − F* ≤ F₀/100 at b={b}, η tuned by the exact "
                "recursion", S[i], (lo, hi), kind="engine-check", predicted=float(S_ex[i]),
                rule="contains", figure=FIG, ci_method=CI_FIXED,
                theory="theory.target_steps.tuned_steps_to_target (same steps, same records)",
                eta=exact[i].eta, steps_per_eta=sweep.hits[i].tolist(),
                exact_per_eta=exact[i].per_eta.tolist(),
                etas=[eta(int(j)) for j in sweep.js[i]], measured_tuned_S=float(S_tuned[i]),
                measured_tuned_eta=eta(int(J[i])),
            ))  # fmt: skip
        fit = CritFit.of_steps(bs, S, Sb)
        exact_fit = fit_critical_batch(bs, S_ex)
        out.append(self._fit_check(fit, exact_fit, "constant step tuned per b", S, S_ex))
        greedy = greedy_runs(spec.base(), bs, (lam, c, e0), spec.target, GREEDY_CHAINS)
        g_sweep = Sweep.from_runs([g.run for g in greedy], spec.target, spec.metric, seed + 1)
        g_exact = np.array([g.exact for g in greedy])
        g_fit = CritFit.of(g_sweep)  # one step per b: nothing is tuned
        g_exact_fit = fit_critical_batch(bs, g_exact)
        out.append(self._fit_check(g_fit, g_exact_fit, "McCandlish's greedy step",
                                   g_sweep.tuned()[0], g_exact))  # fmt: skip
        paths = {
            "constant step tuned per b": _const_path(lam, c, e0, exact[-1].eta, spec.target),
            "McCandlish's greedy step": _greedy_path(lam, c, e0, spec.target),
        }
        for (protocol, (scales, s_min)), b_crit in zip(
                paths.items(), (exact_fit.b_crit, g_exact_fit.b_crit), strict=True):
            for which, name in (("b_noise", "B_noise"), ("b_simple", "B_simple")):
                summ = scales[which]
                out.append(self.finding(
                    CLAIM_NS, f"quadratic, {protocol}: exact B_crit / {name} averaged along "
                    "the noiseless path", b_crit / summ["path"], None, kind="analytic",
                    predicted=None, rule="report", figure=FIG,
                    theory="theory.target_steps.path_noise_scales (exact moments)",
                    b_crit=float(b_crit), scale_start=summ["start"],
                    scale_target=summ["target"], scale_path=summ["path"], s_min_path=s_min,
                ))  # fmt: skip
        plot_sweep(axes[0], axes[1], "quadratic", bs, (S, Sb), fit, exact=S_ex,
                   greedy=(g_sweep, g_fit, g_exact))  # fmt: skip
        const_scales = paths["constant step tuned per b"][0]
        axes[2].axhline(exact_fit.b_crit, color="k", lw=1, label="B_crit (exact fit, constant)")
        axes[2].axhline(g_exact_fit.b_crit, color="k", ls="--", lw=1,
                        label="B_crit (exact fit, greedy)")  # fmt: skip
        axes[2].plot(const_scales["t"], const_scales["b_noise_t"], "C0-", label="B_noise")
        axes[2].plot(const_scales["t"], const_scales["b_simple_t"], "C1-", label="B_simple")
        axes[2].set(yscale="log", xlabel="step of the noiseless path (GD, tuned η)",
                    ylabel="noise scale", title="quadratic: exact noise scales")  # fmt: skip
        axes[2].legend(fontsize=6)
        return out

    def _fit_check(self, fit: CritFit, exact_fit, protocol: str, S, exact) -> Finding:
        return self.finding(
            CLAIM_SIM, f"quadratic, {protocol}: B_crit of S = S_min(1 + B_crit/b) fitted to the "
            "measured S(b) against the fit to the exact S(b)", fit.b_crit, fit.b_crit_ci,
            kind="engine-check", predicted=float(exact_fit.b_crit), rule="contains",
            figure=FIG, ci_method=CI_SWEEP + "; the fit redone in each resample",
            theory="theory.batch_size.fit_critical_batch of the exact S(b)",
            s_min=fit.s_min, s_min_exact=float(exact_fit.s_min), measured_S=list(S),
            exact_S=list(exact),
        )  # fmt: skip

    # ------------------------------------------------------------------ logreg, MLP
    def _measured(self, spec: SweepSpec, runs: dict[str, RunResult], ctx: Context,
                  axes) -> list[Finding]:  # fmt: skip
        bs = np.array(spec.batch_sizes(ctx.quick), float)
        rs = [runs[f"{spec.key}/b{int(b)}"] for b in bs]
        seed = probe_seed(spec.seed)
        sweep = Sweep.from_runs(rs, spec.target, spec.metric, seed)
        fit = CritFit.of(sweep)
        S, J = sweep.tuned()
        Sb, _ = sweep.tuned_boot()
        name = "logistic regression" if spec.key == "logreg" else "digits MLP"
        what = f"{name}: steps to {'F − F*' if spec.metric == 'suboptimality' else 'F'} ≤ " \
               f"{spec.target:g}"
        common = {"figure": FIG, "tuned_eta": [eta(int(j)) for j in J], "S": list(S),
                  "E": list(bs * S), "tuned_at_edge": sweep.at_edge().tolist(),
                  "batch_sizes": bs.tolist(), "s_min": fit.s_min}  # fmt: skip
        out = [self.finding(
            CLAIM, f"{what}: B_crit of S = S_min(1 + B_crit/b), tuned step per b", fit.b_crit,
            fit.b_crit_ci, kind="article", predicted=None, rule="inside",
            range=(float(bs[0]), float(bs[-1])), ci_method=CI_SWEEP + "; fit redone per resample",
            theory="McCandlish et al. (2018) §2.3: a bend inside the measured range", **common,
        )]  # fmt: skip

        def exponent(S_: np.ndarray, i: int) -> np.ndarray:
            return np.log(S_[..., i] / S_[..., i + 1]) / np.log(bs[i + 1] / bs[i])

        top = len(bs) - 2
        lo, hi = percentile_ci(exponent(Sb, top))
        out.append(self.finding(
            CLAIM, f"{what}: scaling exponent −Δlog S/Δlog b between b={int(bs[top])} and "
            f"{int(bs[top + 1])} (1: perfect scaling)", float(exponent(S, top)), (lo, hi),
            kind="article", predicted=1.0, rule="upper_bound", ci_method=CI_SWEEP,
            theory="diminishing returns: below the perfect-scaling exponent 1", **common,
        ))  # fmt: skip
        model = float(exponent(fit.steps(bs), 0))
        lo, hi = percentile_ci(exponent(Sb, 0))
        out.append(self.finding(
            CLAIM, f"{what}: scaling exponent between b={int(bs[0])} and {int(bs[1])} (small "
            "batches: perfect scaling)", float(exponent(S, 0)), (lo, hi), kind="article",
            predicted=1.0, rule="contains", tolerance=1.0 - model, ci_method=CI_SWEEP,
            tolerance_derivation=(
                f"perfect scaling holds as b/B_crit → 0; at this pair the fitted McCandlish "
                f"curve (B_crit = {fit.b_crit:.1f}) itself has exponent {model:.3f}, so its "
                f"deviation 1 − {model:.3f} is the allowance"),
            theory="S ∝ 1/b for b ≪ B_crit", **common,
        ))  # fmt: skip
        prob = build(rs[0])
        w0 = prob.init_params(None)
        scales = path_scales(prob, w0, eta(int(J[-1])), spec.target, spec.metric, seed + 7)
        for k, (which, label) in enumerate((("b_simple", "B_simple"), ("b_noise", "B_noise"))):
            summ = scales.summary(which)
            se = 0.0 if which == "b_simple" else scales.path_noise_se()
            out.append(self.finding(
                CLAIM_NS, f"{name}: B_crit / {label} averaged along the noiseless path (the "
                "instrument)", fit.b_crit / summ["path"],
                ratio_ci(fit.boot_b_crit, summ["path"], se, seed + 11 + k), kind="article",
                predicted=None, rule="report", figure=FIG,
                ci_method="B_crit's bootstrap resamples over normal draws of the scale's "
                "probe error" if se else "B_crit's bootstrap (the scale is exact on the path)",
                theory="exact tr Σ/|G|² over the dataset (B_simple); the instrument's "
                "trace_h_sigma and a Hessian-vector product (B_noise)",
                b_crit=fit.b_crit, scale_start=summ["start"], scale_target=summ["target"],
                scale_path=summ["path"], scale_path_se=se, undefined_points=summ["undefined"],
                s_min_path=scales.s_min, path_eta=eta(int(J[-1])),
            ))  # fmt: skip
        plot_sweep(axes[0], axes[1], name, bs, (S, Sb), fit)
        plot_noise_path(axes[2], name, scales, fit)
        return out


def _summ(bs_t: np.ndarray, bn_t: np.ndarray, curve: np.ndarray, target: float):
    s_min = float(first_passage(np.arange(curve.size), curve, target))
    n = int(np.ceil(s_min))
    summ = {which: {"start": float(v[0]), "target": float(v[n]), "path": float(v[:n].mean())}
            for which, v in (("b_simple", bs_t), ("b_noise", bn_t))}  # fmt: skip
    summ["t"], summ["b_simple_t"], summ["b_noise_t"] = np.arange(n + 1), bs_t[: n + 1], \
        bn_t[: n + 1]  # fmt: skip
    return summ, s_min


def _const_path(lam, c, e0, eta_: float, target: float):
    """Exact noise scales along GD with step η (the noiseless constant-step path)."""
    etas = np.full(4096, eta_)
    bs_t, bn_t = path_noise_scales(lam, c, NOISELESS_B, e0, etas)
    curve = 0.5 * np.array([np.sum(lam * (1 - eta_ * lam) ** (2 * t) * e0**2)
                            for t in range(etas.size + 1)])  # fmt: skip
    return _summ(bs_t, bn_t, curve, target)


def _greedy_path(lam, c, e0, target: float):
    """Exact noise scales along the noiseless greedy path (McCandlish's S_min path)."""
    etas, curve = greedy_schedule(lam, c, NOISELESS_B, e0, 4096)
    bs_t, bn_t = path_noise_scales(lam, c, NOISELESS_B, e0, etas)
    return _summ(bs_t, bn_t, curve, target)
