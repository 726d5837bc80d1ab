"""Study ``batch-variance``: the minibatch gradient's variance falls as 1/b (§4).

Article §4: "the minibatch size b … directly controls the trade-off between gradient accuracy
(noise level) and computational cost"; table: gradient noise variance "inversely related to
mini-batch size b". Measurement: K chains start at one fixed point w (``streams.off: [init]``)
and take one step with η = 1, so chain k's minibatch gradient is g_k = w − w_k(1) (exact in
float64 up to rounding): K independent draws of g_b at w. Per chain s_k = |g_k − ∇F(w)|², whose
mean is tr Var(g_b) (iid over chains: t-interval; slopes: bootstrap over chains of
:func:`sgdlab.theory.rates.fit_loglog_slope`). Sampling with replacement (iid indices) and
without (the first batch of a random permutation: a simple random sample), b from 1 to N.

* **Linear regression** (N = 512, d = 10; Σ(w) in closed form, ``problem.grad_cov``) —
  engine checks: with replacement tr Var(g_b) = tr Σ/b exactly (slope −1); without replacement
  tr Var(g_b) = tr Σ/b · (N − b)/(N − 1) at b = N/2 (ratio 1); the full batch has zero
  variance (τ = the float64 rounding bound of the two means and of the step, derived below).
* **Digits MLP** (N = 1797, the instrument's tr Σ: :func:`sgdlab.measure.gradient_noise` over
  the whole dataset) — engine checks: with replacement the slope is −1; without replacement
  the finite-population law holds at b ≈ N/2. Article: without replacement (how minibatches
  are drawn in practice), "∝ 1/b" holds for b ≪ N (slope over b ≤ N/16 against −1, τ = the
  finite-population factor's own slope deviation over those b) and **fails as b → N**: at
  b ≈ N/2, b·tr Var(g_b)/tr Σ is (N − b)/(N − 1) ≈ ½, not the 1 of a 1/b law.
"""

from __future__ import annotations

import numpy as np
import torch

from sgdlab.engine.result import RunResult
from sgdlab.lab.findings import Finding
from sgdlab.lab.stats import BOOTSTRAP, T_INTERVAL, mean_ci, probe_seed
from sgdlab.lab.studies._common import build, errbar, figure, ols_slope, save
from sgdlab.lab.study import Context, Study, register
from sgdlab.measure.noise.stats import gradient_noise
from sgdlab.problems.base import Problem
from sgdlab.theory._common import finite_population_factor
from sgdlab.theory.rates import fit_loglog_slope

CLAIM = ("The gradient noise variance is inversely related to the mini-batch size b "
         "(§4; table of §6).")
CLAIM_SIM = "Engine check: the sampler draws minibatches with the exact variance law."
FIG = "batch-variance.png"
LINREG = {"name": "linear_regression", "dim": 10, "mu": 0.1, "L": 1.0, "noise_std": 0.5,
          "n": 512, "init_scale": 1.0}
MLP = {"name": "mlp", "dataset": "digits", "widths": [32]}
U = float(np.finfo(np.float64).eps) / 2  # unit roundoff


def _settings(quick: bool) -> dict:
    if quick:
        return {"lin_K": 400, "mlp_K": 64, "lin_with": (1, 4, 16, 64, 256, 512),
                "lin_without": (256, 512), "mlp_with": (1, 8, 64, 512, 1797),
                "mlp_without": (1, 8, 64, 898, 1797)}
    return {"lin_K": 2000, "mlp_K": 256, "lin_with": tuple(2**i for i in range(10)),
            "lin_without": (1, 16, 128, 256, 384, 511, 512),
            "mlp_with": (1, 4, 16, 64, 256, 1024, 1797),
            "mlp_without": (1, 4, 16, 64, 112, 898, 1500, 1797)}


def _config(problem: dict, b: int, replacement: bool, chains: int, seed: int) -> dict:
    return {"problem": problem, "seed": seed, "dtype": "float64", "chains": chains, "steps": 1,
            "streams": {"off": ["init"]}, "optimizer": {"name": "sgd", "lr": 1.0},
            "batch": {"size": b, "sampling": "with_replacement" if replacement
                      else "without_replacement"},
            "record": {"every": 1, "objective": False}}  # fmt: skip


def _key(name: str, b: int, replacement: bool) -> str:
    return f"{name}/{'with' if replacement else 'without'}/b{b}"


