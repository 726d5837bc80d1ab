"""Shared by the HTML-report tests: a tiny private study with findings of every verdict and a
paper figure, and a small Monitor run, so a page with every part is built in seconds."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from sgdlab.lab.session import LabOutcome, run_studies
from sgdlab.lab.stats import T_INTERVAL, mean_ci
from sgdlab.lab.study import STUDIES, Context, Study
from sgdlab.monitor import Monitor

STUDY = "_page"
#: a quantity with markup that must stay text (and never close the page's data <script>)
TRICKY = "final F − F* </script><b>not bold</b>"


class PageStudy(Study):
    """Two runs (one sweeping η across its chains) and four findings: agrees, disagrees,
    no claim (report) and an analytic fact."""

    name = STUDY
    section = "9.9 Z"
    claim = "a tiny claim for the page tests"

    def grid(self, quick):
        base = {"problem": {"name": "quadratic", "dim": 3}, "chains": 8, "steps": 60,
                "batch": {"size": 2, "sampling": "stream"}, "record": {"every": 5},
                "dtype": "float64", "seed": 4}  # fmt: skip
        return {"sweep": {**base, "optimizer": {"name": "sgd", "lr": [0.05, 0.2]}},
                "one": {**base, "optimizer": {"name": "sgd", "lr": 0.1}, "chains": 4}}

    def analyze(self, runs, ctx: Context):
        steps, v = runs["sweep"].metric("suboptimality")
        m, lo, hi = mean_ci(v[:, -1])
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.semilogy(steps, np.median(v, axis=0))
        fig.savefig(ctx.figure("page.png"))
        plt.close(fig)
        kw = {"kind": "engine-check", "ci_method": T_INTERVAL, "figure": "page.png"}
        return [
            self.finding(self.claim, TRICKY, m, (lo, hi), predicted=m, rule="contains", **kw),
            self.finding(self.claim, "final F − F* against a wrong value", m, (lo, hi),
                         predicted=10 * hi + 1, rule="contains", **kw),
            self.finding(self.claim, "reported level", m, (lo, hi), predicted=None,
                         rule="report", **{**kw, "kind": "article"}),
            self.finding(self.claim, "a fact", 1.0, None, kind="analytic", predicted=1.0,
                         rule="exact", figure="page.png"),
        ]  # fmt: skip


def register() -> None:
    STUDIES[STUDY] = PageStudy


def unregister() -> None:
    STUDIES.pop(STUDY, None)


def monitor_run(store: Path, steps: int = 24) -> str:
    """A Monitor run of a small regression in ``store`` (noise statistics every 2 steps);
    returns its id."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=gen)
    y = x @ torch.randn(5, 1, generator=gen) + 0.3 * torch.randn(64, 1, generator=gen)
    model = nn.Linear(5, 1)
    torch.nn.init.zeros_(model.weight)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    loss_fn = nn.MSELoss()
    with Monitor(model, loss_fn, opt, store=store, every=1, noise_every=2, name="mon") as mon:
        for t in range(steps):
            idx = torch.arange(8) + 8 * (t % 8)
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(x[idx], y[idx], loss)
    return mon.run_id


def build(tmp: Path) -> tuple[LabOutcome, Path, str]:
    """A store with a Monitor run and the private study's runs, and the lab's page for it:
    ``(outcome, store path, monitor run id)``."""
    db = tmp / "s.duckdb"
    rid = monitor_run(db)
    outcome = run_studies([STUDY], store=db, out=tmp / "report")
    return outcome, db, rid
