"""Study ``lr-scaling``: the linear and square-root learning-rate scaling rules (§4, rule of thumb).

Article §4: "When you multiply the batch size by k, multiply the learning rate by k. This rule
is often applied for a certain range of batch sizes. For very large batches, sub-linear scaling
(e.g. √k) … might be needed." From a tuned (b₀, η₀), b = k·b₀ with η = k·η₀ (linear), √k·η₀
(square root) or η₀ (none); the steps and examples E = b·S to the target, read off the shared
b × η sweeps (:mod:`sgdlab.lab.studies._batch_sweeps`: the scaled steps lie on the lattice
η_j = 2^{j/2}), and relative to E(b₀). A rule whose chains never reach the target within the run
is censored at the run's length (its E is then a lower bound).

* **Quadratic** (engine checks) — η₀ tuned by the exact recursion at b₀ = 4; each rule's
  E(b)/E(b₀) against the exact recursion's where the first passage is well posed (the exact
  stationary level ≤ 0.8 × the target; see ``WELL_POSED``), and the point where the linear
  rule crosses the stability edge η·λ_max = 2 (analytic,
  :func:`sgdlab.theory.batch_size.divergence_batch_size`): beyond it no chain reaches the
  target (exact: E F grows).
* **Logistic regression** (article) — η₀ tuned at b₀ = 4 (the point estimate: the rules are
  applied to the practitioner's η₀, and the bootstrap redraws chains at that η₀); with B_crit
  from the same sweep's McCandlish fit: the linear rule keeps E within ±20% of E(b₀) (the
  claim's band) at the largest b ≤ B_crit/4, and leaves it (E/E(b₀) ≥ 1.2) at the smallest
  b ≥ 4·B_crit; the √ rule needs more examples than the linear one at b ≤ B_crit/4; at the
  largest b in (B_crit, 4·B_crit] the √ rule needs fewer than the linear one (the article's
  "sub-linear for very large batches").
* **Adam on the digits MLP** (article) — Malladi et al. (2022)'s square-root rule for adaptive
  methods (η√k, 1 − β → k(1 − β), ε/√k) against plain √k and linear scaling: the distance
  between the loss-vs-examples curve at k·b₀ and at b₀ (mean |Δ log F| over the common
  example counts; :mod:`sgdlab.lab.studies._batch_adam`).
"""

from __future__ import annotations

import math

import numpy as np

from sgdlab.engine.result import RunResult
from sgdlab.lab.findings import Finding
from sgdlab.lab.stats import probe_seed
from sgdlab.lab.studies._batch_adam import adam_findings, adam_grid
from sgdlab.lab.studies._batch_common import (
    CI_STEPS,
    CritFit,
    Sweep,
    eta,
    lattice_index,
    percentile_ci,
)
from sgdlab.lab.studies._batch_sweeps import (
    LOGREG_SPEC,
    SPECS,
    SweepSpec,
    quad_moments,
    quad_tuned_index,
    sweep_grid,
)
from sgdlab.lab.studies._common import build, figure, save
from sgdlab.lab.study import Context, Study, register
from sgdlab.theory.batch_size import divergence_batch_size
from sgdlab.theory.target_steps import (
    constant_step_suboptimality,
    first_passage,
    tuned_steps_to_target,
)

CLAIM_LIN = ("When you multiply the batch size by k, multiply the learning rate by k; the rule is "
             "applied for a certain range of batch sizes (§4, rule of thumb).")
CLAIM_SQRT = "For very large batches, sub-linear scaling (e.g. √k) might be needed (§4)."
CLAIM_SIM = "Engine check: the scaled steps follow the exact recursion they simulate."
FIG = "lr-scaling.png"
#: the claim's band for "keeps the examples to target constant"
BAND = (0.8, 1.2)
RULES = {"linear": 2, "sqrt": 1, "none": 0}  # lattice shift per doubling of b
#: an engine check of a rule's steps to target needs a well-posed first passage: the exact
#: stationary level at most this fraction of the target. With the level F_∞ the curve
#: approaches the target like F_∞ + (F − F_∞)e^{−rt}, so a relative error δ of the chain mean
#: moves the passage by δ/(r(1 − F_∞/F)): at F_∞/F = 0.98 (the linear rule at b = 32) fifty
#: times the no-floor sensitivity, and the first passage of the noisy mean is biased early by
#: its dips, which the exact mean curve cannot express. The steps tuned per b have
#: F_∞/F ≤ 0.72, so 0.8 keeps every tuned check.
WELL_POSED = 0.8


