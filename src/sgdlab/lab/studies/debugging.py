"""Study ``debugging``: the article's §5 recipe for an unstable run, measured.

§5 says: when training is unstable, lower the learning rate, increase the batch size, clip
the gradients, check the data and the gradient computation for bugs, and look at the loss
curves. The study makes a run unstable on purpose and measures each remedy.

**The unstable run** (:data:`UNSTABLE`): the digits MLP (one hidden layer of 16) trained by
SGD (η = 0.5, b = 16) on data where 2% of the training samples are corrupted — their
features multiplied by 20 (``outliers``). A batch holding an outlier has a gradient and a
curvature hundreds of times the others': heavy-tailed per-sample noise, and η = 0.5 is
beyond the stability edge of those batches (the same η on the clean data trains). A chain
**fails** when its loss over the last 10% of the records is not finite or above its loss at
step 0 (ln 10 ≈ 2.3 for ten classes): it blew up instead of learning.

**Remedies** (each a run of the same chains, same seed: chain k draws the same batches):
η ÷ 3, b × 4, clipping the global gradient norm at the level the instrument suggests
(:func:`sgdlab.advice.advise` on the unstable run: the 95th percentile of the norms recorded
while the loss had not yet risen), all three together, and the config that
``sgdlab advise --apply`` writes (:mod:`sgdlab.advice_apply`) — the loop that closes. The
failure rate with a Wilson interval per run, the remedy's change with Newcombe's hybrid
score interval for a difference of two independent proportions, and the paired per-chain
change of log final loss (t-interval) — ``article`` findings, rule ``negative``.

**Check for bugs** (on the clean data: with the outliers' heavy tails the test's t-statistic
is not calibrated at this M — a correct sampler was flagged in a trial run): a planted
sampler bug — indices drawn from the first half of the dataset only
(``randint(0, N // 2)``, an off-by-one in a range) — trained at η ÷ 3:
its minibatch loss falls like a healthy run's (reported: log(last/first) of the per-chain
loss, t-interval), while :func:`sgdlab.measure.unbiasedness_test` on M minibatch gradients
at one point flags it (p-value; ``engine-check`` — the instrument against a bug we planted:
the correct sampler must pass, the buggy one must be flagged at the 1% level).

**Look at the loss curve**: the fraction of steps that raise the full-data loss F (the
statistic of ``oscillation``, part 1), per chain, over the steps before the chain's F first
exceeds F(w₀) — before any divergence: at the unstable η against a safe η = 0.05 (Welch,
rule ``positive``), and against η ÷ 3 (reported: does it single out the diverging step?).
"""

from __future__ import annotations

import copy
import math

import numpy as np

from sgdlab.advice import advise
from sgdlab.advice_apply import advised_config
from sgdlab.api import run as run_config
from sgdlab.engine.result import RunResult
from sgdlab.lab.findings import Finding
from sgdlab.lab.stats import T_INTERVAL, mean_ci, probe_seed, welch_diff_ci, wilson_ci
from sgdlab.lab.studies._common import build
from sgdlab.lab.studies._debugging_bug import bug_findings
from sgdlab.lab.studies._debugging_plots import debugging_figure
from sgdlab.lab.study import Context, Study, register

CLAIM = ("§5: an unstable run is fixed by lowering the learning rate, increasing the batch "
         "size or clipping the gradients.")
CLAIM_LOOP = "sgdlab advise --apply writes a config that measurably fixes the unstable run."
CLAIM_CURVE = ("§5: looking at the loss curve shows a too-high learning rate: F rises at more "
               "steps, before the run diverges.")
PROBLEM = {"name": "mlp", "dataset": "digits", "widths": [16], "outliers": 0.02,
           "outlier_scale": 20.0}  # fmt: skip
LR, SAFE_LR, BATCH = 0.5, 0.05, 16
PROBE_LRS = (LR, LR / 3, SAFE_LR)
NEWCOMBE = "Newcombe hybrid score interval of a difference of two independent proportions"
WILSON = "Wilson score interval over chains (95%)"


def _settings(quick: bool) -> dict:
    if quick:
        return {"chains": 16, "steps": 150, "probe_chains": 16, "probe_steps": 12, "draws": 192}
    return {"chains": 96, "steps": 400, "probe_chains": 64, "probe_steps": 16, "draws": 512}


