"""The HTML report without a browser: the page's parts, its data, its figure specs.

Covers: ``sgdlab.report.html``, ``sgdlab.report.interactive``, ``sgdlab.lab.page``,
``sgdlab.lab.page_runs``, ``sgdlab report`` and the page path printed by ``sgdlab lab run``.
"""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

import _report_fixtures as fx
from sgdlab.cli import app
from sgdlab.lab.page_runs import MONITOR_PANELS
from sgdlab.report import interactive as I
from sgdlab.report.figures import band


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    fx.register()
    try:
        yield fx.build(tmp_path_factory.mktemp("page"))
    finally:
        fx.unregister()


def _data(text: str) -> dict:
    m = re.search(r'<script id="sgdlab-data" type="application/json">(.*?)</script>', text, re.S)
    assert m is not None
    return json.loads(m.group(1))


def test_page_is_written_after_the_markdown_report_and_is_self_contained(built):
    outcome, _, _ = built
    assert outcome.html == outcome.out / "index.html" and outcome.report.exists()
    text = outcome.html.read_text()
    # nothing is fetched: no external script, style sheet or image
    assert not re.search(r"<script[^>]+src=", text)
    assert not re.search(r"<link[^>]+href=", text)
    assert not re.search(r'<img[^>]+src="(?!data:)', text)
    assert "Plotly" in text and 'src="data:image/png;base64,' in text
    # the header: versions, machine, mode, date
    for label in ("sgdlab:", "torch:", "machine:", "mode:", "date:"):
        assert label in text


def test_one_row_per_finding_grouped_by_section_with_figure_links(built):
    outcome, _, _ = built
    text = outcome.html.read_text()
    rows = re.findall(r'<tr class="finding" data-study="([^"]+)" data-kind="([^"]+)" '
                      r'data-verdict="([^"]+)"', text)  # fmt: skip
    assert len(rows) == len(outcome.findings) == 4
    assert sorted(v for _, _, v in rows) == sorted(f.verdict for f in outcome.findings)
    assert {v for _, _, v in rows} == {"agrees", "disagrees", "no_claim"}
    assert rows[0][1] == "article"  # article findings first within a section
    assert text.count('class="section-head"') == 1 and "article §9.9 Z" in text
    assert 'href="#fig-_page"' in text and 'id="fig-_page"' in text
    # markup in a quantity stays text, in the table and in the figure data
    assert "<b>not bold</b>" not in text and "&lt;b&gt;not bold&lt;/b&gt;" in text
    assert "</script><b>" not in text
    hovers = json.dumps(_data(text)["figs"]["study-_page-findings"], ensure_ascii=False)
    assert html.escape(fx.TRICKY) in hovers and fx.TRICKY not in hovers


def test_figure_data_for_studies_and_every_run(built):
    outcome, _, rid = built
    data = _data(outcome.html.read_text())
    figs, runs = data["figs"], data["runs"]
    assert "study-_page-curves" in figs and "study-_page-findings" in figs
    assert rid in runs and len(runs) == 3  # two lab runs and the Monitor run
    for run in runs.values():
        assert run["figs"] and all(f in figs for f in run["figs"])
    # a run sweeping η across its chains: one band per η
    sweep = next(r for r in runs.values() if "_page/sweep" in r["label"])
    names = {t["name"] for t in figs[sweep["figs"][0]]["data"] if t.get("showlegend", True)}
    assert names == {"lr=0.05", "lr=0.2"}
    assert sweep["figs"][0].endswith("-suboptimality")


def test_monitor_dashboard_panels_and_advice(built):
    outcome, _, rid = built
    data = _data(outcome.html.read_text())
    run = data["runs"][rid]
    panels = [f.split("-", 2)[2] for f in run["figs"]]
    assert panels[:6] == list(MONITOR_PANELS)
    assert run["advice"] is not None  # a list (possibly empty when no rule fired)
    assert all(len(a) == 2 for a in run["advice"])


