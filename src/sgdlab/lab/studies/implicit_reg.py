"""Study ``implicit-regularization``: do small batches find flatter minima, and does that
generalize? (article §3.1 C; §4's generalization gap)

Article: "SGD ... tends to converge to 'flatter' (wider) minima ... Wider minima are often
associated with better generalization performance"; "the noise in SGD can be seen as a form
of implicit regularization".

An MLP (64 → 16 → 10, ReLU) on digits with 30% held out, K chains per setting; chain k has the
same initialisation in every setting (the ``init`` stream depends only on the chain's
number), so settings are compared **paired**, chain by chain (t-interval of the per-chain
differences):

* ``small``: b = 8, η = 0.1, 1500 updates;
* ``large``: b = 128, same η and number of updates (Hoffer et al. 2017's "train longer"
  regime: only the noise differs);
* ``full``: full batch (GD), same η and updates;
* ``large-scaled``: b = 128 with η × 16 (Goyal et al. 2017's linear rule) for the same
  epochs as ``small`` (94 updates).

Measured per chain at the end, on the float64 problem rebuilt from the run: train and test
loss and error (``evaluate``), and on the training objective F: λ_max (Lanczos), tr H
(Hutchinson), Keskar's ε-sharpness and the adaptive (ASAM) sharpness, each with the chain's
``probe`` stream (:mod:`sgdlab.measure.curvature`: λ_max to 1%, Hutchinson to a 20% SE).

Findings (article): λ_max small vs large (mean log-ratio, rule ``negative``); the test error
gap large − small (rule ``positive``: the flat-generalizes claim); whether the scaled large
batch closes the gap (``contains`` 0); the rank correlation of λ_max and of the adaptive
sharpness with the test error over all chains and settings (rule ``positive``, bootstrap
over each setting's chains). Reported: tr H and ε-sharpness ratios, train losses. The
flatness–generalization link is contested — sharpness is not reparametrization-invariant
(Dinh et al. 2017), so the adaptive measure stands beside λ_max — and the verdicts say what
this problem shows, in either direction.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import spearmanr

from sgdlab.config import load_config
from sgdlab.engine.result import RunResult
from sgdlab.lab.findings import Finding
from sgdlab.lab.stats import BOOTSTRAP, T_INTERVAL, bootstrap_groups, mean_ci, probe_seed
from sgdlab.lab.studies._common import build, figure, save
from sgdlab.lab.studies._implicit_plots import plot_flatness, plot_gaps, plot_scatter
from sgdlab.lab.study import Context, Study, register
from sgdlab.measure.curvature import (
    FunctionObjective,
    HessianOperator,
    asam_sharpness,
    epsilon_sharpness,
    hessian_trace,
    lanczos,
)

CLAIM_FLAT = ("SGD's noise makes it converge to flatter minima than large-batch or full-batch "
              "descent (§3.1 C).")
CLAIM_GEN = ("Flatter minima generalize better: the noise of small batches acts as implicit "
             "regularization (§3.1 C).")
CLAIM_SCALE = ("Scaling the learning rate with the batch size closes the large-batch "
               "generalization gap (Goyal et al. 2017; Hoffer et al. 2017; §4).")
MLP = {"name": "mlp", "dataset": "digits", "widths": [16], "holdout": 0.3}
ETA, B_SMALL, B_LARGE = 0.1, 8, 128
FIG = "implicit-regularization.png"
#: setting → (batch, sampling, lr, steps as a fraction of the small batch's)
SETTINGS = ("small", "large", "full", "large-scaled")
MEASURES = ("lambda_max", "trace", "epsilon", "asam")
#: instrument settings: λ_max to 1% (the chain-to-chain spread is ≫ 1%), Hutchinson to a 20%
#: standard error (tr H is reported, not judged), Keskar's box ε = 1e-3, ASAM ρ = 0.5, η = 0.01
LANCZOS_TOL, TRACE_REL_SE, TRACE_PROBES = 1e-2, 0.2, 30
EPSILON, ASAM_RHO, ASAM_ETA, ASCENT_STEPS = 1e-3, 0.5, 0.01, 10


def _settings(quick: bool) -> dict:
    return {"chains": 6, "steps": 1500} if quick else {"chains": 24, "steps": 3000}


def _config(name: str, s: dict) -> dict:
    steps = s["steps"]
    batch = {"size": B_SMALL, "sampling": "without_replacement"}
    lr = ETA
    if name == "large":
        batch = {"size": B_LARGE, "sampling": "without_replacement"}
    elif name == "full":
        batch = {"size": 1, "sampling": "full"}
    elif name == "large-scaled":
        batch = {"size": B_LARGE, "sampling": "without_replacement"}
        lr = ETA * B_LARGE / B_SMALL
        steps = round(steps * B_SMALL / B_LARGE)  # the same epochs as the small batch
    return {"problem": MLP, "optimizer": {"name": "sgd", "lr": lr}, "batch": batch,
            "chains": s["chains"], "steps": steps, "seed": 131,
            "record": {"every": max(1, steps // 20)}, "dtype": "float32"}  # fmt: skip


def measure_chains(run: RunResult) -> dict[str, np.ndarray]:
    """Per chain: train/test loss and error, and the sharpness measures of F at the final
    parameters (NaN for a diverged chain). One torch thread, as the lab's runs use (restored
    afterwards): these small products slow down several-fold when two threads contend for a
    shared machine's cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _measure_chains(run)
    finally:
        torch.set_num_threads(threads)


