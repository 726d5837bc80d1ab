"""The benefits studies (issue 11): escape, langevin, flat-minima, implicit-regularization.

Covers: ``sgdlab.lab.studies.escape`` (+ ``_escape_saddle``, ``_escape_plots``),
``langevin_gibbs`` (+ ``_langevin_linreg``, ``_langevin_plots``), ``flat_minima``
(+ ``_flat_plots``), ``implicit_reg`` (+ ``_implicit_plots``), their helpers
``_benefits_common`` and the interval helpers they added to ``sgdlab.lab.stats``; every
study's quick-mode (kind, verdict) list on one shared quick run.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats as sps

import sgdlab
import sgdlab.lab.studies.escape  # registers the study (as do the three below)
import sgdlab.lab.studies.flat_minima
import sgdlab.lab.studies.implicit_reg
import sgdlab.lab.studies.langevin_gibbs
from sgdlab.config import load_config
from sgdlab.engine.plan import prepare
from sgdlab.errors import ConfigError
from sgdlab.lab.stats import integrated_autocorrelation_time, welch_diff_ci, wilson_ci
from sgdlab.lab.studies import all_studies
from sgdlab.lab.studies._benefits_common import first_exit, positions
from sgdlab.lab.studies._common import build
from sgdlab.lab.studies.escape import _geometry_of
from sgdlab.problems import build_problem
from sgdlab.sources import initial_params

#: every test here reads the session's one quick lab run: keep them on one xdist worker
pytestmark = pytest.mark.xdist_group("quick_lab")

BENEFITS = ("escape", "langevin", "flat-minima", "implicit-regularization")


def test_registered_with_claims_and_sections():
    reg = all_studies()
    for name in BENEFITS:
        assert name in reg and reg[name].claim and reg[name].section.startswith("3.1")


@pytest.mark.parametrize("name", BENEFITS)
def test_grids_are_valid_configs_and_full_is_larger(name):
    study = all_studies()[name]()
    cost = {}
    for quick in (True, False):
        grid = study.grid(quick)
        hashes = {load_config(c).hash() for c in grid.values()}
        assert len(hashes) == len(grid), f"{name}: two runs of the grid share a config"
        assert all(c.get("seed") is not None for c in grid.values())  # reusable from a store
        cost[quick] = sum(c["chains"] * c["steps"] for c in grid.values())
    assert cost[False] > cost[True]


# ------------------------------------------------------------------ interval helpers
def test_wilson_interval_is_scipys_and_holds_at_zero():
    for k, n in ((0, 50), (7, 40), (40, 40)):
        p, lo, hi = wilson_ci(k, n)
        ref = sps.binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert (lo, hi) == pytest.approx((ref.low, ref.high), abs=1e-12) and p == k / n
    with pytest.raises(ValueError):
        wilson_ci(3, 2)


def test_welch_interval_is_scipys():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 30), rng.normal(0.3, 2, 50)
    d, lo, hi = welch_diff_ci(a, b)
    ref = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert d == pytest.approx(a.mean() - b.mean())
    assert (lo, hi) == pytest.approx((ref.low, ref.high), rel=1e-10)


def test_integrated_autocorrelation_time_of_an_ar1():
    """AR(1) with φ = 0.8: τ_int = (1 + φ)/(1 − φ) = 9; 64 chains × 20 000 steps: the Sokal
    estimate's relative error is about √(2(2M+1)/n_total) ≈ 1%; tolerance 5%."""
    rng = np.random.default_rng(1)
    phi, K, n = 0.8, 64, 20_000
    x = np.zeros((K, n))
    e = rng.standard_normal((K, n))
    for t in range(1, n):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    assert integrated_autocorrelation_time(x) == pytest.approx(9.0, rel=0.05)


# ------------------------------------------------------------------ positions, exits
def test_positions_are_read_exactly_from_the_records():
    """A tilted double well run, every step recorded: w from F and ‖w − w*‖ equals the final
    parameters bit for bit, and an exit is seen at the first record past the point."""
    cfg = {"problem": {"name": "tilted_double_well", "noise_std": 2.0},
           "optimizer": {"name": "sgd", "lr": 0.05}, "batch": {"size": 1, "sampling": "stream"},
           "chains": 64, "steps": 300, "seed": 5, "record": {"every": 1}, "dtype": "float64"}
    run = sgdlab.run(cfg)
    prob = build(run)
    steps, w, other = positions(run, prob)
    np.testing.assert_allclose(w[:, -1], run.final_params[:, 0].numpy(), rtol=0, atol=1e-12)
    t, esc = first_exit(steps, w, below=-0.4, other=other)
    for k in range(8):
        hit = np.nonzero(w[k] <= -0.4)[0]
        assert (t[k], esc[k]) == ((steps[hit[0]], True) if hit.size else (300, False))


