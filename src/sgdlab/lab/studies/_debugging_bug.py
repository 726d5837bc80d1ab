"""The planted sampler bug of the ``debugging`` study (§5 "check for bugs").

The bug: minibatch indices drawn from the first half of the dataset only,
``randint(0, N // 2)`` instead of ``randint(0, N)`` (an off-by-one in a range). Training with
it at the safe step, the minibatch loss falls as a healthy run's does; the unbiasedness test
(:func:`sgdlab.measure.unbiasedness_test`, H0: E[g_b] = ∇F) on M independent minibatch
gradients at one point tells the two samplers apart by its p-value.
"""

from __future__ import annotations

import numpy as np
import torch

from sgdlab.engine.result import RunResult
from sgdlab.lab.findings import Finding
from sgdlab.lab.stats import T_INTERVAL, mean_ci, welch_diff_ci
from sgdlab.measure import unbiasedness_test
from sgdlab.problems import Problem

CLAIM_BUG = ("§5: a bug in the data pipeline can hide behind a plausible loss curve; the "
             "unbiasedness test of the minibatch gradient finds it.")
#: the test level at which a sampler is flagged as biased
FLAG_P = 0.01


def _indices(n: int, M: int, b: int, g: torch.Generator, buggy: bool) -> torch.Tensor:
    return torch.randint(0, n // 2 if buggy else n, (M, b), generator=g)


def minibatch_grads(problem: Problem, w: torch.Tensor, M: int, b: int, g: torch.Generator,
                    buggy: bool) -> torch.Tensor:  # fmt: skip
    """``[M, d]`` independent minibatch gradients at ``w`` from the correct or buggy sampler
    (the deterministic network: no dropout)."""
    assert problem.X is not None and problem.y is not None and problem.n is not None
    idx = _indices(problem.n, M, b, g, buggy)
    W = w.reshape(1, -1).expand(M, -1).contiguous()
    _, grads = problem.loss_and_grad(W, problem.X[idx], problem.y[idx])
    return grads


def train_buggy(problem: Problem, w0: torch.Tensor, lr: float, b: int, steps: int,
                g: torch.Generator) -> tuple[np.ndarray, torch.Tensor]:  # fmt: skip
    """SGD from ``w0 [K, d]`` with the buggy sampler: the minibatch loss ``[K, steps]`` and
    the final parameters."""
    assert problem.X is not None and problem.y is not None and problem.n is not None
    W = w0.clone()
    losses = []
    for _ in range(steps):
        idx = _indices(problem.n, W.shape[0], b, g, True)
        loss, grad = problem.loss_and_grad(W, problem.X[idx], problem.y[idx])
        W = W - lr * grad
        losses.append(loss.numpy())
    return np.stack(losses, 1), W


def bug_findings(study, problem: Problem, healthy: RunResult, s: dict, seed: int) -> list[Finding]:
    """The planted bug's findings: the test's verdict on both samplers at one point (engine
    checks), and the buggy run's plausible loss curve and worse full-data loss (reported)."""
    g = torch.Generator().manual_seed(seed)
    live = np.nonzero(~healthy.diverged)[0]
    w = healthy.final_params[int(live[0])].double()
    grad_F = problem.grad_F(w.unsqueeze(0))[0]
    b = int(healthy.config["batch"]["size"])
    out = []
    pvals = {}
    for buggy in (False, True):
        G = minibatch_grads(problem, w, s["draws"], b, g, buggy)
        res = unbiasedness_test(G, grad_F)
        pvals[buggy] = res.p_value
        name = "buggy (indices from the first half)" if buggy else "correct"
        out.append(study.finding(
            CLAIM_BUG, f"unbiasedness test flags the {name} sampler (p < {FLAG_P}): 1 yes, 0 no",
            float(res.p_value < FLAG_P), None, kind="engine-check", predicted=float(buggy),
            rule="exact", figure="debugging.png", p_value=res.p_value, method=res.method,
            n_draws=res.n_draws, bias_norm=res.bias_norm, bias_norm_null=res.bias_norm_null,
            theory="measure.unbiasedness_test, H0: E[g_b] = ∇F (a correct sampler is flagged "
            f"with probability {FLAG_P})",
        ))  # fmt: skip
    lr = float(healthy.config["optimizer"]["lr"])
    steps = s["steps"]
    K = min(16, healthy.chains)
    w0 = torch.stack([problem.init_params(gk) for gk in
                      [torch.Generator().manual_seed(seed + 1 + k) for k in range(K)]])  # fmt: skip
    loss, W = train_buggy(problem, w0, lr, b, steps, g)
    q = max(1, steps // 10)
    ratio = np.log(loss[:, -q:].mean(1) / loss[:, :q].mean(1))
    m, lo, hi = mean_ci(ratio)
    out.append(study.finding(
        CLAIM_BUG, f"buggy run: log(minibatch loss, last 10% / first 10% of {steps} steps)",
        m, (lo, hi), kind="article", predicted=None, rule="report", figure="debugging.png",
        ci_method=T_INTERVAL, theory="reported: a falling curve, as a healthy run's",
    ))  # fmt: skip
    with torch.no_grad():
        F_bug = problem.objective(W).numpy()
        F_ok = problem.objective(healthy.final_params[live].double()).numpy()
    d, lo, hi = welch_diff_ci(F_bug, F_ok)
    out.append(study.finding(
        CLAIM_BUG, "full-data loss F at the end: buggy − correct sampler", d, (lo, hi),
        kind="article", predicted=None, rule="report", figure="debugging.png",
        ci_method="Welch t-interval over chains (95%)",
        theory="reported: the bug trains on half the data", p_values=pvals,
    ))  # fmt: skip
    return out
