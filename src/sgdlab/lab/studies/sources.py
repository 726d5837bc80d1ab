"""Study ``sources``: every face of randomness of §2, on its own and together.

The article lists the sources of randomness in training: minibatch sampling, label noise,
random initialization, dropout, data augmentation and approximate (quantized) gradients.
On the digits MLP (one hidden layer of 16, 20% held out, pixels standardised with one global
mean and std, as images are) each source is switched on alone
(every other stream off: in-order batches, a fixed initial point), all together, and all
but one (``streams.off`` of that one: its deterministic counterpart):

* ``sampling`` — b = 16 without replacement; ``label_noise`` — dynamic, q = 0.2 (a label
  redrawn at every draw); ``dropout`` — q = 0.2 after the hidden layer; ``augment`` — shifts
  by up to one pixel and pixel noise σ = 1 (raw units, pixels in 0…16); ``quantize`` —
  stochastic rounding of the gradient to 4 bits; ``nearest`` — deterministic rounding to the
  same grid (the biased counterpart; it adds no variance); ``init`` — PyTorch's random
  initialization (it acts on the start, not on the gradient at a point).

**At a fixed w** (a point of a training run: chain 0 of the sampling-only run at its end),
M independent gradient draws per configuration (:mod:`._sources_draws`): tr Σ per source
with a bootstrap over the draws; the unbiasedness test (:func:`sgdlab.measure.
unbiasedness_test`) against the gradient without the source — ∇F for sampling, the clean
gradient of the same batch otherwise — flags the sources that change the *expected*
gradient (``engine-check``, rule ``exact``: dropout, dynamic label noise — label smoothing
in expectation —, augmentation and nearest rounding are biased by construction; sampling
and stochastic rounding are not). Additivity: stochastic rounding on top of sampling adds
exactly E[Σ_j Δ²p(1−p)] (law of total variance, E[Q(g) | g] = g: an ``engine-check``,
``contains`` 0); for the other sources the total tr Σ_all is compared with the sum of the
sources alone and with the marginal contributions tr Σ_all − tr Σ_all−s (reported: they
interact — dropout's variance depends on the batch, the label noise's on the prediction).

**Along training**: K chains per configuration from one start (except ``init``); the
dispersion of the final iterates tr Cov(w_T) over chains (t over groups of 4 chains) and the
final train and test losses per source (mean over chains, t-interval) — reported.
"""

from __future__ import annotations

import numpy as np
import torch

from sgdlab.engine.result import RunResult
from sgdlab.lab.findings import Finding
from sgdlab.lab.stats import T_INTERVAL, mean_ci, probe_seed
from sgdlab.lab.studies._common import build
from sgdlab.lab.studies._sources_draws import (
    GROUP,
    bias_test,
    draw_gradients,
    quantization_excess,
    trace_ci,
    trace_cov,
)
from sgdlab.lab.studies._sources_plots import sources_figure
from sgdlab.lab.study import Context, Study, register

CLAIM = ("§2: training is random in several ways — minibatch sampling, label noise, "
         "initialization, dropout, augmentation, approximate gradients.")
CLAIM_BIAS = ("Engine check: the unbiasedness test flags exactly the sources that change the "
              "expected gradient.")
CLAIM_ADD = ("Engine check: stochastic rounding adds its conditional variance E[Σ Δ²p(1−p)] "
             "to the sampling noise (law of total variance).")
BASE = {"name": "mlp", "dataset": "digits", "widths": [16], "holdout": 0.2,
        "standardize_mode": "global"}
#: per source: problem overrides and the quantization section
SOURCES = {
    "sampling": ({}, None),
    "label_noise": ({"label_noise": 0.2, "label_noise_mode": "dynamic"}, None),
    "dropout": ({"dropout": 0.2}, None),
    "augment": ({"augment_shift": 1, "augment_noise": 1.0}, None),
    "quantize": ({}, {"mode": "stochastic", "bits": 4}),
}
NEAREST = {"mode": "nearest", "bits": 4}
#: expected: does the source change E[g]? (1 yes, 0 no)
BIASED = {"sampling": 0, "label_noise": 1, "dropout": 1, "augment": 1, "quantize": 0,
          "nearest": 1}  # fmt: skip
BOOT = f"t-interval over independent groups of {GROUP} draws (95%)"


def _settings(quick: bool) -> dict:
    if quick:
        return {"chains": 16, "steps": 100, "draws": 64, "lr": 0.1}
    return {"chains": 64, "steps": 400, "draws": 384, "lr": 0.1}


