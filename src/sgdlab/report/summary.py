"""Text summaries of runs and components for the CLI (rich tables)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from sgdlab.report.figures import band, plot_metric_band

#: metrics drawn by ``sgdlab show``, first available wins
_PLOT_ORDER = ("suboptimality", "objective", "loss")


def params_table(title: str, params: type[BaseModel]) -> Table:
    """A table of a pydantic params model: key, type, default, description."""
    table = Table(title=title, title_justify="left", show_edge=False)
    for col in ("key", "type", "default", "description"):
        table.add_column(col)
    for key, field in params.model_fields.items():
        ann = getattr(field.annotation, "__name__", None) or str(field.annotation)
        ann = ann.replace("typing.", "")
        default = "" if field.is_required() else repr(field.get_default(call_default_factory=True))
        table.add_row(key, ann, default, field.description or "")
    return table


def show_run(run_id: str, store_path: Path, out: Path | None, console: Console) -> Path | None:
    """Print a run's summary table and write its objective figure; returns the figure path."""
    from sgdlab.store import Store

    with Store(store_path, read_only=True) as db:
        info = db.run(run_id)
        rid = info["run_id"]
        names = db.metric_names(rid)
        data = {n: db.metric(rid, n) for n in names}
        diverged = db.diverged(rid)
    cfg = info["config"]
    head = Table(title=f"run {rid}", show_header=False, title_justify="left")
    head.add_column("field")
    head.add_column("value")
    prob = cfg.get("problem", {})
    head.add_row("status", str(info["status"]))
    head.add_row("kind", str(info["kind"]))
    head.add_row("problem", ", ".join(f"{k}={v}" for k, v in prob.items()))
    for sec in ("optimizer", "schedule", "batch"):
        if isinstance(cfg.get(sec), dict):
            head.add_row(sec, ", ".join(f"{k}={v}" for k, v in cfg[sec].items()))
    head.add_row("chains × steps", f"{info['chains']} × {info['steps']}")
    head.add_row("seed entropy", str(info["seed_entropy"]))
    head.add_row("diverged chains", str(len(diverged)))
    if info["wall_seconds"] is not None:
        head.add_row("wall time", f"{info['wall_seconds']:.2f}s")
    console.print(head)
    table = Table(title="metrics at the last recorded step (across chains)", title_justify="left")
    for col in ("metric", "step", "median", "10%", "90%"):
        table.add_column(col)
    for name, (steps, values) in data.items():
        med, lo, hi = band(values[:, -1:])
        table.add_row(name, str(int(steps[-1])), f"{med[0]:.4g}", f"{lo[0]:.4g}", f"{hi[0]:.4g}")
    console.print(table)
    metric = next((m for m in _PLOT_ORDER if m in data), None)
    if metric is None:
        return None
    folder = out if out is not None else store_path.parent / "figures"
    steps, values = data[metric]
    if metric == "suboptimality":
        values = np.maximum(values, np.finfo(float).tiny)
    path = plot_metric_band(
        steps,
        values,
        folder / f"{rid}-{metric}.png",
        ylabel=metric if metric != "suboptimality" else "F(w_t) − F*",
        title=f"{prob.get('name', '')} · {cfg.get('optimizer', {}).get('name', '')} · run {rid}",
    )
    console.print(f"figure: {path.resolve()}")
    return path


def advice_for_run(run_id: str, store_path: Path) -> list:
    """:func:`sgdlab.advice.advise` on a stored run (engine or Monitor)."""
    from sgdlab.advice import advise
    from sgdlab.store import Store

    with Store(store_path, read_only=True) as db:
        info = db.run(run_id)
        metrics = db.metrics(info["run_id"])
    cfg = info["config"]
    batch = cfg.get("batch") or {}
    b = batch.get("size") if batch.get("sampling") != "full" else (info["problem"] or {}).get("n")
    if "batch_size" in metrics:
        b = int(np.nanmedian(metrics["batch_size"][1][:, -1]))
    lr = float(np.nanmedian(metrics["lr"][1][:, -1])) if "lr" in metrics else None
    return advise(metrics, batch_size=b, lr=lr)
