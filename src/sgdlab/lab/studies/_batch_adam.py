"""Adam's square-root scaling rule (Malladi et al. 2022) on the digits MLP, for ``lr-scaling``.

Malladi, Lyu, Panigrahi & Arora (2022), "On the SDEs and Scaling Rules for Adaptive Gradient
Algorithms", NeurIPS, §5 (Definition 5.1): when the batch grows by κ, Adam follows the same SDE
(the same loss against examples processed) with

    η → √κ η,   1 − β₁ → κ(1 − β₁),   1 − β₂ → κ(1 − β₂),   ε → ε/√κ,

valid while κ(1 − β) < 1 and the gradient noise dominates (the SDE regime). It is compared with
the √κ step alone (betas kept) and the linear κη (betas kept). Runs (digits MLP, float32,
batches with replacement, one fixed start): at b₀ = 4, two groups of 16 chains with the base
settings (β₁ = 0.99, β₂ = 0.999, η = 2⁻¹⁰), 1024 steps; at b = κ·b₀ one group per rule, 1024/κ
steps, the same budget of examples (2.3 epochs), the objective recorded at the same 16 example
counts.

Distance between the loss-vs-examples curves: d = mean over the common example counts (> 0) of
|log F̄_rule − log F̄_b₀| (F̄ the chain mean); intervals by a bootstrap over the chains of every
group. Findings (article): d_Malladi − d_linear < 0 for each κ (``negative``); reported:
d_Malladi / d_replicate, d_replicate the distance between the two independent groups at b₀
(what chain sampling alone gives).
"""

from __future__ import annotations

import math

import numpy as np

from sgdlab.engine.result import RunResult
from sgdlab.lab.findings import Finding
from sgdlab.lab.stats import groups, probe_seed
from sgdlab.lab.studies._batch_common import boot_means, percentile_ci
from sgdlab.lab.studies._batch_sweeps import MLP
from sgdlab.lab.study import Context

CLAIM_ADAM = ("For very large batches, sub-linear scaling (e.g. √k) or more sophisticated "
              "adjustments might be needed (§4): Adam's √ rule with β₁, β₂, ε adjusted "
              "(Malladi et al. 2022).")
B0, STEPS0, CHAINS, SEED = 4, 1024, 16, 54
BASE = {"lr": 2.0**-10, "beta1": 0.99, "beta2": 0.999, "eps": 1e-8}
N_BOOT = 1000


def rule_settings(rule: str, kappa: int) -> dict[str, float]:
    """Adam's settings at κ·b₀ under ``rule`` (malladi, sqrt, linear)."""
    b = BASE
    if rule == "malladi":
        return {"lr": b["lr"] * math.sqrt(kappa), "beta1": 1 - kappa * (1 - b["beta1"]),
                "beta2": 1 - kappa * (1 - b["beta2"]), "eps": b["eps"] / math.sqrt(kappa)}
    if rule == "sqrt":
        return {**b, "lr": b["lr"] * math.sqrt(kappa)}
    if rule == "linear":
        return {**b, "lr": b["lr"] * kappa}
    raise ValueError(rule)


RULES = ("malladi", "sqrt", "linear")


def kappas(quick: bool) -> tuple[int, ...]:
    return (4, 16) if quick else (2, 4, 8, 16, 32)


def _config(b: int, steps: int, settings: list[dict[str, float]]) -> dict:
    opt = {"name": "adam", **{k: [s[k] for s in settings] for k in BASE}}
    every = steps // 16
    # each b its own sampling stream: the runs are independent (the bootstrap assumes it)
    streams = {"off": ["init"], "seeds": {"sampling": SEED * 10**4 + b}}
    return {"problem": MLP, "seed": SEED, "dtype": "float32", "streams": streams,
            "batch": {"size": b, "sampling": "with_replacement"},
            "chains": CHAINS * len(settings), "steps": steps, "optimizer": opt,
            "record": {"every": every, "objective": True}}  # fmt: skip


def adam_grid(quick: bool) -> dict[str, dict]:
    g = {f"adam/b{B0}": _config(B0, STEPS0, [BASE, dict(BASE)])}
    for k in kappas(quick):
        g[f"adam/b{B0 * k}"] = _config(B0 * k, STEPS0 // k,
                                        [rule_settings(r, k) for r in RULES])  # fmt: skip
    return g


