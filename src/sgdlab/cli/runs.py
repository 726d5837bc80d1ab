"""``sgdlab run / runs / show / problems / optimizers / advise``: runs and components."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from sgdlab.cli._util import PlainTable, err, guarded, params_table, writable_dir
from sgdlab.cli.app import StoreOpt, app, console, store_path
from sgdlab.errors import ConfigError

#: datasets that can own a setting (a field described as "synthetic: ...")
_DATASET_NAMES = ("synthetic", "mnist", "npz")

#: metrics drawn by ``sgdlab show``, first available wins
_PLOT_ORDER = ("suboptimality", "objective", "loss")

RUN_STATUSES = ("complete", "running", "failed")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


#: torch threads of ``sgdlab run`` unless ``--threads`` says: one thread was 4–55× faster
#: than torch's default (all cores) on a loaded 2-core machine for every engine problem
#: measured (``benchmarks/bench_threads.py``; ``docs/reliability.md``); the lab uses one too
DEFAULT_THREADS = 1


def run_with_progress(
    config: Any, store: Path | None, name: str | None = None, threads: int | None = None
) -> Any:
    """Run a config with a rich progress bar; returns the RunResult."""
    from sgdlab.api import run  # heavy imports in the body: see sgdlab.cli.app
    from sgdlab.config import load_config

    config = load_config(config)
    config.canonical()  # validates the components too: a bad config fails before the bar
    with Progress(
        TextColumn("[bold]running[/]"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,  # no bar (and no stray blank line) in logs and pipes
    ) as bar:
        task = bar.add_task("run", total=None)

        def progress(step: int, total: int) -> None:
            bar.update(task, completed=step, total=total)

        return run(config, store=store_path(store), progress=progress, name=name,
                   threads=threads)  # fmt: skip


def check_config(config: Any, threads: int) -> None:
    """``sgdlab run --check``: validate and build everything a run needs, print the memory
    estimate, run nothing and write nothing."""
    from sgdlab.api import torch_threads
    from sgdlab.engine.memory import format_bytes, memory_limit
    from sgdlab.engine.plan import prepare

    with torch_threads(threads):
        plan = prepare(config)
    cfg, est = plan.config, plan.memory
    limit, origin = memory_limit()
    need = "" if est is None else f", needs about {format_bytes(est.total)} of memory"
    cap = "" if limit is None else f" (limit {format_bytes(limit)}: {origin})"
    console.print(
        f"config OK: {plan.problem.name}, {_plural(cfg.chains, 'chain')} × "
        f"{_plural(cfg.steps, 'step')}{need}{cap}; hash {cfg.hash()}", highlight=False,
    )  # fmt: skip


@app.command("run")
@guarded
def run_cmd(
    config: Annotated[
        Path | None, typer.Argument(help="YAML config file (default: the built-in quick start)")
    ] = None,
    store: StoreOpt = None,
    name: Annotated[str | None, typer.Option(help="label stored with the run")] = None,
    threads: Annotated[
        int, typer.Option(help="torch threads (1 is fastest for sgdlab's batched chains on a "
                          "busy machine; see docs/reliability.md)")
    ] = DEFAULT_THREADS,
    check: Annotated[
        bool, typer.Option("--check", help="validate the config and estimate its memory; "
                           "run nothing, store nothing")
    ] = False,
) -> None:
    """Run K chains of a YAML config and store the results."""
    from sgdlab.defaults import QUICKSTART

    if threads < 1:
        raise ConfigError("--threads", f"must be at least 1, got {threads}")
    source = config if config is not None else QUICKSTART
    if check:
        check_config(source, threads)
        return
    result = run_with_progress(source, store, name, threads)
    n_div = int(result.diverged.sum())
    console.print(
        f"run [bold cyan]{result.run_id}[/] complete: {_plural(result.chains, 'chain')}, "
        f"{result.wall_seconds:.1f}s, {n_div} diverged"
    )
    console.print(f"store: {result.store_path}")
    console.print(f"next: sgdlab show {result.run_id}")


def _status(row: dict) -> str:
    """A run's status as listed: ``stale`` for a running run whose process is gone."""
    return "stale" if row.get("status") == "running" and row.get("stale") else str(row["status"])


