"""Built-in studies: registry, valid grids, and the quick mode of the oscillation study.

Covers: ``sgdlab.lab.studies.noise_floor``, schedules, rates, efficiency, oscillation and
their shared helpers (common).
"""

from __future__ import annotations

import json

from sgdlab.config import load_config
from sgdlab.lab.findings import Finding
from sgdlab.lab.session import run_studies
from sgdlab.lab.studies import all_studies

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


def test_oscillation_quick(tmp_path):
    o = run_studies(["oscillation"], quick=True, store=tmp_path / "s.duckdb", out=tmp_path)
    assert len(o.findings) == 4
    assert all(f.verdict == "agrees" for f in o.findings), [f.to_dict() for f in o.findings]
    assert (tmp_path / "oscillation.png").stat().st_size > 10_000
    spread = next(f for f in o.findings if "spread" in f.quantity)
    assert abs(spread.measured - 0.5) < 0.05 and spread.details["ci"].startswith("percentile")
    data = json.loads((tmp_path / "findings.json").read_text())
    assert {f["study"] for f in data["findings"]} == {"oscillation"}


def test_every_analysis_runs_at_tiny_settings(tmp_path, monkeypatch):
    """The analyses of noise-floor, schedules, rates and efficiency run end to end (tiny
    settings: the verdicts are not the point here, the code paths and the outputs are)."""
    from sgdlab.lab.studies import efficiency, noise_floor, rates, schedules

    monkeypatch.setattr(rates, "_settings", lambda quick: (400, 16))
    monkeypatch.setattr(schedules.Schedules, "_T", lambda self, quick: (400, 16))
    monkeypatch.setattr(noise_floor, "_settings", lambda quick: {
        "q_chains": 16, "q_steps": 400, "q_burn": 200,
        "l_chains": 4, "l_steps": 400, "l_burn": 200, "l_every": 50})  # fmt: skip
    monkeypatch.setattr(efficiency, "_settings", lambda quick: {
        "Ns": (300, 3000), "chains": 4, "sgd_steps": 300, "gd_steps": 30})  # fmt: skip
    names = ["noise-floor", "schedules", "rates", "efficiency"]
    o = run_studies(names, quick=True, out=tmp_path, use_store=False)
    assert {f.study for f in o.findings} == set(names)
    assert all(f.verdict in ("agrees", "disagrees", "inconclusive", "no_claim")
               for f in o.findings)  # fmt: skip
    for name in names:
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    assert (tmp_path / "report.md").exists()


def test_findings_record_their_mode(tmp_path):
    from sgdlab.store import Store

    run_studies(["oscillation"], quick=True, store=tmp_path / "s.duckdb", out=tmp_path)
    with Store(tmp_path / "s.duckdb", read_only=True) as db:
        found = [Finding.from_dict(d) for d in db.findings("oscillation")]
    assert found and all(f.details["mode"] == "quick" for f in found)