def _measure_chains(run: RunResult) -> dict[str, np.ndarray]:
    prob = build(run)
    W = run.final_params.to(torch.float64)
    out: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        ev = prob.evaluate(W, split)
        out[f"{split}_loss"] = ev["loss"].numpy().copy()
        out[f"{split}_error"] = ev["error"].numpy().copy()
    fn = FunctionObjective.from_batched(prob.objective)
    streams = load_config(run.config).make_streams(run.seed_entropy)
    first = int(run.config.get("first_chain", 0))
    vals = {m: np.full(run.chains, np.nan) for m in MEASURES}
    for k in range(run.chains):
        if run.diverged[k]:
            continue
        gen = streams.generator("probe", first + k)
        op = HessianOperator.from_objective(fn, W[k])
        top = lanczos(op, 1, "largest", LANCZOS_TOL, generator=gen)
        vals["lambda_max"][k] = float(top.values[0])
        vals["trace"][k] = hessian_trace(op, rel_se=TRACE_REL_SE, max_probes=TRACE_PROBES,
                                         generator=gen).estimate  # fmt: skip
        vals["epsilon"][k] = epsilon_sharpness(fn, W[k], EPSILON, maxiter=ASCENT_STEPS,
                                               directions=[top.vectors[:, 0]],
                                               generator=gen).value  # fmt: skip
        vals["asam"][k] = asam_sharpness(fn, W[k], ASAM_RHO, ASAM_ETA, steps=ASCENT_STEPS,
                                         lanczos_tol=LANCZOS_TOL, generator=gen).value
    out.update(vals)
    for key in ("train_loss", "train_error", "test_loss", "test_error"):
        out[key][run.diverged] = np.nan
    return out


@register
class ImplicitRegularization(Study):
    name = "implicit-regularization"
    section = "3.1 C"
    claim = "small batches, flatter minima? and do they generalize? (MLP on digits, paired)"

    def grid(self, quick: bool) -> dict[str, dict]:
        s = _settings(quick)
        return {name: _config(name, s) for name in SETTINGS}

    def analyze(self, runs: dict[str, RunResult], ctx: Context) -> list[Finding]:
        m = {name: measure_chains(runs[name]) for name in SETTINGS}
        seed = probe_seed(131)
        out: list[Finding] = []
        common = dict(figure=FIG, ci_method=T_INTERVAL + " (paired: chain k shares its "
                      "initialisation across settings)")  # fmt: skip
        small, large, scaled = m["small"], m["large"], m["large-scaled"]
        lr = np.log(small["lambda_max"] / large["lambda_max"])
        mm, lo, hi = mean_ci(lr)
        out.append(self.finding(
            CLAIM_FLAT, f"mean log(λ_max small b={B_SMALL} / large b={B_LARGE}) at η = {ETA:g}",
            mm, (lo, hi), kind="article", predicted=None, rule="negative",
            theory="λ_max of F by Lanczos (sgdlab.measure.sharpness)", **common,
        ))  # fmt: skip
        for key, label in (("trace", "tr H"), ("epsilon", "ε-sharpness (Keskar)"),
                           ("asam", "adaptive sharpness (ASAM)")):  # fmt: skip
            mm, lo, hi = mean_ci(np.log(small[key] / large[key]))
            out.append(self.finding(
                CLAIM_FLAT, f"mean log({label} small / large)", mm, (lo, hi), kind="article",
                predicted=None, rule="report", theory="reported beside λ_max: flatness "
                "measures need not agree (Dinh et al. 2017)", **common,
            ))  # fmt: skip
        gap = large["test_error"] - small["test_error"]
        mm, lo, hi = mean_ci(gap)
        out.append(self.finding(
            CLAIM_GEN, "test error: large batch − small batch (same η, same updates)", mm,
            (lo, hi), kind="article", predicted=None, rule="positive",
            theory="the flat-generalizes claim: small batches generalize better",
            train_loss={k: float(np.nanmean(v["train_loss"])) for k, v in m.items()},
            test_error={k: float(np.nanmean(v["test_error"])) for k, v in m.items()},
            **common,
        ))  # fmt: skip
        mm, lo, hi = mean_ci(scaled["test_error"] - small["test_error"])
        out.append(self.finding(
            CLAIM_SCALE, f"test error: large batch with η × {B_LARGE // B_SMALL} (same epochs) "
            "− small batch", mm, (lo, hi), kind="article", predicted=0.0, rule="contains",
            theory="the gap closes: no difference", **common,
        ))  # fmt: skip
        for key, label in (("lambda_max", "λ_max"), ("asam", "adaptive sharpness")):
            groups = [np.stack([m[n][key], m[n]["test_error"]], 1) for n in SETTINGS]

            def rho(gs: list[np.ndarray]) -> float:
                v = np.concatenate(gs)
                v = v[np.isfinite(v).all(1)]
                return float(spearmanr(v[:, 0], v[:, 1]).statistic)

            est, lo, hi = bootstrap_groups(groups, rho, seed + len(out))
            out.append(self.finding(
                CLAIM_GEN, f"rank correlation of {label} with the test error (all chains and "
                "settings)", est, (lo, hi), kind="article", predicted=None, rule="positive",
                figure=FIG, ci_method=BOOTSTRAP + " (each setting's chains)",
                theory="sharper ⇒ worse generalization: a positive Spearman ρ",
            ))  # fmt: skip
        fig, axes = figure(2, 2, w=5.2, h=3.9)
        plot_scatter(axes[0], m, SETTINGS, "lambda_max", "λ_max of F (train)")
        plot_scatter(axes[1], m, SETTINGS, "asam", "adaptive sharpness (ASAM, ρ = 0.5)")
        plot_gaps(axes[2], m, SETTINGS)
        plot_flatness(axes[3], m, {"lambda_max": "λ_max", "trace": "tr H", "epsilon": "ε-sharp.",
                                   "asam": "adaptive"})
        save(fig, ctx.figure(FIG))
        return out