@app.command("runs")
@guarded
def runs_cmd(
    store: StoreOpt = None,
    status: Annotated[
        str | None, typer.Option(help="complete, running, stale or failed")
    ] = None,
    limit: Annotated[int, typer.Option(help="show at most this many")] = 30,
    prune: Annotated[
        bool, typer.Option("--prune", help="remove failed runs and stale ones (running, their "
                           "process gone) with all their rows, then list the rest")
    ] = False,
) -> None:
    """List the runs in the store, newest first."""
    from sgdlab.store import Store

    if status is not None and status not in (*RUN_STATUSES, "stale"):
        raise ConfigError(
            "--status", f"must be one of {', '.join(RUN_STATUSES)}, stale; got {status!r}"
        )
    if limit < 1:
        raise ConfigError("--limit", f"must be at least 1, got {limit}")
    if prune:
        removed = Store(store_path(store)).prune()
        ids = ", ".join(r["run_id"] for r in removed[:8]) + (", …" if len(removed) > 8 else "")
        console.print(f"pruned {_plural(len(removed), 'run')}" + (f": {ids}" if ids else ""),
                      highlight=False)  # fmt: skip
    with Store(store_path(store), read_only=True) as db:
        rows = db.runs(status="running" if status == "stale" else status)
    if status is not None:
        rows = [r for r in rows if _status(r) == status]
    table = PlainTable(title=f"runs in {store_path(store)}")
    table.add_column("run id", no_wrap=True, style="cyan")
    for col in ("kind", "name", "problem", "optimizer", "K", "T", "status", "time"):
        table.add_column(col)
    for r in rows[:limit]:
        cfg = _json(r["config_json"])
        problem = cfg.get("problem") if isinstance(cfg.get("problem"), dict) else {}
        prob = problem.get("name", "")
        opt = cfg.get("optimizer") if isinstance(cfg.get("optimizer"), dict) else {}
        opt_s = f"{opt.get('name', '')} lr={opt.get('lr', '')}" if opt else ""
        secs = r["wall_seconds"]
        table.add_row(
            r["run_id"], r["kind"] or "", r["name"] or "", prob, opt_s, str(r["chains"]),
            str(r["steps"] or ""), _status(r), "" if secs is None else f"{secs:.1f}s",
        )  # fmt: skip
    console.print(table)
    if len(rows) > limit:
        console.print(f"({len(rows) - limit} more; use --limit)")
    n_stale = sum(_status(r) == "stale" for r in rows)
    if n_stale:
        console.print(f"{_plural(n_stale, 'stale run')}: running, but the process writing "
                      "it is gone; `sgdlab runs --prune` removes stale and failed runs",
                      highlight=False)  # fmt: skip


def _json(text: str | None) -> dict:
    """A stored JSON object, or ``{}`` if it is missing or unreadable."""
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@app.command("show")
@guarded
def show_cmd(
    run_id: Annotated[str, typer.Argument(help="run id (a unique prefix is enough)")],
    store: StoreOpt = None,
    out: Annotated[Path | None, typer.Option(help="folder for the figure")] = None,
) -> None:
    """Summarize a run and draw its objective across chains (median, 10–90% band)."""
    writable_dir(out, "--out")
    show_run(run_id, store_path(store), out, console)


@app.command("problems")
def problems_cmd() -> None:
    """List the built-in problems and their parameters."""
    from sgdlab.problems import PROBLEMS

    for name, cls in PROBLEMS.items():
        console.print(params_table(f"{name} — {cls.summary}", cls.Params))


@app.command("optimizers")
def optimizers_cmd() -> None:
    """List the update rules and learning-rate schedules and their parameters."""
    from sgdlab.optim import OPTIMIZERS, SCHEDULES

    for name, cls in OPTIMIZERS.items():
        console.print(params_table(f"optimizer {name}", cls.Params))
    for name, cls in SCHEDULES.items():
        console.print(params_table(f"schedule {name}", cls.Params))


