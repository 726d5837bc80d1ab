"""Built-in studies: registry, valid grids, and every study's verdicts on its quick run.

Covers: ``sgdlab.lab.studies.noise_floor``, schedules, rates, efficiency, oscillation and
their shared helpers (common).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from sgdlab.config import load_config
from sgdlab.lab.findings import Finding
from sgdlab.lab.studies import all_studies
from sgdlab.store import Store

#: every test here reads the session's one quick lab run: keep them on one xdist worker
pytestmark = pytest.mark.xdist_group("quick_lab")

BUILTIN = ("efficiency", "oscillation", "noise-floor", "schedules", "rates")  # the report's order


def test_registry_order_and_claims():
    reg = all_studies()
    assert tuple(n for n in reg if n in BUILTIN) == BUILTIN
    for name in BUILTIN:
        assert reg[name].claim and reg[name].section


def test_grids_are_valid_configs():
    for name in BUILTIN:
        study = all_studies()[name]()
        for quick in (True, False):
            grid = study.grid(quick)
            assert grid
            hashes = {load_config(c).hash() for c in grid.values()}
            assert len(hashes) == len(grid), f"{name}: two runs of the grid share a config"


def test_full_grids_are_larger():
    for name in BUILTIN:
        study = all_studies()[name]()
        cost = {
            q: sum(c["chains"] * c["steps"] for c in study.grid(q).values()) for q in (True, False)
        }
        assert cost[False] > cost[True]


#: the (kind, verdict) of each study's quick-run findings, in order — the lab's regression test.
#: Findings measured in seconds (``details["machine"]``) depend on the machine and are checked
#: for their form only (test_machine_labelled_findings).
A, E, B, X = "article", "engine-check", "bound", "analytic"
QUICK_VERDICTS = {
    "noise-floor": [(E, "agrees")] * 5 + [(B, "agrees")] + [(E, "agrees")] * 2
    + [(A, "agrees")] * 2,
    "schedules": [(A, "agrees")] * 3 + [(A, "no_claim")]
    + [(E, "agrees"), (X, "agrees"), (E, "agrees"), (X, "agrees"), (E, "agrees"),
       (X, "disagrees")] + [(E, "agrees"), (X, "no_claim")] * 4,
    # β/(γ+t) fails the article's O(1/T) for βμ = ¼
    "rates": [(A, "disagrees"), (E, "agrees"), (A, "agrees"), (E, "agrees"), (A, "agrees"),
              (E, "agrees"), (B, "agrees")] + [(A, "agrees"), (E, "agrees")] * 2
    + [(B, "agrees")] + [(A, "agrees"), (E, "agrees")] * 2 + [(B, "agrees"), (E, "agrees"),
                                                              (B, "agrees")],
    "efficiency": [(A, "agrees")] * 3,
    "oscillation": [(E, "agrees"), (A, "no_claim"), (A, "no_claim")] * 2 + [(E, "agrees")] * 2,
}


@pytest.mark.slow
@pytest.mark.parametrize("study", BUILTIN)
def test_quick_verdicts(quick_lab, study):
    found = [f for f in quick_lab.findings if f.study == study and "machine" not in f.details]
    got = [(f.kind, f.verdict) for f in found]
    assert got == QUICK_VERDICTS[study], [f.to_dict() for f in found]
    assert (quick_lab.out / f"{study}.png").stat().st_size > 10_000
    for f in found:  # every tolerance is derived, every judged CI is finite
        assert f.tolerance == 0 or f.details.get("tolerance_derivation")
        if f.kind != "analytic" and f.verdict != "no_claim":
            assert np.isfinite([f.ci_low, f.ci_high]).all() and f.ci_low <= f.ci_high


@pytest.mark.slow
def test_machine_labelled_findings(quick_lab):
    """Wall-clock findings name the machine and have intervals of non-zero width (over the
    chains and the five timing repeats)."""
    timed = [f for f in quick_lab.findings if "machine" in f.details and f.study in BUILTIN]
    assert len(timed) == 3 and all(f.study == "efficiency" for f in timed)
    for f in timed:
        assert "cores" in f.details["machine"] and "seconds on this machine" in f.quantity
        if np.isfinite(f.ci_low):
            assert f.ci_high > f.ci_low
    evals = [f for f in quick_lab.findings if f.study == "efficiency" and f not in timed]
    assert all(f.ci_high > f.ci_low for f in evals)  # the bootstrap is over real variation


@pytest.mark.slow
def test_rates_theory_uses_each_runs_own_problem(quick_lab):
    """Regression: the β/(γ+t) theory was once computed on the η₀/√t run's problem (another
    seed, so other noise draws: tr C 4.85 instead of 5.05). Each finding's tr C must be that
    of the problem rebuilt from its own run."""
    from sgdlab.lab.studies._common import build

    with Store(quick_lab.out / "s.duckdb", read_only=True) as db:
        ids = {r["name"]: r["run_id"] for r in db.runs(kind="lab")}
        own = build(db.load_result(ids["rates/sc/beta_gamma"]))
        other = build(db.load_result(ids["rates/sc/sqrt"]))
    own_trace = float(own.C.numpy().trace())
    assert abs(own_trace - float(other.C.numpy().trace())) > 0.05  # the two data differ
    beta = [f for f in quick_lab.findings if f.study == "rates" and "β/(γ+t), β=" in f.quantity
            and f.kind == "article"]  # fmt: skip
    assert len(beta) == 3
    for f in beta:
        assert f.details["trace_C"] == pytest.approx(own_trace, rel=1e-12)


@pytest.mark.slow
def test_quick_outputs(quick_lab):
    data = json.loads(quick_lab.findings_json.read_text())
    assert [f["study"] for f in data["findings"]] == [f.study for f in quick_lab.findings]
    assert "| oscillation |" in quick_lab.report.read_text()
    spread = next(f for f in quick_lab.findings if "spread" in f.quantity)
    assert abs(spread.measured - 0.5) < 0.05 and spread.details["ci"].startswith("percentile")
    with Store(quick_lab.out / "s.duckdb", read_only=True) as db:
        found = [Finding.from_dict(d) for d in db.findings()]
    assert [f.to_dict() for f in found] == [f.to_dict() for f in quick_lab.findings]
    assert all(f.details["mode"] == "quick" for f in found)