@register
class BatchVariance(Study):
    name = "batch-variance"
    section = "4"
    claim = "tr Var(g_b) at a fixed w: tr Σ/b with replacement, × (N−b)/(N−1) without"

    def grid(self, quick: bool) -> dict[str, dict]:
        s = _settings(quick)
        g = {}
        for name, short, prob, seed in (("linreg", "lin", LINREG, 61), ("mlp", "mlp", MLP, 62)):
            for rep, mode in ((True, "with"), (False, "without")):
                for b in s[f"{short}_{mode}"]:
                    g[_key(name, b, rep)] = _config(prob, b, rep, s[f"{short}_K"], seed)
        return g

    def analyze(self, runs: dict[str, RunResult], ctx: Context) -> list[Finding]:
        s = _settings(ctx.quick)
        fig, axes = figure(1, 2)
        out = self._linreg(runs, s, axes[0])
        out += self._mlp(runs, s, axes[1])
        save(fig, ctx.figure(FIG))
        return out

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _draws(run: RunResult, prob: Problem, G: torch.Tensor) -> np.ndarray:
        """s_k = |g_k − ∇F|² per chain, with g_k = (w₀ − w₁)/η recovered from the step."""
        w0 = prob.init_params(None).double()
        g = (w0 - run.final_params.double()) / float(run.config["optimizer"]["lr"])
        return ((g - G) ** 2).sum(dim=1).numpy()

    def _slope_finding(self, label: str, bs, cols: list[np.ndarray], seed: int,
                       predicted: float, kind: str, claim: str, tol: float = 0.0,
                       derivation: str = "") -> Finding:  # fmt: skip
        k = min(len(c) for c in cols)
        fit = fit_loglog_slope(np.array(bs, float), np.stack([c[:k] for c in cols], 1),
                               seed=seed)  # fmt: skip
        return self.finding(
            claim, f"{label}: slope of log tr Var(g_b) vs log b over b ∈ {list(bs)}", fit.slope,
            (fit.ci_low, fit.ci_high), kind=kind, predicted=predicted, rule="contains",
            tolerance=tol, tolerance_derivation=derivation, figure=FIG, ci_method=BOOTSTRAP,
            theory="with replacement: tr Σ/b exactly; without: × (N − b)/(N − 1)",
        )  # fmt: skip

    # ------------------------------------------------------------------ linear regression
    def _linreg(self, runs, s, ax) -> list[Finding]:
        r0 = runs[_key("linreg", s["lin_with"][0], True)]
        prob = build(r0)
        w0 = prob.init_params(None).double()
        X, y, N = prob.X.double(), prob.y.double(), int(prob.n)
        per_sample = X * (X @ w0 - y).unsqueeze(1)
        G = per_sample.mean(dim=0)  # the float64 mean of the N per-sample gradients
        tr_sigma = float(torch.trace(prob.grad_cov(w0)))
        inst = gradient_noise(*prob.to_module(w0), X, y, population=N).trace_sigma
        seed = probe_seed(61)
        with_ = [self._draws(runs[_key("linreg", b, True)], prob, G) for b in s["lin_with"]]
        out = [self._slope_finding("linear regression, with replacement", s["lin_with"],
                                   with_, seed, -1.0, "engine-check", CLAIM_SIM)]  # fmt: skip
        out[-1].details.update(trace_sigma=tr_sigma, instrument_trace_sigma=inst)
        half, full = N // 2, N
        v = self._draws(runs[_key("linreg", half, False)], prob, G)
        exact = tr_sigma / half * finite_population_factor(half, N)
        m, lo, hi = mean_ci(v / exact)
        out.append(self.finding(
            CLAIM_SIM, f"linear regression, without replacement: tr Var(g_b) / (tr Σ/b · "
            f"(N−b)/(N−1)) at b={half}=N/2", m, (lo, hi), kind="engine-check", predicted=1.0,
            rule="contains", figure=FIG, ci_method=T_INTERVAL,
            theory="finite-population factor (theory._common.finite_population_factor)",
        ))  # fmt: skip
        v_full = self._draws(runs[_key("linreg", full, False)], prob, G)
        tau = _rounding_bound(X, y, w0, N)
        m, lo, hi = mean_ci(v_full)
        out.append(self.finding(
            CLAIM_SIM, f"linear regression, without replacement: tr Var(g_b) at b=N={N} (full "
            "batch: zero variance)", m, (lo, hi), kind="engine-check", predicted=0.0,
            rule="contains", tolerance=tau, figure=FIG, ci_method=T_INTERVAL,
            tolerance_derivation=(
                "float64 rounding bound of |g_k − ∇F|²: per coordinate j, both means of the N "
                "per-sample gradients err by ≤ γ_N·mean_i|g_ij| (γ_n = nu/(1 − nu), u = 2⁻⁵³), "
                "each residual x_iᵀw − y_i by ≤ γ_{d+1}(Σ_k|x_ik w_k| + |y_i|), and the step and "
                "its inversion by ≤ 2u(|w₀_j| + |g_j|); τ = Σ_j (sum of these)²"),
            theory="(N − N)/(N − 1) = 0",
        ))  # fmt: skip
        _plot(ax, "linear regression (closed-form Σ)", s["lin_with"], with_, tr_sigma,
              [half, full], [v, v_full], N)  # fmt: skip
        return out

    # ------------------------------------------------------------------ MLP
    def _mlp(self, runs, s, ax) -> list[Finding]:
        r0 = runs[_key("mlp", s["mlp_with"][0], True)]
        prob = build(r0)
        w0 = prob.init_params(None).double()
        N = int(prob.n)
        G = prob.grad_F(w0.unsqueeze(0))[0]
        stats = gradient_noise(*prob.to_module(w0), prob.X.double(), prob.y, population=N)
        tr_sigma = stats.trace_sigma
        seed = probe_seed(62)
        with_ = [self._draws(runs[_key("mlp", b, True)], prob, G) for b in s["mlp_with"]]
        out = [self._slope_finding("digits MLP, with replacement", s["mlp_with"], with_, seed,
                                   -1.0, "engine-check", CLAIM_SIM)]  # fmt: skip
        out[-1].details["trace_sigma_instrument"] = tr_sigma
        wo_bs = s["mlp_without"]
        without = [self._draws(runs[_key("mlp", b, False)], prob, G) for b in wo_bs]
        small = [i for i, b in enumerate(wo_bs) if b <= N / 16]
        bs_small = [wo_bs[i] for i in small]
        law = [finite_population_factor(b, N) / b for b in bs_small]
        exact_slope = ols_slope(np.array(bs_small, float), np.array(law))
        out.append(self._slope_finding(
            f"digits MLP, without replacement, b ≤ N/16 (N={N})", bs_small,
            [without[i] for i in small], seed + 1, -1.0, "article", CLAIM,
            tol=abs(exact_slope + 1.0), derivation=(
                f"the finite-population law tr Σ (N−b)/((N−1)b) has slope {exact_slope:.5f} over "
                "these b: its deviation from −1 is the part of the measured deviation that "
                "sampling without replacement explains")))  # fmt: skip
        i_half = min(range(len(wo_bs)), key=lambda i: abs(wo_bs[i] - N / 2))
        b_half = wo_bs[i_half]
        fpc = finite_population_factor(b_half, N)
        for kind, claim, pred, what in (
            ("engine-check", CLAIM_SIM, 1.0, "b·tr Var(g_b) / (tr Σ · (N−b)/(N−1))"),
            ("article", CLAIM, 1.0, "b·tr Var(g_b) / tr Σ (a 1/b law: 1)"),
        ):
            scale = b_half / tr_sigma / (fpc if kind == "engine-check" else 1.0)
            m, lo, hi = mean_ci(without[i_half] * scale)
            out.append(self.finding(
                claim, f"digits MLP, without replacement: {what} at b={b_half}≈N/2", m, (lo, hi),
                kind=kind, predicted=pred, rule="contains", figure=FIG, ci_method=T_INTERVAL,
                theory=f"finite-population factor (N−b)/(N−1) = {fpc:.4f}",
                finite_population_factor=fpc,
            ))  # fmt: skip
        _plot(ax, "digits MLP (instrument's tr Σ)", s["mlp_with"], with_, tr_sigma, wo_bs,
              without, N)  # fmt: skip
        return out


