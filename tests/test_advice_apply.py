"""Advice that closes the loop (``sgdlab advise RUN --apply NEW.yaml``) and the batch-size
advice when the noise scale is not resolved (never advice from a NaN or an ∞).

The loop is tested on the ``debugging`` study's unstable run: ``sgdlab run`` it,
``sgdlab advise --apply``, ``sgdlab run`` the new config — the failure rate falls from
≥ 75% to ≤ 25% of the chains, each bound outside the other run's 95% Wilson interval.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from sgdlab.advice import advise
from sgdlab.advice_apply import INSTABILITY_FACTOR, Change, advised_config, write_config
from sgdlab.advice_batch import UNRESOLVED, Advice, unresolved_batch_advice
from sgdlab.cli.app import app
from sgdlab.errors import ConfigError
from sgdlab.lab.stats import wilson_ci
from sgdlab.lab.studies.debugging import UNSTABLE, failed
from sgdlab.noise_evidence import NoiseScale
from sgdlab.store import Store

runner = CliRunner()


def series(values, chains: int = 1):
    v = np.asarray(values, dtype=float)
    return np.arange(v.size), np.tile(v, (chains, 1))


# ------------------------------------------------------------- unresolved noise scale
def test_monitor_nan_noise_scale_says_the_signal_is_below_the_noise():
    steps = np.arange(6)
    metrics = {"noise_scale": (steps, np.array([[50.0, 60.0, 70.0, np.nan, np.nan, np.nan]])),
               "noise_scale_lower": (steps, np.array([[np.nan] * 5 + [123.0]]))}  # fmt: skip
    items = advise(metrics, batch_size=8)
    assert [a.kind for a in items] == ["batch_size"]
    msg = items[0].message
    assert UNRESOLVED in msg and "123" in msg and "near the noise scale" not in msg
    assert items[0].evidence["noise_scale_lower"] == 123.0
    assert "suggested_batch_size" not in items[0].evidence  # no advice from an ∞
    # an older finite value is never used once the last record is NaN
    assert "70" not in msg


def test_without_a_finite_lower_bound_none_is_quoted():
    steps = np.arange(3)
    metrics = {"noise_scale": (steps, np.array([[1.0, np.nan, np.nan]])),
               "noise_scale_lower": (steps, np.array([[np.nan, np.nan, np.nan]]))}  # fmt: skip
    (item,) = advise(metrics, batch_size=8)
    assert UNRESOLVED in item.message and "no lower bound" in item.message
    assert item.evidence["noise_scale_lower"] is None


def test_an_infinite_engine_scale_is_unresolved_and_a_nan_gives_nothing():
    inf = NoiseScale("B_simple", math.inf, (40.0, math.inf), "engine noise probe")
    item = unresolved_batch_advice(inf, 4)
    assert item is not None and "B_simple ≥ 40" in item.message
    assert "noise-dominated" in item.message
    assert unresolved_batch_advice(NoiseScale("B_simple", math.nan, (1.0, 2.0), "x"), 4) is None
    assert unresolved_batch_advice(NoiseScale("B_simple", 30.0, (20.0, 40.0), "x"), 4) is None
    assert advise({"noise_b_simple": series([np.nan, np.nan])}, batch_size=4) == []


# ------------------------------------------------------------- the config rewrite
BASE = {"problem": {"name": "quadratic"}, "optimizer": {"name": "sgd", "lr": [0.3, 0.6]},
        "batch": {"size": 8}, "chains": 2, "steps": 10}  # fmt: skip


def test_advised_config_applies_each_rule_with_its_evidence():
    items = [
        Advice("instability", "x", {"rule": "r1"}),
        Advice("clipping", "y", {"suggested_max_norm": 2.5, "max_over_median": 40.0,
                                 "rule": "r2"}),
        Advice("batch_size", "z", {"suggested_batch_size": 64, "suggested_lr": 1.0, "lr": 0.3,
                                   "noise_scale": 60.0, "noise_scale_name": "B_simple",
                                   "rule": "r3"}),
    ]  # fmt: skip
    new, changes = advised_config(BASE, items)
    assert new["optimizer"]["lr"] == pytest.approx([0.1, 0.2])  # instability wins: ÷ 3
    assert new["clip"] == {"norm": 2.5} and new["batch"]["size"] == 64
    assert {c.field for c in changes} == {"optimizer.lr", "batch.size", "clip.norm"}
    assert BASE["optimizer"]["lr"] == [0.3, 0.6]  # the input is not changed
    # without the instability the batch rule's step scaling applies (factor 1/0.3)
    new, _ = advised_config(BASE, items[1:])
    assert new["optimizer"]["lr"] == pytest.approx([1.0, 2.0])
    # oscillation alone halves the step; no advice, no change
    new, changes = advised_config(BASE, [Advice("oscillation", "o", {"mad_over_drop": 0.5})])
    assert new["optimizer"]["lr"] == pytest.approx([0.15, 0.3]) and len(changes) == 1
    assert advised_config(BASE, []) == (BASE, [])
    assert INSTABILITY_FACTOR == 3.0


def test_write_config_is_new_and_atomic(tmp_path):
    path = tmp_path / "new.yaml"
    write_config(BASE, path, [Change("optimizer.lr", 0.3, 0.1, "because")])
    text = path.read_text()
    assert text.startswith("# written by sgdlab advise --apply") and "because" in text
    assert yaml.safe_load(text) == BASE
    with pytest.raises(ConfigError, match="exists") as err:
        write_config(BASE, path, [])
    assert err.value.field == "--apply"
    with pytest.raises(ConfigError, match="does not exist"):
        write_config(BASE, tmp_path / "no" / "x.yaml", [])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.yaml"]  # no temporary left


# ------------------------------------------------------------- the loop, by the CLI
def _only_run(store) -> str:
    with Store(store, read_only=True) as db:
        return db.runs()[0]["run_id"]


@pytest.mark.slow
def test_advise_apply_fixes_the_debugging_studys_unstable_run(tmp_path):
    before_cfg = tmp_path / "unstable.yaml"
    before_cfg.write_text(yaml.safe_dump(UNSTABLE))
    s1, s2 = tmp_path / "before.duckdb", tmp_path / "after.duckdb"
    assert runner.invoke(app, ["run", str(before_cfg), "--store", str(s1)]).exit_code == 0
    run_id = _only_run(s1)
    new = tmp_path / "advised.yaml"
    res = runner.invoke(app, ["advise", run_id[:8], "--store", str(s1), "--apply", str(new)])
    assert res.exit_code == 0, res.output
    assert "instability" in res.output and "apply optimizer.lr" in res.output
    assert f"wrote {new}" in res.output.replace("\n", "")
    advised = yaml.safe_load(new.read_text())
    assert advised["optimizer"]["lr"] == pytest.approx(UNSTABLE["optimizer"]["lr"] / 3)
    assert advised["seed"] == UNSTABLE["seed"]  # the same chains, the same batches
    # writing over an existing file is refused in one line, exit 2
    again = runner.invoke(app, ["advise", run_id[:8], "--store", str(s1), "--apply", str(new)])
    assert again.exit_code == 2 and "exists" in again.output
    assert runner.invoke(app, ["run", str(new), "--store", str(s2)]).exit_code == 0
    with Store(s1, read_only=True) as db:
        before = db.load_result(run_id)
    with Store(s2, read_only=True) as db:
        after = db.load_result(_only_run(s2))
    fb, fa = failed(before), failed(after)
    pb, lob, _ = wilson_ci(int(fb.sum()), fb.size)
    pa, _, hia = wilson_ci(int(fa.sum()), fa.size)
    assert pb >= 0.75 and pa <= 0.25 and hia < lob