def test_report_command_rebuilds_the_page_from_the_store(built, tmp_path):
    outcome, db, rid = built
    r = CliRunner().invoke(app, ["report", "--store", str(db), "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert r.output.strip().splitlines()[-1].endswith("index.html")
    text = (tmp_path / "index.html").read_text()
    assert text.count('<tr class="finding"') == len(outcome.findings)
    # the studies' PNG is found in the lab's folder beside the store
    assert 'src="data:image/png;base64,' in text
    r = CliRunner().invoke(app, ["report", rid[:6], "--store", str(db), "--out",
                                 str(tmp_path / "one")])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert list(_data((tmp_path / "one" / "index.html").read_text())["runs"]) == [rid]
    r = CliRunner().invoke(app, ["report", "nosuchrun", "--store", str(db)])
    assert r.exit_code == 1 and "no run 'nosuchrun'" in r.output
    r = CliRunner().invoke(app, ["report", "--store", str(tmp_path / "missing.duckdb")])
    assert r.exit_code == 1 and "no results store" in r.output


def test_lab_run_ends_by_printing_the_page(tmp_path):
    fx.register()
    try:
        r = CliRunner().invoke(app, ["lab", "run", fx.STUDY, "--store", str(tmp_path / "s.duckdb"),
                                     "--out", str(tmp_path / "rep")])  # fmt: skip
    finally:
        fx.unregister()
    assert r.exit_code == 0, r.output
    last = r.output.strip().splitlines()[-1]
    assert last.startswith("page:") and last.endswith("index.html")
    assert (tmp_path / "rep" / "index.html").is_file()


def test_thin_keeps_ends_and_log_spaced_points():
    assert list(I.thin(5)) == [0, 1, 2, 3, 4]
    idx = I.thin(10_000)
    assert len(idx) <= I.MAX_POINTS and idx[0] == 0 and idx[-1] == 9999
    assert {1, 2, 3} <= set(idx)  # early steps survive for a log axis
    assert np.all(np.diff(idx) > 0)


def test_band_traces_are_the_median_and_percentiles_across_chains():
    rng = np.random.default_rng(0)
    steps, v = np.arange(0, 1000, 5), rng.lognormal(size=(9, 200))
    lo_t, hi_t, med_t = I.band_traces(steps, v, "x", I.COLORS[0])
    idx = I.thin(200)
    med, lo, hi = band(v[:, idx])
    # values are rounded to 4 significant digits: a relative error of at most 5e-4
    for trace, ref in ((med_t, med), (lo_t, lo), (hi_t, hi)):
        np.testing.assert_allclose(trace["y"], ref, rtol=5e-4, atol=0)
    assert med_t["x"] == [float(s) for s in steps[idx]] and hi_t["fill"] == "tonexty"
    assert I.band_traces(steps, v[:1], "x", I.COLORS[0]) == [I.band_traces(
        steps, v[:1], "x", I.COLORS[0])[0]]  # one chain: no band  # fmt: skip
    # NaN (a diverged chain's later values) are gaps, never strings or crashes
    v[:, 50:] = np.nan
    assert I.band_traces(steps, v, "x", I.COLORS[0])[2]["y"][-1] is None


def test_chain_groups_follow_per_chain_lists():
    groups = I.chain_groups({"name": "sgd", "lr": [0.1, 0.2], "momentum": 0.9}, 4)
    assert [(lab, list(idx)) for lab, idx in groups] == [("lr=0.1", [0, 1]), ("lr=0.2", [2, 3])]
    two = I.chain_groups({"lr": [0.1, 0.2], "momentum": [0.0, 0.5, 0.9, 0.99]}, 8)
    assert len(two) == 4 and two[0][0] == "lr=0.1, momentum=0"
    assert I.chain_groups({"lr": 0.1}, 3)[0][0] == "all chains"


def test_forest_figure_places_findings_in_standard_errors():
    se = 0.1 / I.Z95
    rows = [
        {"label": "a", "measured": 1.1, "ci_low": 1.0, "ci_high": 1.2, "predicted": 1.0,
         "tolerance": 0.05, "rule": "contains", "verdict": "agrees", "hover": "a"},
        {"label": "b", "measured": 5.0, "ci_low": 4.9, "ci_high": 5.1, "predicted": 1.0,
         "tolerance": 0.0, "rule": "contains", "verdict": "disagrees", "hover": "b"},
        {"label": "c", "measured": 1.0, "ci_low": None, "ci_high": None, "predicted": 1.0,
         "tolerance": 0.0, "rule": "exact", "verdict": "agrees", "hover": "c"},
    ]  # fmt: skip
    fig = I.forest_figure("t", rows)
    bar, *points = fig["data"]
    assert bar["y"] == ["a", "b"]  # the analytic row has no interval: left out
    assert bar["base"][0] == pytest.approx(-0.05 / se) and bar["x"][0] == pytest.approx(0.1 / se)
    agrees = next(t for t in points if t["name"] == "agrees")
    assert agrees["x"][0] == pytest.approx(0.1 / se)  # z = 1.96
    assert agrees["error_x"]["value"] == pytest.approx(I.Z95)
    far = next(t for t in points if t["name"].startswith("disagrees"))
    assert far["x"] == [I.LIMIT] and far["customdata"][0] == pytest.approx(4.0 / se, rel=1e-3)
    assert I.forest_figure("t", rows[2:]) is None