@register
class LrScaling(Study):
    name = "lr-scaling"
    section = "4"
    claim = "linear vs √ vs no scaling of η from a tuned (b₀, η₀): examples to target; Adam's √"

    def grid(self, quick: bool) -> dict[str, dict]:
        g = {**sweep_grid(SPECS[0], quick), **sweep_grid(LOGREG_SPEC, quick)}
        g.update(adam_grid(quick))
        return g

    def analyze(self, runs: dict[str, RunResult], ctx: Context) -> list[Finding]:
        fig, axes = figure(2, 3, w=4.6, h=3.6)
        out = self._quadratic(SPECS[0], runs, ctx, axes[0])
        out += self._logreg(LOGREG_SPEC, runs, ctx, axes[1:3])
        out += adam_findings(self, runs, ctx, axes[3:6], FIG)
        save(fig, ctx.figure(FIG))
        return out

    # ------------------------------------------------------------------ quadratic
    def _quadratic(self, spec: SweepSpec, runs: dict[str, RunResult], ctx: Context,
                   ax) -> list[Finding]:  # fmt: skip
        b0 = spec.b0
        bs = [b for b in spec.batch_sizes(ctx.quick) if b >= b0]
        rs = [runs[f"{spec.key}/b{b}"] for b in bs]
        sweep = Sweep.from_runs(rs, spec.target, spec.metric, probe_seed(spec.seed))
        lam, c, e0 = quad_moments(rs[0])
        j0 = quad_tuned_index(b0)
        eta0 = eta(j0)

        def exact_hit(i: int, j: int) -> float:
            rec = rs[i].metric(spec.metric)[0]
            curve = constant_step_suboptimality(lam, c, bs[i], e0, eta(j), rec)
            return float(first_passage(rec, curve, spec.target))

        e_ref = b0 * exact_hit(0, j0)
        e0_boot = b0 * sweep.hit_at(0, np.full(sweep.boot[0].shape[0], j0))
        b_div = divergence_batch_size(eta0, b0, float(lam.max()), "linear")
        def conditioned(b: int, j: int) -> bool:
            """The exact stationary level of η_j at b is ≤ WELL_POSED × the target."""
            e = eta(j)
            return float(np.sum(e * c / (2 * b * (2 - e * lam)))) <= WELL_POSED * spec.target

        below = [i for i, b in enumerate(bs) if b0 < b < b_div]
        skipped = [bs[i] for i in below if not conditioned(bs[i], j0 + 2 * round(math.log2(
            bs[i] / b0)))]  # fmt: skip
        below = [i for i in below if bs[i] not in skipped]
        out = [self.finding(
            CLAIM_LIN, "quadratic: batch size where the linearly scaled step reaches "
            f"η·λ_max = 2 (b₀={b0}, η₀={eta0:.4g}, λ_max={lam.max():.3g})", b_div, None,
            kind="analytic", predicted=None, rule="report", figure=FIG,
            theory="theory.batch_size.divergence_batch_size: b = 2b₀/(η₀λ_max)",
            sqrt_rule=divergence_batch_size(eta0, b0, float(lam.max()), "sqrt"),
            linear_checks_skipped_ill_conditioned=skipped,
            tuned_by_exact_recursion_at_b0=j0 == lattice_index(tuned_steps_to_target(
                lam, c, b0, e0, [eta(j) for j in sweep.js[0]], spec.target,
                rs[0].metric(spec.metric)[0]).eta),
        )]  # fmt: skip
        above = [i for i, b in enumerate(bs) if b > b_div]
        b_div_sqrt = divergence_batch_size(eta0, b0, float(lam.max()), "sqrt")
        stable_sqrt = [i for i, b in enumerate(bs) if b0 < b < b_div_sqrt
                       and conditioned(b, j0 + round(math.log2(b / b0)))]
        checks = [(i, "linear") for i in below] + [(stable_sqrt[-1], "sqrt")] * bool(stable_sqrt)
        for i, rule in checks:
            m = round(math.log2(bs[i] / b0))
            j = j0 + RULES[rule] * m
            ratio = bs[i] * sweep.hits[i][list(sweep.js[i]).index(j)] / (b0 * sweep.hits[0][
                list(sweep.js[0]).index(j0)])  # fmt: skip
            boots = bs[i] * sweep.hit_at(i, np.full(e0_boot.size, j)) / e0_boot
            out.append(self.finding(
                CLAIM_SIM, f"quadratic: E(b)/E(b₀) under the {rule} rule at b={bs[i]}", ratio,
                percentile_ci(boots), kind="engine-check",
                predicted=bs[i] * exact_hit(i, j) / e_ref, rule="contains", figure=FIG,
                ci_method=CI_STEPS,
                theory="theory.target_steps.constant_step_suboptimality, first passage",
            ))  # fmt: skip
        if above:
            i = above[0]
            j = j0 + 2 * round(math.log2(bs[i] / b0))
            steps, values = rs[i].metric(spec.metric)
            k = list(sweep.js[i]).index(j)
            size = values.shape[0] // len(sweep.js[i])
            group = values[k * size : (k + 1) * size]
            reached = np.array([np.nanmin(np.where(np.isfinite(v), v, np.inf)) <= spec.target
                                for v in group], float)  # fmt: skip
            out.append(self.finding(
                CLAIM_SIM, f"quadratic: fraction of chains reaching the target under the linear "
                f"rule at b={bs[i]} > b_div={b_div:.1f} (η·λ_max = {eta(j) * lam.max():.2f})",
                float(reached.mean()), _clopper_pearson(int(reached.sum()), reached.size),
                kind="engine-check", predicted=0.0, rule="contains", figure=FIG,
                ci_method="Clopper–Pearson 95% over independent chains",
                theory="exact: |1 − ηλ_max| > 1, so E F grows geometrically",
                exact_final=float(
                    constant_step_suboptimality(lam, c, bs[i], e0, eta(j), steps[-1])),
            ))  # fmt: skip
        _plot_ratios(ax, "quadratic (dashed: exact)", bs, b0, sweep, j0, e0_boot,
                     exact=lambda i, j: bs[i] * exact_hit(i, j) / e_ref, b_div=b_div)  # fmt: skip
        return out

    # ------------------------------------------------------------------ logistic
    def _logreg(self, spec: SweepSpec, runs: dict[str, RunResult], ctx: Context,
                axes) -> list[Finding]:  # fmt: skip
        all_bs = spec.batch_sizes(ctx.quick)
        seed = probe_seed(spec.seed)
        full = Sweep.from_runs([runs[f"{spec.key}/b{b}"] for b in all_bs], spec.target,
                               spec.metric, seed)  # fmt: skip
        b_crit = CritFit.of(full).b_crit  # the critical-batch study's number (same runs, seed)
        b0 = spec.b0
        i0 = all_bs.index(b0)
        bs = all_bs[i0:]
        S, J = full.tuned()
        # the rules start from the practitioner's tuned η₀ (the point estimate): the resamples
        # redraw the chains of every (b, η) group at that fixed η₀, they do not re-tune it
        j0 = int(J[i0])
        j0b = np.full(full.boot[i0].shape[0], j0)
        e0, e0b = b0 * S[i0], b0 * full.hit_at(i0, j0b)

        def ratio(i: int, rule: str) -> tuple[float, np.ndarray, bool]:
            """E_rule(b)/E(b₀) at bs[i] (point, resamples, censored?): a rule that does not
            reach the target within the run is censored at the run's length (a lower bound)."""
            k = i0 + i
            m = round(math.log2(bs[i] / b0))
            lim = full.run_steps[k]
            point = full.hit_at(k, j0 + RULES[rule] * m)
            boots = full.hit_at(k, j0b + RULES[rule] * m)
            censored = not np.isfinite(point)
            return (bs[i] * float(np.nan_to_num(point, nan=lim)) / e0,
                    bs[i] * np.nan_to_num(boots, nan=lim) / e0b, censored)  # fmt: skip

        def log_ratio(i: int, num: str, den: str) -> tuple[float, tuple[float, float], bool]:
            """log(E_num/E_den) at bs[i] with its interval; undefined (NaN) in a resample where
            the denominator is censored (two lower bounds have no ratio)."""
            a, ab, ca = ratio(i, num)
            z, zb, cz = ratio(i, den)
            den_cens = np.isnan(full.hit_at(i0 + i, j0b + RULES[den] * round(math.log2(
                bs[i] / b0))))  # fmt: skip
            boots = np.where(den_cens, np.nan, np.log(ab / zb))
            return (math.log(a / z) if not cz else float("nan"), percentile_ci(boots),
                    ca or cz)  # fmt: skip

        small = [i for i, b in enumerate(bs) if b0 < b <= b_crit / 4]
        big = [i for i, b in enumerate(bs) if b >= 4 * b_crit]
        common = {"figure": FIG, "b_crit": b_crit, "b0": b0, "eta0": eta(j0)}
        name = f"logistic regression (B_crit = {b_crit:.0f}, b₀ = {b0})"
        out = []
        if small:
            i = small[-1]
            r, rb, cens = ratio(i, "linear")
            out.append(self.finding(
                CLAIM_LIN, f"{name}: E(b)/E(b₀) under the linear rule at b={bs[i]} ≤ B_crit/4",
                r, percentile_ci(rb), kind="article", predicted=None, rule="inside",
                range=BAND, ci_method=CI_STEPS, censored=cens,
                theory="the claim's band ±20% around E(b₀) (perfect scaling keeps E constant)",
                **common,
            ))  # fmt: skip
            lr_, ci, cs = log_ratio(i, "sqrt", "linear")
            out.append(self.finding(
                CLAIM_SQRT, f"{name}: log(E_√/E_linear) at b={bs[i]} ≤ B_crit/4 (the √ rule "
                "is slower below B_crit)", lr_, ci, kind="article", predicted=None,
                rule="positive", ci_method=CI_STEPS, theory="direction", censored=cs, **common,
            ))  # fmt: skip
        if big:
            i = big[0]
            r, rb, cens = ratio(i, "linear")
            out.append(self.finding(
                CLAIM_LIN, f"{name}: E(b)/E(b₀) under the linear rule at b={bs[i]} ≥ 4·B_crit "
                "(the rule's range ends)", r, percentile_ci(rb), kind="article",
                predicted=BAND[1], rule="lower_bound", ci_method=CI_STEPS, censored=cens,
                theory="beyond B_crit even the tuned step needs E ≈ E_min(1 + b/B_crit)",
                **common,
            ))  # fmt: skip
        beyond = [i for i, b in enumerate(bs) if b_crit < b <= 4 * b_crit]
        i = beyond[-1] if beyond else len(bs) - 1
        lr_, ci, cens = log_ratio(i, "linear", "sqrt")
        out.append(self.finding(
            CLAIM_SQRT, f"{name}: log(E_linear/E_√) at b={bs[i]} ∈ (B_crit, 4·B_crit] (√ needed "
            "for very large batches)", lr_, ci, kind="article", predicted=None, rule="positive",
            ci_method=CI_STEPS, theory="direction; a censored linear E is a lower bound, so the "
            "sign is conservative; undefined where the √ rule is censored", censored=cens,
            **common,
        ))  # fmt: skip
        tuned = [float(bs[i] * S[i0 + i] / e0) for i in range(len(bs))]
        out[-1].details["tuned_E_ratio"] = tuned
        out[-1].details["rules_E_ratio"] = {
            rule: [ratio(i, rule)[0] for i in range(len(bs))] for rule in RULES}
        prob = build(runs[f"{spec.key}/b{b0}"])
        _plot_ratios(axes[0], name, bs, b0, full, j0, e0b, offset=i0, b_crit=b_crit)
        _plot_curves(axes[1], runs, spec, bs, b0, j0, full, offset=i0, f_star=prob.f_star)
        return out


