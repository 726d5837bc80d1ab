"""Text summaries of runs and components for the CLI (rich tables)."""

from __future__ import annotations

import types
import typing
import warnings
from pathlib import Path

import numpy as np
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sgdlab.report.figures import band, plot_metric_band

#: datasets that can own a setting (a field described as "synthetic: ...")
_DATASET_NAMES = ("synthetic", "mnist", "npz")

#: metrics drawn by ``sgdlab show``, first available wins
_PLOT_ORDER = ("suboptimality", "objective", "loss")


class PlainTable(Table):
    """A table whose cells are text, never Rich markup (values may hold brackets)."""

    def add_row(self, *cells: object, **kwargs: object) -> None:  # type: ignore[override]
        super().add_row(*(escape(str(c)) for c in cells), **kwargs)  # type: ignore[arg-type]


def _type_name(annotation: object) -> str:
    """``int``, ``float | None``, ``one of 'log', 'linear'`` … for the parameter tables."""
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    args = typing.get_args(annotation)
    if args and typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    name = getattr(annotation, "__name__", None)
    if name and not args:
        return "None" if annotation is type(None) else name
    return str(annotation).replace("typing.", "")


def params_table(title: str, params: type[BaseModel]) -> Table:
    """A table of a pydantic params model: key, type, default, description."""
    table = PlainTable(title=title, title_justify="left", show_edge=False)
    for col in ("key", "type", "default", "description"):
        table.add_column(col)
    for key, field in params.model_fields.items():
        ann = _type_name(field.annotation)
        required = field.is_required()
        default = "required" if required else repr(field.get_default(call_default_factory=True))
        table.add_row(key, ann, default, field.description or "")
    return table


_STATUS_NOTE = {
    "failed": " (stopped by an error or an interrupt; nothing of it was stored)",
    "running": " (still going, or its process was killed: nothing of it was stored)",
}


def _relevant_problem_params(prob: dict) -> dict:
    """The problem's settings without those that only apply to another dataset (the
    synthetic generator's sizes when the data are digits, say), read from the fields'
    descriptions ``"<dataset>: ..."``."""
    from sgdlab.problems import PROBLEMS

    cls = PROBLEMS.get(prob.get("name", ""))
    dataset = prob.get("dataset")
    if cls is None or dataset is None:
        return dict(prob)
    fields = cls.Params.model_fields
    keep = {}
    for k, v in prob.items():
        desc = (fields[k].description or "") if k in fields else ""
        owner = desc.split(":", 1)[0] if ":" in desc else None
        if owner in _DATASET_NAMES and owner != dataset:
            continue
        keep[k] = v
    return keep


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
    head = PlainTable(title=f"run {rid}", show_header=False, title_justify="left")
    head.add_column("field")
    head.add_column("value")
    prob = _relevant_problem_params(cfg.get("problem", {}))
    head.add_row("status", str(info["status"]) + _STATUS_NOTE.get(str(info["status"]), ""))
    if info.get("error"):
        head.add_row("error", str(info["error"]))
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
    table = PlainTable(
        title="metrics at the last recorded step (across chains)", title_justify="left"
    )
    for col in ("metric", "step", "median", "10%", "90%"):
        table.add_column(col)
    for name, (steps, values) in data.items():
        med, lo, hi = band(values[:, -1:])
        table.add_row(name, str(int(steps[-1])), f"{med[0]:.4g}", f"{lo[0]:.4g}", f"{hi[0]:.4g}")
    if data:
        console.print(table)
    else:
        console.print("no metrics stored for this run", highlight=False)
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


#: metrics from which the batch-size advice reads the noise scale
NOISE_METRICS = ("noise_scale", "noise_b_simple")


def advice_for_run(run_id: str, store_path: Path) -> tuple[list, bool]:
    """:func:`sgdlab.advice.advise` on a stored run (engine or Monitor), and whether the run
    recorded noise statistics (without them there is no batch-size advice)."""
    from sgdlab.advice import advise
    from sgdlab.store import Store

    with Store(store_path, read_only=True) as db:
        info = db.run(run_id)
        metrics = db.metrics(info["run_id"])
    cfg = info["config"]
    batch = cfg.get("batch") or {}
    b = batch.get("size") if batch.get("sampling") != "full" else (info["problem"] or {}).get("n")
    lr = None
    with warnings.catch_warnings():  # chains that diverged hold NaN; all of them may
        warnings.simplefilter("ignore", RuntimeWarning)
        if "batch_size" in metrics:
            median = float(np.nanmedian(metrics["batch_size"][1][:, -1]))
            b = int(median) if np.isfinite(median) else b
        if "lr" in metrics:
            median = float(np.nanmedian(metrics["lr"][1][:, -1]))
            lr = median if np.isfinite(median) else None
        n = (info["problem"] or {}).get("n")
        distinct = batch.get("sampling") in ("without_replacement", "full", "auto")
        items = advise(metrics, batch_size=b, lr=lr, population=n if distinct and n else None)
    return items, any(name in metrics for name in NOISE_METRICS)