def unstable_config(quick: bool = True) -> dict:
    """The unstable run of the study (also the example of ``sgdlab advise --apply``)."""
    s = _settings(quick)
    return {"problem": dict(PROBLEM), "optimizer": {"name": "sgd", "lr": LR},
            "batch": {"size": BATCH}, "chains": s["chains"], "steps": s["steps"], "seed": 131,
            "record": {"every": 5, "objective": False}, "dtype": "float32"}  # fmt: skip


#: the quick unstable config (for docs and tests)
UNSTABLE = unstable_config(True)


def failed(run: RunResult) -> np.ndarray:
    """Per chain: the loss over the last 10% of the records is not finite or above its
    loss at step 0 (the chain blew up instead of learning)."""
    _, loss = run.metric("loss")
    n = max(1, loss.shape[1] // 10)
    with np.errstate(all="ignore"):
        tail = loss[:, -n:].mean(1)
    return ~np.isfinite(tail) | ~(tail <= loss[:, 0])


def final_loss(run: RunResult) -> np.ndarray:
    """Per chain: the mean loss over the last 10% of the records (∞ for a diverged chain)."""
    _, loss = run.metric("loss")
    n = max(1, loss.shape[1] // 10)
    with np.errstate(all="ignore"):
        tail = loss[:, -n:].mean(1)
    return np.where(np.isfinite(tail), tail, np.inf)


def newcombe(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float, float]:
    """``(p₁ − p₂, lo, hi)``: Newcombe's hybrid score interval (method 10, 1998) from the two
    Wilson intervals."""
    p1, l1, u1 = wilson_ci(x1, n1)
    p2, l2, u2 = wilson_ci(x2, n2)
    d = p1 - p2
    return d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt(
        (u1 - p1) ** 2 + (p2 - l2) ** 2
    )


def run_metrics(run: RunResult) -> dict:
    return {name: run.metric(name) for name in run.metric_names()}


@register
class Debugging(Study):
    name = "debugging"
    section = "5"
    claim = "§5 remedies fix an unstable run; the unbiasedness test finds a planted bug"

    def grid(self, quick: bool) -> dict[str, dict]:
        s = _settings(quick)
        base = unstable_config(quick)
        out = {
            "unstable": base,
            "lower_lr": {**base, "optimizer": {"name": "sgd", "lr": LR / 3}},
            "larger_b": {**base, "batch": {"size": 4 * BATCH}},
            # the bug check's healthy run: the same net and step on the clean data
            "clean": {**base, "problem": {**PROBLEM, "outliers": 0.0},
                      "optimizer": {"name": "sgd", "lr": LR / 3}},
        }
        for i, lr in enumerate(PROBE_LRS):
            out[f"probe{i}"] = {**base, "optimizer": {"name": "sgd", "lr": lr},
                                "chains": s["probe_chains"], "steps": s["probe_steps"],
                                "seed": 137, "record": {"every": 1, "objective": True}}  # fmt: skip
        return out

    def analyze(self, runs: dict[str, RunResult], ctx: Context) -> list[Finding]:
        s = _settings(ctx.quick)
        base = runs["unstable"]
        items = advise(run_metrics(base), batch_size=BATCH, lr=LR)
        kinds = {a.kind: a for a in items}
        level = float(kinds["clipping"].evidence["suggested_max_norm"]) if "clipping" in kinds \
            else None  # fmt: skip
        cfg = copy.deepcopy(base.config)
        extra = {}
        if level is not None:
            extra["clip"] = {**cfg, "clip": {"norm": level}}
            extra["combined"] = {**cfg, "clip": {"norm": level}, "batch": {"size": 4 * BATCH},
                                 "optimizer": {"name": "sgd", "lr": LR / 3}}  # fmt: skip
        advised, changes = advised_config(cfg, items)
        if changes:
            extra["advised"] = advised
        done = dict(runs)
        for key, config in extra.items():
            done[key] = run_config(config)
        out = self._remedies(done, items, changes, level)
        out += self._curve(runs)
        out += bug_findings(self, build(runs["clean"]), runs["clean"], s, probe_seed(139))
        probes = [(lr, _fraction_up(runs[f"probe{i}"])) for i, lr in enumerate(PROBE_LRS)]
        debugging_figure(ctx.figure("debugging.png"), done, failed, probes)
        return out

    def _remedies(self, runs, items, changes, level) -> list[Finding]:
        out = []
        fail0 = failed(runs["unstable"])
        k0, n0 = int(fail0.sum()), fail0.size
        p0, lo0, hi0 = wilson_ci(k0, n0)
        out.append(self.finding(
            CLAIM, f"failure rate of the unstable run (η = {LR}, b = {BATCH}, 2% outliers ×20)",
            p0, (lo0, hi0), kind="article", predicted=None, rule="report",
            figure="debugging.png", ci_method=WILSON,
            theory="a chain fails when its final loss is not finite or above its start",
            advice=[f"{a.kind}: {a.message}" for a in items],
        ))  # fmt: skip
        labels = {"lower_lr": f"η ÷ 3 (η = {LR / 3:.3g})", "larger_b": f"b × 4 (b = {4 * BATCH})",
                  "clip": f"clip the global norm at {level:.3g} (the advice's level)"
                  if level is not None else "", "combined": "η ÷ 3, b × 4 and clipping",
                  "advised": "the config of sgdlab advise --apply: "
                  + "; ".join(c.describe() for c in changes)}  # fmt: skip
        loss0 = np.log(final_loss(runs["unstable"]))
        for key, label in labels.items():
            if key not in runs:
                continue
            fail = failed(runs[key])
            d, lo, hi = newcombe(int(fail.sum()), fail.size, k0, n0)
            claim = CLAIM_LOOP if key == "advised" else CLAIM
            out.append(self.finding(
                claim, f"change of the failure rate: {label} (from {p0:.2f})", d, (lo, hi),
                kind="article", predicted=None, rule="negative", figure="debugging.png",
                ci_method=NEWCOMBE, theory="§5: the remedy makes the run stable",
                failure_rate=float(fail.mean()),
                final_loss_median=float(np.median(final_loss(runs[key]))),
            ))  # fmt: skip
            if key == "advised":
                diff = np.log(final_loss(runs[key])) - loss0
                diff = np.where(np.isfinite(diff), diff, np.nanmax(diff[np.isfinite(diff)],
                                                                   initial=0.0))  # fmt: skip
                m, lo, hi = mean_ci(diff)
                out.append(self.finding(
                    CLAIM_LOOP, "paired per-chain change of log final loss, advised − unstable",
                    m, (lo, hi), kind="article", predicted=None, rule="negative",
                    figure="debugging.png", ci_method=T_INTERVAL,
                    theory="the advised run's final loss is lower, chain by chain (same seed: "
                    "the same batches)",
                ))  # fmt: skip
        return out

    def _curve(self, runs) -> list[Finding]:
        fr = [_fraction_up(runs[f"probe{i}"]) for i in range(3)]
        out = []
        for other, label, rule in ((2, f"safe η = {SAFE_LR}", "positive"),
                                   (1, f"η ÷ 3 = {LR / 3:.3g}", "report")):
            d, lo, hi = welch_diff_ci(fr[0], fr[other])
            out.append(self.finding(
                CLAIM_CURVE, f"fraction of steps raising F before divergence: η = {LR} − {label}",
                d, (lo, hi), kind="article", predicted=None, rule=rule, figure="debugging.png",
                ci_method="Welch t-interval over chains (95%)",
                theory="part 1's oscillation statistic, per chain over the steps before F first "
                "exceeds F(w₀)", fraction_unstable=float(fr[0].mean()),
                fraction_other=float(fr[other].mean()),
            ))  # fmt: skip
        return out


def _fraction_up(run: RunResult) -> np.ndarray:
    """Per chain: the fraction of steps that raise F, over the steps before F first exceeds
    F(w₀) (chains that exceed it within 3 steps give no value)."""
    _, F = run.metric("objective")
    out = []
    for f in F:
        above = np.nonzero(~(f[1:] <= f[0]))[0]
        end = int(above[0]) + 1 if above.size else f.size
        if end >= 4:
            out.append(float((np.diff(f[:end]) > 0).mean()))
    return np.array(out) if out else np.array([math.nan, math.nan])


__all__ = ["UNSTABLE", "Debugging", "failed", "final_loss", "newcombe", "unstable_config"]
