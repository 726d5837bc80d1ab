"""Run dashboards for the HTML page: a run's metrics as interactive figures, with advice.

:func:`run_view` turns one run (a :class:`RunView`: its store row or in-memory result, and
its metrics) into the page's entry and figure specs
(:func:`sgdlab.report.interactive.curve_figure`):

* engine and lab runs — the objective across chains first (``suboptimality`` F − F*, else
  ``objective``, else ``loss``: median and 10–90% band, one band per value of a per-chain
  hyperparameter list), then every other recorded metric the same way;
* Monitor runs (``kind='monitor'``, one chain) — loss, gradient norm, learning rate, tr Σ̂,
  noise scale and temperature first, then the rest, and the advice of
  :func:`sgdlab.advice.advise_stored_run`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sgdlab.advice import NOISE_METRICS, advise_stored_run
from sgdlab.engine.result import RunResult
from sgdlab.errors import StoreError
from sgdlab.report.interactive import chain_groups, curve_figure

#: the objective across chains: the first of these a run recorded
PRIMARY = ("suboptimality", "objective", "loss")
#: a Monitor run's dashboard, in this order
MONITOR_PANELS = ("loss", "grad_norm", "lr", "trace_cov", "noise_scale", "temperature")
LABELS = {
    "suboptimality": "F(w_t) − F*", "objective": "F(w_t)", "loss": "minibatch loss",
    "grad_norm": "gradient norm ‖∇L‖", "lr": "learning rate η_t", "dist_to_opt": "‖w_t − w*‖",
    "avg_suboptimality": "F(w̄_t) − F* (averaged iterate)",
    "avg_objective": "F(w̄_t) (averaged iterate)", "trace_cov": "tr Σ̂ (per-sample gradients)",
    "noise_scale": "noise scale B_simple (EMA)", "b_simple": "B_simple (this batch)",
    "temperature": "temperature T = η/(1−m)·(tr Σ/d)/(2b)", "batch_size": "batch size b",
    "noise_trace": "tr Σ̂ (noise probe)", "noise_grad_sq": "|ḡ|² (noise probe)",
}  # fmt: skip


@dataclass
class RunView:
    """What a dashboard needs of a run (from the store or from memory)."""

    run_id: str
    name: str
    kind: str
    status: str
    config: dict[str, Any]
    chains: int
    steps: int | None
    wall_seconds: float | None = None
    error: str | None = None
    created: str = ""
    metrics: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @classmethod
    def of_result(cls, name: str, res: RunResult, kind: str = "lab") -> RunView:
        return cls(run_id=res.run_id, name=name, kind=kind, status="complete",
                   config=res.config, chains=res.chains, steps=res.config.get("steps"),
                   wall_seconds=res.wall_seconds, metrics=res.metrics)  # fmt: skip

    @classmethod
    def of_row(cls, row: dict[str, Any], metrics: dict[str, Any]) -> RunView:
        return cls(run_id=row["run_id"], name=row.get("name") or "", kind=row.get("kind") or "",
                   status=row.get("status") or "", config=row.get("config") or {},
                   chains=int(row.get("chains") or 1), steps=row.get("steps"),
                   wall_seconds=row.get("wall_seconds"), error=row.get("error"),
                   created=str(row.get("created_at") or "")[:19], metrics=metrics)  # fmt: skip


def label(run: RunView) -> str:
    """The run selector's text: name, id, problem and optimizer."""
    prob = (run.config.get("problem") or {}).get("name", "")
    opt = (run.config.get("optimizer") or {}).get("name", "")
    status = "" if run.status == "complete" else f" [{run.status}]"
    return f"{run.name or run.kind} · {run.run_id} · {prob} {opt}".strip() + status


def series(run: RunView, metric: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``[(group label, steps, values [k, n])]`` of one metric, one per chain group (the
    label is ``""`` when the run has one group)."""
    steps, values = run.metrics[metric]
    groups = chain_groups(run.config.get("optimizer") or {}, values.shape[0])
    if len(groups) == 1:
        return [("", steps, values)]
    return [(lab, steps, values[idx]) for lab, idx in groups]


def primary_metric(metrics: dict[str, Any]) -> str | None:
    return next((m for m in PRIMARY if m in metrics), None)


def displayed(run: RunView, metric: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """:func:`series`; an F − F* that reached 0 (or rounding below it) is a gap, so that the
    log axis F − F* needs is not stretched down to the smallest float."""
    out = series(run, metric)
    if metric in ("suboptimality", "avg_suboptimality"):
        out = [(n, s, np.where(v > 0, v, np.nan)) for n, s, v in out]
    return out


def _info(run: RunView) -> list[tuple[str, str]]:
    cfg = run.config
    rows = [("run id", run.run_id), ("name", run.name), ("kind", run.kind),
            ("status", run.status)]  # fmt: skip
    if run.error:
        rows.append(("error", run.error))
    for sec in ("problem", "optimizer", "schedule", "batch"):
        if isinstance(cfg.get(sec), dict):
            rows.append((sec, ", ".join(f"{k}={v}" for k, v in cfg[sec].items())))
    rows.append(("chains × steps", f"{run.chains} × {run.steps}"))
    if run.wall_seconds is not None:
        rows.append(("wall time", f"{run.wall_seconds:.2f}s"))
    if run.created:
        rows.append(("created", run.created))
    return [(k, str(v)) for k, v in rows if v not in (None, "")]


def run_view(
    run: RunView, store_path: Path | None, figs: dict[str, Any]
) -> dict[str, Any]:
    """The page's entry of ``run``; its figure specs are added to ``figs``."""
    names = list(run.metrics)
    if run.kind == "monitor":
        order = [m for m in MONITOR_PANELS if m in names]
    else:
        first = primary_metric(run.metrics)
        order = [first] if first else []
    order += sorted(m for m in names if m not in order)
    fig_ids = []
    for metric in order:
        fid = f"run-{run.run_id}-{metric}"
        title = LABELS.get(metric, metric)
        if metric == order[0] and run.kind != "monitor":
            title = f"objective across chains: {title}"
        lines = [(lab or f"{v.shape[0]} chain" + ("s" if v.shape[0] > 1 else ""), st, v)
                 for lab, st, v in displayed(run, metric)]  # fmt: skip
        figs[fid] = curve_figure(title, LABELS.get(metric, metric), lines)
        fig_ids.append(fid)
    advice = None
    if store_path is not None and run.status == "complete" and (
        run.kind == "monitor" or any(m in names for m in NOISE_METRICS)
    ):
        advice = _advice(run.run_id, store_path)
    return {"label": label(run), "info": _info(run), "figs": fig_ids, "advice": advice}


def _advice(run_id: str, store_path: Path) -> list[tuple[str, str]]:
    """:func:`advise_stored_run` as ``[(kind, message)]`` (a store that cannot be opened
    read-only here — open for writing in this process — gives a note instead)."""
    try:
        items, has_noise = advise_stored_run(run_id, store_path)
    except StoreError as exc:
        return [("note", f"advice not computed ({exc}); run `sgdlab advise {run_id}`")]
    out = [(a.kind, a.message) for a in items]
    if not has_noise:
        out.append(("note", "the run recorded no noise statistics, so there is no batch-size "
                            "advice"))  # fmt: skip
    return out