def test_escape_refuses_a_landscape_without_a_barrier():
    steep = build_problem("tilted_double_well", {"c": 3.0})
    with pytest.raises(ConfigError, match="no barrier"):
        _geometry_of(steep)


# ------------------------------------------------------------------ the quick run
@pytest.fixture
def quick_benefits(quick_lab):
    """The lab's quick run (every study, once per session: ``conftest.quick_lab``)."""
    return quick_lab


A, E, X = "article", "engine-check", "analytic"
ok, no, inc, nc = "agrees", "disagrees", "inconclusive", "no_claim"
#: the (kind, verdict) of each study's quick-run findings, in order.
QUICK_VERDICTS = {
    # GD 0 and 5 exact-chain probabilities and the monotone rise, per landscape; 5 escape
    # times at η = 0.1: engine agrees, the SDE's (Langevin) time disagrees (the chain escapes
    # ≈ 27% sooner); at η = 0.05, 0.025 it agrees; the Arrhenius slope; the saddle
    "escape": ([(A, ok)] + [(E, ok)] * 5 + [(A, ok)]) * 2 + [(E, ok), (A, no)] * 5
    + [(E, ok), (A, ok)] * 2 + [(E, ok), (A, ok)]
    + [(A, ok), (E, ok)] + [(E, ok)] * 5 + [(E, ok), (X, nc), (A, ok)],
    # per landscape: zero-η limit, engine level (quadratic: Gibbs's T/κ at ηκ = 0.4 fails),
    # TV, SGD = SGLD; anisotropic linear regression: Gibbs fails
    "langevin": [
        (A, ok), (E, ok), (A, no), (E, ok), (E, ok),
        (A, ok), (E, ok), (E, ok), (E, ok),
        (A, ok), (E, ok), (E, ok), (E, ok),
        (E, ok), (E, ok), (A, no), (X, nc), (E, nc),
    ],
    # equal depths at ηκ_s = 0.8: SGD matches the exact chain, not Gibbs (more flat mass);
    # at ηκ_s = 0.08 Gibbs holds; the crossover exists but below Gibbs's T*
    "flat-minima": [(E, ok), (A, no)] * 4 + [(E, ok), (A, ok), (A, ok)]
    + [(E, ok), (A, no), (A, ok), (X, nc)],
    # 8 chains per setting: the directions are not resolved in quick mode
    "implicit-regularization": [(A, inc)] + [(A, nc)] * 3 + [(A, inc), (A, ok), (A, inc),
                                                            (A, inc)],
}


@pytest.mark.slow
@pytest.mark.parametrize("study", BENEFITS)
def test_quick_verdicts(quick_benefits, study):
    found = [f for f in quick_benefits.findings if f.study == study]
    got = [(f.kind, f.verdict) for f in found]
    assert got == QUICK_VERDICTS[study], [f.to_dict() for f in found]
    assert (quick_benefits.out / f"{study}.png").stat().st_size > 20_000
    for f in found:  # every tolerance is derived, every judged CI is finite
        assert f.tolerance == 0 or f.details.get("tolerance_derivation")
        assert f.details.get("theory")
        if f.kind != "analytic" and f.verdict != "no_claim":
            assert np.isfinite([f.ci_low, f.ci_high]).all() and f.ci_low <= f.ci_high


@pytest.mark.slow
def test_escape_times_use_their_own_runs_temperature(quick_benefits):
    """Each escape-time finding's T is ησ²/(2b) of one of the grid's escape-time runs, and the
    seven findings name seven different (T, η) runs."""
    times = [f for f in quick_benefits.findings
             if f.study == "escape" and "E min(N, H)" in f.quantity]  # fmt: skip
    grid = all_studies()["escape"]().grid(True)
    runs = {(round(c["optimizer"]["lr"] * c["problem"]["noise_std"] ** 2 / 2, 3),
             c["optimizer"]["lr"]) for k, c in grid.items() if k.startswith("time/")}  # fmt: skip
    named = {(round(float(f.quantity.split("(T = ")[1].split(")")[0]), 3),
              float(f.quantity.split("), η = ")[1].split(" ")[0])) for f in times}  # fmt: skip
    assert len(times) == 7 and named == runs


def test_implicit_regularization_pairs_chains_by_initialisation():
    """Chain k starts from the same weights in every setting (the init stream depends on the
    chain's number only), which makes the paired differences legitimate."""
    study = all_studies()["implicit-regularization"]()
    grid = study.grid(True)
    inits = []
    for name in ("small", "large-scaled"):
        plan = prepare({**grid[name], "steps": 1, "chains": 3})
        inits.append(initial_params(plan.problem, plan.streams, plan.chain_ids))
    torch.testing.assert_close(inits[0], inits[1])