def _distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """mean |log a − log b| over the last axis (NaN where a curve is not finite)."""
    return np.mean(np.abs(np.log(a) - np.log(b)), axis=-1)


def adam_findings(study, runs: dict[str, RunResult], ctx: Context, axes,
                  fig: str) -> list[Finding]:  # fmt: skip
    rng = np.random.default_rng(probe_seed(SEED))
    base = runs[f"adam/b{B0}"]
    st0, v0 = base.metric("objective")
    rep_a, rep_b = groups(v0, 2)
    e0 = st0 * B0
    keep = e0 > 0
    mean0, boot0 = v0.mean(0)[keep], boot_means(v0, N_BOOT, rng)[:, keep]
    d_rep = float(_distance(rep_a.mean(0)[keep], rep_b.mean(0)[keep]))
    rep_boot = _distance(boot_means(rep_a, N_BOOT, rng)[:, keep],
                         boot_means(rep_b, N_BOOT, rng)[:, keep])  # fmt: skip
    out = []
    axes[0].plot(e0[keep], mean0, "k-", lw=2, label=f"b₀={B0}")
    for n, k in enumerate(kappas(ctx.quick)):
        run = runs[f"adam/b{B0 * k}"]
        st, v = run.metric("objective")
        if not np.array_equal(st * B0 * k, e0):
            raise ValueError("Adam runs must record at the same example counts")
        d, db = {}, {}
        for rule, g in zip(RULES, groups(v, len(RULES)), strict=True):
            d[rule] = float(_distance(g.mean(0)[keep], mean0))
            db[rule] = _distance(boot_means(g, N_BOOT, rng)[:, keep], boot0)
            if k == max(kappas(ctx.quick)) or n == 0:
                axes[0 if n == 0 else 1].plot(e0[keep], g.mean(0)[keep], label=f"κ={k}, {rule}")
        out.append(study.finding(
            CLAIM_ADAM, f"digits MLP, Adam, κ={k} (b={B0 * k}): d(Malladi) − d(linear), d = mean "
            "|Δ log F| between the loss-vs-examples curves at κb₀ and b₀",
            d["malladi"] - d["linear"], percentile_ci(db["malladi"] - db["linear"]),
            kind="article", predicted=None, rule="negative", figure=fig,
            ci_method="percentile bootstrap over the chains of every group (1000 resamples)",
            theory="Malladi et al. (2022) Def. 5.1: the √ rule with β, ε adjusted keeps the SDE",
            distances=d, distance_replicates=d_rep, settings={r: rule_settings(r, k)
                                                               for r in RULES},
        ))  # fmt: skip
        if k == max(kappas(ctx.quick)):
            ratio = db["malladi"] / rep_boot
            out.append(study.finding(
                CLAIM_ADAM, f"digits MLP, Adam, κ={k}: d(Malladi) / d(two replicate groups at "
                "b₀)", d["malladi"] / d_rep, percentile_ci(ratio), kind="article",
                predicted=None, rule="report", figure=fig,
                ci_method="percentile bootstrap over the chains of every group (1000 resamples)",
                theory="how far the Malladi curve is, in units of chain-sampling noise",
            ))  # fmt: skip
    for ax, title in zip(axes[:2], ("smallest κ", "largest κ"), strict=True):
        ax.plot(e0[keep], mean0, "k-", lw=2) if ax is axes[1] else None
        ax.set(xscale="log", yscale="log", xlabel="examples processed",
               ylabel="F (training loss)", title=f"digits MLP, Adam: {title}")  # fmt: skip
        ax.legend(fontsize=6)
    ks = kappas(ctx.quick)
    dist = {r: [float(f.details["distances"][r]) for f in out if "distances" in f.details]
            for r in RULES}  # fmt: skip
    for r in RULES:
        axes[2].plot(ks, dist[r], "o-", label=r)
    axes[2].axhline(d_rep, color="k", ls=":", label="replicates at b₀")
    axes[2].set(xscale="log", yscale="log", xlabel="κ = b/b₀",
                ylabel="mean |Δ log F| to the b₀ curve", title="Adam: distance between curves")
    axes[2].legend(fontsize=6)
    return out