def _clopper_pearson(k: int, n: int) -> tuple[float, float]:
    from scipy.stats import beta

    lo = 0.0 if k == 0 else float(beta.ppf(0.025, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(0.975, k + 1, n - k))
    return lo, hi


def _plot_ratios(ax, title, bs, b0, sweep, j0, e0_boot, exact=None, b_div=None, offset=0,
                 b_crit=None) -> None:  # fmt: skip
    """E_rule(b)/E(b₀) of the three rules (bootstrap intervals), and the tuned step's."""
    e0 = b0 * sweep.hits[offset][list(sweep.js[offset]).index(j0)]
    for c, (rule, shift) in enumerate(RULES.items()):
        pts, los, his = [], [], []
        for i, b in enumerate(bs):
            j = j0 + shift * round(math.log2(b / b0))
            p = b * sweep.hit_at(offset + i, j) / e0
            lo, hi = percentile_ci(b * sweep.hit_at(offset + i, np.full(e0_boot.size, j))
                                   / e0_boot, min_finite=0.5)  # fmt: skip
            pts.append(float(p))
            los.append(lo)
            his.append(hi)
        ax.plot(bs, pts, "o-", color=f"C{c}", label=rule)
        ax.fill_between(bs, los, his, color=f"C{c}", alpha=0.2)
        if exact is not None:
            ax.plot(bs, [exact(i, j0 + shift * round(math.log2(b / b0)))
                         for i, b in enumerate(bs)], "--", color=f"C{c}", lw=1)  # fmt: skip
    tuned, _ = sweep.tuned()
    ax.plot(bs, np.array(bs) * tuned[offset:] / e0, "k*", label="step re-tuned at b")
    ax.axhspan(*BAND, color="0.9", label="±20% band")
    if b_div is not None:
        ax.axvline(b_div, color="r", ls=":", label="η·λ_max = 2 (linear)")
    if b_crit is not None:
        ax.axvline(b_crit, color="k", ls=":", label="B_crit")
    ax.set(xscale="log", yscale="log", xlabel="batch size b = k·b₀",
           ylabel="examples to target E(b)/E(b₀)", title=title)  # fmt: skip
    ax.legend(fontsize=6)


def _plot_curves(ax, runs, spec, bs, b0, j0, sweep, offset, f_star) -> None:
    """Loss vs examples (chain means) under the three rules at the largest b ≤ 64, and at b₀."""
    show = [b for b in bs if b > b0][:2]
    run0 = runs[f"{spec.key}/b{b0}"]
    st, v = run0.metric(spec.metric)
    k = list(sweep.js[offset]).index(j0)
    size = v.shape[0] // len(sweep.js[offset])
    ax.plot(st * b0, v[k * size : (k + 1) * size].mean(0), "k-", lw=2, label=f"b₀={b0}")
    styles = {"linear": "-", "sqrt": "--", "none": ":"}
    for c, b in enumerate(show):
        run = runs[f"{spec.key}/b{b}"]
        st, v = run.metric(spec.metric)
        js = list(sweep.js[bs.index(b) + offset])
        size = v.shape[0] // len(js)
        for rule, shift in RULES.items():
            j = j0 + shift * round(math.log2(b / b0))
            if j in js:
                kk = js.index(j)
                ax.plot(st * b, v[kk * size : (kk + 1) * size].mean(0), styles[rule],
                        color=f"C{c}", label=f"b={b}, {rule}")  # fmt: skip
    ax.axhline(spec.target, color="0.5", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="examples processed (steps × b)",
           ylabel=f"E F − F* (F* = {f_star:.3g})", title="logistic: loss vs examples, 3 rules")
    ax.legend(fontsize=6)