def _rounding_bound(X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, N: int) -> float:
    """τ of the full-batch check (see its tolerance derivation)."""
    d = X.shape[1]

    def gamma(n: int) -> float:
        return n * U / (1 - n * U)

    r = X @ w - y
    g = X * r.unsqueeze(1)
    resid_err = gamma(d + 1) * ((X * w).abs().sum(dim=1) + y.abs())
    per_coord = (2 * gamma(N) * g.abs().mean(dim=0)
                 + 2 * (X.abs() * resid_err.unsqueeze(1)).mean(dim=0)
                 + 2 * U * (w.abs() + g.mean(dim=0).abs()))  # fmt: skip
    return float((per_coord**2).sum())


def _plot(ax, title, bs_with, with_, tr_sigma, bs_without, without, N) -> None:
    errbar(ax, bs_with, *zip(*[mean_ci(v) for v in with_], strict=True), color="C0",
           label="with replacement (measured)")  # fmt: skip
    grid = np.geomspace(1, N, 200)
    ax.plot(grid, tr_sigma / grid, "C0-", lw=1, label="tr Σ/b")
    fin = [(b, v) for b, v in zip(bs_without, without, strict=True) if b < N]
    if fin:
        errbar(ax, [b for b, _ in fin], *zip(*[mean_ci(v) for _, v in fin], strict=True),
               color="C1", label="without replacement (measured)")  # fmt: skip
    g2 = grid[grid < N]
    ax.plot(g2, [tr_sigma / b * finite_population_factor(round(b), N) for b in g2], "C1--",
            lw=1, label="tr Σ/b · (N−b)/(N−1)")  # fmt: skip
    full = [float(np.mean(v)) for b, v in zip(bs_without, without, strict=True) if b == N]
    if full:
        ax.annotate(f"b = N: mean |g − ∇F|² = {full[0]:.1e}", (N, tr_sigma / N), fontsize=7,
                    ha="right", va="top")  # fmt: skip
    ax.set(xscale="log", yscale="log", xlabel="batch size b", ylabel="tr Var(g_b)",
           title=title)  # fmt: skip
    ax.legend(fontsize=7)
