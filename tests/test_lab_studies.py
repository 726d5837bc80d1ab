"""Built-in studies: registry, valid grids, and every study's verdicts on its quick run.

Covers: ``sgdlab.lab.studies.noise_floor``, schedules, rates, efficiency, oscillation and
their shared helpers (common).
"""

from __future__ import annotations

import json

import pytest

from sgdlab.config import load_config
from sgdlab.lab.findings import Finding
from sgdlab.lab.session import run_studies
from sgdlab.lab.studies import all_studies
from sgdlab.store import Store

BUILTIN = ("noise-floor", "schedules", "rates", "efficiency", "oscillation")


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


@pytest.fixture(scope="module")
def quick_lab(tmp_path_factory):
    """Every built-in study in quick mode, run once for all the tests of this module."""
    out = tmp_path_factory.mktemp("quick-lab")
    return run_studies(list(BUILTIN), quick=True, store=out / "s.duckdb", out=out)


#: the verdicts of each study's quick run, finding by finding (the lab's regression test)
QUICK_VERDICTS = {
    "noise-floor": ["agrees"] * 10 + ["inconclusive"],
    "schedules": ["agrees"] * 8 + ["disagrees", "agrees"]
    + ["no_claim", "no_claim", "agrees"] * 3 + ["no_claim", "no_claim", "agrees", "agrees"],
    "rates": ["agrees"] * 9,
    "efficiency": ["agrees"] * 3,
    "oscillation": ["agrees"] * 4,
}


@pytest.mark.slow
@pytest.mark.parametrize("study", BUILTIN)
def test_quick_verdicts(quick_lab, study):
    found = [f for f in quick_lab.findings if f.study == study]
    assert [f.verdict for f in found] == QUICK_VERDICTS[study], [f.to_dict() for f in found]
    assert (quick_lab.out / f"{study}.png").stat().st_size > 10_000


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
