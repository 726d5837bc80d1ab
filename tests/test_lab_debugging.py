"""The ``debugging`` study (§5): its quick-mode verdicts, asserted on the session's quick
lab, and its pieces (failure criterion, Newcombe's interval, the planted bug)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sgdlab.lab.studies._debugging_bug import minibatch_grads
from sgdlab.lab.studies.debugging import newcombe
from sgdlab.measure import unbiasedness_test
from sgdlab.problems import build_problem
from sgdlab.rng import Streams

pytestmark = pytest.mark.xdist_group("quick_lab")

A, E = "article", "engine-check"
#: the unstable run's failure rate (reported), five remedies and the paired final loss of
#: the advised run (each lowers it), the oscillation statistic (against a safe η, then
#: reported against η ÷ 3), the planted bug (two engine checks, two reports)
QUICK = ([(A, "no_claim")] + [(A, "agrees")] * 6 + [(A, "agrees"), (A, "no_claim")]
         + [(E, "agrees")] * 2 + [(A, "no_claim")] * 2)  # fmt: skip


@pytest.mark.slow
def test_quick_verdicts(quick_lab):
    found = [f for f in quick_lab.findings if f.study == "debugging"]
    assert [(f.kind, f.verdict) for f in found] == QUICK, [f.to_dict() for f in found]
    assert (quick_lab.out / "debugging.png").stat().st_size > 10_000
    for f in found:
        if f.verdict != "no_claim" and f.details["rule"] != "exact":
            assert np.isfinite([f.ci_low, f.ci_high]).all() and f.ci_low <= f.ci_high
    assert found[0].measured >= 0.75  # the unstable run is unstable
    advised = next(f for f in found if "advise --apply" in f.quantity)
    assert "optimizer.lr" in advised.quantity and advised.details["failure_rate"] <= 0.25


def test_newcombe_interval():
    d, lo, hi = newcombe(0, 16, 16, 16)
    assert d == -1.0 and hi < -0.7 and lo == pytest.approx(-1.0)
    d, lo, hi = newcombe(5, 20, 5, 20)
    assert d == 0 and lo < 0 < hi and lo == pytest.approx(-hi)


def test_the_planted_bug_is_flagged_and_the_correct_sampler_is_not():
    problem = build_problem("mlp", {"dataset": "digits", "widths": [8]}, Streams(0),
                            torch.float64)  # fmt: skip
    w = problem.init_params(torch.Generator().manual_seed(1))
    grad_F = problem.grad_F(w.unsqueeze(0))[0]
    g = torch.Generator().manual_seed(2)
    ok = unbiasedness_test(minibatch_grads(problem, w, 256, 16, g, False), grad_F)
    bug = unbiasedness_test(minibatch_grads(problem, w, 256, 16, g, True), grad_F)
    assert ok.p_value > 0.01 and bug.p_value < 1e-4
