"""Lab framework: verdict rules, CIs, executors (bit-identical), store reuse, report, CLI.

Covers: ``sgdlab.lab.session``, ``sgdlab.lab.report``, ``sgdlab.lab.executor``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from sgdlab.cli import app
from sgdlab.lab import findings as F
from sgdlab.lab.executor import LocalExecutor, ProcessExecutor
from sgdlab.lab.findings import Finding
from sgdlab.lab.session import run_studies
from sgdlab.lab.stats import bootstrap_ci, mean_ci, probe_seed, window_mean
from sgdlab.lab.study import STUDIES, Context, Study, register
from sgdlab.store import Store


def test_verdict_rules():
    assert F.verdict_band(0.98, 1.02, 1.0, 0.05) == "agrees"
    assert F.verdict_band(1.06, 1.2, 1.0, 0.05) == "disagrees"
    assert F.verdict_band(1.0, 1.2, 1.0, 0.05) == "inconclusive"
    assert F.verdict_upper_bound(0.1, 0.5, 1.0) == "agrees"
    assert F.verdict_upper_bound(1.1, 1.5, 1.0) == "disagrees"
    assert F.verdict_upper_bound(0.9, 1.1, 1.0) == "inconclusive"
    assert F.verdict_sign(0.1, 0.3, +1) == "agrees"
    assert F.verdict_sign(-0.3, -0.1, +1) == "disagrees"
    assert F.verdict_sign(-0.3, -0.1, -1) == "agrees"
    assert F.verdict_exact(0.0, 1.0) == "disagrees"
    assert F.verdict_exact(1.0, None) == "no_claim"
    assert F.verdict_contains(0.9, 1.1, 1.0, 0.0) == "agrees"
    assert F.verdict_contains(1.05, 1.1, 1.0, 0.0) == "disagrees"
    assert F.verdict_contains(1.05, 1.1, 1.0, 0.06) == "agrees"  # a stated bias closes the gap
    assert F.verdict_contains(float("nan"), 1.1, 1.0, 0.0) == "inconclusive"
    assert F.verdict_inside(2, 3, 1, 4) == "agrees" and F.verdict_inside(5, 6, 1, 4) == "disagrees"
    f = F.make_finding("s", "c", "q", 1.0, (0.99, 1.01), kind="article", predicted=1.0,
                       tolerance=0.05, tolerance_derivation="a model error", rule="band")
    assert f.verdict == "agrees" and f.details["rule"] == "band" and f.inside_ci
    assert F.Finding.from_dict(json.loads(json.dumps(f.to_dict()))) == f
    assert f.to_dict()["prediction_inside_ci"] is True
    with pytest.raises(ValueError, match="rule"):
        F.make_finding("s", "c", "q", 1.0, (0, 2), kind="article", predicted=1.0, rule="nope")


def test_findings_need_a_kind_and_a_derived_tolerance():
    with pytest.raises(ValueError, match="kind"):
        F.make_finding("s", "c", "q", 1.0, (0, 2), kind="opinion", predicted=1.0,
                       rule="contains")  # fmt: skip
    with pytest.raises(ValueError, match="derivation"):
        F.make_finding("s", "c", "q", 1.0, (0, 2), kind="article", predicted=1.0,
                       tolerance=0.1, rule="band")  # fmt: skip


def test_contains_records_power_and_bounds_record_tightness():
    f = F.make_finding("s", "c", "q", 1.0, (0.9, 1.1), kind="engine-check", predicted=1.2,
                       rule="contains")  # fmt: skip
    assert f.verdict == "disagrees" and f.inside_ci is False
    # SE = 0.1/1.96, detectable with 80% power: (1.96 + 0.84)·SE
    assert f.details["detectable_80"] == pytest.approx((1.959964 + 0.841621) * 0.1 / 1.959964)
    b = F.make_finding("s", "c", "q", 2.0, (1.5, 2.5), kind="bound", predicted=8.0,
                       rule="upper_bound")  # fmt: skip
    assert b.verdict == "agrees" and b.details["tightness"] == 0.25 and b.inside_ci is None
    lo = F.make_finding("s", "c", "q", 2.0, (1.5, 2.5), kind="article", predicted=1.0,
                        rule="lower_bound")  # fmt: skip
    assert lo.verdict == "agrees"
    r = F.make_finding("s", "c", "q", 2.0, (1.5, 2.5), kind="article", predicted=None,
                       rule="report")  # fmt: skip
    assert r.verdict == "no_claim"
    a = F.make_finding("s", "c", "q", 1.0, None, kind="analytic", predicted=0.0, rule="exact")
    assert a.verdict == "disagrees" and np.isnan(a.ci_low) and a.to_dict()["ci_low"] is None


def test_tally_and_multiplicity():
    cases = [("article", 1.0), ("article", 2.0), ("engine-check", 1.0)]
    fs = [F.make_finding("s", "c", f"q{i}", 1.0, (0.9, 1.1), kind=k, predicted=p,
                         rule="contains") for i, (k, p) in enumerate(cases)]
    assert F.tally(fs, "article") == {"agrees": 1, "disagrees": 1, "inconclusive": 0,
                                      "no_claim": 0}  # fmt: skip
    m = F.multiplicity(fs)
    assert m["article"]["judged"] == 2
    assert m["article"]["familywise_error"] == pytest.approx(1 - 0.95**2)
    assert m["engine-check"]["expected_false_disagrees"] == pytest.approx(0.05)


def test_mean_ci_covers_truth():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(200):
        _, lo, hi = mean_ci(rng.normal(3.0, 1.0, 20))
        hits += lo <= 3.0 <= hi
    assert 180 <= hits <= 199  # 95% nominal, binomial SE ≈ 3


def test_bootstrap_is_deterministic():
    v = np.random.default_rng(1).normal(size=(30, 4))
    a = bootstrap_ci(v, lambda x: x.mean(), seed=probe_seed(5), n_boot=200)
    b = bootstrap_ci(v, lambda x: x.mean(), seed=probe_seed(5), n_boot=200)
    assert a == b and a[1] < a[0] < a[2]
    assert probe_seed(5) != probe_seed(6)
    np.testing.assert_allclose(window_mean(np.arange(4), np.ones((2, 4)), 2), [1, 1])


TINY_CLAIM = "a tiny claim"


@register
class _Tiny(Study):
    name = "_tiny"
    claim = TINY_CLAIM

    def grid(self, quick):
        base = {"problem": {"name": "quadratic", "dim": 3}, "chains": 6, "steps": 40,
                "batch": {"size": 2, "sampling": "stream"}, "record": {"every": 5},
                "dtype": "float64"}
        return {"a": {**base, "optimizer": {"name": "sgd", "lr": [0.1, 0.2]}, "seed": 1},
                "b": {**base, "optimizer": {"name": "sgd", "lr": 0.05}, "seed": 2}}

    def analyze(self, runs, ctx: Context):
        _, v = runs["a"].metric("suboptimality")
        m, lo, hi = mean_ci(v[:, -1])
        return [self.finding(TINY_CLAIM, "final", m, (lo, hi), kind="engine-check",
                             predicted=m, tolerance=10 * m, tolerance_derivation="test",
                             rule="band", figure="", b_sum=float(runs["b"].final_params.sum()),
                             a_sum=float(np.nansum(v)))]


def test_process_executor_is_bit_identical(tmp_path):
    grid = list(_Tiny().grid(True).values())
    local = LocalExecutor().map(grid)
    done = []
    proc = ProcessExecutor(workers=2).map(grid, done=lambda i, r: done.append(i))
    assert sorted(done) == [0, 1]
    for a, b in zip(local, proc, strict=True):
        assert a.config_hash == b.config_hash
        assert np.array_equal(a.final_params.numpy(), b.final_params.numpy())
        for name in a.metrics:
            assert np.array_equal(a.metric(name)[1], b.metric(name)[1], equal_nan=True)


class _Replay:
    """A third executor: hands back precomputed results (as a remote executor would)."""

    def __init__(self, results):
        self.results = {r.config_hash: r for r in results}

    def map(self, configs, done=None):
        from sgdlab.config import load_config

        out = [self.results[load_config(c).hash()] for c in configs]
        for i, r in enumerate(out):
            if done:
                done(i, r)
        return out


def test_findings_identical_across_executors(tmp_path):
    grid = list(_Tiny().grid(True).values())
    f1 = run_studies(["_tiny"], out=tmp_path / "l", use_store=False).findings
    from sgdlab.lab.executor import run_config

    replay = _Replay([run_config(c) for c in grid])
    f2 = run_studies(["_tiny"], out=tmp_path / "p", use_store=False, executor=replay).findings
    assert [f.to_dict() for f in f1] == [f.to_dict() for f in f2]


def test_store_reuse_and_outputs(tmp_path):
    db = tmp_path / "s.duckdb"
    o1 = run_studies(["_tiny"], store=db, out=tmp_path / "r")
    assert o1.runs_total == 2 and o1.runs_reused == 0
    o2 = run_studies(["_tiny"], store=db, out=tmp_path / "r")
    assert o2.runs_reused == 2
    assert [f.to_dict() for f in o1.findings] == [f.to_dict() for f in o2.findings]
    data = json.loads((tmp_path / "r" / "findings.json").read_text())
    assert data["findings"][0]["study"] == "_tiny"
    assert "| _tiny |" in (tmp_path / "r" / "report.md").read_text()
    with Store(db) as s:
        assert len(s.runs(kind="lab")) == 2
        got = [Finding.from_dict(d) for d in s.findings("_tiny")]
        assert len(got) == 1 and got[0].claim == TINY_CLAIM
        assert got[0].to_dict() == o1.findings[0].to_dict()  # the round trip loses nothing
        s.write_findings([f.to_dict() for f in got])  # replaces, does not duplicate
        assert len(s.findings("_tiny")) == 1


def test_cli_list_and_errors(tmp_path):
    r = CliRunner().invoke(app, ["lab", "list"])
    assert r.exit_code == 0
    for name in ("noise-floor", "schedules", "rates"):
        assert name in r.output
    r = CliRunner().invoke(app, ["lab", "run", "no-such-study"])
    assert r.exit_code == 2
    r = CliRunner().invoke(app, ["lab", "run"])
    assert r.exit_code == 2


def test_cli_run_tiny(tmp_path):
    r = CliRunner().invoke(app, ["lab", "run", "_tiny", "--store", str(tmp_path / "s.duckdb"),
                                 "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "rep" / "report.md").exists()
    assert "report:" in r.output


def teardown_module(module):
    STUDIES.pop("_tiny", None)


def test_bootstrap_groups_resamples_within_each_group():
    from sgdlab.lab.stats import bootstrap_groups

    rng = np.random.default_rng(3)
    g = [rng.normal(0, 1, 50), rng.normal(10, 1, 5)]
    est, lo, hi = bootstrap_groups(g, lambda gs: gs[1].mean() - gs[0].mean(), seed=1)
    assert est == pytest.approx(g[1].mean() - g[0].mean())
    assert lo < est < hi and 8 < lo and hi < 12  # group sizes kept: never a 50-from-5 draw


def test_zero_limit_recovers_the_intercept_and_states_its_model_error():
    from sgdlab.lab.stats import zero_limit

    rng = np.random.default_rng(4)
    x = np.array([0.005, 0.01, 0.02, 0.04])
    ref = np.array([2.0, 4.0, 8.0, 16.0])
    truth = 1.0 + 6.0 * x  # r(x) = 1 + 6x exactly: the linear fit is right, the quadratic adds 0
    groups = [ref[i] * truth[i] * (1 + 0.01 * rng.standard_normal(40)) for i in range(4)]
    z = zero_limit(x, groups, ref, seed=5)
    assert z["ci"][0] <= 1.0 <= z["ci"][1]
    assert z["model_error"] < 0.02 and z["slope"] == pytest.approx(6.0, abs=1.0)
    bent = [ref[i] * (1 + 6 * x[i] - 100 * x[i] ** 2) * np.ones(40) for i in range(4)]
    assert zero_limit(x, bent, ref, seed=5)["model_error"] > 0.01  # curvature is seen