@app.command("advise")
@guarded
def advise_cmd(
    run_id: Annotated[str, typer.Argument(help="run id (a unique prefix is enough)")],
    store: StoreOpt = None,
    b_noise: Annotated[
        bool, typer.Option("--b-noise", help="also measure B_noise = tr(HΣ)/(GᵀHG) at the final "
                           "parameters (engine runs on a finite dataset) and advise from it")
    ] = False,
    apply: Annotated[
        Path | None, typer.Option("--apply", help="write the run's config with the advised "
                                  "changes to this new YAML file (then: sgdlab run FILE)")
    ] = None,
) -> None:
    """What to change (batch size, learning rate, clipping), from a run's measured noise."""
    from sgdlab.advice import advise_stored_run, noise_report_stored_run

    path = store_path(store)
    if apply is not None:
        _apply_advice(run_id, path, apply, b_noise)
        return
    for scale, implied in noise_report_stored_run(run_id, path, b_noise=b_noise):
        lo, hi = implied["steps_over_min_ci"]
        ci = f" [{lo:.3g}, {hi:.3g}]" if lo == lo else ""
        console.print(f"noise scale: {scale.describe()}; at this batch S/S_min ≈ "
                      f"{implied['steps_over_min']:.3g}{ci}, E/E_min ≈ "
                      f"{implied['examples_over_min']:.3g}", highlight=False)  # fmt: skip
    items, has_noise = advise_stored_run(run_id, path, b_noise=b_noise)
    if not has_noise:
        console.print("note: the run recorded no noise statistics, so there is no batch-size "
                      "advice; record them with `record: {noise: true}` in the config, or "
                      "with Monitor(noise_every=...)", highlight=False)  # fmt: skip
    if not items:
        console.print("no advice: no rule fired (no spikes, stable loss"
                      + (", batch near the noise scale)" if has_noise else ")"))  # fmt: skip
    for item in items:
        console.print(f"[bold]{item.kind}[/]: {item.message}", highlight=False)


def _apply_advice(run_id: str, path: Path, out: Path, b_noise: bool) -> None:
    """``sgdlab advise --apply``: the advice, then the new config's changes with evidence."""
    from sgdlab.advice_apply import apply_stored_run

    changes, items = apply_stored_run(run_id, path, out, b_noise=b_noise)
    for item in items:
        console.print(f"[bold]{item.kind}[/]: {item.message}", highlight=False)
    if not changes:
        console.print("no change to apply: no advice that changes the config fired; nothing "
                      "written", highlight=False)  # fmt: skip
        return
    for change in changes:
        console.print(f"[bold]apply[/] {change.describe()}", highlight=False)
    console.print(f"wrote {out}: run it with `sgdlab run {out}`", highlight=False)


_STATUS_NOTE = {
    "failed": " (stopped by an error or an interrupt; nothing of it was stored)",
    "running": " (still going: an engine run stores its data when it ends, a Monitor run "
    "as it goes)",
    "stale": " (it was running, but the process writing it is gone; `sgdlab runs --prune` "
    "removes it)",
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


def show_run(run_id: str, store: Path, out: Path | None, console: Console) -> Path | None:
    """Print a run's summary table and write its objective figure; returns the figure path."""
    import numpy as np

    from sgdlab.report.figures import band, plot_metric_band
    from sgdlab.store import Store

    db = Store(store, read_only=True)
    with db.session():  # one consistent view, even of a run that is being written
        info = db.run(run_id)
        rid = info["run_id"]
        names = db.metric_names(rid)
        data = {n: db.metric(rid, n) for n in names}
        diverged = db.diverged(rid)
        events = [m for m in db.measurements(rid) if m["name"].startswith("monitor.")]
    cfg = info["config"]
    head = PlainTable(title=f"run {rid}", show_header=False, title_justify="left")
    head.add_column("field")
    head.add_column("value")
    prob = _relevant_problem_params(cfg.get("problem", {}))
    state = _status(info)
    if state == "failed" and data:  # a Monitor run keeps what it wrote before it failed
        note = " (stopped by an error or an interrupt; the metrics written before are kept)"
    else:
        note = _STATUS_NOTE.get(state, "")
    head.add_row("status", state + note)
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
    for e in events:  # a Monitor's switched-off measurements and notes (never broke training)
        kind, _, topic = e["name"].removeprefix("monitor.").partition("/")
        message = e["details"].get("message", "")
        head.add_row("switched off" if kind == "off" else "note",
                     f"{topic} (step {int(e['value'])}): {message}")  # fmt: skip
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
    folder = out if out is not None else store.parent / "figures"
    if info["kind"] == "monitor":  # loss, gradient norm, lr, tr Σ, noise scale, temperature
        from sgdlab.report.monitor_dashboard import plot_monitor_dashboard

        dash = plot_monitor_dashboard(data, folder / f"{rid}-dashboard.png",
                                      title=f"{prob.get('name', '')} · run {rid}")  # fmt: skip
        if dash is not None:
            console.print(f"dashboard: {dash.resolve()}")
    metric = next((m for m in _PLOT_ORDER if m in data), None)
    if metric is None:
        return None
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