def source_config(on: tuple[str, ...], quick: bool, nearest: bool = False) -> dict:
    """The config with the sources ``on`` (every other stream off); ``init`` in ``on`` draws
    random starts."""
    s = _settings(quick)
    problem = dict(BASE)
    quant = None
    for name in on:
        if name in SOURCES:
            over, q = SOURCES[name]
            problem.update(over)
            quant = q or quant
    if nearest:
        quant = NEAREST
    off = [n for n in ("sampling", "init") if n not in on]  # the others are not drawn at all
    cfg = {"problem": problem, "optimizer": {"name": "sgd", "lr": s["lr"]},
           "batch": {"size": 16}, "chains": s["chains"], "steps": s["steps"], "seed": 211,
           "record": {"every": max(1, s["steps"] // 10), "objective": False},
           "dtype": "float64", "streams": {"off": off}}  # fmt: skip
    if quant:
        cfg["quantize"] = quant
    return cfg


ALL = tuple(SOURCES)


def _all_but(name: str, quick: bool) -> dict:
    cfg = source_config(ALL, quick)
    if name == "quantize":
        cfg.pop("quantize")
    else:
        cfg["streams"] = {"off": [name]}
    return cfg


@register
class Sources(Study):
    name = "sources"
    section = "2"
    claim = "each source of randomness alone and together: variance, bias, additivity"

    def grid(self, quick: bool) -> dict[str, dict]:
        out = {name: source_config((name,), quick) for name in (*SOURCES, "init")}
        out["nearest"] = source_config((), quick, nearest=True)
        out["none"] = source_config((), quick)
        out["all"] = source_config((*ALL, "init"), quick)
        return out

    def analyze(self, runs: dict[str, RunResult], ctx: Context) -> list[Finding]:
        s = _settings(ctx.quick)
        seed = probe_seed(212)
        ref_run = runs["sampling"]
        w = ref_run.final_params[0].double()
        alone = {name: draw_gradients(source_config((name,), ctx.quick), w, s["draws"])
                 for name in SOURCES}  # fmt: skip
        alone["nearest"] = draw_gradients(source_config((), ctx.quick, nearest=True), w,
                                          s["draws"])  # fmt: skip
        everything = draw_gradients(source_config(ALL, ctx.quick), w, s["draws"])
        traces = {n: trace_ci(d.G) for n, d in alone.items()}
        traces["all"] = trace_ci(everything.G)
        marginal = {n: traces["all"][0] - trace_cov(draw_gradients(
            _all_but(n, ctx.quick), w, s["draws"]).G.numpy()) for n in SOURCES}  # fmt: skip
        out = []
        for n, (m, lo, hi) in traces.items():
            out.append(self.finding(
                CLAIM, f"tr Σ of the gradient at a fixed w: {n}" + (" (all sources)"
                if n == "all" else " alone"), m, (lo, hi), kind="article", predicted=None,
                rule="report", figure="sources.png", ci_method=BOOT,
                theory="reported: which sources add variance at a point",
                marginal=marginal.get(n),
            ))  # fmt: skip
        for n, d in alone.items():
            p, bias, null = bias_test(d)
            out.append(self.finding(
                CLAIM_BIAS, f"unbiasedness test flags {n} (p < 0.01): 1 yes, 0 no",
                float(p < 0.01), None, kind="engine-check", predicted=float(BIASED[n]),
                rule="exact", figure="sources.png", p_value=p, bias_norm=bias,
                bias_norm_null=null, theory="biased by construction: dropout (nonlinear net), "
                "dynamic labels (smoothed targets), augmentation (other images), nearest "
                "rounding; unbiased: sampling, stochastic rounding",
            ))  # fmt: skip
        sq = draw_gradients(source_config(("sampling", "quantize"), ctx.quick), w, s["draws"])
        m, lo, hi = quantization_excess(sq)
        out.append(self.finding(
            CLAIM_ADD, "tr Var(Q(g)) − tr Var(g) − E[Σ Δ²p(1−p)], sampling + stochastic "
            "rounding", m, (lo, hi), kind="engine-check", predicted=0.0, rule="contains",
            figure="sources.png", ci_method=BOOT,
            theory="law of total variance: Var Q(g) = Var g + E[Var(Q | g)], E[Q | g] = g",
            rounding_variance=float(sq.qvar.mean()),
        ))  # fmt: skip
        total = sum(traces[n][0] for n in SOURCES)
        se = np.sqrt(sum(((traces[n][2] - traces[n][1]) / 3.92) ** 2 for n in SOURCES))
        rel = np.hypot((traces["all"][2] - traces["all"][1]) / 3.92 / traces["all"][0],
                       se / total)  # fmt: skip
        ratio = traces["all"][0] / total
        out.append(self.finding(
            CLAIM, "tr Σ_all / Σ_s tr Σ_s (alone): do the sources' variances add up?",
            ratio, (ratio * np.exp(-1.96 * rel), ratio * np.exp(1.96 * rel)), kind="article",
            predicted=None, rule="report", figure="sources.png", ci_method="delta method on "
            "the log ratio from the independent group intervals", theory="reported: exactly "
            "1 only for sources acting additively and independently on the gradient",
        ))  # fmt: skip
        found, training = self._training(runs, seed)
        sources_figure(ctx.figure("sources.png"), traces, marginal, training)
        return out + found

    def _training(self, runs: dict[str, RunResult], seed: int) -> tuple[list[Finding], dict]:
        """Spread of the final iterates and final train/test losses per configuration."""
        problem = build(runs["none"])
        out = []
        table: dict[str, tuple] = {}
        for key in ("none", *SOURCES, "nearest", "init", "all"):
            run = runs[key]
            W = run.final_params[~run.diverged].double()
            spread = trace_ci(W.numpy(), size=4)
            with torch.no_grad():
                test = problem.evaluate(W, "test")["loss"].numpy()
                train = problem.evaluate(W, "train")["loss"].numpy()
            table[key] = (spread, mean_ci(train), mean_ci(test))
            out.append(self.finding(
                CLAIM, f"dispersion of the final iterates, tr Cov(w_T) over chains: {key}",
                spread[0], (float(spread[1]), float(spread[2])), kind="article",
                predicted=None, rule="report", figure="sources.png",
                ci_method="t-interval over independent groups of 4 chains (95%)",
                theory="reported", train_loss=float(train.mean()), test_loss=float(test.mean()),
            ))  # fmt: skip
            m, lo, hi = mean_ci(test)
            out.append(self.finding(
                CLAIM, f"final test loss: {key}", m, (lo, hi), kind="article", predicted=None,
                rule="report", figure="sources.png", ci_method=T_INTERVAL, theory="reported",
            ))  # fmt: skip
        return out, table


__all__ = ["SOURCES", "Sources", "source_config"]
