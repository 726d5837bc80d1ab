"""The ``sources`` study (§2): its quick-mode verdicts, asserted on the session's quick lab
(``conftest.quick_lab``), and the configurations it builds.

The judged findings are engine checks: the unbiasedness test flags exactly the sources that
change the expected gradient (at its 1% level), and stochastic rounding adds exactly its
conditional variance to the sampling noise; the rest is reported (tr Σ per source, the
ratio of the total to the sum, the spread of the final iterates, the test losses).
"""

from __future__ import annotations

import numpy as np
import pytest

from sgdlab.config import load_config
from sgdlab.lab.studies.sources import SOURCES, source_config

pytestmark = pytest.mark.xdist_group("quick_lab")

A, E = "article", "engine-check"
#: tr Σ for 6 sources alone and all (reported), six bias flags, the additivity check, the
#: ratio (reported), then spread and test loss of 9 training configurations (reported)
QUICK = ([(A, "no_claim")] * 7 + [(E, "agrees")] * 7 + [(A, "no_claim")]
         + [(A, "no_claim")] * 18)  # fmt: skip


@pytest.mark.slow
def test_quick_verdicts(quick_lab):
    found = [f for f in quick_lab.findings if f.study == "sources"]
    assert [(f.kind, f.verdict) for f in found] == QUICK, [f.to_dict() for f in found]
    assert (quick_lab.out / "sources.png").stat().st_size > 10_000
    flags = [f for f in found if f.details["rule"] == "exact"]
    assert [f.quantity.split("flags ")[1].split(" ")[0] for f in flags] == [
        "sampling", "label_noise", "dropout", "augment", "quantize", "nearest"]  # fmt: skip
    for f in flags:  # the flag is the p-value's verdict, recorded with it
        assert (f.details["p_value"] < 0.01) == bool(f.measured)
    add = next(f for f in found if f.details["rule"] == "contains")
    assert np.isfinite([add.ci_low, add.ci_high]).all() and add.details["rounding_variance"] > 0
    traces = {f.quantity: f for f in found if f.quantity.startswith("tr Σ of the gradient")}
    nearest = next(f for q, f in traces.items() if "nearest" in q)
    assert nearest.measured < 1e-20  # deterministic rounding adds no variance
    for q, f in traces.items():
        if "nearest" not in q:
            assert f.ci_low > 0, q  # every stochastic source adds variance


def test_configs_turn_every_other_source_off():
    for name in SOURCES:
        cfg = load_config(source_config((name,), quick=True))
        off = set(cfg.streams.off)
        assert ("sampling" in off) == (name != "sampling") and "init" in off
    everything = load_config(source_config((*SOURCES, "init"), quick=True))
    assert everything.streams.off == [] and everything.quantize.mode == "stochastic"
    assert load_config(source_config((), quick=True, nearest=True)).quantize.mode == "nearest"
